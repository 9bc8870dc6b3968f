"""A healthy model is never rolled back because the machine is busy.

``Linear10PercentEvery1Minute`` (ten one-period steps: each has exactly one window to show green healthy) of a
model as good as the one serving, with two CPU-burning processes beside it on this 2-core machine.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from safedeploy.backends import create_backend
from safedeploy.blue_green import RolledBackError
from safedeploy.pipeline import Pipeline
from safedeploy.spec import PipelineSpec
from safedeploy.stages import ProductionRelease, deploy_to_production
from safedeploy.traffic import build_schedule
from tests.chaos.figures import record, size
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow
BURNERS = 2


@pytest.fixture
def burning_cpus() -> Iterator[None]:
    """Two processes spinning on the CPU (bounded: killed at the end, and by themselves after 15 minutes)."""
    code = "import time\nend = time.monotonic() + 900\nwhile time.monotonic() < end:\n    pass\n"
    burners = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(BURNERS)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def test_linear_deployments_of_a_healthy_model_succeed_on_a_busy_machine(
    blue_production: tuple[PipelineSpec, dict[str, str]], burning_cpus: None
) -> None:
    spec, _ = blue_production
    backend = create_backend(spec)
    execution = Pipeline(spec, project_root=REPO_ROOT).latest_execution()
    assert execution is not None
    release = ProductionRelease.of_execution(execution, backend.serving_image, backend.registry, spec.model_name)
    schedule = build_schedule("Linear10PercentEvery1Minute", bake_seconds=spec.production.bake_seconds)
    runs: list[dict[str, Any]] = []
    for number in range(size(2, 10)):
        started = time.monotonic()
        try:
            controller, _, _ = deploy_to_production(
                spec, backend, release, details={"chaos": "busy machine"}, schedule=schedule,
                deployment_execution_id=f"busy{number:02d}",
            )  # fmt: skip
            outcome, reason = "Succeeded", ""
            periods = controller.transitions
        except RolledBackError as exc:
            outcome, reason, periods = "RolledBack", str(exc), []
        runs.append(
            {"run": number + 1, "outcome": outcome, "reason": reason, "wall_s": round(time.monotonic() - started, 1),
             "alarm_transitions": periods}
        )  # fmt: skip
    record(
        "busy-machine",
        {
            "what": f"Linear10PercentEvery1Minute of a model as good as blue, {BURNERS} CPU burners beside it",
            "time_scale": spec.production.time_scale,
            "succeeded": sum(run["outcome"] == "Succeeded" for run in runs),
            "runs": runs,
        },
    )
    failed = [run for run in runs if run["outcome"] != "Succeeded"]
    assert not failed, failed
