"""The scheduler's look after a monitoring execution: real alarm records and events in, decisions recorded,
a retraining started (launcher replaced) only when due and only on new data."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from safedeploy import naming
from safedeploy.approval import ManualApproval
from safedeploy.backends import Backend, create_backend
from safedeploy.events import EventLog
from safedeploy.locking import exclusive_lock
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.drift_alarms import AlarmStates, evaluate_drift_alarms
from safedeploy.monitoring.records import MonitoringExecution
from safedeploy.report import format_retraining
from safedeploy.retraining.__main__ import main as retraining_main
from safedeploy.retraining.policy import Action
from safedeploy.retraining.status import retraining_status
from safedeploy.retraining.trigger import RetrainingPaths, RetrainingState, check, load_state, read_decisions
from safedeploy.runner import PipelineExecution, StageExecution, Status
from safedeploy.spec import PipelineSpec
from safedeploy.store import LocalArtifactStore
from tests.conftest import churn_rows
from tests.test_retraining_data import _api_record, _label, merged, put_merged

DRIFT = f"{F.DRIFT_METRIC_PREFIX}CustServ Calls"


class Launches:
    """Stands in for the detached process: records what it was asked to run; its pid names no live process."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, str, Path]] = []

    def __call__(self, spec_file: Path, trigger: str, log: Path) -> int:
        self.calls.append((spec_file, trigger, log))
        return 2**22 + 1  # above pid_max: no such process, so the retraining "ended" at once


def _execution(spec: PipelineSpec, drift: float, at: datetime) -> MonitoringExecution:
    return MonitoringExecution(
        MonitoringScheduleName=naming.monitoring_schedule_name(spec),
        ScheduledTime=at,
        CreationTime=at,
        LastModifiedTime=at,
        MonitoringExecutionStatus="CompletedWithViolations" if drift > 0.2 else "Completed",
        ProcessingJobName="job",
        ProcessingJobArn="arn:job",
        EndpointName="customerchurn-prd-v1-x",
        ModelPackageVersion=1,
        Trigger="schedule cron(0 * ? * * *)",
        WindowStart=at - timedelta(hours=1),
        WindowEnd=at,
        Metrics={DRIFT: drift},
    )


class Monitoring:
    """The drift alarms evaluated as each monitoring execution evaluates them (records and events)."""

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec
        root = spec.state_dir.resolve()
        self.states = AlarmStates(root / "alarms", spec.region, spec.account_id)
        self.events = EventLog(root / "events", spec.region, spec.account_id)
        self.executions: list[MonitoringExecution] = []

    def period(self, drift: float) -> str:
        at = datetime(2026, 12, 3, 10, tzinfo=UTC) + timedelta(hours=len(self.executions))
        self.executions.append(_execution(self.spec, drift, at))
        return evaluate_drift_alarms(self.spec, self.executions, self.states, self.events)[
            naming.drift_alarm_name(self.spec)
        ]


@pytest.fixture
def spec(make_spec: Callable[..., PipelineSpec]) -> PipelineSpec:
    return make_spec(**{"retraining.alarm_periods": 2, "retraining.cooldown_seconds": 3600})


def test_debounce_no_new_data_start_cooldown_and_one_at_a_time(spec: PipelineSpec) -> None:
    backend: Backend = create_backend(spec)
    launches = Launches()
    monitoring = Monitoring(spec)

    assert check(spec, backend, launch=launches).action == Action.IDLE
    assert monitoring.period(0.9) == "ALARM"
    first = check(spec, backend, launch=launches)
    assert first.action == Action.DEBOUNCED and "1 of the 2 consecutive periods" in first.reason
    assert check(spec, backend, launch=launches).action == Action.DEBOUNCED  # the same evaluation: no new period

    monitoring.period(0.8)
    skipped = check(spec, backend, launch=launches)
    assert skipped.action == Action.SKIPPED and "no new labelled data" in skipped.reason
    assert launches.calls == []

    store = backend.store
    assert isinstance(store, LocalArtifactStore)
    rows = churn_rows(30, seed=8)
    put_merged(store, spec, "w", [merged(f"i{i}", json.dumps(_api_record(r)), _label(r)) for i, r in enumerate(rows)])
    monitoring.period(0.7)
    started = check(spec, backend, launch=launches)
    assert started.action == Action.START, started.reason
    assert started.periods == 3 and started.data is not None and started.data["used"] == 30
    spec_file, trigger, log = launches.calls[0]
    assert log.parent == spec_file.parent
    since = monitoring.states.get(naming.drift_alarm_name(spec))["StateUpdatedTimestamp"]
    expected_since = datetime.fromisoformat(since).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (
        trigger == f"alarm customerchurn-dev-drift in ALARM since {expected_since} (retraining {started.retraining_id})"
    )
    retrained = PipelineSpec.model_validate_json(spec_file.read_text())
    assert retrained.data.source is not None and retrained.data.source.is_absolute()
    assert spec.data.source is not None
    content = retrained.data.source.read_bytes()
    assert content.startswith(spec.data.source.read_bytes())
    assert len(content.decode().splitlines()) == 1 + 1000 + 30
    assert f"/raw/{started.data['data_sha256'][:16]}/" in str(retrained.data.source)

    monitoring.period(0.9)
    cooling = check(spec, backend, launch=launches)
    assert cooling.action == Action.COOLING_DOWN and "cooling down until" in cooling.reason
    assert cooling.cooldown_ends is not None
    with exclusive_lock(backend.lock_path, {"execution_id": "someone else"}):
        busy = check(spec, backend, launch=launches)
    assert busy.action == Action.ALREADY_RUNNING and "locked by pid" in busy.reason
    assert len(launches.calls) == 1

    monitoring.period(0.0)  # the alarm clears: the streak ends
    assert check(spec, backend, launch=launches).action == Action.IDLE
    check(spec, backend, launch=launches)  # a repeated idle look is not logged again
    actions = [d.action for d in read_decisions(RetrainingPaths(spec.state_dir.resolve()))]
    assert actions == [
        Action.IDLE, Action.DEBOUNCED, Action.DEBOUNCED, Action.SKIPPED, Action.START, Action.COOLING_DOWN,
        Action.ALREADY_RUNNING, Action.IDLE,
    ]  # fmt: skip

    status = retraining_status(spec, backend.executions.list())
    text = format_retraining(status)
    assert "last decision" in text and "idle: no trigger alarm is in ALARM" in text
    assert f"last retraining {started.retraining_id}: no execution yet" in text and trigger in text
    assert status.cooldown_ends == cooling.cooldown_ends


def test_the_trigger_alarms_come_from_the_spec(make_spec: Callable[..., PipelineSpec]) -> None:
    spec = make_spec(**{"retraining.alarm_periods": 1, "retraining.trigger_alarms": ["model-quality"]})
    backend = create_backend(spec)
    Monitoring(spec).period(0.9)  # the drift alarm fires, but only model-quality retrains
    assert check(spec, backend, launch=Launches()).action == Action.IDLE
    quality = naming.alarm_name(spec, "model-quality")
    states = AlarmStates(spec.state_dir.resolve() / "alarms", spec.region, spec.account_id)
    now = datetime.now(UTC).isoformat()
    states.set({"AlarmName": quality, "StateValue": "ALARM", "StateUpdatedTimestamp": now, "LastEvaluated": now})
    decision = check(spec, backend, launch=Launches())
    assert (decision.action, decision.alarm) == (Action.SKIPPED, quality)  # due, but no labelled data yet


def test_an_execution_waiting_at_the_approval_gate_blocks_a_retraining(make_spec: Callable[..., PipelineSpec]) -> None:
    spec = make_spec(**{"retraining.alarm_periods": 1})
    backend = create_backend(spec)
    now = datetime.now(UTC)
    waiting = PipelineExecution(
        pipeline_name=spec.pipeline_name,
        execution_id="e-waiting",
        status=Status.IN_PROGRESS,
        trigger="manual (make deploy)",
        started_at=now,
        pid=2**22 + 1,  # no such process: paused at the gate, not running
        host="here",
        spec={},
        stages=[
            StageExecution(
                name="ApproveDeployment",
                status=Status.IN_PROGRESS,
                approval=ManualApproval.request("v1", 3600, now),
            )
        ],
    )
    backend.executions.save(waiting)
    spec_file = spec.state_dir / "retraining-spec.json"
    spec_file.write_text(spec.model_dump_json())
    assert retraining_main(["run", "--spec", str(spec_file), "--trigger", "alarm x"]) == 1  # refuses to supersede it
    assert [e.execution_id for e in backend.executions.list()] == ["e-waiting"]
    Monitoring(spec).period(0.9)
    decision = check(spec, backend, launch=Launches())
    assert decision.action == Action.ALREADY_RUNNING
    assert "execution e-waiting waits at ApproveDeployment" in decision.reason
    backend.executions.save(waiting.model_copy(update={"status": Status.FAILED, "ended_at": now}))
    assert check(spec, backend, launch=Launches()).action == Action.SKIPPED  # due now; no labelled data yet


def test_a_replaced_event_log_is_read_from_its_beginning(spec: PipelineSpec) -> None:
    backend = create_backend(spec)
    paths = RetrainingPaths(spec.state_dir.resolve())
    paths.root.mkdir(parents=True)
    paths.state.write_text(RetrainingState(event_offset=10**9).model_dump_json())
    Monitoring(spec).period(0.9)
    check(spec, backend, launch=Launches())
    events = spec.state_dir.resolve() / "events" / "events.jsonl"
    assert load_state(paths).event_offset == events.stat().st_size
