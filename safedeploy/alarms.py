"""CloudWatch metric-alarm evaluation: period, evaluation periods, datapoints to alarm, missing data.

An alarm looks at its most recent ``evaluation_periods`` datapoints (one per ``period``). It is in ``ALARM``
when at least ``datapoints_to_alarm`` of them breach the threshold. Missing datapoints (no data, or too few
requests for the value to mean anything) are treated per ``treat_missing_data``, as CloudWatch does:

- ``missing`` (the default): they are left out; if every datapoint is missing the alarm is
  ``INSUFFICIENT_DATA``: a window without enough traffic is never "healthy by default";
- ``notBreaching`` / ``breaching``: they count as good / bad;
- ``ignore``: they are left out and, if every datapoint is missing, the alarm keeps its state.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from safedeploy.errors import ConfigError

Comparison = Literal[
    "GreaterThanThreshold", "GreaterThanOrEqualToThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold"
]
TreatMissing = Literal["missing", "notBreaching", "breaching", "ignore"]
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


class AlarmState(StrEnum):
    """CloudWatch's alarm states."""

    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


@dataclass(frozen=True)
class AlarmRule:
    """The evaluation settings of a metric alarm (``PutMetricAlarm``'s names, snake-cased)."""

    name: str
    threshold: float
    comparison: Comparison = "GreaterThanThreshold"
    period_seconds: float = 60.0
    evaluation_periods: int = 2
    datapoints_to_alarm: int = 1
    treat_missing_data: TreatMissing = "missing"
    statistic: str = ""
    """What each datapoint is (``Sum``, ``Average``, ``p99``...): informational locally, CloudWatch's on AWS."""

    def __post_init__(self) -> None:
        if self.comparison not in _COMPARE:
            raise ConfigError(f"alarm {self.name}: unknown comparison {self.comparison!r}")
        if self.evaluation_periods < 1 or not 1 <= self.datapoints_to_alarm <= self.evaluation_periods:
            raise ConfigError(
                f"alarm {self.name}: need 1 <= datapoints_to_alarm ({self.datapoints_to_alarm}) "
                f"<= evaluation_periods ({self.evaluation_periods})"
            )
        if self.period_seconds <= 0:
            raise ConfigError(f"alarm {self.name}: the period must be positive, got {self.period_seconds}")

    def breaches(self, value: float) -> bool:
        """Whether one datapoint is on the wrong side of the threshold."""
        return _COMPARE[self.comparison](value, self.threshold)


def evaluate(
    rule: AlarmRule,
    datapoints: Sequence[float | None],
    previous: AlarmState = AlarmState.INSUFFICIENT_DATA,
    *,
    unseen_missing: bool = True,
) -> AlarmState:
    """The alarm's state given its datapoints, oldest first (``None`` = missing); only the last N count.

    With fewer datapoints than evaluation periods, the periods before the first one are missing data (CloudWatch
    on a new metric); ``unseen_missing=False`` leaves them out instead (periods judged elsewhere: the blue/green
    controller's previous step, or the pre-traffic hook before the first one).
    """
    recent = list(datapoints)[-rule.evaluation_periods :]
    if not recent and not unseen_missing:
        return previous  # no period of its own yet: nothing to judge
    present = [value for value in recent if value is not None]
    periods = rule.evaluation_periods if unseen_missing else len(recent)
    missing = periods - len(present)  # fewer datapoints than periods: the rest are missing
    breaching = sum(rule.breaches(value) for value in present)
    if rule.treat_missing_data == "breaching":
        breaching += missing
    if breaching >= rule.datapoints_to_alarm:
        return AlarmState.ALARM
    if present or rule.treat_missing_data in ("notBreaching", "breaching"):
        return AlarmState.OK
    return previous if rule.treat_missing_data == "ignore" else AlarmState.INSUFFICIENT_DATA


@dataclass(frozen=True)
class Transition:
    """An alarm changing state, with the datapoints that made it change."""

    alarm: str
    old: AlarmState
    new: AlarmState
    reason: str


class AlarmTracker:
    """Current states of a set of alarms; reports transitions as new datapoints arrive."""

    def __init__(self, rules: Sequence[AlarmRule], *, unseen_missing: bool = True) -> None:
        self.rules = {rule.name: rule for rule in rules}
        self.unseen_missing = unseen_missing
        self.states = {rule.name: AlarmState.INSUFFICIENT_DATA for rule in rules}

    def update(self, name: str, datapoints: Sequence[float | None]) -> Transition | None:
        """Re-evaluate one alarm; return the transition if its state changed."""
        rule = self.rules[name]
        old = self.states[name]
        new = evaluate(rule, datapoints, old, unseen_missing=self.unseen_missing)
        if new == old:
            return None
        self.states[name] = new
        shown = ", ".join("-" if v is None else f"{v:.4g}" for v in list(datapoints)[-rule.evaluation_periods :])
        reason = (
            f"{name}: {new} ([{shown}] vs threshold {rule.comparison} {rule.threshold:g}, "
            f"{rule.datapoints_to_alarm} of {rule.evaluation_periods} x {rule.period_seconds:g}s)"
        )
        return Transition(name, old, new, reason)

    def in_alarm(self) -> list[str]:
        """Names of the alarms in ALARM."""
        return [name for name, state in self.states.items() if state == AlarmState.ALARM]
