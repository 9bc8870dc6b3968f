"""``kill -9`` of a serving instance under load, and of the runtime itself.

Production runs two instances: killing one costs only the requests it had in flight, and its replacement
serves within two seconds. Killing the runtime brings it back by itself (its supervisor) on the same ports, so
the published ``ApiUrl`` keeps working.
"""

from __future__ import annotations

import functools
import http.client as httpclient
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from safedeploy.serving import daemon
from safedeploy.serving.host import LocalServingHost
from safedeploy.serving.runtime import RuntimePaths
from safedeploy.spec import PipelineSpec
from tests.chaos.figures import record, size
from tests.serving import http, wait_for

pytestmark = pytest.mark.slow
ROW = ",".join(["1"] * 69).encode()


@dataclass
class Load:
    """Closed-loop clients on the REST API (127.0.0.1; bounded in time): each outcome with its wall time."""

    url: str
    key: str
    threads: int = 4
    seconds: float = 60.0
    outcomes: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def _run(self) -> None:
        parts = urlsplit(self.url)
        assert parts.hostname == "127.0.0.1"
        deadline = time.monotonic() + self.seconds
        connection = httpclient.HTTPConnection("127.0.0.1", parts.port, timeout=30)
        headers = {"x-api-key": self.key, "Content-Type": "text/csv", "Accept": "text/csv"}
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                connection.request("POST", parts.path, body=ROW, headers=headers)
                reply = connection.getresponse()
                reply.read()
                status = reply.status
            except (OSError, httpclient.HTTPException):
                connection.close()
                status = 0
            self.outcomes.append((time.monotonic(), status))

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)

    def answered(self, count: int) -> bool:
        """Whether ``count`` requests have been answered (or failed) so far."""
        return len(self.outcomes) >= count

    def failed(self) -> int:
        """Requests not answered 200."""
        return sum(status != 200 for _, status in self.outcomes)


def _instances(info: daemon.RuntimeInfo, endpoint: str) -> list[int]:
    health = daemon.local_get(info, "/_local/health")
    return [pid for pids in health["endpoints"][endpoint]["Instances"].values() for pid in pids]


def _replaced(info: daemon.RuntimeInfo, endpoint: str, killed: int) -> list[int] | None:
    """Production's instance pids once the killed one is replaced, healthy and serving."""
    now = _instances(info, endpoint)
    return now if len(now) == 2 and killed not in now else None


def test_a_killed_instance_costs_only_its_in_flight_requests(
    blue_production: tuple[PipelineSpec, dict[str, str]],
) -> None:
    spec, outputs = blue_production
    host = LocalServingHost(spec.state_dir, spec.region, spec.account_id)
    info = host.info()
    endpoint = outputs["EndpointName"]
    runs: list[dict[str, Any]] = []
    for _ in range(size(1, 5)):
        before = _instances(info, endpoint)
        assert len(before) == spec.production.instance_count == 2
        with Load(outputs["ApiUrl"], outputs["ApiKey"]) as load:
            wait_for(functools.partial(load.answered, 200), 30, "load to build up")
            os.kill(before[0], signal.SIGKILL)
            killed = time.monotonic()
            replaced = wait_for(functools.partial(_replaced, info, endpoint, before[0]), 10, "a replacement instance")
            replaced_s = time.monotonic() - killed
            time.sleep(1.0)
        failed = load.failed()
        runs.append(
            {"requests": len(load.outcomes), "failed": failed, "in_flight_limit": load.threads,
             "replacement_serving_s": round(replaced_s, 2), "replacement_pid": sorted(set(replaced) - set(before))}
        )  # fmt: skip
        assert failed <= load.threads, runs[-1]  # at most the requests in flight on the killed instance
        assert replaced_s <= 2.0, runs[-1]
    record(
        "kill-instance",
        {"what": "kill -9 of one of production's 2 instances under 4 closed-loop clients", "runs": runs},
    )


def test_a_killed_runtime_comes_back_by_itself_on_the_same_ports(
    blue_production: tuple[PipelineSpec, dict[str, str]],
) -> None:
    spec, outputs = blue_production
    host = LocalServingHost(spec.state_dir, spec.region, spec.account_id)
    before = host.info()
    headers = {"x-api-key": outputs["ApiKey"], "Content-Type": "text/csv"}
    assert http(outputs["ApiUrl"], ROW, headers).status == 200
    os.kill(before.pid, signal.SIGKILL)
    killed = time.monotonic()

    def answering() -> bool:
        try:
            return http(outputs["ApiUrl"], ROW, headers).status == 200
        except OSError:
            return False

    wait_for(answering, 60, "the REST API to answer again after the runtime was killed")
    back_s = time.monotonic() - killed
    after = wait_for(lambda: daemon.read_info(RuntimePaths(spec.state_dir.resolve())), 30, "runtime info")
    assert after.pid != before.pid
    assert (after.runtime_url, after.gateway_url) == (before.runtime_url, before.gateway_url)
    assert LocalServingHost(spec.state_dir, spec.region, spec.account_id).outputs()["ApiUrl"] == outputs["ApiUrl"]
    record(
        "kill-runtime",
        {"what": "kill -9 of the runtime process; time until the same ApiUrl answers 200 again",
         "back_after_s": round(back_s, 2), "same_ports": True, "old_pid": before.pid, "new_pid": after.pid},
    )  # fmt: skip
