"""Game day: FAULT= makes green misbehave; with clients calling the REST API the whole time, every fault is
rolled back without a human, blue answers every request not routed to green, and the ledger says why."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from safedeploy import constants as C
from safedeploy.approval import AutoApprove
from safedeploy.ledger import DeploymentLedger
from safedeploy.local import daemon
from safedeploy.local.host import LocalServingHost
from safedeploy.local.routes import api_route
from safedeploy.pipeline import Pipeline
from safedeploy.runtime.paths import RuntimePaths
from safedeploy.runtime.state_file import read_state
from safedeploy.spec import PipelineSpec, load_spec
from tests.conftest import REPO_ROOT, churn_rows, write_table

pytestmark = pytest.mark.slow
ROW = ",".join(["1"] * 69).encode()


@dataclass
class Clients:
    """Bounded closed-loop clients on the production REST API (127.0.0.1; at most ``limit`` requests, 120 s)."""

    url: str
    key: str
    threads: int = 4
    limit: int = 20_000
    answers: list[tuple[int, str, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Clients:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def _run(self) -> None:
        parts = urlsplit(self.url)
        assert parts.hostname == "127.0.0.1"
        deadline = time.monotonic() + 120
        connection = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=30)
        headers = {"x-api-key": self.key, "Content-Type": "text/csv", "Accept": "text/csv"}
        while not self._stop.is_set() and len(self.answers) < self.limit and time.monotonic() < deadline:
            try:
                connection.request("POST", parts.path, body=ROW, headers=headers)
                reply = connection.getresponse()
                reply.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                self.answers.append((0, "", ""))
                continue
            self.answers.append(
                (reply.status, reply.getheader("X-Model-Version", ""), reply.getheader("X-SageMaker-Endpoint", ""))
            )
            time.sleep(0.005)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)


@pytest.fixture(scope="module")
def blue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PipelineSpec, dict[str, str]]]:
    """A production running v1 (blue), deployed healthy; the runtime is stopped at the end."""
    root = tmp_path_factory.mktemp("gameday")
    spec = load_spec(
        overrides={
            "state_dir": str(root / "state"),
            "data": {"source": str(write_table(root / "churn.csv", churn_rows(800, seed=23)))},
            "training": {"source_dir": str(REPO_ROOT / "model")},
            "hyperparameters": {"num_round": 60},
            "gate": {"conditions": [{"metric": "test:auc", "op": ">=", "threshold": 0.5}]},
            "serving": {"enabled": True},
            "production": {"strategy": "Canary10Percent5Minutes", "bake_seconds": 300, "time_scale": 120},
        }
    )
    try:
        first = Pipeline(spec, project_root=REPO_ROOT, approver=AutoApprove("tests")).run()
        assert first.status == "Succeeded", first.error
        yield spec, LocalServingHost(spec.state_dir, spec.region, spec.account_id).outputs()
    finally:
        daemon.stop(spec.state_dir)


def names_cause(reason: str, cause: str) -> bool:
    """Whether the rollback ``reason`` names ``cause``: a hook's message, or an alarm among those that fired
    together (a crashing green can breach the latency alarm in the same period as the error-rate one)."""
    fired = re.search(r"alarm ([\w, -]+?) in ALARM during the 10% step", reason)
    if cause.startswith("the "):
        return cause in reason
    return fired is not None and cause in fired.group(1).split(", ")


def test_names_cause_reads_the_alarm_list() -> None:
    both = "rolled back to x: alarm green-error-rate, green-p99-latency in ALARM during the 10% step: ..."
    assert names_cause(both, "green-error-rate") and names_cause(both, "green-p99-latency")
    assert not names_cause(both, "green-prediction-shift")
    assert not names_cause("rolled back to x: alarm green-p99-latency in ALARM during the 10% step", "green-error-rate")


@pytest.mark.parametrize(
    ("fault", "cause", "green_serves"),
    [
        ("load-failure", "the BeforeAllowTraffic hook reported Failed", False),
        ("errors:0.2", "green-error-rate", True),
        ("latency:200ms", "green-p99-latency", True),
        ("crash", "green-error-rate", True),
    ],
)
def test_each_fault_is_rolled_back_with_blue_serving(
    blue: tuple[PipelineSpec, dict[str, str]], fault: str, cause: str, green_serves: bool
) -> None:
    spec, before = blue
    faulty = spec.model_copy(update={"production": spec.production.model_copy(update={"fault": fault})})
    with Clients(before["ApiUrl"], before["ApiKey"]) as clients:
        time.sleep(0.5)
        execution = Pipeline(faulty, project_root=REPO_ROOT, approver=AutoApprove("game day")).run()
        time.sleep(0.5)
    assert execution.status == "Failed"
    stage = execution.stage(C.STAGE_DEPLOY_PRD)
    assert (
        stage.error is not None
        and names_cause(stage.error, cause)
        and stage.error.startswith(f"rolled back to {before['EndpointName']}")
    )

    green_version = str(execution.stage(C.STAGE_REGISTER).outputs["model_package_version"])
    blue_answers = [a for a in clients.answers if a[1] == before["ModelVersion"]]
    green_answers = [a for a in clients.answers if a[1] == green_version]
    assert len(blue_answers) > 100 and all(status == 200 for status, _, _ in blue_answers)
    assert all(endpoint == before["EndpointName"] for _, _, endpoint in blue_answers)
    # Every request got an answer from blue or from green (none lost to the switch).
    assert len(blue_answers) + len(green_answers) == len(clients.answers)
    assert bool(green_answers) == green_serves
    assert len(green_answers) <= 0.25 * len(clients.answers)  # green never had more than the canary's share

    after = LocalServingHost(spec.state_dir, spec.region, spec.account_id).outputs()
    assert after["EndpointName"] == before["EndpointName"] and after["ModelVersion"] == before["ModelVersion"]
    route = read_state(RuntimePaths(spec.state_dir.resolve()).state).Routes[api_route(spec.model_name, C.PRD_STAGE)[0]]
    assert route.Canary is None  # 100 % blue
    ledger = DeploymentLedger(spec.state_dir.resolve() / "deployments", spec.pipeline_name)
    last = ledger.deployments()[-1]
    assert last["outcome"] == "RolledBack" and names_cause(last["reason"], cause) and last["rehearsal"] == fault
    if fault == "errors:0.2":  # green's first FAULT_AFTER calls are healthy (about a period), then 2 periods at most
        fired = [
            e for e in ledger.events(last["deployment_id"]) if e["event"] == "AlarmTransition" and e["new"] == "ALARM"
        ]
        assert fired and fired[0]["period"] <= 3
    assert not LocalServingHost(spec.state_dir, spec.region, spec.account_id).endpoint_exists(last["green"]["endpoint"])
    # The registry marks the rolled-back version, and production is still blue's version.
    registry = Pipeline(spec, project_root=REPO_ROOT).backend.registry
    rolled = registry.describe(spec.model_name, int(green_version))
    assert rolled.rolled_back and not rolled.production_candidate and "prd" not in rolled.serves_in
    assert cause.removeprefix("the ") in rolled.CustomerMetadataProperties["RolledBackReason"]
    live = registry.describe(spec.model_name, int(before["ModelVersion"]))
    assert "prd" in live.serves_in and live.CustomerMetadataProperties["PrdEndpoint"] == before["EndpointName"]


def test_make_deploy_with_a_fault_exits_non_zero_naming_the_alarm(blue: tuple[PipelineSpec, dict[str, str]]) -> None:
    spec, before = blue
    env = {k: v for k, v in os.environ.items() if not k.startswith(C.ENV_PREFIX)}
    env |= {
        f"{C.ENV_PREFIX}STATE_DIR": str(spec.state_dir),
        f"{C.ENV_PREFIX}SERVING__ENABLED": "true",
        f"{C.ENV_PREFIX}TRAINING__SOURCE_DIR": str(REPO_ROOT / "model"),
        f"{C.ENV_PREFIX}HYPERPARAMETERS__NUM_ROUND": "60",
        f"{C.ENV_PREFIX}GATE__CONDITIONS": '[{"metric": "test:auc", "op": ">=", "threshold": 0.5}]',
        f"{C.ENV_PREFIX}PRODUCTION__TIME_SCALE": "120",
    }
    run = subprocess.run(
        [sys.executable, "-m", "safedeploy.cli", "run", "--data", str(spec.data.source), "--auto-approve",
         "--set", "production.fault=errors:0.2"],
        env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert "DeployPrd: rolled back to" in run.stdout and "green-error-rate" in run.stdout
    after = LocalServingHost(spec.state_dir, spec.region, spec.account_id).outputs()
    assert after["EndpointName"] == before["EndpointName"]
