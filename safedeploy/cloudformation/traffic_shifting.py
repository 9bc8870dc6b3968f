"""The spec's traffic schedule as AWS expresses it: CodeDeploy (Lambda alias) or SageMaker guardrails.

* CodeDeploy's predefined configs (``Canary10Percent5Minutes``, ``Linear10PercentEvery1Minute``, ``AllAtOnce``...)
  are used by name. Any other CodeDeploy-shaped strategy and ``Custom`` become an ``AWS::CodeDeploy::DeploymentConfig``
  (``TimeBasedCanary``/``TimeBasedLinear``) derived from the schedule; CodeDeploy can express one canary step
  or equal linear steps, at whole-minute intervals, so other custom schedules are refused with the reason.
  CodeDeploy has no bake at 100 %: the post-traffic hook runs when the shift is complete.
* Guardrails modes (``CANARY``, ``LINEAR``, ``ALL_AT_ONCE``) become the endpoint's ``DeploymentConfig``:
  ``BlueGreenUpdatePolicy`` (the bake is ``TerminationWaitInSeconds``) and ``AutoRollbackConfiguration``.
"""

from __future__ import annotations

import math
from typing import Any

from safedeploy.cloudformation.template import Json, Template, ref
from safedeploy.errors import ConfigError
from safedeploy.spec import ProductionSpec
from safedeploy.traffic import CODEDEPLOY_CONFIGS, GUARDRAIL_MODES, Schedule, TrafficStep

MAX_STEP_WAIT_SECONDS = 3600
"""Guardrails' ``WaitIntervalInSeconds`` and ``TerminationWaitInSeconds`` limit."""
MAX_EXECUTION_SECONDS = 14_400
MIN_EXECUTION_SECONDS = 600
PROVISIONING_ALLOWANCE_SECONDS = 1800
"""Time allowed for green's instances to start, on top of the schedule, in ``MaximumExecutionTimeoutInSeconds``."""
CUSTOM_CONFIG = "DeploymentConfig"


def uses_guardrails(production: ProductionSpec) -> bool:
    """Whether the strategy is a SageMaker guardrails mode (else CodeDeploy shifts the API's alias)."""
    return production.strategy in GUARDRAIL_MODES


def _minutes(seconds: float, what: str) -> int:
    minutes = seconds / 60
    if seconds <= 0 or minutes != math.floor(minutes):
        raise ConfigError(
            f"{what}: CodeDeploy waits whole minutes (at least one), got {seconds:g} s; "
            "use a multiple of 60 or a guardrails mode (CANARY, LINEAR)"
        )
    return int(minutes)


def codedeploy_routing(schedule: Schedule) -> Json:
    """``TrafficRoutingConfig`` of a CodeDeploy Lambda deployment config running ``schedule``."""
    steps = schedule.steps
    if len(steps) == 1:
        return {"Type": "AllAtOnce"}
    *shifts, last = steps
    if last != TrafficStep(100, 0.0):
        raise ConfigError(
            f"{schedule.describe()}: CodeDeploy ends with 100% and no wait (the post-traffic hook follows at once); "
            "put the time in production.bake_seconds"
        )
    if len(shifts) == 1:
        step = shifts[0]
        return {
            "Type": "TimeBasedCanary",
            "TimeBasedCanary": {
                "CanaryPercentage": step.green_percent,
                "CanaryInterval": _minutes(step.wait_seconds, f"{schedule.strategy} canary wait"),
            },
        }
    size, wait = shifts[0].green_percent, shifts[0].wait_seconds
    if [s.green_percent for s in shifts] == list(range(size, 100, size)) and all(
        s.wait_seconds == wait for s in shifts
    ):
        return {
            "Type": "TimeBasedLinear",
            "TimeBasedLinear": {
                "LinearPercentage": size,
                "LinearInterval": _minutes(wait, f"{schedule.strategy} linear wait"),
            },
        }
    raise ConfigError(
        f"{schedule.describe()}: CodeDeploy runs one canary step or equal linear steps at equal waits; "
        "this schedule is neither (use a guardrails mode, or reshape production.custom_steps)"
    )


def codedeploy_type(template: Template, production: ProductionSpec) -> Any:
    """``DeploymentPreference.Type``: a predefined config's name, or a ``Ref`` to a config this stack defines."""
    name = production.strategy.removeprefix("CodeDeployDefault.").removeprefix("Lambda")
    if name in CODEDEPLOY_CONFIGS:
        return name
    template.add(
        CUSTOM_CONFIG,
        "AWS::CodeDeploy::DeploymentConfig",
        {"ComputePlatform": "Lambda", "TrafficRoutingConfig": codedeploy_routing(production.schedule())},
    )
    return ref(CUSTOM_CONFIG)


def _capacity(percent: int) -> Json:
    return {"Type": "CAPACITY_PERCENT", "Value": percent}


def _seconds(value: float, what: str, limit: int) -> int:
    seconds = math.ceil(value)
    if seconds > limit:
        raise ConfigError(f"{what} is {value:g} s; SageMaker deployment guardrails allow at most {limit} s")
    return seconds


def guardrails_deployment_config(production: ProductionSpec, alarms: list[Json]) -> Json:
    """The endpoint's ``DeploymentConfig``: blue/green per the guardrails mode, rolled back by ``alarms``."""
    schedule = production.schedule()
    wait = _seconds(production.wait_interval_seconds, "production.wait_interval_seconds", MAX_STEP_WAIT_SECONDS)
    routing: Json
    match production.strategy:
        case "CANARY":
            routing = {
                "Type": "CANARY",
                "CanarySize": _capacity(production.canary_percent),
                "WaitIntervalInSeconds": wait,
            }
        case "LINEAR":
            routing = {
                "Type": "LINEAR",
                "LinearStepSize": _capacity(production.linear_step_percent),
                "WaitIntervalInSeconds": wait,
            }
        case _:
            routing = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    bake = _seconds(production.bake_seconds, "production.bake_seconds", MAX_STEP_WAIT_SECONDS)
    needed = math.ceil(schedule.total_seconds) + PROVISIONING_ALLOWANCE_SECONDS
    if needed > MAX_EXECUTION_SECONDS:
        raise ConfigError(
            f"{schedule.describe()} takes {schedule.total_seconds:g} s plus {PROVISIONING_ALLOWANCE_SECONDS} s to "
            f"provision; guardrails allow a deployment at most {MAX_EXECUTION_SECONDS} s"
        )
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": bake,
            "MaximumExecutionTimeoutInSeconds": max(MIN_EXECUTION_SECONDS, needed),
        },
        "AutoRollbackConfiguration": {"Alarms": alarms},
    }
