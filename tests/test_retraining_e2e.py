"""Closing the loop, locally: drifted traffic through the REST API, the scheduler's monitoring executions put the
trigger alarm in ALARM for the periods the policy needs, labelled capture is merged, and the retraining starts
on its own (a detached process from the scheduler's path) on the new data, through the gates, the approval and
a canary to production; the execution, the ledger and ``make status`` carry its trigger."""

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
from safedeploy.stage_outputs import DataOutputs
from tests.conftest import REPO_ROOT, churn_rows, write_table
from tests.serving import http, wait_for
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
    assert retrained.status == "Succeeded", retrained.error
    assert retrained.trigger == decision.trigger
    assert retrained.trigger.startswith(f"alarm {drift} in ALARM since ")
    before, after = first.output(DataOutputs), retrained.output(DataOutputs)
    assert after.data_sha256 != before.data_sha256
    assert sum(after.rows.values()) == sum(before.rows.values()) + RECORDS
    approval = retrained.stage(C.STAGE_APPROVAL).approval
    assert approval is not None and approval.approver == "retraining (retraining.auto_approve)"
    assert retrained.stage(C.STAGE_DEPLOY_PRD).status == "Succeeded"

    deployments = pipeline.deployments()
    assert [d["outcome"] for d in deployments] == ["Succeeded", "Succeeded"]
    assert deployments[0]["trigger"] == "manual (make deploy)" and deployments[-1]["trigger"] == retrained.trigger
    assert deployments[-1]["green"]["version"] == 2

    overrides = ["--set", f"state_dir={spec.state_dir}"]
    assert cli_main(["status", *overrides]) == 0
    status = capsys.readouterr().out
    assert f"trigger {retrained.trigger}" in status
    assert f"execution {retrained.execution_id} Succeeded; trigger: {retrained.trigger}" in status
    assert "cooldown ends" in status
    assert cli_main(["history", *overrides]) == 0
    assert f"trigger: {retrained.trigger}" in capsys.readouterr().out
