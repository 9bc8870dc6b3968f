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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from safedeploy.blue_green import RolledBackError
from safedeploy.local import daemon
from safedeploy.local.daemon import RuntimeInfo
from safedeploy.local.host import LocalServingHost
from safedeploy.pipeline import Pipeline
from safedeploy.runtime.paths import RuntimePaths
from safedeploy.spec import PipelineSpec
from safedeploy.stages import ProductionRelease, deploy_to_production
from tests.chaos.figures import record, size
from tests.conftest import REPO_ROOT
from tests.serving import signed

pytestmark = pytest.mark.slow
MISTAKE_SHARE = 0.10
CLIENTS = size(3, 6)
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


def _metric_sum(info: RuntimeInfo, endpoint: str, metric: str, start: datetime) -> float:
    query = urlencode(
        {
            "EndpointName": endpoint,
            "MetricName": metric,
            "Period": 86_400,
            "StartTime": start.isoformat(),
            "EndTime": (datetime.now(UTC) + timedelta(seconds=2)).isoformat(),
        }
    )
    points = signed(info, f"/_local/metrics?{query}", method="GET").json()["Datapoints"]
    return float(sum(p["Sum"] for p in points))


def test_a_tenth_of_client_mistakes_never_rolls_back_a_good_green(
    blue_production: tuple[PipelineSpec, dict[str, str]],
) -> None:
    spec, before = blue_production
    host = LocalServingHost(spec.state_dir, spec.region, spec.account_id)
    pipeline = Pipeline(spec, project_root=REPO_ROOT)
    first = pipeline.latest_execution()
    assert first is not None and first.status == "Succeeded"
    backend = pipeline.backend  # green is the very model blue serves:
    release = ProductionRelease.of_execution(first, backend.serving_image, backend.registry, spec.model_name)
    started = datetime.now(UTC)
    began = time.monotonic()
    rolled_back = None
    with Clients(before["ApiUrl"], before["ApiKey"].encode(), CLIENTS) as clients:
        time.sleep(0.5)
        try:
            deploy_to_production(
                spec,
                backend,
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
    info = daemon.read_info(RuntimePaths(spec.state_dir.resolve()))
    assert info is not None
    green_4xx = _metric_sum(info, green, "Invocation4XXErrors", started)
    green_5xx = _metric_sum(info, green, "Invocation5XXErrors", started)
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
