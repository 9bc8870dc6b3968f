"""Stage runner: executes a pipeline's stages in order and records every execution, like CodePipeline.

Each execution is a JSON record (id, status, per-stage status/start/end/outputs/error, the resolved spec)
rewritten atomically at every transition, so ``status`` always shows the truth, even mid-stage. One
execution per pipeline at a time: a second is refused while the pipeline's ``flock`` is held. If a run dies
(``kill -9``, power loss), the kernel drops the lock; the next run marks the orphaned execution Failed
("interrupted") and either starts afresh or, with ``retry``, resumes it from the failed stage, re-running any
earlier stage whose recorded artifacts no longer verify.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from safedeploy.approval import ApprovalExpiredError, ApprovalPending, Decision, ManualApproval
from safedeploy.atomic import atomic_write_text
from safedeploy.errors import ExecutionError, PipelineLockedError, SafeDeployError
from safedeploy.locking import LockHeldError, exclusive_lock
from safedeploy.progress import PlainProgress, ProgressReporter
from safedeploy.stage_outputs import OutputsT, StageOutputs
from safedeploy.store import ArtifactRef

LOG = logging.getLogger(__name__)


class Status(StrEnum):
    """CodePipeline's execution and stage statuses (the subset a local run reaches)."""

    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUPERSEDED = "Superseded"
    """A newer execution started while this one waited for approval; it will not resume."""


class StageExecution(BaseModel):
    """The record of one stage within an execution."""

    name: str
    status: Status | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    summary: str = ""
    outputs: dict[str, Any] = {}
    """The stage's outputs as stored; read them typed with :meth:`PipelineExecution.output`."""
    artifacts: dict[str, ArtifactRef] = {}
    error: str | None = None
    error_type: str | None = None
    """The failure's exception class name (``GateFailedError``...): what :mod:`safedeploy.hints` maps to a next step."""
    attempts: int = 0
    approval: ManualApproval | None = None
    """A manual-approval stage's gate: the question, then who answered what and when."""

    @property
    def awaiting_approval(self) -> bool:
        """In progress, paused at an unanswered approval."""
        return self.status == Status.IN_PROGRESS and self.approval is not None and self.approval.pending

    @property
    def duration_seconds(self) -> float | None:
        """Wall time of the last attempt, if it has ended."""
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


class PipelineExecution(BaseModel):
    """The record of one pipeline execution."""

    pipeline_name: str
    execution_id: str
    status: Status
    trigger: str
    started_at: datetime
    ended_at: datetime | None = None
    pid: int
    host: str
    spec: dict[str, Any]
    """The resolved spec the execution runs with (a retry reuses it)."""
    stages: list[StageExecution]
    error: str | None = None

    @property
    def awaiting_approval(self) -> StageExecution | None:
        """The stage this execution is paused at for a manual approval, if it is."""
        if self.status != Status.IN_PROGRESS:
            return None
        return next((stage for stage in self.stages if stage.awaiting_approval), None)

    def output(self, kind: type[OutputsT]) -> OutputsT:
        """The typed outputs of ``kind``'s stage (``execution.output(TrainOutputs).model_data_url``).

        Raises:
            KeyError: the execution has no such stage.
            pydantic.ValidationError: the stored outputs do not have ``kind``'s fields (the stage did not succeed).
        """
        return kind.read(self.stage(kind.STAGE).outputs)

    def stage(self, name: str) -> StageExecution:
        """Return the named stage's record."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    @property
    def duration_seconds(self) -> float | None:
        """Wall time from start to end, if it has ended."""
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class StageResult:
    """What a stage returns: a one-line summary, its typed outputs, and the artifacts it wrote."""

    summary: str
    outputs: StageOutputs | None = None
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)


@dataclass(frozen=True)
class StageContext:
    """What a stage sees: its execution (earlier stages' outputs included) and where to report long sub-steps."""

    execution: PipelineExecution
    progress: ProgressReporter = field(default_factory=PlainProgress)

    @property
    def execution_id(self) -> str:
        """The running execution's id."""
        return self.execution.execution_id

    def output(self, kind: type[OutputsT]) -> OutputsT:
        """Typed outputs of an earlier, succeeded stage (``context.output(DataOutputs).input_data``)."""
        return self.execution.output(kind)

    def artifacts(self, stage: str) -> dict[str, ArtifactRef]:
        """Artifacts of an earlier, succeeded stage."""
        return self.execution.stage(stage).artifacts


class Stage(Protocol):
    """One pipeline stage."""

    @property
    def name(self) -> str:
        """The stage's name, as shown in status."""
        ...

    def run(self, context: StageContext) -> StageResult:
        """Do the stage's work; raise :class:`SafeDeployError` (or anything) to fail it."""
        ...


class ExecutionStore:
    """Execution records of one pipeline: ``<root>/<pipeline>/<started>_<id>.json``."""

    def __init__(self, root: Path, pipeline_name: str) -> None:
        self.directory = root / pipeline_name

    def save(self, execution: PipelineExecution) -> None:
        """Persist the record atomically."""
        name = f"{execution.started_at:%Y%m%dT%H%M%S%fZ}_{execution.execution_id}.json"
        atomic_write_text(self.directory / name, execution.model_dump_json(indent=2))

    def list(self) -> list[PipelineExecution]:
        """Every execution, oldest first."""
        if not self.directory.is_dir():
            return []
        return [
            PipelineExecution.model_validate_json(p.read_text("utf-8")) for p in sorted(self.directory.glob("*.json"))
        ]

    def latest(self) -> PipelineExecution | None:
        """The most recently started execution."""
        paths = sorted(self.directory.glob("*.json")) if self.directory.is_dir() else []
        return PipelineExecution.model_validate_json(paths[-1].read_text("utf-8")) if paths else None

    def get(self, execution_id: str) -> PipelineExecution:
        """The execution whose id is (or starts with) ``execution_id``."""
        matches = list(self.directory.glob(f"*_{execution_id}*.json")) if self.directory.is_dir() else []
        if len(matches) != 1:
            problem = "no" if not matches else "more than one"
            raise ExecutionError(f"{problem} execution of {self.directory.name} matches {execution_id!r}")
        return PipelineExecution.model_validate_json(matches[0].read_text("utf-8"))


def _now() -> datetime:
    return datetime.now(UTC)


class PipelineRunner:
    """Runs stages in order under the pipeline lock, persisting every transition."""

    def __init__(
        self,
        pipeline_name: str,
        stages: Sequence[Stage],
        executions: ExecutionStore,
        lock_path: Path,
        verify: Callable[[ArtifactRef], bool],
        clock: Callable[[], datetime] = _now,
        progress: ProgressReporter | None = None,
    ) -> None:
        self.pipeline_name = pipeline_name
        self.progress: ProgressReporter = progress or PlainProgress()
        self.stages = list(stages)
        self.executions = executions
        self.lock_path = lock_path
        self.verify = verify
        self.clock = clock

    def start(self, spec: dict[str, Any], trigger: str) -> PipelineExecution:
        """Start a new execution and run it to the end (Succeeded or Failed); return its record."""
        execution = PipelineExecution(
            pipeline_name=self.pipeline_name,
            execution_id=str(uuid.uuid4()),
            status=Status.IN_PROGRESS,
            trigger=trigger,
            started_at=self.clock(),
            pid=os.getpid(),
            host=socket.gethostname(),
            spec=spec,
            stages=[StageExecution(name=stage.name) for stage in self.stages],
        )
        with self._locked(execution.execution_id):
            self._supersede_waiting(execution.execution_id)
            self.executions.save(execution)
            return self._run(execution, first=0)

    def decide(self, decision: Decision, execution_id: str | None = None) -> PipelineExecution:
        """Answer the approval an execution waits at, then resume it from there (approved) or end it (rejected).

        Raises:
            ExecutionError: no such execution, or it is not waiting for an approval.
            ApprovalExpiredError: the approval expired (the execution is marked Failed).
        """
        with self._locked(execution_id or "decide"):
            execution = self.waiting_execution(execution_id)
            index = next(i for i, stage in enumerate(execution.stages) if stage.awaiting_approval)
            record = execution.stages[index]
            assert record.approval is not None  # noqa: S101 - awaiting_approval implies it
            try:
                record.approval.decide(decision, self.clock())
            except ApprovalExpiredError as exc:
                self._expire(execution, record, str(exc))
                raise
            execution.pid, execution.host = os.getpid(), socket.gethostname()
            self.executions.save(execution)
            LOG.info("execution %s: %s", execution.execution_id, record.approval.describe())
            return self._run(execution, first=index)

    def waiting_execution(self, execution_id: str | None = None) -> PipelineExecution:
        """The execution (given, or the latest) paused at an approval; raise :class:`ExecutionError` if none is."""
        if execution_id:
            execution = self.executions.get(execution_id)
            if execution.awaiting_approval is None:
                why = f" ({execution.error})" if execution.error else ""
                raise ExecutionError(
                    f"execution {execution.execution_id} is {execution.status}{why} and not waiting for an approval"
                )
            return execution
        waiting = [e for e in self.executions.list() if e.awaiting_approval is not None]
        if not waiting:
            latest = self.executions.latest()
            why = f": {latest.error}" if latest and latest.error else ""
            state = f" (the latest, {latest.execution_id}, is {latest.status}{why})" if latest else ""
            raise ExecutionError(f"no execution of {self.pipeline_name} is waiting for an approval{state}")
        return waiting[-1]

    def _expire(self, execution: PipelineExecution, record: StageExecution, message: str) -> None:
        now = self.clock()
        if record.approval is not None:
            record.approval.status = "Expired"
        record.status, record.ended_at, record.error = Status.FAILED, now, message
        record.error_type = ApprovalExpiredError.__name__
        execution.status, execution.ended_at, execution.error = Status.FAILED, now, f"{record.name}: {message}"
        self.executions.save(execution)

    def _supersede_waiting(self, newer: str) -> None:
        """Executions paused at an approval will not resume once a newer one starts (CodePipeline: Superseded)."""
        for execution in self.executions.list():
            record = execution.awaiting_approval
            if record is None or record.approval is None:
                continue
            now = self.clock()
            message = f"superseded by execution {newer} before anyone answered the approval"
            record.approval.status = "Superseded"
            record.status, record.ended_at, record.error = Status.SUPERSEDED, now, message
            execution.status, execution.ended_at, execution.error = Status.SUPERSEDED, now, message
            self.executions.save(execution)
            LOG.info("execution %s: %s", execution.execution_id, message)

    def retry(self, execution_id: str | None = None) -> PipelineExecution:
        """Resume a failed execution from its first stage that did not succeed (or whose artifacts changed)."""
        with self._locked(execution_id or "retry"):
            execution = self.executions.get(execution_id) if execution_id else self.executions.latest()
            if execution is None:
                raise ExecutionError(f"pipeline {self.pipeline_name} has no execution to retry")
            if execution.status != Status.FAILED:
                raise ExecutionError(
                    f"execution {execution.execution_id} is {execution.status}; only a Failed execution can be retried"
                )
            first = next(
                (i for i, stage in enumerate(execution.stages) if not self._reusable(stage)),
                len(execution.stages),
            )
            for stage in execution.stages[first:]:
                stage.status, stage.error, stage.error_type, stage.approval = None, None, None, None
            execution.status, execution.error, execution.ended_at = Status.IN_PROGRESS, None, None
            execution.pid, execution.host = os.getpid(), socket.gethostname()
            LOG.info("retrying execution %s from stage %s", execution.execution_id, execution.stages[first].name)
            self.executions.save(execution)
            return self._run(execution, first=first)

    def _reusable(self, stage: StageExecution) -> bool:
        if stage.status != Status.SUCCEEDED:
            return False
        stale = [name for name, ref in stage.artifacts.items() if not self.verify(ref)]
        if stale:
            LOG.warning("stage %s will run again: artifact(s) %s changed or vanished", stage.name, ", ".join(stale))
        return not stale

    @contextlib.contextmanager
    def _locked(self, execution_id: str) -> Iterator[None]:
        """Hold the pipeline lock (refusing if another execution has it) and clear up orphans first."""
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(
                exclusive_lock(self.lock_path, {"execution_id": execution_id, "host": socket.gethostname()})
            )
        except LockHeldError as held:
            who = held.holder
            raise PipelineLockedError(
                f"pipeline {self.pipeline_name} is already running (execution {who.get('execution_id', '?')}, "
                f"pid {who.get('pid', '?')}); wait for it to finish, or stop that process, then try again"
            ) from None
        with stack:
            self._recover_orphans()
            yield

    def _recover_orphans(self) -> None:
        """Mark executions left InProgress by a dead process as Failed (we hold the lock, so none is live)."""
        for execution in self.executions.list():
            if execution.status != Status.IN_PROGRESS:
                continue
            waiting = execution.awaiting_approval
            if waiting is not None and waiting.approval is not None:  # paused on purpose, not orphaned
                if waiting.approval.expired(self.clock()):
                    expiry = f"{waiting.approval.expires_at:%Y-%m-%d %H:%M:%S} UTC"
                    self._expire(execution, waiting, f"the approval expired unanswered at {expiry}")
                continue
            now = self.clock()
            running = [s for s in execution.stages if s.status == Status.IN_PROGRESS]
            where = f" while stage {running[0].name} was in progress" if running else ""
            message = f"interrupted: the process running this execution (pid {execution.pid}) ended{where}"
            for stage in running:
                stage.status, stage.ended_at, stage.error = Status.FAILED, now, message
            execution.status, execution.ended_at, execution.error = Status.FAILED, now, message
            self.executions.save(execution)
            LOG.warning("execution %s: %s", execution.execution_id, message)

    def _run(self, execution: PipelineExecution, first: int) -> PipelineExecution:
        context = StageContext(execution, self.progress)
        for stage, record in zip(self.stages[first:], execution.stages[first:], strict=True):
            # Answered since it paused: the wait is part of the stage's duration, and it is the same attempt.
            resuming = record.status == Status.IN_PROGRESS and record.approval is not None
            if not resuming:
                record.started_at = self.clock()
                record.attempts += 1
            record.status, record.ended_at = Status.IN_PROGRESS, None
            self.executions.save(execution)
            self.progress.stage_started(stage.name, resumed=resuming)
            try:
                result = stage.run(context)
            except ApprovalPending as pause:
                record.approval, record.summary = pause.approval, pause.approval.describe()
                self.executions.save(execution)
                self.progress.stage_paused(stage.name, record.summary)
                return execution
            except BaseException as exc:  # recorded, then re-raised unless it is an expected failure
                message = str(exc) if isinstance(exc, SafeDeployError) else f"{type(exc).__name__}: {exc}"
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    message = f"interrupted ({type(exc).__name__})"
                now = self.clock()
                record.status, record.ended_at, record.error = Status.FAILED, now, message
                record.error_type = type(exc).__name__
                execution.status, execution.ended_at, execution.error = (
                    Status.FAILED,
                    now,
                    f"{stage.name}: {message}",
                )
                self.executions.save(execution)
                self.progress.stage_failed(
                    stage.name, message, unexpected=None if isinstance(exc, SafeDeployError) else exc
                )
                if isinstance(exc, Exception):
                    return execution
                raise
            record.status, record.ended_at = Status.SUCCEEDED, self.clock()
            record.summary, record.outputs, record.artifacts = (
                result.summary,
                result.outputs.model_dump(mode="json") if result.outputs is not None else {},
                result.artifacts,
            )
            self.executions.save(execution)
            self.progress.stage_succeeded(stage.name, result.summary)
        execution.status, execution.ended_at = Status.SUCCEEDED, self.clock()
        self.executions.save(execution)
        return execution
