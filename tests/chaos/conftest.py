"""A production running v1 (blue) on its own runtime, shared by the chaos experiments of one module.

The chaos modules judge latency and timing (canary steps against blue, stalls, floods, a CPU-burning busy machine):
two of them at once on the other xdist worker would each be the other's unplanned fault. :func:`one_chaos_module_at_a_time`
holds an exclusive lock shared by every worker for the whole module, so they run one after another while the
rest of the suite goes on beside them.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from safedeploy import constants as C
from safedeploy.approval import AutoApprove
from safedeploy.local import daemon
from safedeploy.local.host import LocalServingHost
from safedeploy.pipeline import Pipeline
from safedeploy.spec import PipelineSpec, load_spec
from tests.conftest import REPO_ROOT, churn_rows, write_table

TIME_SCALE = 60
"""Model time runs 60x: a 60 s alarm period is one second on the wall, a 5-minute canary five."""


@pytest.fixture(scope="module", autouse=True)
def one_chaos_module_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """An exclusive lock, shared by the xdist workers of this run, held while this chaos module runs."""
    shared = tmp_path_factory.getbasetemp().parent  # one per run: the workers' base temps are its children
    with (shared / "chaos-modules.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def production_spec(root: Path, strategy: str = "Canary10Percent5Minutes", **production: object) -> PipelineSpec:
    """A small, fast pipeline with production on: 800 customers, 60 rounds, the given strategy at 60x."""
    return load_spec(
        overrides={
            "state_dir": str(root / "state"),
            "data": {"source": str(write_table(root / "churn.csv", churn_rows(800, seed=29)))},
            "training": {"source_dir": str(REPO_ROOT / "model")},
            "hyperparameters": {"num_round": 60},
            "gate": {"conditions": [{"metric": "test:auc", "op": ">=", "threshold": 0.5}]},
            "serving": {"enabled": True},
            "monitoring": {"enabled": False},
            "production": {"strategy": strategy, "bake_seconds": 120, "time_scale": TIME_SCALE, **production},
        }
    )


def deploy_cli(spec: PipelineSpec, *extra: str) -> subprocess.Popen[str]:
    """``safedeploy run`` for this spec in a child process (as ``make deploy`` runs it), output to a log file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(C.ENV_PREFIX)}
    env |= {
        f"{C.ENV_PREFIX}STATE_DIR": str(spec.state_dir),
        f"{C.ENV_PREFIX}SERVING__ENABLED": "true",
        f"{C.ENV_PREFIX}MONITORING__ENABLED": "false",
        f"{C.ENV_PREFIX}TRAINING__SOURCE_DIR": str(REPO_ROOT / "model"),
        # 61, not production's 60: a new version needs new inputs (identical ones reuse the serving version)
        f"{C.ENV_PREFIX}HYPERPARAMETERS__NUM_ROUND": "61",
        f"{C.ENV_PREFIX}GATE__CONDITIONS": '[{"metric": "test:auc", "op": ">=", "threshold": 0.5}]',
        f"{C.ENV_PREFIX}PRODUCTION__TIME_SCALE": str(spec.production.time_scale),
        f"{C.ENV_PREFIX}PRODUCTION__STRATEGY": spec.production.strategy,
        f"{C.ENV_PREFIX}PRODUCTION__BAKE_SECONDS": str(spec.production.bake_seconds),
    }
    log = (spec.state_dir.parent / "deploy-cli.log").open("a")
    return subprocess.Popen(
        [sys.executable, "-m", "safedeploy.cli", "run", "--data", str(spec.data.source), "--auto-approve", *extra],
        env=env, stdout=log, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def blue_production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PipelineSpec, dict[str, str]]]:
    """v1 serving production (deployed healthy, in this process); its runtime is stopped at the end."""
    spec = production_spec(tmp_path_factory.mktemp("chaos"))
    try:
        first = Pipeline(spec, project_root=REPO_ROOT, approver=AutoApprove("chaos")).run(trigger="chaos")
        assert first.status == "Succeeded", first.error
        yield spec, LocalServingHost(spec.state_dir, spec.region, spec.account_id).outputs()
    finally:
        daemon.stop(spec.state_dir)
