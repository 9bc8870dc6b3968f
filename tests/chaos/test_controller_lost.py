"""``kill -9`` of ``make deploy`` mid-canary: the runtime puts blue back alone within two alarm periods (model time).

The deployment's controller is the ``safedeploy run`` process. It is killed while production is split 90/10;
the runtime's lease watchdog must route everything to blue, delete green, and record the deployment as rolled
back for a lost controller; the REST API then answers from blue only, and the next deployment works.
"""

from __future__ import annotations

import functools
import signal
import time
from typing import Any

import pytest

from safedeploy import constants as C
from safedeploy.ledger import CONTROLLER_LOST, EVENT_SHIFTED, DeploymentLedger
from safedeploy.local import daemon
from safedeploy.local.host import LocalServingHost
from safedeploy.runtime.paths import RuntimePaths
from safedeploy.runtime.state_file import read_state
from safedeploy.spec import PipelineSpec
from tests.chaos.conftest import deploy_cli
from tests.chaos.figures import record, size
from tests.serving import http, wait_for

pytestmark = pytest.mark.slow
ROW = ",".join(["1"] * 69).encode()


def _canary_started(ledger: DeploymentLedger, known: set[str]) -> dict[str, Any] | None:
    for summary in ledger.deployments():
        if summary["deployment_id"] in known or summary["outcome"] != "InProgress":
            continue
        for step in summary["steps"]:
            weights = step["weights"]
            if step["event"] == EVENT_SHIFTED and len(weights) == 2 and min(weights.values()) <= 0.1:
                return summary
    return None


def _restored(spec: PipelineSpec, blue: str, green: str, deployment_id: str) -> dict[str, Any] | None:
    """The deployment's ledger summary once blue serves alone, green is gone and the rollback is recorded."""
    state = read_state(RuntimePaths(spec.state_dir.resolve()).state)
    route = state.Routes.get(f"{spec.model_name}-{C.API_ROUTE_SUFFIX}")
    if route is None or route.Canary is not None or route.Environment["ENDPOINT_NAME"] != blue:
        return None
    if green in state.Endpoints:
        return None
    ledger = DeploymentLedger(spec.state_dir / "deployments", spec.pipeline_name)
    summary = next(d for d in ledger.deployments() if d["deployment_id"] == deployment_id)
    return summary if summary["outcome"] != "InProgress" else None


def test_killing_the_controller_mid_canary_puts_blue_back_alone(
    blue_production: tuple[PipelineSpec, dict[str, str]],
) -> None:
    spec, before = blue_production
    host = LocalServingHost(spec.state_dir, spec.region, spec.account_id)
    ledger = DeploymentLedger(spec.state_dir / "deployments", spec.pipeline_name)
    period_model_s = spec.alarms.deployment.error_rate.period_seconds
    figures: list[dict[str, Any]] = []
    for attempt in range(size(1, 3)):
        known = {d["deployment_id"] for d in ledger.deployments()}
        process = deploy_cli(spec)
        summary = wait_for(functools.partial(_canary_started, ledger, known), 240, "the 10% canary step")
        green = summary["green"]["endpoint"]
        process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        process.wait(timeout=30)

        restored = functools.partial(_restored, spec, before["EndpointName"], green, summary["deployment_id"])
        outcome = wait_for(restored, 30, "blue alone on the route, green deleted, the rollback recorded")
        restored_s = time.monotonic() - killed
        assert outcome["reason"].startswith(CONTROLLER_LOST), outcome["reason"]
        restored_model_s = restored_s * spec.production.time_scale
        assert restored_model_s <= 2 * period_model_s, f"blue alone after {restored_model_s:.0f} s of model time"

        outputs = host.outputs()
        assert outputs["EndpointName"] == before["EndpointName"]
        headers = {"x-api-key": outputs["ApiKey"], "Content-Type": "text/csv"}
        replies = [http(outputs["ApiUrl"], ROW, headers) for _ in range(50)]
        assert {reply.status for reply in replies} == {200}
        assert {reply.headers.get(C.HEADER_ENDPOINT.lower()) for reply in replies} == {before["EndpointName"]}
        figures.append(
            {
                "attempt": attempt + 1,
                "restored_wall_s": round(restored_s, 3),
                "restored_model_s": round(restored_model_s, 1),
            }
        )
    health = daemon.local_get(host.info(), "/_local/health")
    assert set(health["endpoints"]) == {before["EndpointName"], before.get("DevEndpointName", "")} - {""}
    record(
        "controller-lost",
        {
            "what": "kill -9 of `safedeploy run` during the 10% canary; time until blue alone and green deleted",
            "alarm_period_model_s": period_model_s,
            "time_scale": spec.production.time_scale,
            "limit_model_s": 2 * period_model_s,
            "runs": figures,
        },
    )
