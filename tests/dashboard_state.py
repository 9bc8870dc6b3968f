"""A small but complete pipeline state for the report and dashboard tests (and the screenshot script).

Three production deployments: v1 all at once, v2 through a canary shift, v3 a game-day rehearsal (``errors:0.5``)
that the error-rate alarm rolls back; then ``make rollback`` (v2 -> v1); then a clean and a drifted monitoring
window, each with a data-quality and a model-quality execution. All on the local backend with a fast clock. The runtime is left running (the
traffic metrics live in it); the caller stops it (``daemon.stop(spec.state_dir)``).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from safedeploy import constants as C
from safedeploy.approval import AutoApprove
from safedeploy.monitoring.labels import upload_labels
from safedeploy.pipeline import Pipeline
from safedeploy.spec import PipelineSpec, load_spec
from tests.conftest import REPO_ROOT, churn_rows, write_table
from tests.serving import wait_for
from tests.test_model_quality_production import _captured
from tests.test_monitoring_production import _send

WINDOW_ROWS = 1000
"""Records per monitoring window: enough that a drift of 0.1 stands out from sampling noise."""


def state_spec(root: Path) -> PipelineSpec:
    """The spec: a 30-second canary and bake at 60x, small data and few trees."""
    return load_spec(
        overrides={
            "state_dir": str(root / "state"),
            "data": {"source": str(write_table(root / "churn.csv", churn_rows(1500, seed=23)))},
            "training": {"source_dir": str(REPO_ROOT / "model")},
            "hyperparameters": {"num_round": 40},
            "gate": {"conditions": [{"metric": "test:auc", "op": ">=", "threshold": 0.5}]},
            "serving": {"enabled": True, "instance_count": 1},
            "production": {
                "strategy": "Canary10Percent5Minutes",
                "bake_seconds": 120,
                "time_scale": 60,
                "instance_count": 1,
            },
            "monitoring": {"model_quality": {"min_labelled_records": 20}},
            # a busy machine's latency must not roll back the healthy shifts (the fault rehearsal's errors do)
            "alarms": {"deployment": {"latency_slack_ms": 2000}},
        }
    )


def _monitor_window(root: Path, pipeline: Pipeline, rows: list[dict[str, str]], shift: int) -> None:
    """Send ``rows`` through the REST API, run one data-quality and one model-quality execution on them."""
    spec = pipeline.spec
    start = datetime.now(UTC)
    since = start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    _send(spec, rows, shift)
    ids = wait_for(
        lambda: found if len(found := _captured(spec, since)) >= len(rows) else None,
        timeout=60,
        what="the capture of the records",
    )
    end = datetime.now(UTC)
    drift = pipeline.monitor().run(start=start, end=end, trigger="test")
    assert drift.MonitoringExecutionStatus.startswith("Completed"), drift.FailureReason
    labels = root / "labels.jsonl"
    labels.write_text(
        "".join(
            json.dumps(
                {
                    "groundTruthData": {
                        "data": "1" if row[C.LABEL_COLUMN] == C.LABEL_POSITIVE else "0",
                        "encoding": "CSV",
                    },
                    "eventMetadata": {"eventId": ids[row["Phone"]]},
                    "eventVersion": "0",
                }
            )
            + "\n"
            for row in rows
        )
    )
    upload_labels(spec, pipeline.backend.store, labels)
    quality = pipeline.model_quality_monitor().run(start=start, end=end, trigger="test")
    assert quality.MonitoringExecutionStatus.startswith("Completed"), quality.FailureReason


def build_state(root: Path) -> Pipeline:
    """Deploy three times (the third rolled back), roll back, monitor; return the pipeline (its runtime running)."""
    spec = state_spec(root)
    pipeline = Pipeline(spec, project_root=REPO_ROOT, approver=AutoApprove("tests"))
    first = pipeline.run(trigger="test: first")
    assert first.status == "Succeeded", first.error
    pipeline.monitor().set_status("Stopped")  # the test chooses the windows
    pipeline.model_quality_monitor().set_status("Stopped")
    retrained = spec.model_copy(update={"hyperparameters": spec.hyperparameters.model_copy(update={"num_round": 41})})
    second = Pipeline(retrained, project_root=REPO_ROOT, approver=AutoApprove("tests")).run(trigger="test: second")
    assert second.status == "Succeeded", second.error
    faulty = retrained.model_copy(
        update={"production": retrained.production.model_copy(update={"fault": "errors:0.5"})}
    )
    third = Pipeline(faulty, project_root=REPO_ROOT, approver=AutoApprove("game day")).run(trigger="test: game day")
    assert third.status == "Failed" and "green-error-rate" in (third.error or ""), third.error
    pipeline.rollback_production(by="oncall")

    for seed, shift in ((99, 0), (98, 3)):  # a clean window, then one whose customers call service more often
        _monitor_window(root, pipeline, churn_rows(WINDOW_ROWS, seed=seed), shift)
    return pipeline


if __name__ == "__main__":  # python -m tests.dashboard_state DIR: build a state to look at
    built = build_state(Path(sys.argv[1]))
    print(built.spec.state_dir)
