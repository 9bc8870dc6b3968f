"""When an alarm retrains: the pure decision (state in, decision and reason out), unit-tested on its own.

An alarm must have been in ALARM for ``alarm_periods`` consecutive evaluation periods (debounce: one noisy
monitoring window does not retrain), no retraining may be running or waiting at the approval gate (one at a
time), and ``cooldown_seconds`` of model time must have passed since the last retraining ended (a fresh model
gets the chance to clear the alarm before it is judged again).

Consecutive periods are counted from the alarm's own record (``DescribeAlarms``-shaped, ``<state>/alarms/``):
``StateUpdatedTimestamp`` names the ALARM episode, ``LastEvaluated`` changes once per evaluation. Each time the
scheduler asks, a new ``LastEvaluated`` within the same episode is one more period; a new episode (another
``StateUpdatedTimestamp``) starts again at one; any other state, or a state-change event leaving ALARM since the
last look, ends the streak. A manual ``make monitor`` between two scheduled executions also evaluates the alarm;
its evaluation is folded into the next count (one period per look), never counted twice. A trigger alarm whose
record has no ``LastEvaluated`` counts one period per look (the looks follow the scheduled executions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel

from safedeploy.spec import RetrainingSpec

ALARM = "ALARM"


class Action(StrEnum):
    """What a decision did."""

    START = "started"
    DEBOUNCED = "debounced"
    COOLING_DOWN = "cooling down"
    ALREADY_RUNNING = "already running"
    IDLE = "idle"
    DISABLED = "disabled"
    SKIPPED = "skipped"
    """Decided to start, but nothing new to train on (set by the trigger, after the decision)."""


@dataclass(frozen=True)
class AlarmObservation:
    """One trigger alarm as its record reads now."""

    name: str
    state: str
    since: str | None
    """``StateUpdatedTimestamp``: when the alarm entered its current state (names an ALARM episode)."""
    evaluated: str | None
    """``LastEvaluated``: changes with every evaluation period."""


class Streak(BaseModel):
    """An alarm's current run of consecutive evaluation periods in ALARM."""

    since: str
    evaluated: str | None
    periods: int


class PolicyState(BaseModel):
    """What the policy remembers between decisions (saved by the trigger)."""

    streaks: dict[str, Streak] = {}


@dataclass(frozen=True)
class Decision:
    """The outcome of one look: the action, why, and (for a start) the alarm that triggered it."""

    action: Action
    reason: str
    alarm: str | None = None
    since: str | None = None
    periods: int = 0
    cooldown_ends: datetime | None = None


def update_streaks(
    state: PolicyState, observations: Sequence[AlarmObservation], left_alarm: Sequence[str] = ()
) -> PolicyState:
    """Count consecutive periods in ALARM per alarm; ``left_alarm``: alarms seen leaving ALARM in events since."""
    streaks: dict[str, Streak] = {}
    for alarm in observations:
        if alarm.state != ALARM or alarm.since is None:
            continue
        previous = state.streaks.get(alarm.name)
        if previous is None or previous.since != alarm.since or alarm.name in left_alarm:
            streaks[alarm.name] = Streak(since=alarm.since, evaluated=alarm.evaluated, periods=1)
        elif alarm.evaluated is None or alarm.evaluated != previous.evaluated:  # no LastEvaluated: each look
            streaks[alarm.name] = Streak(since=alarm.since, evaluated=alarm.evaluated, periods=previous.periods + 1)
        else:
            streaks[alarm.name] = previous
    return PolicyState(streaks=streaks)


def decide(
    policy: RetrainingSpec,
    state: PolicyState,
    *,
    running: str | None,
    now: datetime,
    last_ended: datetime | None,
) -> Decision:
    """Whether to start a retraining now (all times model time on the monitoring clock).

    ``state`` holds the updated streaks (:func:`update_streaks`); ``running`` says what retraining or execution
    is in progress or waiting at the approval gate (``None``: nothing); ``last_ended`` is when the last
    retraining ended.
    """
    if not policy.enabled:
        return Decision(Action.DISABLED, "retraining is disabled (retraining.enabled=false)")
    firing = sorted(state.streaks.items(), key=lambda item: (-item[1].periods, item[0]))
    if not firing:
        return Decision(Action.IDLE, "no trigger alarm is in ALARM")
    name, streak = firing[0]
    if running is not None:
        return Decision(
            Action.ALREADY_RUNNING,
            f"{name} in ALARM, but {running}: one retraining at a time",
            name,
            streak.since,
            streak.periods,
        )
    if streak.periods < policy.alarm_periods:
        return Decision(
            Action.DEBOUNCED,
            f"{name} in ALARM for {streak.periods} of the {policy.alarm_periods} consecutive periods needed",
            name,
            streak.since,
            streak.periods,
        )
    if last_ended is not None:
        ends = last_ended + timedelta(seconds=policy.cooldown_seconds)
        if now < ends:
            return Decision(
                Action.COOLING_DOWN,
                f"{name} in ALARM for {streak.periods} periods, but the last retraining ended at "
                f"{_iso(last_ended)}: cooling down until {_iso(ends)} (model time)",
                name,
                streak.since,
                streak.periods,
                ends,
            )
    return Decision(
        Action.START,
        f"{name} in ALARM for {streak.periods} consecutive periods (>= {policy.alarm_periods})",
        name,
        streak.since,
        streak.periods,
    )


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
