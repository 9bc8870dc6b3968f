"""A flood of idle connections on the REST API cannot take the control plane (or the API) down.

Child processes open thousands of connections to the gateway and hold them without sending a byte (20,000 in
``make chaos``). The gateway sheds its least recently active idle connections beyond its limit instead of
running out of file descriptors, so the control plane answers, and a fresh REST API request is served.
"""

from __future__ import annotations

import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

from safedeploy.serving import daemon
from safedeploy.serving.host import LocalServingHost
from safedeploy.spec import PipelineSpec
from tests.chaos.figures import record, size
from tests.serving import http

pytestmark = pytest.mark.slow
ROW = ",".join(["1"] * 69).encode()
PER_PROCESS = 10_000
HOLDER = """
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, count = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(count):
    try:
        held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    except OSError:
        break
print(len(held), flush=True)
sys.stdin.read()  # hold them until the test closes our stdin
closed = 0
for sock in held:
    sock.setblocking(False)
    try:
        closed += sock.recv(1) == b""
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print(closed, flush=True)
"""


def test_twenty_thousand_idle_connections_leave_the_control_plane_answering(
    blue_production: tuple[PipelineSpec, dict[str, str]],
) -> None:
    spec, outputs = blue_production
    host = LocalServingHost(spec.state_dir, spec.region, spec.account_id)
    info = host.info()
    port = urlsplit(info.gateway_url).port
    total = size(2_000, 20_000)
    counts = [min(PER_PROCESS, total - i) for i in range(0, total, PER_PROCESS)]
    holders = [
        subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(port), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for count in counts
    ]
    try:
        opened = 0
        for holder in holders:
            assert holder.stdout is not None
            opened += int(holder.stdout.readline())
        started = time.monotonic()
        described = daemon.sagemaker_client(info).describe_endpoint(EndpointName=outputs["EndpointName"])
        control_s = time.monotonic() - started
        assert described["EndpointStatus"] == "InService"
        health = daemon.local_get(info, "/_local/health")
        assert health["status"] == "ok"
        started = time.monotonic()
        reply = http(outputs["ApiUrl"], ROW, {"x-api-key": outputs["ApiKey"], "Content-Type": "text/csv"})
        api_s = time.monotonic() - started
        assert reply.status == 200
    finally:
        shed = 0
        for holder in holders:
            out, _ = holder.communicate("", timeout=120)
            shed += int(out.split()[-1]) if out.split() else 0
    assert opened >= total * 0.99, f"only {opened} of {total} connections could be opened"
    record(
        "idle-flood",
        {
            "what": "idle connections held open on the REST API gateway; the control plane and the API still answer",
            "connections_opened": opened,
            "connections_shed_by_gateway": shed,
            "describe_endpoint_s": round(control_s, 3),
            "rest_api_request_s": round(api_s, 3),
        },
    )
