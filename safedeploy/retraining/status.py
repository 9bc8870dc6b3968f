"""What ``make status`` shows of retraining: the last decision and why, the cooldown, the triggered execution."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from safedeploy.retraining.trigger import (
    DecisionRecord,
    RetrainingPaths,
    StartedRetraining,
    last_ended,
    load_state,
    monitoring_clock,
    read_decisions,
    triggered_execution,
)
from safedeploy.runner import PipelineExecution
from safedeploy.spec import PipelineSpec


class RetrainingStatus(BaseModel):
    """Retraining at a glance (all from the retraining records and the execution records)."""

    enabled: bool
    trigger_alarms: list[str]
    last_decision: DecisionRecord | None = None
    last_started: StartedRetraining | None = None
    execution_id: str | None = None
    execution_status: str | None = None
    execution_trigger: str | None = None
    cooldown_ends: datetime | None = None
    """Model time (the monitoring clock) at which the cooldown after the last retraining ends."""


def retraining_status(spec: PipelineSpec, executions: list[PipelineExecution]) -> RetrainingStatus:
    """The retraining state of ``spec``'s pipeline."""
    from safedeploy.retraining.trigger import trigger_alarm_names

    paths = RetrainingPaths(spec.state_dir.resolve())
    decisions = read_decisions(paths)
    state = load_state(paths)
    execution = triggered_execution(executions, state.last)
    ended = last_ended(executions, state.last)
    cooldown = None
    if ended is not None:
        cooldown = monitoring_clock(spec).model_time(ended) + timedelta(seconds=spec.retraining.cooldown_seconds)
    return RetrainingStatus(
        enabled=spec.retraining.enabled,
        trigger_alarms=trigger_alarm_names(spec),
        last_decision=decisions[-1] if decisions else None,
        last_started=state.last,
        execution_id=execution.execution_id if execution else None,
        execution_status=str(execution.status) if execution else None,
        execution_trigger=execution.trigger if execution else None,
        cooldown_ends=cooldown,
    )
