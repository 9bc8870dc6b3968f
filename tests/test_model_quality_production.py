"""Model quality end to end on a deployed production endpoint: the Baseline stage gives the version its
model-quality baseline, DeployPrd points the model-quality schedule at what serves, REST API traffic is captured,
labels are uploaded with the CLI and `monitor quality` joins, evaluates and publishes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.approval import AutoApprove
from safedeploy.cli import main as cli_main
from safedeploy.local import daemon
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.analyzer.ground_truth import join_key
from safedeploy.pipeline import Pipeline
from safedeploy.spec import PipelineSpec, load_spec
from safedeploy.store import S3Uri
from tests.conftest import REPO_ROOT, churn_rows, write_table
from tests.serving import wait_for
from tests.test_monitoring_production import _send

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PipelineSpec, Pipeline]]:
    root = tmp_path_factory.mktemp("model-quality")
    spec = load_spec(
        overrides={
            "state_dir": str(root / "state"),
            "data": {"source": str(write_table(root / "churn.csv", churn_rows(3000, seed=23)))},
            "training": {"source_dir": str(REPO_ROOT / "model")},
            "hyperparameters": {"num_round": 60},
            "gate": {"conditions": [{"metric": "test:auc", "op": ">=", "threshold": 0.5}]},
            "serving": {"enabled": True},
            "production": {"strategy": "AllAtOnce", "bake_seconds": 60, "time_scale": 120},
            "monitoring": {"model_quality": {"min_labelled_records": 20}},
        }
    )
    pipeline = Pipeline(spec, project_root=REPO_ROOT, approver=AutoApprove("tests"))
    try:
        execution = pipeline.run(trigger="test")
        assert execution.status == "Succeeded", execution.error
        pipeline.model_quality_monitor().set_status("Stopped")  # the test chooses its window
        pipeline.monitor().set_status("Stopped")
        yield spec, pipeline
    finally:
        daemon.stop(spec.state_dir)


def _captured(spec: PipelineSpec, since: str) -> dict[str, str]:
    """Phone number of each REST API record captured since ``since`` -> the id its label must carry."""
    ids: dict[str, str] = {}
    for path in (spec.state_dir / "s3").rglob("*.jsonl"):
        if "/datacapture/customerchurn-prd-" not in path.as_posix():
            continue
        for line in path.read_text().splitlines():
            event = json.loads(line)
            metadata = event["eventMetadata"]
            if metadata["inferenceTime"] < since or metadata.get("inferenceId", "").startswith(("synthetic-", "known")):
                continue
            record = json.loads(event["captureData"]["endpointInput"]["data"])
            if isinstance(record, dict) and "Phone" in record:
                key = join_key(metadata)
                assert key is not None
                ids[record["Phone"]] = key
    return ids


def test_labels_uploaded_with_the_cli_are_joined_and_evaluated(
    prod: tuple[PipelineSpec, Pipeline], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, pipeline = prod
    (package,) = pipeline.model_packages()
    baseline = package.DriftCheckBaselines["ModelQuality"]
    assert baseline["Statistics"].S3Uri.endswith("/model-versions/1/baseline/quality/statistics.json")
    store = pipeline.backend.store
    for source in baseline.values():
        head = store.head(S3Uri.parse(source.S3Uri))
        assert head is not None and source.ContentDigest == f"sha256:{head.sha256}"
    statistics = json.loads(store.get_bytes(S3Uri.parse(baseline["Statistics"].S3Uri)))
    assert statistics["dataset"]["item_count"] == 450  # the validation split
    quality = pipeline.model_quality_monitor()
    schedule = quality.schedule()
    assert (
        schedule.MonitoringType == "ModelQuality"
        and schedule.EndpointName == pipeline.monitor().schedule().EndpointName
    )
    assert schedule.Baseline.constraints == baseline["Constraints"].S3Uri

    rows = churn_rows(40, seed=99)
    start = datetime.now(UTC)
    since = start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    _send(spec, rows)

    def all_captured() -> dict[str, str] | None:
        found = _captured(spec, since)
        return found if len(found) >= len(rows) else None

    ids = wait_for(all_captured, timeout=30, what="the capture of the 40 records")
    end = datetime.now(UTC)
    labels = tmp_path / "labels.jsonl"
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
            for row in rows[:30]  # 10 predictions stay unlabelled
        )
    )
    state = f"state_dir={spec.state_dir}"
    assert cli_main(["monitor", "ground-truth", "--file", str(labels), "--set", state]) == 0
    window = ["--start", start.isoformat(), "--end", end.isoformat()]
    code = cli_main(["monitor", "quality", *window, "--set", state])
    out = capsys.readouterr().out
    execution = quality.executions()[-1]
    assert code == 0, out
    assert execution.MonitoringExecutionStatus in ("Completed", "CompletedWithViolations"), out
    assert execution.Summary["captured"] == 40 and execution.Summary["labelled"] == 30
    assert execution.Summary["coverage"] == 0.75 and execution.Summary["unknown_labels"] == 0
    assert 0 <= execution.Metrics["auc"] <= 1 and "30 of 40 captured records labelled" in out
    merged = store.get_bytes(S3Uri.parse(execution.Summary["merged_uri"])).decode().splitlines()
    assert len(merged) == 30
    assert execution.Summary["merged_uri"].startswith(str(naming.merged_ground_truth_uri(spec)))
    assert cli_main(["status", "--set", state]) == 0
    status = capsys.readouterr().out
    assert "Model quality: customerchurn" in status and naming.model_quality_alarm_name(spec) in status
    assert cli_main(["monitor", "executions", "--set", state]) == 0
    assert "30/40 labelled (75%)  auc " in capsys.readouterr().out
    assert F.MODEL_METRIC_NAMESPACE_ENDPOINT == "aws/sagemaker/Endpoints/model-metrics"
