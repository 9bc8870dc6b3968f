"""The standing probe end to end: a deployed local production, probed on the monitoring clock through the REST API.

Healthy production passes (SuccessPercent 100, alarm OK, a status line); the probe's requests stay out of the
monitoring window; predictions off (the known rows' offline scores no longer match what production answers) fail
the runs, SuccessPercent drops to 0 and the alarm goes to ALARM, recorded as CloudWatch's state-change event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.approval import AutoApprove
from safedeploy.ledger import DeploymentLedger
from safedeploy.local import daemon
from safedeploy.metric_log import MetricLog
from safedeploy.monitoring import probe
from safedeploy.monitoring.drift_alarms import AlarmStates
from safedeploy.monitoring.monitor import Monitor
from safedeploy.pipeline import Pipeline
from safedeploy.spec import PipelineSpec, load_spec
from safedeploy.store import LocalArtifactStore
from tests.conftest import REPO_ROOT, churn_rows, write_table
from tests.serving import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PipelineSpec, Pipeline]]:
    root = tmp_path_factory.mktemp("probe")
    spec = load_spec(
        overrides={
            "state_dir": str(root / "state"),
            "data": {"source": str(write_table(root / "churn.csv", churn_rows(800, seed=31)))},
            "training": {"source_dir": str(REPO_ROOT / "model")},
            "hyperparameters": {"num_round": 60},
            "gate": {"conditions": [{"metric": "test:auc", "op": ">=", "threshold": 0.5}]},
            "serving": {"enabled": True},
            "production": {"strategy": "AllAtOnce", "bake_seconds": 60, "time_scale": 120},
            # a run every model minute, one-minute alarm periods: a second each on the wall at 60x
            "monitoring": {
                "time_scale": 60,
                "synthetic_canary": {
                    "schedule_expression": "rate(1 minute)",
                    "rows": 5,
                    "alarm": {"period_seconds": 60},
                },
            },
        }
    )
    pipeline = Pipeline(spec, project_root=REPO_ROOT, approver=AutoApprove("tests"))
    try:
        execution = pipeline.run(trigger="test")
        assert execution.status == "Succeeded", execution.error
        backend = pipeline.backend
        Monitor(spec, backend.store, backend.processing, backend.processing_image).set_status("Stopped")
        yield spec, pipeline
    finally:
        daemon.stop(spec.state_dir)


def _alarm(spec: PipelineSpec) -> str:
    name = naming.alarm_name(spec, spec.monitoring.synthetic_canary.alarm.name)
    return str(AlarmStates(spec.state_dir / "alarms", spec.region, spec.account_id).get(name)["StateValue"])


def _runs_since(spec: PipelineSpec, start: datetime) -> list[probe.ProbeRunRecord]:
    return [run for run in probe.latest_runs(spec.state_dir, spec, limit=0) if run.Time >= start]


def test_healthy_production_passes_and_status_shows_it(prod: tuple[PipelineSpec, Pipeline]) -> None:
    spec, pipeline = prod
    start = datetime.now(UTC)
    runs = wait_for(
        lambda: (r := [x for x in _runs_since(spec, start) if x.Status != "Skipped"]) and len(r) >= 3 and r,
        timeout=60,
        what="three probe runs",
    )
    served = DeploymentLedger(spec.state_dir / "deployments", spec.pipeline_name).live()
    assert served is not None
    assert all(run.Status == "Passed" and run.SuccessPercent == 100.0 for run in runs), runs
    assert {run.ModelVersion for run in runs} == {served.version}
    wait_for(lambda: _alarm(spec) == "OK", timeout=20, what="the probe alarm OK")
    canary = naming.probe_canary_name(spec)
    points = MetricLog(spec.state_dir / "metrics").query(
        C.SYNTHETICS_NAMESPACE, C.SYNTHETICS_SUCCESS_METRIC, {C.SYNTHETICS_CANARY_DIMENSION: canary}, start=start
    )
    assert len(points) >= 3 and {value for _, value in points} == {100.0}
    durations = MetricLog(spec.state_dir / "metrics").query(
        C.SYNTHETICS_NAMESPACE, C.SYNTHETICS_DURATION_METRIC, {C.SYNTHETICS_CANARY_DIMENSION: canary}, start=start
    )
    assert durations and all(value > 0 for _, value in durations)
    text = pipeline.status().text
    assert f"synthetic canary {canary} (rate(1 minute)): last run" in text and "SuccessPercent 100" in text
    assert "alarm OK" in text


def test_probe_requests_stay_out_of_the_monitoring_window(prod: tuple[PipelineSpec, Pipeline]) -> None:
    spec, pipeline = prod
    start = datetime.now(UTC)
    wait_for(lambda: len(_runs_since(spec, start)) >= 3, timeout=60, what="three probe runs")
    end = datetime.now(UTC)
    sent = sum(spec.monitoring.synthetic_canary.rows for run in _runs_since(spec, start) if run.Time < end)
    backend = pipeline.backend
    monitor = Monitor(spec, backend.store, backend.processing, backend.processing_image)

    def probe_captured() -> int:
        count = 0
        for path in (spec.state_dir / "s3").rglob("*.jsonl"):
            if "/datacapture/" in path.as_posix():
                for line in path.read_text().splitlines():
                    event = json.loads(line)["eventMetadata"]
                    count += event["inferenceTime"] >= start.strftime("%Y-%m-%dT%H:%M:%S") and event.get(
                        "inferenceId", ""
                    ).startswith("synthetic-")
        return count

    wait_for(lambda: probe_captured() >= sent, timeout=30, what="the probe's requests in the capture")
    execution = monitor.run(start=start, end=end, trigger="test probe exclusion")
    summary = execution.Summary
    assert summary["rows"] == 0, summary  # only the probe asked in this window
    assert sum(summary["excluded"].values()) >= sent - spec.monitoring.synthetic_canary.rows, summary


def test_predictions_off_fail_the_runs_and_the_alarm_fires(prod: tuple[PipelineSpec, Pipeline]) -> None:
    spec, _ = prod
    served = DeploymentLedger(spec.state_dir / "deployments", spec.pipeline_name).live()
    assert served is not None
    store = LocalArtifactStore(spec.state_dir / "s3")
    uri = naming.probe_rows_uri(spec, served.version)
    known = json.loads(store.get_bytes(uri))
    off = {**known, "expected": [min(1.0, v + 0.3) if v < 0.5 else v - 0.3 for v in known["expected"]]}
    store.put_bytes(uri, json.dumps(off).encode(), "application/json")
    try:
        start = datetime.now(UTC)
        wait_for(lambda: _alarm(spec) == "ALARM", timeout=60, what="the probe alarm in ALARM")
        failed = [run for run in _runs_since(spec, start) if run.Status == "Failed"]
        assert failed and all(run.SuccessPercent == 0.0 for run in failed)
        assert "vs offline" in failed[-1].Reason
        name = naming.alarm_name(spec, "probe-success")

        def last_change() -> str | None:
            lines = (spec.state_dir / "events" / "events.jsonl").read_text().splitlines()
            events = [json.loads(line) for line in lines if line.endswith("}")]  # not a line being appended
            changes = [e["detail"]["state"]["value"] for e in events if e["detail"].get("alarmName") == name]
            return changes[-1] if changes else None

        # the run saves the alarm's state, then publishes the change: the event follows the state file closely
        wait_for(lambda: last_change() == "ALARM", timeout=10, what="the probe alarm's ALARM state-change event")
    finally:
        store.put_bytes(uri, json.dumps(known).encode(), "application/json")
    wait_for(lambda: _alarm(spec) == "OK", timeout=60, what="the probe alarm back to OK")
