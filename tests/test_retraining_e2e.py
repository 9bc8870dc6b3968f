"""Closing the loop, locally, on the scheduler's own path (the child process the runtime starts).

* A quality drop: a new customer segment whose churn follows another rule reaches production; labels uploaded with
  ``safedeploy monitor ground-truth`` are merged by the model-quality job, its AUC alarm fires, the retraining
  starts on its own (a detached process) on the configured data plus the labelled capture, and the new version goes
  through the gates (it beats production on the same held-out rows), the approval (auto here) and a canary to
  production; the execution, the ledger and ``make status`` carry the trigger.
* Drift without better labels: the drift alarm holds for the periods the policy needs and the retraining runs on the
  new data, but the candidate is worse than production on the same held-out rows: Train refuses it naming both
  AUCs, nothing is registered and production keeps serving v1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.approval import AutoApprove
from safedeploy.cli import main as cli_main
from safedeploy.local import daemon
from safedeploy.local.host import LocalServingHost
from safedeploy.monitoring.monitor import Monitor
from safedeploy.pipeline import Pipeline
from safedeploy.retraining.trigger import RetrainingPaths, read_decisions
from safedeploy.runner import PipelineExecution
from safedeploy.spec import PipelineSpec, load_spec
from safedeploy.stage_outputs import DataOutputs, TrainOutputs
from tests.conftest import REPO_ROOT, churn_rows, write_table
from tests.serving import http, wait_for
from tests.test_model_quality_production import _captured
from tests.test_monitoring_production import _send
from tests.test_retraining_data import _api_record

pytestmark = pytest.mark.slow
RECORDS = 400


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[tuple[PipelineSpec, Pipeline]]:
    spec = load_spec(
        overrides={
            "state_dir": str(tmp_path / "state"),
            "data": {"source": str(write_table(tmp_path / "churn.csv", churn_rows(1500, seed=31)))},
            "training": {"source_dir": str(REPO_ROOT / "model")},
            "hyperparameters": {"num_round": 60},
            "gate": {"conditions": [{"metric": "test:auc", "op": ">=", "threshold": 0.5}]},
            "serving": {"enabled": True},
            # a 5-minute canary and bake at 120x: 2.5 s each on the wall
            "production": {"strategy": "Canary10Percent5Minutes", "bake_seconds": 300, "time_scale": 120},
            # the drift alarm stays in ALARM while one of its last 2 executions breaches (CloudWatch's M of N)
            "monitoring": {"alarm_evaluation_periods": 2},
            "retraining": {"alarm_periods": 2, "auto_approve": True},
        }
    )
    pipeline = Pipeline(spec, project_root=REPO_ROOT, approver=AutoApprove("tests"))
    try:
        execution = pipeline.run(trigger="manual (make deploy)")
        assert execution.status == "Succeeded", execution.error
        yield spec, pipeline
    finally:
        daemon.stop(spec.state_dir)


def _send_drifted(spec: PipelineSpec, rows: list[dict[str, str]]) -> None:
    outputs = LocalServingHost(spec.state_dir, spec.region, spec.account_id).outputs()
    headers = {"x-api-key": outputs["ApiKey"], "Content-Type": "application/json"}
    for row in rows:
        record = _api_record(row)
        record["CustServ Calls"] += 3
        reply = http(outputs["ApiUrl"], json.dumps(record).encode(), headers)
        assert reply.status == 200, reply.body


def _production_capture(spec: PipelineSpec, endpoint: str) -> list[dict[str, Any]]:
    root = spec.state_dir.resolve() / "s3" / naming.artifact_bucket(spec) / f"{spec.model_name}/datacapture/{endpoint}"
    lines = [json.loads(line) for path in sorted(root.rglob("*.jsonl")) for line in path.read_text().splitlines()]
    return [r for r in lines if not r["eventMetadata"].get("inferenceId", "").startswith(("synthetic-", "known-"))]


def _scheduled(spec: PipelineSpec, schedule: str, fire: datetime) -> None:
    """What the runtime does when a fire time is due: the scheduler child process."""
    subprocess.run(
        [sys.executable, "-m", "safedeploy.monitoring.scheduler", "--state-dir", str(spec.state_dir.resolve()),
         "--schedule", schedule, "--fire", fire.isoformat()],
        check=False, timeout=300,
    )  # fmt: skip


def _merge_labels(
    spec: PipelineSpec, pipeline: Pipeline, captured: list[dict[str, Any]], labels: dict[str, str]
) -> None:
    """The ground-truth merge's output contract: the capture records with ``groundTruthData``."""
    lines = []
    for record in captured:
        fields = json.loads(record["captureData"]["endpointInput"]["data"])
        label = labels[json.dumps({k: v for k, v in fields.items() if k != "CustServ Calls"}, sort_keys=True)]
        lines.append(json.dumps({**record, "groundTruthData": {"data": label, "encoding": "CSV"}}).encode())
    uri = naming.merged_ground_truth_uri(spec).join("prd", "2026/12/03/10", "merge-1.jsonl")
    pipeline.backend.store.put_bytes(uri, b"\n".join(lines) + b"\n", "application/jsonl")


@pytest.mark.parametrize("alarm", ["drift"])
def test_an_alarm_retrains_on_new_data_into_production(
    deployed: tuple[PipelineSpec, Pipeline], alarm: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, pipeline = deployed
    backend = pipeline.backend
    monitor = Monitor(spec, backend.store, backend.processing, backend.processing_image)
    first = backend.executions.latest()
    assert first is not None
    schedule = monitor.set_status("Stopped")  # the test picks the fire times; the scheduler's path is the same

    rows = churn_rows(RECORDS, seed=97)
    start = datetime.now(UTC)
    _send_drifted(spec, rows)
    wait_for(lambda: len(_production_capture(spec, schedule.EndpointName)) >= RECORDS, 30, "the capture")
    end = datetime.now(UTC) + timedelta(seconds=1)
    # The schedule's clock: one model hour from the last hour boundary before the traffic to just after it.
    anchor = (start - timedelta(seconds=1)).replace(minute=0, second=0, microsecond=0)
    scale = 3600 / (end - anchor).total_seconds()
    monitor.records.save_schedule(
        schedule.model_copy(update={"Anchor": anchor, "TimeScale": max(scale, 1.0), "CreationTime": anchor})
    )
    _scheduled(spec, schedule.MonitoringScheduleName, anchor + timedelta(hours=1))
    drift = naming.alarm_name(spec, alarm)
    assert monitor.alarms.get(drift)["StateValue"] == "ALARM"
    assert read_decisions(RetrainingPaths(spec.state_dir.resolve()))[-1].action == "debounced"

    # the labels arrive: the merge writes the captured records with their ground truth
    labels = {
        json.dumps({k: v for k, v in _api_record(r).items() if k != "CustServ Calls"}, sort_keys=True): (
            "1" if r[C.LABEL_COLUMN] == C.LABEL_POSITIVE else "0"
        )
        for r in rows
    }
    _merge_labels(spec, pipeline, _production_capture(spec, schedule.EndpointName), labels)

    _scheduled(spec, schedule.MonitoringScheduleName, anchor + timedelta(hours=2))  # the 2nd period in ALARM
    decision = read_decisions(RetrainingPaths(spec.state_dir.resolve()))[-1]
    assert decision.action == "started", decision.reason
    assert decision.data is not None and decision.data["used"] == RECORDS

    def finished() -> PipelineExecution | None:
        latest = backend.executions.latest()
        done = latest is not None and latest.execution_id != first.execution_id and latest.ended_at is not None
        return latest if done else None

    retrained = wait_for(finished, timeout=400, what="the retraining's execution to end")
    assert retrained.trigger == decision.trigger
    assert retrained.trigger.startswith(f"alarm {drift} in ALARM since ")
    before, after = first.output(DataOutputs), retrained.output(DataOutputs)
    assert after.data_sha256 != before.data_sha256
    assert sum(after.rows.values()) == sum(before.rows.values()) + RECORDS
    # the drifted inputs carry labels of the old rule: the candidate is no better, and can never replace production
    assert retrained.status == "Failed"
    assert retrained.stage(C.STAGE_TRAIN).status == "Failed", retrained.error
    assert retrained.error is not None and "below production v1's" in retrained.error, retrained.error
    assert [p.ModelPackageVersion for p in pipeline.model_packages()] == [1]
    deployments = pipeline.deployments()
    assert [(d["outcome"], d["green"]["version"]) for d in deployments] == [("Succeeded", 1)]

    overrides = ["--set", f"state_dir={spec.state_dir}"]
    assert cli_main(["history", *overrides]) == 0
    assert f"trigger: {retrained.trigger}" in capsys.readouterr().out


def _new_segment(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Customers of a segment the model never saw (accounts of 300+ days) who churn by another rule: light users
    leave. The production model, which learnt that heavy users leave, ranks them backwards."""
    segment = []
    for index, row in enumerate(rows):
        churned = float(row["Day Mins"]) < 180.0
        label = C.LABEL_POSITIVE if churned else C.LABEL_NEGATIVE
        segment.append({**row, "Account Length": str(300 + index % 100), C.LABEL_COLUMN: label})
    return segment


@pytest.fixture
def quality_deployed(tmp_path: Path) -> Iterator[tuple[PipelineSpec, Pipeline]]:
    spec = load_spec(
        overrides={
            "state_dir": str(tmp_path / "state"),
            "data": {"source": str(write_table(tmp_path / "churn.csv", churn_rows(1500, seed=31)))},
            "training": {"source_dir": str(REPO_ROOT / "model")},
            "hyperparameters": {"num_round": 60},
            "gate": {"conditions": [{"metric": "test:auc", "op": ">=", "threshold": 0.5}]},
            "serving": {"enabled": True},
            "production": {"strategy": "Canary10Percent5Minutes", "bake_seconds": 300, "time_scale": 120},
            "monitoring": {"model_quality": {"min_labelled_records": 50, "label_delay_periods": 1}},
            "retraining": {"trigger_alarms": ["model-quality"], "alarm_periods": 1, "auto_approve": True},
        }
    )
    pipeline = Pipeline(spec, project_root=REPO_ROOT, approver=AutoApprove("tests"))
    try:
        execution = pipeline.run(trigger="manual (make deploy)")
        assert execution.status == "Succeeded", execution.error
        yield spec, pipeline
    finally:
        daemon.stop(spec.state_dir)


def test_a_quality_drop_retrains_on_labelled_data_into_production(
    quality_deployed: tuple[PipelineSpec, Pipeline], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, pipeline = quality_deployed
    backend = pipeline.backend
    first = backend.executions.latest()
    assert first is not None
    pipeline.monitor().set_status("Stopped")  # data quality is not the subject here
    quality = pipeline.model_quality_monitor()
    schedule = quality.set_status("Stopped")  # the test picks the fire time; the scheduler's path is the same

    rows = _new_segment(churn_rows(RECORDS, seed=97))
    start = datetime.now(UTC)
    since = start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    _send(spec, rows)
    ids = wait_for(lambda: _captured_ids(spec, since, len(rows)), 30, "the capture of the new segment's records")
    end = datetime.now(UTC) + timedelta(seconds=1)

    # the labels arrive, in SageMaker's ground-truth format, through the CLI
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        "".join(
            json.dumps(
                {
                    "groundTruthData": {
                        "data": "1" if r[C.LABEL_COLUMN] == C.LABEL_POSITIVE else "0",
                        "encoding": "CSV",
                    },
                    "eventMetadata": {"eventId": ids[r["Phone"]]},
                    "eventVersion": "0",
                }
            )
            + "\n"
            for r in rows
        )
    )
    overrides = ["--set", f"state_dir={spec.state_dir}"]
    assert cli_main(["monitor", "ground-truth", "--file", str(labels), *overrides]) == 0
    capsys.readouterr()

    # The schedule's clock: one model hour from the last hour boundary before the traffic to just after it; the run
    # one label delay later analyses that hour.
    anchor = (start - timedelta(seconds=1)).replace(minute=0, second=0, microsecond=0)
    scale = 3600 / (end - anchor).total_seconds()
    quality.records.save_schedule(schedule.model_copy(update={"Anchor": anchor, "TimeScale": max(scale, 1.0)}))
    _scheduled(spec, schedule.MonitoringScheduleName, anchor + timedelta(hours=2))

    execution = quality.executions()[-1]
    assert execution.Summary["labelled"] == RECORDS, execution.Summary
    assert execution.Metrics["auc"] < 0.5, execution.Metrics  # production ranks the new segment backwards
    alarm = naming.model_quality_alarm_name(spec)
    assert quality.alarms.get(alarm)["StateValue"] == "ALARM"
    decision = read_decisions(RetrainingPaths(spec.state_dir.resolve()))[-1]
    assert decision.action == "started", decision.reason
    assert decision.data is not None and decision.data["used"] == RECORDS

    def finished() -> PipelineExecution | None:
        latest = backend.executions.latest()
        done = latest is not None and latest.execution_id != first.execution_id and latest.ended_at is not None
        return latest if done else None

    retrained = wait_for(finished, timeout=400, what="the retraining's execution to end")
    assert retrained.status == "Succeeded", retrained.error
    assert retrained.trigger == decision.trigger
    assert retrained.trigger.startswith(f"alarm {alarm} in ALARM since ")
    before, after = first.output(DataOutputs), retrained.output(DataOutputs)
    assert after.data_sha256 != before.data_sha256
    assert sum(after.rows.values()) == sum(before.rows.values()) + RECORDS
    train = retrained.output(TrainOutputs)
    assert train.production_version == 1  # the comparing gate: production measured on the same held-out rows
    assert train.metrics["test:auc"] > train.production_metrics["test:auc"] + 0.05, train.comparison()
    assert "vs production v1" in (retrained.stage(C.STAGE_TRAIN).summary or "")
    approval = retrained.stage(C.STAGE_APPROVAL).approval
    assert approval is not None and approval.approver == "retraining (retraining.auto_approve)"

    deployments = pipeline.deployments()
    assert [(d["outcome"], d["green"]["version"]) for d in deployments] == [("Succeeded", 1), ("Succeeded", 2)]
    assert deployments[-1]["trigger"] == retrained.trigger
    shifts = [
        e
        for e in pipeline.backend.deployments.events(deployments[-1]["deployment_id"])
        if e["event"] == "TrafficShifted"
    ]
    green = deployments[-1]["green"]["endpoint"]
    assert [e["weights"][green] for e in shifts] == [0.1, 1.0]  # a canary, then all

    assert cli_main(["status", *overrides]) == 0
    status = capsys.readouterr().out
    assert f"trigger {retrained.trigger}" in status
    assert f"execution {retrained.execution_id} Succeeded; trigger: {retrained.trigger}" in status
    assert "Model quality:" in status


def _captured_ids(spec: PipelineSpec, since: str, count: int) -> dict[str, str] | None:
    """Phone number of each REST API record captured since ``since`` -> the id its label carries, once all arrived."""
    ids = _captured(spec, since)
    return ids if len(ids) >= count else None
