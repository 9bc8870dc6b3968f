"""What ``make status`` shows of retraining: the last decision and why, the cooldown, the triggered execution."""

from __future__ import annotations

import logging
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

LOG = logging.getLogger(__name__)


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


def last_decision_line(spec: PipelineSpec, executions: list[PipelineExecution]) -> str:
    """The last retraining decision in a sentence (``<time> UTC: <action>: <reason>``), empty when there was none.

    Records this code cannot read give an empty line and a warning: a report or a status still renders.
    """
    try:
        decision = retraining_status(spec, executions).last_decision
    except Exception as exc:  # records of another layout
        LOG.warning("reading the retraining status failed: %s", exc)
        return ""
    if decision is None:
        return ""
    return f"{decision.time:%Y-%m-%d %H:%M:%S} UTC: {decision.action}: {decision.reason}"
