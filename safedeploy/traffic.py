"""Traffic-shifting strategies: CodeDeploy's predefined configs, SageMaker guardrails' modes and custom steps.

Every strategy becomes a :class:`Schedule`: the green percentages to set, in order, each held for a wait (in
model time: the deployment's scalable clock decides how long that is on the wall), then a final bake at
100 % before blue is terminated.

CodeDeploy (``CodeDeployDefault.Lambda*``): ``Canary10Percent{5,10,15,30}Minutes`` send 10 % for N minutes,
then the rest; ``Linear10PercentEvery{1,2,3,10}Minute(s)`` add 10 % every N minutes; ``AllAtOnce`` shifts at
once. SageMaker deployment guardrails (``BlueGreenUpdatePolicy.TrafficRoutingConfiguration``): ``CANARY``
(``CanarySize`` percent, then ``WaitIntervalInSeconds``), ``LINEAR`` (``LinearStepSize`` percent per
``WaitIntervalInSeconds``), ``ALL_AT_ONCE``; ``TerminationWaitInSeconds`` is the bake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from safedeploy.errors import ConfigError

_CANARY = re.compile(r"^Canary(\d+)Percent(\d+)Minutes?$")
_LINEAR = re.compile(r"^Linear(\d+)PercentEvery(\d+)Minutes?$")
CODEDEPLOY_CONFIGS = (
    "Canary10Percent5Minutes",
    "Canary10Percent10Minutes",
    "Canary10Percent15Minutes",
    "Canary10Percent30Minutes",
    "Linear10PercentEvery1Minute",
    "Linear10PercentEvery2Minutes",
    "Linear10PercentEvery3Minutes",
    "Linear10PercentEvery10Minutes",
    "AllAtOnce",
)
GUARDRAIL_MODES = ("CANARY", "LINEAR", "ALL_AT_ONCE")
CUSTOM = "Custom"


@dataclass(frozen=True)
class TrafficStep:
    """Send ``green_percent`` of traffic to green, then watch the alarms for ``wait_seconds`` (model time)."""

    green_percent: int
    wait_seconds: float


@dataclass(frozen=True)
class Schedule:
    """The steps of one deployment and the bake at 100 % that follows them."""

    strategy: str
    steps: tuple[TrafficStep, ...]
    bake_seconds: float

    @property
    def total_seconds(self) -> float:
        """Model time from the first shift to the end of the bake."""
        return sum(step.wait_seconds for step in self.steps) + self.bake_seconds

    def describe(self) -> str:
        """``10% 300s -> 100% 0s, bake 60s``."""
        steps = " -> ".join(f"{s.green_percent}% {s.wait_seconds:g}s" for s in self.steps)
        return f"{self.strategy}: {steps}, bake {self.bake_seconds:g}s"


def _linear(step_percent: int, wait: float) -> tuple[TrafficStep, ...]:
    percents = [*range(step_percent, 100, step_percent), 100]
    return tuple(TrafficStep(p, wait if p < 100 else 0.0) for p in percents)


def _percent(value: int, what: str) -> int:
    if not 1 <= value <= 99:
        raise ConfigError(f"{what} must be between 1 and 99 percent, got {value}")
    return value


def build_schedule(
    strategy: str,
    *,
    bake_seconds: float,
    canary_percent: int = 10,
    linear_step_percent: int = 10,
    wait_interval_seconds: float = 300,
    custom_steps: tuple[tuple[int, float], ...] = (),
) -> Schedule:
    """The schedule of a strategy name (a CodeDeploy config, a guardrails mode, or ``Custom``).

    Raises:
        ConfigError: unknown strategy, or percentages/waits out of range, naming what is wrong.
    """
    if bake_seconds < 0 or wait_interval_seconds < 0:
        raise ConfigError("bake and wait intervals must not be negative")
    name = strategy.removeprefix("CodeDeployDefault.").removeprefix("Lambda")
    if name == "AllAtOnce" or strategy == "ALL_AT_ONCE":
        return Schedule(strategy, (TrafficStep(100, 0.0),), bake_seconds)
    if match := _CANARY.match(name):
        percent, minutes = _percent(int(match[1]), "the canary size"), int(match[2])
        return Schedule(strategy, (TrafficStep(percent, minutes * 60.0), TrafficStep(100, 0.0)), bake_seconds)
    if match := _LINEAR.match(name):
        return Schedule(
            strategy, _linear(_percent(int(match[1]), "the linear step"), int(match[2]) * 60.0), bake_seconds
        )
    if strategy == "CANARY":
        percent = _percent(canary_percent, "canary_percent")
        return Schedule(strategy, (TrafficStep(percent, wait_interval_seconds), TrafficStep(100, 0.0)), bake_seconds)
    if strategy == "LINEAR":
        step = _percent(linear_step_percent, "linear_step_percent")
        return Schedule(strategy, _linear(step, wait_interval_seconds), bake_seconds)
    if strategy == CUSTOM:
        return Schedule(strategy, _custom(custom_steps), bake_seconds)
    known = ", ".join((*CODEDEPLOY_CONFIGS, *GUARDRAIL_MODES, CUSTOM))
    raise ConfigError(f"unknown deployment strategy {strategy!r}; use one of {known}")


def _custom(custom_steps: tuple[tuple[int, float], ...]) -> tuple[TrafficStep, ...]:
    if not custom_steps:
        raise ConfigError("the Custom strategy needs steps: [[percent, wait_seconds], ...] ending at 100")
    steps = []
    previous = 0
    for number, (percent, wait) in enumerate(custom_steps, start=1):
        if not previous < percent <= 100:
            raise ConfigError(
                f"custom step {number}: {percent}% must be above the previous step's {previous}% and <= 100"
            )
        if wait < 0:
            raise ConfigError(f"custom step {number}: the wait must not be negative, got {wait}")
        steps.append(TrafficStep(percent, float(wait)))
        previous = percent
    if previous != 100:
        raise ConfigError(f"the custom steps must end at 100%, the last is {previous}%")
    return tuple(steps)
