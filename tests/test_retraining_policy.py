"""The retraining decision as a pure function: debounce, one at a time, cooldown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from safedeploy.retraining.policy import Action, AlarmObservation, PolicyState, decide, update_streaks
from safedeploy.spec import RetrainingSpec

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
ALARM = "customerchurn-dev-drift"


def _periods(n: int, *, since: str = "2026-12-03T10:00:00+00:00", name: str = ALARM) -> PolicyState:
    """The state after ``n`` evaluations in ALARM of one episode."""
    state = PolicyState()
    for i in range(n):
        state = update_streaks(state, [AlarmObservation(name, "ALARM", since, f"2026-12-03T1{i}:00:00+00:00")])
    return state


@pytest.mark.parametrize("needed", [1, 2, 3])
def test_debounce_needs_n_consecutive_periods(needed: int) -> None:
    policy = RetrainingSpec(alarm_periods=needed)
    short = decide(policy, _periods(needed - 1), running=None, now=NOW, last_ended=None)
    enough = decide(policy, _periods(needed), running=None, now=NOW, last_ended=None)
    assert short.action == (Action.IDLE if needed == 1 else Action.DEBOUNCED)
    if needed > 1:
        assert f"{needed - 1} of the {needed} consecutive periods" in short.reason
    assert enough.action == Action.START and enough.alarm == ALARM and enough.periods == needed


def test_the_same_evaluation_seen_twice_is_one_period() -> None:
    observation = AlarmObservation(ALARM, "ALARM", "2026-12-03T10:00:00+00:00", "2026-12-03T10:00:00+00:00")
    state = update_streaks(update_streaks(PolicyState(), [observation]), [observation])
    assert state.streaks[ALARM].periods == 1


def test_a_record_without_last_evaluated_counts_one_period_per_look() -> None:
    observation = AlarmObservation(ALARM, "ALARM", "2026-12-03T10:00:00+00:00", None)
    state = update_streaks(update_streaks(PolicyState(), [observation]), [observation])
    assert state.streaks[ALARM].periods == 2


def test_leaving_alarm_or_a_new_episode_starts_the_count_again() -> None:
    three = _periods(3)
    ok = update_streaks(three, [AlarmObservation(ALARM, "OK", "2026-12-03T13:00:00+00:00", "2026-12-03T13:00:00")])
    assert ok.streaks == {}
    again = update_streaks(
        three, [AlarmObservation(ALARM, "ALARM", "2026-12-03T14:00:00+00:00", "2026-12-03T14:00:00+00:00")]
    )
    assert again.streaks[ALARM].periods == 1
    # an event saying the alarm left ALARM since the last look also ends the streak
    same = AlarmObservation(ALARM, "ALARM", "2026-12-03T10:00:00+00:00", "2026-12-03T15:00:00+00:00")
    assert update_streaks(three, [same], left_alarm=[ALARM]).streaks[ALARM].periods == 1
    assert update_streaks(three, [same]).streaks[ALARM].periods == 4


def test_insufficient_data_is_not_alarm() -> None:
    state = update_streaks(PolicyState(), [AlarmObservation(ALARM, "INSUFFICIENT_DATA", "2026-12-03", "x")])
    assert decide(RetrainingSpec(alarm_periods=1), state, running=None, now=NOW, last_ended=None).action == Action.IDLE


def test_cooldown_refuses_until_it_ends_and_names_the_end() -> None:
    policy = RetrainingSpec(alarm_periods=1, cooldown_seconds=3600)
    ended = NOW - timedelta(minutes=30)
    within = decide(policy, _periods(1), running=None, now=NOW, last_ended=ended)
    assert within.action == Action.COOLING_DOWN
    assert within.cooldown_ends == ended + timedelta(hours=1)
    assert "cooling down until 2026-12-03T12:30:00Z" in within.reason
    after = decide(policy, _periods(1), running=None, now=NOW + timedelta(minutes=31), last_ended=ended)
    assert after.action == Action.START


def test_one_at_a_time() -> None:
    running = "execution abc waits at ApproveDeployment (make approve / make reject)"
    decision = decide(RetrainingSpec(alarm_periods=1), _periods(5), running=running, now=NOW, last_ended=None)
    assert decision.action == Action.ALREADY_RUNNING
    assert "waits at ApproveDeployment" in decision.reason and "one retraining at a time" in decision.reason


def test_disabled_and_the_longest_streak_names_the_trigger() -> None:
    assert decide(RetrainingSpec(enabled=False), _periods(9), running=None, now=NOW, last_ended=None).action == (
        Action.DISABLED
    )
    quality = "customerchurn-dev-model-quality"
    state = update_streaks(
        _periods(2),
        [
            AlarmObservation(ALARM, "ALARM", "2026-12-03T10:00:00+00:00", "2026-12-03T19:00:00+00:00"),
            AlarmObservation(quality, "ALARM", "2026-12-03T18:00:00+00:00", "2026-12-03T19:00:00+00:00"),
        ],
    )
    decision = decide(RetrainingSpec(alarm_periods=2), state, running=None, now=NOW, last_ended=None)
    assert (decision.action, decision.alarm, decision.periods) == (Action.START, ALARM, 3)


def test_the_spec_refuses_an_empty_alarm_list() -> None:
    with pytest.raises(ValueError, match="at least one alarm"):
        RetrainingSpec(trigger_alarms=())
