"""After each scheduled monitoring execution: read the trigger alarms, decide, and start a retraining if due.

Called by the monitoring scheduler's child process (``monitoring/scheduler.py``), never by the runtime itself.
One look, under ``<state>/retraining/lock``:

1. read the alarm state-change events published since the saved offset (``events.EventLog``, pattern on the
   trigger alarms' names) and the trigger alarms' records (``<state>/alarms/<name>.json``);
2. count consecutive periods in ALARM and decide (:mod:`safedeploy.retraining.policy`, a pure function):
   debounce, one retraining at a time (an execution in progress or waiting at the approval gate, the pipeline's
   lock held, or a started retraining process still alive), cooldown on the monitoring clock;
3. to start: build the new data (:mod:`safedeploy.retraining.new_data`). No labelled record to add, or a table
   an execution already trained on, is recorded ``skipped``: the data would be identical, and the retraining
   would register the same model again (or, with the duplicate-version rule, do nothing) while the alarm stays;
4. else write the table to the data bucket (content-addressed, ``naming.raw_data_uri``), the spec with
   ``data.source`` pointing at it, and start ``python -m safedeploy.retraining run`` detached (its own session,
   so neither the scheduler child's exit nor the runtime's shutdown ends it).

Every decision but a repeated idle one is appended to ``<state>/retraining/decisions.jsonl`` (fsynced); the
state (event offset, streaks, the last retraining) is ``state.json``, written atomically.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from safedeploy import naming
from safedeploy.atomic import atomic_write_text
from safedeploy.events import ALARM_STATE_CHANGE, CLOUDWATCH_SOURCE, EventLog
from safedeploy.features import FeatureSchema
from safedeploy.locking import LockHeldError, exclusive_lock
from safedeploy.monitoring.drift_alarms import AlarmStates
from safedeploy.monitoring.records import MonitoringRecords
from safedeploy.monitoring.schedule import ScheduleClock, records_root
from safedeploy.processes import process_start_ticks, same_process_alive
from safedeploy.retraining.new_data import combine
from safedeploy.retraining.policy import Action, AlarmObservation, PolicyState, decide, update_streaks
from safedeploy.runner import PipelineExecution, Status
from safedeploy.spec import PipelineSpec
from safedeploy.stage_outputs import DataOutputs
from safedeploy.store import LocalArtifactStore

if TYPE_CHECKING:
    from safedeploy.backends import Backend

LOG = logging.getLogger(__name__)
RAW_TABLE_NAME = "retraining.csv"


@dataclass(frozen=True)
class RetrainingPaths:
    """Where retraining keeps its records, under the pipeline's state directory."""

    state_dir: Path

    @property
    def root(self) -> Path:
        """``<state>/retraining``."""
        return self.state_dir / "retraining"

    @property
    def state(self) -> Path:
        """The saved state."""
        return self.root / "state.json"

    @property
    def decisions(self) -> Path:
        """The decision log."""
        return self.root / "decisions.jsonl"

    @property
    def lock(self) -> Path:
        """One look at a time."""
        return self.root / "lock"

    def run_dir(self, retraining_id: str) -> Path:
        """A started retraining's spec and log."""
        return self.root / "runs" / retraining_id


class StartedRetraining(BaseModel):
    """The last retraining started: what triggered it, its process, its data."""

    retraining_id: str
    trigger: str
    alarm: str
    started_at: datetime
    pid: int | None = None
    start_ticks: int | None = None
    data_sha256: str
    data_uri: str
    new_rows: int
    log: str


class RetrainingState(BaseModel):
    """``state.json``."""

    event_offset: int = 0
    policy: PolicyState = PolicyState()
    last: StartedRetraining | None = None


class DecisionRecord(BaseModel):
    """One line of the decision log."""

    time: datetime
    model_time: datetime
    action: Action
    reason: str
    alarm: str | None = None
    periods: int = 0
    cooldown_ends: datetime | None = None
    retraining_id: str | None = None
    trigger: str | None = None
    data: dict[str, Any] | None = None


Launcher = Callable[[Path, str, Path], int]
"""Starts the retraining process: (spec file, trigger, log file) -> pid."""


def launch_detached(spec_file: Path, trigger: str, log: Path) -> int:
    """``python -m safedeploy.retraining run`` in its own session, output to ``log``; return its pid."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "safedeploy.retraining", "run", "--spec", str(spec_file), "--trigger", trigger],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            close_fds=True,
        )
    return process.pid


def load_state(paths: RetrainingPaths) -> RetrainingState:
    """The saved state (empty before the first look)."""
    if not paths.state.is_file():
        return RetrainingState()
    return RetrainingState.model_validate_json(paths.state.read_text("utf-8"))


def read_decisions(paths: RetrainingPaths) -> list[DecisionRecord]:
    """Every recorded decision, oldest first (a torn last line is skipped)."""
    if not paths.decisions.is_file():
        return []
    records = []
    for line in paths.decisions.read_text("utf-8").splitlines():
        try:
            records.append(DecisionRecord.model_validate_json(line))
        except ValueError:
            continue
    return records


def _append(paths: RetrainingPaths, record: DecisionRecord) -> None:
    paths.root.mkdir(parents=True, exist_ok=True)
    with paths.decisions.open("ab") as handle:
        handle.write(record.model_dump_json().encode() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


def trigger_alarm_names(spec: PipelineSpec) -> list[str]:
    """The alarms whose ALARM state retrains (``retraining.trigger_alarms`` purposes -> names)."""
    return [naming.alarm_name(spec, purpose) for purpose in spec.retraining.trigger_alarms]


def _zulu(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return stamp


def triggered_execution(
    executions: list[PipelineExecution], last: StartedRetraining | None
) -> PipelineExecution | None:
    """The execution the last retraining started (found by its trigger, which names the retraining)."""
    if last is None:
        return None
    return next((e for e in reversed(executions) if e.trigger == last.trigger), None)


def _running(backend: Backend, executions: list[PipelineExecution], last: StartedRetraining | None) -> str | None:
    """What is in progress or waiting at the approval gate, in words; ``None`` if nothing is."""
    for execution in reversed(executions):
        if execution.status != Status.IN_PROGRESS:
            continue
        waiting = execution.awaiting_approval
        if waiting is not None:
            return f"execution {execution.execution_id} waits at {waiting.name} (make approve / make reject)"
        if same_process_alive(execution.pid, None):
            stage = next((s.name for s in execution.stages if s.status == Status.IN_PROGRESS), "?")
            return f"execution {execution.execution_id} is in progress (stage {stage}, pid {execution.pid})"
    try:
        with exclusive_lock(backend.lock_path, {"execution_id": "retraining check"}):
            pass
    except LockHeldError as held:
        return f"pipeline {backend.executions.directory.name} is locked by pid {held.holder.get('pid', '?')}"
    starting = last is not None and last.pid is not None and triggered_execution(executions, last) is None
    if starting and last is not None and last.pid is not None and same_process_alive(last.pid, last.start_ticks):
        return f"retraining {last.retraining_id} is starting (pid {last.pid})"
    return None


def last_ended(executions: list[PipelineExecution], last: StartedRetraining | None) -> datetime | None:
    """Wall time the last retraining ended (its execution's end; its start if it never began one)."""
    if last is None:
        return None
    execution = triggered_execution(executions, last)
    if execution is None:
        return last.started_at
    return execution.ended_at


def monitoring_clock(spec: PipelineSpec) -> ScheduleClock:
    """The production schedule's model clock (cooldowns are model time); the spec's scale before a schedule."""
    schedule = MonitoringRecords(records_root(spec.state_dir.resolve())).schedule(naming.monitoring_schedule_name(spec))
    if schedule is None:
        return ScheduleClock(datetime.now(UTC), spec.monitoring.time_scale)
    return ScheduleClock(schedule.Anchor, schedule.TimeScale)


def _serving_schema(spec: PipelineSpec, backend: Backend) -> FeatureSchema | None:
    """The production version's feature schema (maps encoded CSV capture back to raw fields)."""
    from safedeploy.store import S3Uri

    schedule = MonitoringRecords(records_root(spec.state_dir.resolve())).schedule(naming.monitoring_schedule_name(spec))
    if schedule is None:
        return None
    try:
        return FeatureSchema.from_json(backend.store.get_bytes(S3Uri.parse(schedule.Baseline.feature_schema)))
    except (OSError, ValueError) as exc:
        LOG.warning("retraining: cannot read the serving feature schema: %s", exc)
        return None


def check(
    spec: PipelineSpec,
    backend: Backend,
    *,
    launch: Launcher = launch_detached,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DecisionRecord:
    """One look: update the streaks, decide, start a retraining if due; return the decision (recorded)."""
    state_dir = spec.state_dir.resolve()
    paths = RetrainingPaths(state_dir)
    names = trigger_alarm_names(spec)
    with exclusive_lock(paths.lock, {"purpose": "retraining check"}, wait=True):
        state = load_state(paths)
        events = EventLog(state_dir / "events", spec.region, spec.account_id)
        pattern = {"source": [CLOUDWATCH_SOURCE], "detail-type": [ALARM_STATE_CHANGE], "detail": {"alarmName": names}}
        start = state.event_offset
        if not events.path.is_file() or start > events.path.stat().st_size:
            start = 0  # the log was removed or replaced: read it from its beginning
        new_events, offset = events.read(start, pattern)
        left = [e["detail"]["alarmName"] for e in new_events if e["detail"]["state"]["value"] != "ALARM"]
        alarms = AlarmStates(state_dir / "alarms", spec.region, spec.account_id)
        observations = []
        for name in names:
            alarm = alarms.get(name)
            observations.append(
                AlarmObservation(
                    name, alarm["StateValue"], alarm.get("StateUpdatedTimestamp"), alarm.get("LastEvaluated")
                )
            )
        policy_state = update_streaks(state.policy, observations, left)
        executions = backend.executions.list()
        clock = monitoring_clock(spec)
        wall = now()
        ended = last_ended(executions, state.last)
        decision = decide(
            spec.retraining,
            policy_state,
            running=_running(backend, executions, state.last),
            now=clock.model_time(wall),
            last_ended=clock.model_time(ended) if ended is not None else None,
        )
        record = DecisionRecord(
            time=wall,
            model_time=clock.model_time(wall),
            action=decision.action,
            reason=decision.reason,
            alarm=decision.alarm,
            periods=decision.periods,
            cooldown_ends=decision.cooldown_ends,
        )
        last = state.last
        if decision.action == Action.START and decision.alarm is not None and decision.since is not None:
            record, last = _start(spec, backend, paths, record, executions, decision.since, launch, wall)
        previous = read_decisions(paths)
        repeated_idle = (
            record.action in (Action.IDLE, Action.DISABLED)
            and previous
            and (previous[-1].action, previous[-1].reason) == (record.action, record.reason)
        )
        if not repeated_idle:
            _append(paths, record)
        atomic_write_text(
            paths.state,
            RetrainingState(event_offset=offset, policy=policy_state, last=last).model_dump_json(indent=2),
        )
    LOG.info("retraining: %s: %s", record.action, record.reason)
    return record


def _start(
    spec: PipelineSpec,
    backend: Backend,
    paths: RetrainingPaths,
    record: DecisionRecord,
    executions: list[PipelineExecution],
    since: str,
    launch: Launcher,
    wall: datetime,
) -> tuple[DecisionRecord, StartedRetraining | None]:
    """Build the new data and start the retraining, or record why it is skipped."""
    from safedeploy.errors import ConfigError

    if spec.data.source is None:
        raise ConfigError("retraining needs data.source: the configured table the labelled records are added to")
    store = backend.store
    if not isinstance(store, LocalArtifactStore):
        raise ConfigError("retraining on new data runs on the local backend")
    table = combine(spec, store, spec.data.source, _serving_schema(spec, backend))
    data = {**table.report.as_dict(), "base_rows": table.base_rows, "data_sha256": table.sha256}
    if table.new_rows == 0:
        reason = f"skipped: no new labelled data ({table.report.summary()}); {record.reason}"
        return record.model_copy(update={"action": Action.SKIPPED, "reason": reason, "data": data}), None
    trained = next((e for e in executions if _data_sha256(e) == table.sha256), None)
    if trained is not None:
        reason = (
            f"skipped: execution {trained.execution_id} already trained on this data "
            f"({table.report.summary()}); {record.reason}"
        )
        return record.model_copy(update={"action": Action.SKIPPED, "reason": reason, "data": data}), None
    retraining_id = f"r-{uuid.uuid4().hex[:8]}"
    uri = naming.raw_data_uri(spec, table.sha256, RAW_TABLE_NAME)
    store.put_bytes(uri, table.content, "text/csv")
    source = store.path_of(uri)
    run_dir = paths.run_dir(retraining_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_file = run_dir / "spec.json"
    retrained = spec.model_copy(  # absolute paths: the detached process may run elsewhere
        update={
            "state_dir": spec.state_dir.resolve(),
            "data": spec.data.model_copy(update={"source": source}),
            "training": spec.training.model_copy(update={"source_dir": spec.training.source_dir.resolve()}),
        }
    )
    atomic_write_text(spec_file, retrained.model_dump_json(indent=2))
    trigger = f"alarm {record.alarm} in ALARM since {_zulu(since)} (retraining {retraining_id})"
    log = run_dir / "retraining.log"
    pid = launch(spec_file, trigger, log)
    started = StartedRetraining(
        retraining_id=retraining_id,
        trigger=trigger,
        alarm=record.alarm or "",
        started_at=wall,
        pid=pid,
        start_ticks=process_start_ticks(pid),
        data_sha256=table.sha256,
        data_uri=str(uri),
        new_rows=table.new_rows,
        log=str(log),
    )
    reason = (
        f"{record.reason}: retraining {retraining_id} started (pid {pid}) on {table.base_rows} + {table.new_rows} "
        f"rows ({table.report.summary()})"
    )
    update = {"reason": reason, "retraining_id": retraining_id, "trigger": trigger, "data": data}
    return record.model_copy(update=update), started


def _data_sha256(execution: PipelineExecution) -> str | None:
    try:
        return execution.output(DataOutputs).data_sha256
    except (KeyError, ValueError):
        return None


def after_monitoring(spec: PipelineSpec, backend: Backend) -> DecisionRecord | None:
    """The scheduler's one call after a monitoring execution: :func:`check`, its failure logged, never raised."""
    try:
        return check(spec, backend)
    except Exception:  # a retraining problem must not fail the monitoring execution that was recorded already
        LOG.exception("retraining check failed")
        return None
