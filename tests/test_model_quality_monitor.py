"""The model-quality schedule end to end on the local backend: labels uploaded with the CLI's validation, the
job run as a local Processing job, merged records at the fixed location, model-metrics, the AUC alarm and its
CloudWatch state-change events. The capture is written straight into the store (no endpoint needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from safedeploy import naming
from safedeploy.backends import create_backend
from safedeploy.cli import main as cli_main
from safedeploy.errors import ConfigError
from safedeploy.events import ALARM_STATE_CHANGE
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.analyzer import model_quality as Q
from safedeploy.monitoring.labels import upload_labels
from safedeploy.monitoring.model_quality_monitor import ModelQualityMonitor
from safedeploy.monitoring.records import BaselineFiles
from safedeploy.monitoring.summary import format_executions
from safedeploy.spec import PipelineSpec, load_spec
from tests.test_ground_truth import capture, label

ENDPOINT = "customerchurn-prd-v1-test"
NOW = datetime(2026, 12, 3, 12, 30, tzinfo=UTC)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[PipelineSpec, ModelQualityMonitor]:
    spec = load_spec(overrides={"state_dir": str(tmp_path / "state")})
    backend = create_backend(spec)
    store = backend.store
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 300)
    baseline = Q.statistics(truth, np.clip(truth * 0.35 + rng.random(300) * 0.65, 0, 1), evaluation_time="t")
    prefix = naming.version_baseline_prefix(spec, 1).join("quality")
    stats = store.put_bytes(prefix.join(F.STATISTICS_FILE), json.dumps(baseline).encode())
    constraints = store.put_bytes(
        prefix.join(F.CONSTRAINTS_FILE),
        json.dumps(  # AUC only: these tests are about the schedule, not about the suggested thresholds
            {
                "version": 0.0,
                "binary_classification_constraints": {"auc": {"threshold": 0.8, "comparison_operator": Q.LESS_THAN}},
            }
        ).encode(),
    )
    monitor = ModelQualityMonitor(spec, store, backend.processing, backend.processing_image, now=lambda: NOW)
    monitor.ensure_schedule(
        ENDPOINT,
        "AllTraffic",
        1,
        BaselineFiles(
            statistics=stats.uri,
            constraints=constraints.uri,
            feature_schema="",
            sha256={"statistics": stats.sha256, "constraints": constraints.sha256},
        ),
    )
    return spec, monitor


def _traffic(spec: PipelineSpec, monitor: ModelQualityMonitor, tmp_path: Path, hour: int, good: bool, n: int) -> None:
    """``n`` captured predictions in hour ``hour`` and their labels, uploaded half at once and half late."""
    rng = np.random.default_rng(hour)
    truth = rng.integers(0, 2, n)
    noise = rng.random(n)
    scores = np.clip(truth * 0.35 + noise * 0.65, 0, 1) if good else noise
    lines = [capture(f"h{hour}-{i}", i % 60, round(float(scores[i]), 6), hour=hour) for i in range(n)]
    uri = naming.capture_uri(spec).join(ENDPOINT, "AllTraffic", f"2026/12/03/{hour:02d}", "capture.jsonl")
    monitor.store.put_bytes(uri, "".join(line + "\n" for line in lines).encode())
    for part, at in ((range(0, n // 2), hour), (range(n // 2, n), hour + 1)):  # the second half a hour late
        path = tmp_path / f"labels-{hour}-{at}.jsonl"
        path.write_text("".join(label(f"h{hour}-{i}", str(truth[i])) + "\n" for i in part))
        upload_labels(spec, monitor.store, path, now=datetime(2026, 12, 3, at, 5, tzinfo=UTC))


def test_executions_merge_late_labels_publish_metrics_and_drive_the_auc_alarm(
    setup: tuple[PipelineSpec, ModelQualityMonitor], tmp_path: Path
) -> None:
    spec, monitor = setup
    _traffic(spec, monitor, tmp_path, 9, good=True, n=200)
    first = monitor.run(
        start=datetime(2026, 12, 3, 9, tzinfo=UTC), end=datetime(2026, 12, 3, 10, tzinfo=UTC), trigger="test"
    )
    assert first.MonitoringExecutionStatus == "Completed", first.FailureReason
    assert first.MonitoringType == "ModelQuality"
    assert first.Summary["labelled"] == 200 and first.Summary["coverage"] == 1.0
    assert first.Summary["auc_threshold"] == 0.8 and first.Metrics["auc"] > 0.8
    merged = first.Summary["merged_uri"]
    assert merged == str(
        naming.merged_ground_truth_uri(spec).join(ENDPOINT, "2026/12/03/09", f"{first.ProcessingJobName}.jsonl")
    )
    from safedeploy.store import S3Uri

    records = monitor.store.get_bytes(S3Uri.parse(merged)).decode().splitlines()
    assert len(records) == 200 and all("groundTruthData" in json.loads(r) for r in records)
    points = monitor.metric_log.query(
        F.MODEL_METRIC_NAMESPACE_ENDPOINT,
        "auc",
        {"Endpoint": ENDPOINT, "MonitoringSchedule": naming.model_quality_schedule_name(spec)},
    )
    assert [v for _, v in points] == [first.Metrics["auc"]]
    alarm = naming.model_quality_alarm_name(spec)
    assert monitor.alarm_states()[alarm]["StateValue"] == "OK"

    _traffic(spec, monitor, tmp_path, 10, good=False, n=200)  # the model stops separating the classes
    second = monitor.run(trigger="test")  # default window: since the previous one, up to the label delay
    assert second.WindowStart == first.WindowEnd and second.WindowEnd == NOW - timedelta(hours=1)
    assert second.MonitoringExecutionStatus == "CompletedWithViolations"
    assert [v["metric_name"] for v in second.Violations if v["metric_name"] == "auc"] == ["auc"]
    assert monitor.alarm_states()[alarm]["StateValue"] == "ALARM"

    third = monitor.run(  # a window without labels: InsufficientData, nothing published, the alarm not OK
        start=datetime(2026, 12, 3, 11, 30, tzinfo=UTC), end=datetime(2026, 12, 3, 12, tzinfo=UTC), trigger="test"
    )
    assert third.MonitoringExecutionStatus == "InsufficientData" and third.Metrics == {}
    assert "auc not judged: fewer than 30 labelled records" in format_executions([third])
    assert "0/0 labelled" in format_executions([third]) and "auc 0." in format_executions([first])
    assert monitor.alarm_states()[alarm]["StateValue"] == "INSUFFICIENT_DATA"
    events, _ = monitor.events.read(pattern={"detail-type": [ALARM_STATE_CHANGE]})
    changes = [
        (e["detail"]["previousState"]["value"], e["detail"]["state"]["value"])
        for e in events
        if e["detail"]["alarmName"] == alarm
    ]
    assert changes == [("INSUFFICIENT_DATA", "OK"), ("OK", "ALARM"), ("ALARM", "INSUFFICIENT_DATA")]


def test_labels_are_validated_before_anything_is_uploaded(
    setup: tuple[PipelineSpec, ModelQualityMonitor], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, monitor = setup
    bad = tmp_path / "bad.jsonl"
    bad.write_text(label("a") + "\n" + label("b", "2") + "\n" + "{nope\n")
    with pytest.raises(ConfigError) as caught:
        upload_labels(spec, monitor.store, bad)
    message = str(caught.value)
    assert (
        f"{bad}:2: bad_label" in message and f"{bad}:3: invalid_json" in message and "nothing was uploaded" in message
    )
    assert list(monitor.store.list_objects(naming.ground_truth_uri(spec))) == []
    good = tmp_path / "good.jsonl"
    good.write_text(label("a") + "\n" + label("a", "0") + "\n")
    code = cli_main(["monitor", "ground-truth", "--file", str(good), "--set", f"state_dir={spec.state_dir}"])
    assert code == 0
    out = capsys.readouterr().out
    assert "2 labels uploaded to s3://" in out and "1 repeated ids" in out
    (uploaded,) = monitor.store.list_objects(naming.ground_truth_uri(spec))
    hour = datetime.now(UTC).strftime("%Y/%m/%d/%H")
    assert f"/ground-truth/{hour}/labels-" in uploaded.uri


def test_the_scheduler_runs_the_window_the_label_delay_before_the_fire_time(
    setup: tuple[PipelineSpec, ModelQualityMonitor], tmp_path: Path
) -> None:
    from safedeploy.monitoring.scheduler import run_scheduled

    spec, monitor = setup
    schedule = monitor.schedule()
    since = datetime(2026, 12, 3, 9, tzinfo=UTC)
    monitor.records.save_schedule(schedule.model_copy(update={"EndpointSince": since}))
    _traffic(spec, monitor, tmp_path, 9, good=True, n=60)
    fire = datetime(2026, 12, 3, 11, tzinfo=UTC)  # hourly, one period of label delay: analyses 09:00-10:00
    assert run_scheduled(spec.state_dir.resolve(), schedule.MonitoringScheduleName, fire) == 0
    (execution,) = monitor.executions()
    assert (execution.WindowStart, execution.WindowEnd) == (since, since + timedelta(hours=1))
    assert execution.ScheduledTime == fire and execution.Trigger.startswith("schedule")
    assert execution.MonitoringExecutionStatus == "Completed" and execution.Summary["labelled"] == 60
    early = datetime(2026, 12, 3, 10, tzinfo=UTC)  # its window (08:00-09:00) is before the endpoint served
    assert run_scheduled(spec.state_dir.resolve(), schedule.MonitoringScheduleName, early) == 0
    assert monitor.executions()[-1].MonitoringExecutionStatus == "InsufficientData"
