"""Every traffic-shifting strategy's schedule."""

from __future__ import annotations

import pytest

from safedeploy.errors import ConfigError
from safedeploy.traffic import CODEDEPLOY_CONFIGS, TrafficStep, build_schedule


@pytest.mark.parametrize(("name", "minutes"), [("Canary10Percent5Minutes", 5), ("Canary10Percent10Minutes", 10),
                                               ("Canary10Percent15Minutes", 15), ("Canary10Percent30Minutes", 30)])  # fmt: skip
def test_codedeploy_canaries_send_ten_percent_for_n_minutes_then_the_rest(name: str, minutes: int) -> None:
    schedule = build_schedule(name, bake_seconds=60)
    assert schedule.steps == (TrafficStep(10, minutes * 60.0), TrafficStep(100, 0.0))
    assert schedule.total_seconds == minutes * 60 + 60


@pytest.mark.parametrize(("name", "minutes"), [("Linear10PercentEvery1Minute", 1), ("Linear10PercentEvery2Minutes", 2),
                                               ("Linear10PercentEvery3Minutes", 3), ("Linear10PercentEvery10Minutes", 10)])  # fmt: skip
def test_codedeploy_linear_configs_add_ten_percent_every_n_minutes(name: str, minutes: int) -> None:
    schedule = build_schedule(name, bake_seconds=0)
    assert [s.green_percent for s in schedule.steps] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert [s.wait_seconds for s in schedule.steps] == [minutes * 60.0] * 9 + [0.0]
    assert schedule.total_seconds == 9 * minutes * 60


def test_all_at_once_and_the_full_codedeploy_names() -> None:
    for name in ("AllAtOnce", "CodeDeployDefault.LambdaAllAtOnce", "ALL_AT_ONCE"):
        assert build_schedule(name, bake_seconds=30).steps == (TrafficStep(100, 0.0),)
    assert build_schedule("CodeDeployDefault.LambdaCanary10Percent5Minutes", bake_seconds=0).steps[0] == TrafficStep(
        10, 300.0
    )
    for name in CODEDEPLOY_CONFIGS:
        assert build_schedule(name, bake_seconds=0).steps[-1].green_percent == 100


def test_guardrail_modes_use_their_sizes_and_wait_interval() -> None:
    canary = build_schedule("CANARY", bake_seconds=120, canary_percent=5, wait_interval_seconds=90)
    assert canary.steps == (TrafficStep(5, 90.0), TrafficStep(100, 0.0))
    assert canary.bake_seconds == 120
    linear = build_schedule("LINEAR", bake_seconds=0, linear_step_percent=30, wait_interval_seconds=10)
    assert linear.steps == (TrafficStep(30, 10.0), TrafficStep(60, 10.0), TrafficStep(90, 10.0), TrafficStep(100, 0.0))


def test_custom_steps_must_rise_to_one_hundred() -> None:
    schedule = build_schedule("Custom", bake_seconds=5, custom_steps=((1, 30), (25, 60), (100, 0)))
    assert schedule.steps == (TrafficStep(1, 30.0), TrafficStep(25, 60.0), TrafficStep(100, 0.0))
    assert schedule.describe() == "Custom: 1% 30s -> 25% 60s -> 100% 0s, bake 5s"
    with pytest.raises(ConfigError, match="must end at 100%"):
        build_schedule("Custom", bake_seconds=0, custom_steps=((10, 5), (50, 5)))
    with pytest.raises(ConfigError, match="step 2: 10% must be above the previous step's 50%"):
        build_schedule("Custom", bake_seconds=0, custom_steps=((50, 5), (10, 5)))
    with pytest.raises(ConfigError, match="needs steps"):
        build_schedule("Custom", bake_seconds=0)
    with pytest.raises(ConfigError, match="step 1: the wait must not be negative"):
        build_schedule("Custom", bake_seconds=0, custom_steps=((100, -1),))


def test_bad_strategies_are_named() -> None:
    with pytest.raises(ConfigError, match="unknown deployment strategy 'Canary'; use one of Canary10Percent5Minutes"):
        build_schedule("Canary", bake_seconds=0)
    with pytest.raises(ConfigError, match="canary_percent must be between 1 and 99"):
        build_schedule("CANARY", bake_seconds=0, canary_percent=100)
    with pytest.raises(ConfigError, match="must not be negative"):
        build_schedule("AllAtOnce", bake_seconds=-1)
