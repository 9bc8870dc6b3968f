"""Monitoring production end to end: the Baseline stage gives the version its baseline, DeployPrd points the
schedule at what serves, REST API traffic is captured, and executions find (or rightly do not find) drift;
the drift alarm follows; the runtime's scheduler runs executions on the schedule's clock."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from safedeploy import constants as C
from safedeploy.approval import AutoApprove
from safedeploy.cli import main as cli_main
from safedeploy.events import ALARM_STATE_CHANGE, EventLog
from safedeploy.local import daemon
from safedeploy.local.host import LocalServingHost
from safedeploy.metric_log import MetricLog
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.monitor import Monitor
from safedeploy.pipeline import Pipeline
from safedeploy.spec import PipelineSpec, load_spec
from safedeploy.store import S3Uri
from tests.conftest import REPO_ROOT, churn_rows, write_table
from tests.serving import http, signed, wait_for

pytestmark = pytest.mark.slow
NUMERIC = (
    "Account Length", "VMail Message", "Day Mins", "Day Calls", "Day Charge", "Eve Mins", "Eve Calls", "Eve Charge",
    "Night Mins", "Night Calls", "Night Charge", "Intl Mins", "Intl Calls", "Intl Charge", "CustServ Calls",
)  # fmt: skip


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PipelineSpec, Pipeline]]:
    root = tmp_path_factory.mktemp("monitoring")
    spec = load_spec(
        overrides={
            "state_dir": str(root / "state"),
            "data": {"source": str(write_table(root / "churn.csv", churn_rows(3000, seed=23)))},
            "training": {"source_dir": str(REPO_ROOT / "model")},
            "hyperparameters": {"num_round": 60},
            "gate": {"conditions": [{"metric": "test:auc", "op": ">=", "threshold": 0.5}]},
            "serving": {"enabled": True},
            "production": {"strategy": "AllAtOnce", "bake_seconds": 60, "time_scale": 120},
        }
    )
    pipeline = Pipeline(spec, project_root=REPO_ROOT, approver=AutoApprove("tests"))
    try:
        execution = pipeline.run(trigger="test")
        assert execution.status == "Succeeded", execution.error
        monitor = _monitor(spec, pipeline)
        monitor.set_status("Stopped")  # these tests choose their windows; the scheduler test starts it again
        yield spec, pipeline
    finally:
        daemon.stop(spec.state_dir)


def _monitor(spec: PipelineSpec, pipeline: Pipeline) -> Monitor:
    backend = pipeline.backend
    return Monitor(spec, backend.store, backend.processing, backend.processing_image)


def _send(spec: PipelineSpec, records: list[dict[str, str]], calls_shift: int = 0) -> None:
    outputs = LocalServingHost(spec.state_dir, spec.region, spec.account_id).outputs()
    headers = {"x-api-key": outputs["ApiKey"], "Content-Type": "application/json"}
    for row in records:
        record: dict[str, Any] = {k: v for k, v in row.items() if k != C.LABEL_COLUMN}
        for name in NUMERIC:
            record[name] = float(record[name]) if "." in record[name] else int(record[name])
        record["CustServ Calls"] += calls_shift
        reply = http(outputs["ApiUrl"], json.dumps(record).encode(), headers)
        assert reply.status == 200, reply.body


def _captured_since(spec: PipelineSpec, start: datetime) -> int:
    """Capture records written for production's endpoints at or after ``start`` (synthetic ones left out)."""
    stamp = start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    count = 0
    for path in (spec.state_dir / "s3").rglob("*.jsonl"):
        if "/datacapture/customerchurn-prd-" not in path.as_posix():
            continue
        for line in path.read_text().splitlines():
            event = json.loads(line)["eventMetadata"]
            if event["inferenceTime"] >= stamp and not event.get("inferenceId", "").startswith("synthetic-"):
                count += 1
    return count


def _window(spec: PipelineSpec, records: list[dict[str, str]], shift: int) -> tuple[datetime, datetime]:
    start = datetime.now(UTC)
    _send(spec, records, shift)
    # the runtime flushes capture every second; on a busy machine it may take longer
    wait_for(lambda: _captured_since(spec, start) >= len(records), timeout=30, what="the capture to be written")
    return start, datetime.now(UTC)


def test_the_version_owns_its_baseline(prod: tuple[PipelineSpec, Pipeline]) -> None:
    spec, pipeline = prod
    (package,) = pipeline.model_packages()
    quality = package.DriftCheckBaselines["ModelDataQuality"]
    prefix = "s3://customerchurn-dev-artifacts-000000000000-us-east-1/customerchurn/model-versions/1/baseline/data/"
    assert quality["Statistics"].S3Uri == prefix + F.STATISTICS_FILE
    store = pipeline.backend.store
    for source in quality.values():
        head = store.head(S3Uri.parse(source.S3Uri))
        assert head is not None and source.ContentDigest == f"sha256:{head.sha256}"
    assert package.CustomerMetadataProperties["OutputStatisticsUri"].endswith("/1/baseline/output/statistics.json")
    statistics = json.loads(store.get_bytes(S3Uri.parse(quality["Statistics"].S3Uri)))
    assert statistics["dataset"]["item_count"] == 2100  # the training split
    schedule = _monitor(spec, pipeline).schedule()
    assert schedule.ModelPackageVersion == 1 and schedule.EndpointName.startswith("customerchurn-prd-v1-")
    assert schedule.Baseline.statistics == quality["Statistics"].S3Uri


def test_drifted_traffic_is_found_and_alarms_then_clean_traffic_clears(
    prod: tuple[PipelineSpec, Pipeline], capsys: pytest.CaptureFixture[str]
) -> None:
    spec, pipeline = prod
    monitor = _monitor(spec, pipeline)
    records = churn_rows(1000, seed=99)
    start, end = _window(spec, records, shift=3)
    drifted = monitor.run(start=start, end=end, trigger="test drift")
    assert drifted.MonitoringExecutionStatus == "CompletedWithViolations", drifted.FailureReason
    assert drifted.Summary["rows"] == 1000
    drift = {v["feature_name"] for v in drifted.Violations if v["constraint_check_type"] == F.BASELINE_DRIFT_CHECK}
    assert "CustServ Calls" in drift
    assert not drift & (set(NUMERIC) - {"CustServ Calls"}), drift  # no undrifted numeric feature
    assert drifted.Metrics["feature_baseline_drift_CustServ Calls"] > 0.5
    alarms = monitor.alarm_states()
    assert alarms["customerchurn-dev-drift-custserv-calls"]["StateValue"] == "ALARM"
    assert alarms["customerchurn-dev-drift"]["StateValue"] == "ALARM"
    assert drifted.ReportUri is not None
    report = S3Uri.parse(drifted.ReportUri)
    for name in (F.STATISTICS_FILE, F.CONSTRAINTS_FILE, F.VIOLATIONS_FILE, F.OUTPUT_STATISTICS_FILE):
        assert pipeline.backend.store.head(report.join(name)) is not None, name
    logged = MetricLog(spec.state_dir.resolve() / "metrics").query(
        F.METRIC_NAMESPACE_ENDPOINT,
        "feature_baseline_drift_CustServ Calls",
        {"Endpoint": drifted.EndpointName, "MonitoringSchedule": drifted.MonitoringScheduleName},
    )
    assert logged[-1][1] == drifted.Metrics["feature_baseline_drift_CustServ Calls"]
    # ... and the runtime's metric API answers for it (GetMetricStatistics' parameters)
    info = LocalServingHost(spec.state_dir, spec.region, spec.account_id).info()
    query = urllib.parse.urlencode(
        {
            "Namespace": F.METRIC_NAMESPACE_ENDPOINT,
            "MetricName": "feature_baseline_drift_CustServ Calls",
            "Dimensions": json.dumps(
                [
                    {"Name": "Endpoint", "Value": drifted.EndpointName},
                    {"Name": "MonitoringSchedule", "Value": drifted.MonitoringScheduleName},
                ]
            ),
            "StartTime": (end - timedelta(hours=1)).isoformat(),
            "EndTime": (end + timedelta(hours=1)).isoformat(),
            "Period": "7200",
            "Statistics": "Maximum,SampleCount",
        }
    )
    reply = signed(info, f"/_local/metrics?{query}", method="GET")
    assert reply.status == 200, reply.body
    (point,) = reply.json()["Datapoints"]
    assert point["Maximum"] == drifted.Metrics["feature_baseline_drift_CustServ Calls"]
    assert point["SampleCount"] == 1.0

    start, end = _window(spec, churn_rows(1000, seed=98), shift=0)
    clean = monitor.run(start=start, end=end, trigger="test clean")
    assert clean.MonitoringExecutionStatus == "Completed", clean.Violations
    assert clean.Metrics["feature_baseline_drift_CustServ Calls"] <= 0.1
    assert monitor.alarm_states()["customerchurn-dev-drift"]["StateValue"] == "OK"
    events, _ = EventLog(spec.state_dir.resolve() / "events", spec.region, spec.account_id).read(
        pattern={"detail-type": [ALARM_STATE_CHANGE], "detail": {"alarmName": ["customerchurn-dev-drift"]}}
    )
    assert [e["detail"]["state"]["value"] for e in events][-2:] == ["ALARM", "OK"]

    # the CLI shows the history, the outputs carry the alarm, and make status the monitoring section
    overrides = ["--set", f"state_dir={spec.state_dir}"]
    assert cli_main(["monitor", "executions", *overrides]) == 0
    listing = capsys.readouterr().out
    assert "CompletedWithViolations" in listing and "test clean" in listing
    assert cli_main(["outputs", *overrides]) == 0
    outputs = json.loads(capsys.readouterr().out)
    assert (outputs["DriftAlarm"], outputs["DriftAlarmState"]) == ("customerchurn-dev-drift", "OK")
    assert cli_main(["status", *overrides]) == 0
    assert "customerchurn-dev-drift-custserv-calls   OK" in capsys.readouterr().out


def test_make_monitor_covers_the_capture_since_the_previous_execution(prod: tuple[PipelineSpec, Pipeline]) -> None:
    spec, pipeline = prod
    monitor = _monitor(spec, pipeline)
    previous = monitor.executions()[-1] if monitor.executions() else None
    sent = datetime.now(UTC)
    _send(spec, churn_rows(30, seed=5))
    wait_for(lambda: _captured_since(spec, sent) >= 30, timeout=30, what="the capture to be written")
    execution = monitor.run(trigger="make monitor")
    if previous is not None:
        assert execution.WindowStart == previous.WindowEnd
    assert execution.Summary["records"] >= 30
    # a window of 30 records cannot see a 0.1 shift: insufficient data, never a pass
    assert "Day Mins" in execution.Summary["insufficient_data"]
    assert "feature_baseline_drift_Day Mins" not in execution.Metrics


def test_the_runtime_runs_the_schedule_on_its_clock(prod: tuple[PipelineSpec, Pipeline]) -> None:
    spec, pipeline = prod
    monitor = _monitor(spec, pipeline)
    schedule = monitor.set_status("Scheduled")
    now = datetime.now(UTC)
    # an hourly schedule at 900x: a fire time every 4 s of wall time
    monitor.records.save_schedule(schedule.model_copy(update={"TimeScale": 900.0, "Anchor": now, "CreationTime": now}))
    try:
        scheduled = wait_for(
            lambda: [e for e in monitor.executions() if e.Trigger.startswith("schedule")],
            timeout=60,
            what="a scheduled execution",
        )
    finally:
        monitor.set_status("Stopped")
    first = scheduled[0]
    assert first.ScheduledTime.minute == first.ScheduledTime.second == 0  # an hour boundary of model time
    assert first.MonitoringExecutionStatus in ("Completed", "InsufficientData", "CompletedWithViolations")
    assert first.WindowEnd - first.WindowStart <= timedelta(seconds=5)  # one model hour at 900x


def test_a_new_version_in_production_is_monitored_against_its_own_baseline(
    prod: tuple[PipelineSpec, Pipeline],
) -> None:
    spec, pipeline = prod
    monitor = _monitor(spec, pipeline)
    before = monitor.schedule()
    # a new version needs new inputs (identical ones reuse v1: tests/test_duplicate_versions.py)
    retrained = spec.model_copy(update={"hyperparameters": spec.hyperparameters.model_copy(update={"num_round": 61})})
    second = Pipeline(retrained, project_root=REPO_ROOT, approver=AutoApprove("tests"))
    execution = second.run(trigger="test second version")
    assert execution.status == "Succeeded", execution.error
    after = monitor.schedule()
    assert after.ModelPackageVersion == 2 and after.EndpointName != before.EndpointName
    assert after.EndpointSince is not None and before.EndpointSince is not None
    assert after.EndpointSince > before.EndpointSince
    assert "/model-versions/2/baseline/" in after.Baseline.statistics
    # v1's baseline is still there, unchanged: each version keeps its own
    first = pipeline.model_packages()[0].DriftCheckBaselines["ModelDataQuality"]["Statistics"]
    head = pipeline.backend.store.head(S3Uri.parse(first.S3Uri))
    assert head is not None and first.ContentDigest == f"sha256:{head.sha256}"
    assert after.MonitoringScheduleStatus == "Stopped"  # as the operator left it: a deployment does not restart it
