"""The disk fills up during a production deployment's canary: blue ends up serving everything.

The state directory lives on a small tmpfs. v1 and v2 are deployed healthy; the deployment of v3 is started in
a child process, and once production is split 90/10 the rest of the tmpfs is filled. The deployment must roll
back (it cannot record its progress), with the runtime's memory and disk agreeing, blue (v2) answering every
request, a ledger whose every line parses; once space is freed, ``safedeploy rollback`` returns production to v1.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safedeploy import constants as C
from safedeploy.approval import AutoApprove
from safedeploy.ledger import DeploymentLedger
from safedeploy.local import daemon
from safedeploy.local.host import LocalServingHost
from safedeploy.pipeline import Pipeline
from safedeploy.runtime.paths import RuntimePaths
from safedeploy.runtime.state_file import read_state
from safedeploy.spec import PipelineSpec
from tests.chaos.conftest import deploy_cli, production_spec
from tests.chaos.figures import record
from tests.conftest import REPO_ROOT
from tests.serving import http, wait_for

pytestmark = pytest.mark.slow
ROW = ",".join(["1"] * 69).encode()
TMPFS_SIZE = "128m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 128 MB tmpfs (root, or CAP_SYS_ADMIN, is needed to mount one)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        with contextlib.suppress(Exception):
            daemon.stop(mount_point / "state")
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path) -> int:
    """Write a file until the disk is full; return its size."""
    written = 0
    chunk = b"\0" * (1 << 20)
    with (directory / "filler").open("wb", buffering=0) as stream:
        while True:
            try:
                written += stream.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        with contextlib.suppress(OSError):
            while stream.write(b"\0" * 4096):
                written += 4096
    return written


def _split(ledger: DeploymentLedger, known: set[str]) -> dict[str, Any] | None:
    for summary in ledger.deployments():
        fresh = summary["deployment_id"] not in known and summary["outcome"] == "InProgress"
        if fresh and any(len(step["weights"]) == 2 for step in summary["steps"]):
            return summary
    return None


def _deploy(spec: PipelineSpec) -> None:
    execution = Pipeline(spec, project_root=REPO_ROOT, approver=AutoApprove("chaos")).run(trigger="chaos")
    assert execution.status == "Succeeded", execution.error


def test_a_full_disk_mid_canary_ends_with_blue_serving_everything(small_disk: Path) -> None:
    spec = production_spec(small_disk)
    _deploy(spec)  # v1
    # v2: blue (a new version needs new inputs: identical ones reuse v1)
    _deploy(spec.model_copy(update={"hyperparameters": spec.hyperparameters.model_copy(update={"num_round": 62})}))
    host = LocalServingHost(spec.state_dir, spec.region, spec.account_id)
    blue = host.outputs()
    ledger = DeploymentLedger(spec.state_dir / "deployments", spec.pipeline_name)
    known = {d["deployment_id"] for d in ledger.deployments()}

    process = deploy_cli(spec)
    summary = wait_for(functools.partial(_split, ledger, known), 240, "production split between blue and green")
    filled = _fill(small_disk)
    started = time.monotonic()
    assert process.wait(timeout=180) != 0
    ended_s = time.monotonic() - started

    outcome = next(d for d in ledger.deployments() if d["deployment_id"] == summary["deployment_id"])
    assert outcome["outcome"] == "RolledBack", outcome
    lines = ledger.path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(line) for line in lines[:-1])

    state = read_state(RuntimePaths(spec.state_dir.resolve()).state)
    route = state.Routes[f"{spec.model_name}-{C.API_ROUTE_SUFFIX}"]
    assert route.Canary is None and route.Environment["ENDPOINT_NAME"] == blue["EndpointName"]
    assert summary["green"]["endpoint"] not in state.Endpoints
    health = daemon.local_get(host.info(), "/_local/health")
    assert set(health["endpoints"]) == set(state.Endpoints)  # memory and disk agree

    headers = {"x-api-key": blue["ApiKey"], "Content-Type": "text/csv"}
    replies = [http(blue["ApiUrl"], ROW, headers) for _ in range(1000)]
    statuses = {reply.status for reply in replies}
    served = {reply.headers.get(C.HEADER_ENDPOINT.lower()) for reply in replies}
    assert statuses == {200} and served == {blue["EndpointName"]}, (statuses, served)

    (small_disk / "filler").unlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith(C.ENV_PREFIX)}
    env[f"{C.ENV_PREFIX}STATE_DIR"] = str(spec.state_dir)
    env[f"{C.ENV_PREFIX}PRODUCTION__TIME_SCALE"] = str(spec.production.time_scale)
    rollback = subprocess.run(
        [sys.executable, "-m", "safedeploy.cli", "rollback", "--by", "chaos"],
        env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert rollback.returncode == 0, rollback.stdout + rollback.stderr
    assert host.outputs()["ModelVersion"] == "1"
    record(
        "disk-full",
        {
            "what": "the state directory's tmpfs filled during v3's canary (90/10), then freed for `safedeploy rollback`",
            "tmpfs": TMPFS_SIZE,
            "filler_bytes": filled,
            "deploy_ended_after_fill_s": round(ended_s, 2),
            "outcome": outcome["outcome"],
            "reason": outcome["reason"],
            "requests_after": len(replies),
            "non_200_after": sum(reply.status != 200 for reply in replies),
            "rollback_to_v1": "ok",
        },
    )
