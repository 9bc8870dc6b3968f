"""A blue/green deployment of a model as good as the one serving, while a tenth of production's requests are client
mistakes (malformed bodies, bad keys, wrong content types, numbers JSON cannot carry...): the deployment succeeds.

Client mistakes are 4xx. Those the model refuses count as green's ``Invocation4XXErrors`` (as SageMaker counts a
model's 4xx), never as 5XX, so green's error-rate alarm stays OK and nothing is rolled back. Green is the same
registered version as blue (same archive, new endpoint): whatever would roll it back is the mistakes alone.
Figures: ``build/chaos/client_mistakes_deploy.json``.
"""

from __future__ import annotations

import http.client as httpclient
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from safedeploy.approval import AutoApprove
from safedeploy.blue_green import RolledBackError
from safedeploy.pipeline import Pipeline
from safedeploy.runner import PipelineExecution
from safedeploy.serving import daemon
from safedeploy.serving.host import LocalServingHost
from safedeploy.spec import PipelineSpec, load_spec
from safedeploy.stages import ProductionRelease, deploy_to_production
from tests.chaos.figures import record, size
from tests.conftest import REPO_ROOT, churn_rows, write_table
from tests.serving import http

pytestmark = pytest.mark.slow
MISTAKE_SHARE = 0.10
CLIENTS = size(3, 6)
TIME_SCALE = size(120, 30)
"""Model time runs this much faster: the 5-minute canary and bake take 2.5 s each in make test, 10 s in make chaos."""
ROW = ",".join(["1"] * 69).encode()
CSV = b"text/csv"


@dataclass(frozen=True)
class Mistake:
    """One kind of client mistake: what is sent instead of a valid request."""

    name: str
    body: bytes = ROW
    content_type: bytes | None = CSV
    key: bytes | None = None
    """None: the right key."""


MISTAKES = [
    Mistake("no key", key=b""),
    Mistake("wrong key", key=b"not-the-key"),
    Mistake("non-ASCII key", key="ключ".encode()),
    Mistake("no content type", content_type=None),
    Mistake("xml", body=b"<row/>", content_type=b"application/xml"),
    Mistake("empty body", body=b""),
    Mistake("wrong width", body=b"1,2,3"),
    Mistake("not a number", body=b",".join([b"1"] * 68 + [b"x"])),
    Mistake("nan", body=b",".join([b"1"] * 68 + [b"nan"])),
    Mistake("beyond float32", body=b",".join([b"1"] * 68 + [b"1e39"])),
    Mistake("malformed json", body=b"{", content_type=b"application/json"),
    Mistake("1e309", body=b"[[" + b"1e309," * 68 + b"1]]", content_type=b"application/json"),
    Mistake("5000 digits", body=b"[[" + b"1" * 5000 + b"]]", content_type=b"application/json"),
    Mistake("nested 1000 deep", body=b"[" * 1000 + b"]" * 1000, content_type=b"application/json"),
    Mistake("unknown field", body=b'{"Referrer": 1}', content_type=b"application/json"),
    Mistake("csv as json", body=ROW, content_type=b"application/json"),
    Mistake("binary", body=bytes(range(256)), content_type=CSV),
]


@dataclass
class Clients:
    """Closed-loop clients on the production REST API; a tenth of their requests are mistakes (bounded: 300 s)."""

    url: str
    key: bytes
    threads: int
    answers: list[tuple[str, int, str]] = field(default_factory=list)
    """(mistake name or "valid", status, endpoint that answered)."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Clients:
        for seed in range(self.threads):
            worker = threading.Thread(target=self._run, args=(seed,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def _run(self, seed: int) -> None:
        parts = urlsplit(self.url)
        assert parts.hostname == "127.0.0.1" and parts.port is not None
        chance = random.Random(seed)
        deadline = time.monotonic() + 300
        connection = httpclient.HTTPConnection("127.0.0.1", parts.port, timeout=30)
        while not self._stop.is_set() and time.monotonic() < deadline:
            mistake = chance.choice(MISTAKES) if chance.random() < MISTAKE_SHARE else None
            sent = mistake or Mistake("valid")
            headers: dict[str, bytes] = {"x-api-key": self.key if sent.key is None else sent.key, "Accept": CSV}
            if sent.content_type is not None:
                headers["Content-Type"] = sent.content_type
            try:
                connection.putrequest("POST", parts.path)
                for name, value in headers.items():
                    connection.putheader(name, value)  # bytes as they are: a non-ASCII key too
                connection.putheader("Content-Length", str(len(sent.body)))
                connection.endheaders(sent.body)
                reply = connection.getresponse()
                reply.read()
            except (OSError, httpclient.HTTPException):
                connection.close()
                self.answers.append((sent.name, 0, ""))
                continue
            self.answers.append((sent.name, reply.status, reply.getheader("X-SageMaker-Endpoint", "")))
            time.sleep(0.01)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PipelineSpec, PipelineExecution]]:
    """Production serving v1 (blue), first deployed by the pipeline; the runtime is stopped at the end."""
    root = tmp_path_factory.mktemp("mistakes")
    spec = load_spec(
        overrides={
            "state_dir": str(root / "state"),
            "data": {"source": str(write_table(root / "churn.csv", churn_rows(800, seed=29)))},
            "training": {"source_dir": str(REPO_ROOT / "model")},
            "hyperparameters": {"num_round": 60},
            "gate": {"conditions": [{"metric": "test:auc", "op": ">=", "threshold": 0.5}]},
            "serving": {"enabled": True},
            "monitoring": {"enabled": False},
            "production": {"strategy": "Canary10Percent5Minutes", "bake_seconds": 300, "time_scale": TIME_SCALE},
        }
    )
    try:
        execution = Pipeline(spec, project_root=REPO_ROOT, approver=AutoApprove("tests")).run()
        assert execution.status == "Succeeded", execution.error
        yield spec, execution
    finally:
        daemon.stop(spec.state_dir)


def _metric_sum(runtime_url: str, endpoint: str, metric: str, start: datetime) -> float:
    query = urlencode(
        {
            "EndpointName": endpoint,
            "MetricName": metric,
            "Period": 86_400,
            "StartTime": start.isoformat(),
            "EndTime": (datetime.now(UTC) + timedelta(seconds=2)).isoformat(),
        }
    )
    return float(
        sum(p["Sum"] for p in http(f"{runtime_url}/_local/metrics?{query}", method="GET").json()["Datapoints"])
    )


def test_a_tenth_of_client_mistakes_never_rolls_back_a_good_green(
    production: tuple[PipelineSpec, PipelineExecution],
) -> None:
    spec, first = production
    host = LocalServingHost(spec.state_dir, spec.region, spec.account_id)
    before = host.outputs()
    pipeline = Pipeline(spec, project_root=REPO_ROOT)
    release = ProductionRelease.of_execution(first, pipeline.backend.serving_image)  # the very model blue serves
    started = datetime.now(UTC)
    began = time.monotonic()
    rolled_back = None
    with Clients(before["ApiUrl"], before["ApiKey"].encode(), CLIENTS) as clients:
        time.sleep(0.5)
        try:
            deploy_to_production(
                spec,
                pipeline.backend,
                release,
                details={"approver": "chaos", "rehearsal": None},
                deployment_execution_id=f"cm{int(time.time()) % 100_000}",
            )
        except RolledBackError as exc:
            rolled_back = str(exc)
        time.sleep(0.5)
    elapsed = time.monotonic() - began
    last = pipeline.deployments()[-1]
    blue, green = last["blue"]["endpoint"], last["green"]["endpoint"]

    by_kind: dict[str, Counter[int]] = {}
    for name, status, _ in clients.answers:
        by_kind.setdefault(name, Counter())[status] += 1
    green_answers = Counter(status for _, status, endpoint in clients.answers if endpoint == green)
    mistakes_to_green = sum(1 for name, _, endpoint in clients.answers if name != "valid" and endpoint == green)
    green_4xx = _metric_sum(before["RuntimeUrl"], green, "Invocation4XXErrors", started)
    green_5xx = _metric_sum(before["RuntimeUrl"], green, "Invocation5XXErrors", started)
    figures: dict[str, Any] = {
        "seconds": round(elapsed, 1),
        "requests": len(clients.answers),
        "mistakes": sum(1 for name, _, _ in clients.answers if name != "valid"),
        "statuses_by_kind": {name: dict(sorted(counts.items())) for name, counts in sorted(by_kind.items())},
        "green_answers": dict(sorted(green_answers.items())),
        "mistakes_answered_by_green": mistakes_to_green,
        "green_invocation_4xx": green_4xx,
        "green_invocation_5xx": green_5xx,
        "outcome": last["outcome"],
        "rolled_back": rolled_back,
        "steps": [s["weights"] for s in last.get("steps", [])],
    }
    record("client_mistakes_deploy", figures)

    assert rolled_back is None and last["outcome"] == "Succeeded", figures
    assert blue == before["EndpointName"] and host.outputs()["EndpointName"] == green != blue
    statuses = Counter(status for _, status, _ in clients.answers)
    assert not [s for s in statuses if s >= 500 or s == 0], figures  # no 5xx, no dropped connection
    assert set(by_kind["valid"]) == {200}, figures
    assert all(400 <= status < 500 for name, counts in by_kind.items() if name != "valid" for status in counts), figures
    share = figures["mistakes"] / figures["requests"]
    assert 0.05 < share < 0.2 and figures["requests"] > 200, figures
    # Green's model refused some mistakes itself: counted as 4XX, never 5XX (the error-rate alarm reads 5XX).
    assert green_4xx > 0 and green_5xx == 0, figures
