"""CloudWatch alarm evaluation edge cases."""

from __future__ import annotations

import pytest

from safedeploy.alarms import AlarmRule, AlarmState, AlarmTracker, evaluate
from safedeploy.errors import ConfigError

OK, ALARM, NODATA = AlarmState.OK, AlarmState.ALARM, AlarmState.INSUFFICIENT_DATA


def rule(**kwargs: object) -> AlarmRule:
    settings: dict[str, object] = {
        "name": "GreenErrorRate",
        "threshold": 0.05,
        "evaluation_periods": 3,
        "datapoints_to_alarm": 2,
    }
    return AlarmRule(**(settings | kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("datapoints", "expected"),
    [
        ([0.0, 0.0, 0.0], OK),
        ([0.1, 0.0, 0.0], OK),  # one breach of the two needed
        ([0.1, 0.0, 0.2], ALARM),  # two of three
        ([0.06, 0.06], ALARM),  # fewer datapoints than periods: the rest are missing
        ([0.05, 0.05, 0.05], OK),  # equal is not greater
        ([None, None, None], NODATA),  # no traffic is never healthy by default
        ([], NODATA),
        ([None, 0.0, None], OK),
        ([None, 0.5, None], OK),  # one breach, missing left out
        ([0.9, 0.9, None, None, None], NODATA),  # only the last N count
        ([0.0, 0.9, 0.9, 0.0], ALARM),
    ],
)
def test_m_of_n_with_missing_data_left_out(datapoints: list[float | None], expected: AlarmState) -> None:
    assert evaluate(rule(), datapoints) == expected


def test_treat_missing_data_policies() -> None:
    assert evaluate(rule(treat_missing_data="breaching"), [None, 0.5, None]) == ALARM
    assert evaluate(rule(treat_missing_data="breaching"), [0.0, 0.0, None]) == OK
    assert evaluate(rule(treat_missing_data="notBreaching"), [None, None, None]) == OK
    assert evaluate(rule(treat_missing_data="ignore"), [None, None, None], previous=ALARM) == ALARM
    assert evaluate(rule(treat_missing_data="ignore"), [None, None, None], previous=OK) == OK
    assert evaluate(rule(treat_missing_data="missing"), [None, None, None], previous=OK) == NODATA


def test_comparisons() -> None:
    assert evaluate(rule(comparison="GreaterThanOrEqualToThreshold", datapoints_to_alarm=1), [0.05]) == ALARM
    assert evaluate(rule(comparison="LessThanThreshold", threshold=10, datapoints_to_alarm=1), [9.0]) == ALARM
    assert evaluate(rule(comparison="LessThanOrEqualToThreshold", threshold=10, datapoints_to_alarm=1), [11.0]) == OK


def test_bad_settings_are_named() -> None:
    with pytest.raises(ConfigError, match=r"datapoints_to_alarm \(4\) <= evaluation_periods \(3\)"):
        rule(datapoints_to_alarm=4)
    with pytest.raises(ConfigError, match="period must be positive"):
        rule(period_seconds=0)
    with pytest.raises(ConfigError, match="unknown comparison"):
        rule(comparison="Above")


def test_the_tracker_reports_each_transition_once_with_its_datapoints() -> None:
    tracker = AlarmTracker([rule(evaluation_periods=2, datapoints_to_alarm=1)])
    assert tracker.update("GreenErrorRate", [None]) is None  # INSUFFICIENT_DATA -> INSUFFICIENT_DATA
    ok = tracker.update("GreenErrorRate", [0.0])
    assert ok is not None and (ok.old, ok.new) == (NODATA, OK)
    assert tracker.update("GreenErrorRate", [0.0, 0.01]) is None
    alarm = tracker.update("GreenErrorRate", [0.01, 0.2])
    assert alarm is not None and alarm.new == ALARM
    assert "[0.01, 0.2] vs threshold GreaterThanThreshold 0.05, 1 of 2 x 60s" in alarm.reason
    assert tracker.in_alarm() == ["GreenErrorRate"]


def test_the_limits_of_the_settings_are_valid() -> None:
    """One period, all of N datapoints, a sub-second period: the edges CloudWatch accepts are accepted."""
    assert evaluate(rule(evaluation_periods=1, datapoints_to_alarm=1), [0.06]) == ALARM
    assert evaluate(rule(evaluation_periods=3, datapoints_to_alarm=3), [0.06, 0.06, 0.06]) == ALARM
    assert evaluate(rule(evaluation_periods=3, datapoints_to_alarm=3), [0.06, 0.06, 0.0]) == OK
    assert rule(period_seconds=0.5).period_seconds == 0.5
    for bad in (
        {"evaluation_periods": 0, "datapoints_to_alarm": 0},
        {"datapoints_to_alarm": 0},
        {"period_seconds": -1},
    ):
        with pytest.raises(ConfigError):
            rule(**bad)


def test_missing_datapoints_treated_as_breaching_add_to_the_breaches_present() -> None:
    assert evaluate(rule(treat_missing_data="breaching"), [0.5, 0.0, None]) == ALARM  # 1 breach + 1 missing = 2
    assert evaluate(rule(treat_missing_data="missing"), [0.5, 0.0, None]) == OK
    assert evaluate(rule(treat_missing_data="breaching"), [None, None, None]) == ALARM


def test_an_ignoring_alarm_keeps_its_state_through_missing_data_without_a_transition() -> None:
    tracker = AlarmTracker([rule(name="a", evaluation_periods=2, datapoints_to_alarm=1, treat_missing_data="ignore")])
    fired = tracker.update("a", [0.5])
    assert fired is not None and (fired.alarm, fired.old, fired.new) == ("a", NODATA, ALARM)
    assert tracker.update("a", [0.5, None, None]) is None and tracker.states["a"] == ALARM
    ok = tracker.update("a", [None, 0.0])
    assert ok is not None and (ok.alarm, ok.old, ok.new) == ("a", ALARM, OK)
    assert ok.reason == "a: OK ([-, 0] vs threshold GreaterThanThreshold 0.05, 1 of 2 x 60s)"
