"""SageMaker's monitoring cron expressions, fire times, windows, and the scaled schedule clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from safedeploy.errors import ConfigError
from safedeploy.monitoring.records import BaselineFiles, MonitoringSchedule
from safedeploy.monitoring.schedule import HOURLY, ScheduleClock, due, parse_schedule

T = datetime(2026, 12, 3, 10, 17, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "start", "every", "next_fire"),
    [
        (HOURLY, None, 1, datetime(2026, 12, 3, 11, tzinfo=UTC)),
        ("cron(0 12 ? * * *)", 12, 24, datetime(2026, 12, 3, 12, tzinfo=UTC)),
        ("cron(0 0 ? * * *)", 0, 24, datetime(2026, 12, 4, 0, tzinfo=UTC)),
        ("cron(0 17/12 ? * * *)", 17, 12, datetime(2026, 12, 3, 17, tzinfo=UTC)),
        ("cron(0 0/2 ? * * *)", 0, 2, datetime(2026, 12, 3, 12, tzinfo=UTC)),
        (" cron(00 * * * ? *) ", None, 1, datetime(2026, 12, 3, 11, tzinfo=UTC)),
    ],
)
def test_accepted_expressions_and_their_next_fire(
    expression: str, start: int | None, every: int, next_fire: datetime
) -> None:
    schedule = parse_schedule(expression)
    assert (schedule.start_hour, schedule.every_hours) == (start, every)
    assert schedule.next_after(T) == next_fire


@pytest.mark.parametrize(
    ("expression", "complaint"),
    [
        ("rate(1 hour)", "is not a cron(...) expression"),
        ("cron(0 * ? * *)", "has 5 fields"),
        ("cron(30 * ? * * *)", "minutes must be 0"),
        ("cron(0 * 1 * * *)", "day-of-month must be ? or *"),
        ("cron(0 * ? 1 * *)", "month must be *"),
        ("cron(0 * ? * MON *)", "day-of-week must be * or ?"),
        ("cron(0 * ? * * 2027)", "year must be *"),
        ("cron(0 24 ? * * *)", "hour 24 is not between 0 and 23"),
        ("cron(0 0/25 ? * * *)", "every 25 hours"),
        ("cron(0 1-5 ? * * *)", "hours '1-5' must be *, H or H/N"),
        ("cron(0 * ? * ? *)", "cannot both be '?'"),
    ],
)
def test_expressions_sagemaker_refuses_are_named(expression: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=r".*") as error:
        parse_schedule(expression)
    assert complaint in str(error.value)


def test_the_window_is_the_period_since_the_previous_fire() -> None:
    hourly = parse_schedule(HOURLY)
    fire = datetime(2026, 12, 3, 11, tzinfo=UTC)
    assert hourly.window_ending(fire) == (datetime(2026, 12, 3, 10, tzinfo=UTC), fire)
    assert parse_schedule("cron(0 0/6 ? * * *)").window_ending(fire.replace(hour=12)) == (
        datetime(2026, 12, 3, 6, tzinfo=UTC),
        fire.replace(hour=12),
    )
    assert hourly.previous_at_or_before(fire) == fire


def test_scaled_clock_round_trips_and_refuses_slow_time() -> None:
    clock = ScheduleClock(anchor=T, scale=60)
    assert clock.model_time(T + timedelta(seconds=60)) == T + timedelta(hours=1)
    assert clock.wall_time(T + timedelta(hours=2)) == T + timedelta(minutes=2)
    with pytest.raises(ConfigError, match="time scale must be >= 1"):
        ScheduleClock(anchor=T, scale=0.5)


def _schedule(scale: float) -> MonitoringSchedule:
    files = BaselineFiles(statistics="s3://b/s", constraints="s3://b/c", feature_schema="s3://b/f")
    return MonitoringSchedule(
        MonitoringScheduleName="m",
        ScheduleExpression=HOURLY,
        EndpointName="ep",
        VariantName="AllTraffic",
        ModelPackageVersion=1,
        Baseline=files,
        CaptureUri="s3://b/capture",
        CreationTime=T,
        LastModifiedTime=T,
        TimeScale=scale,
        Anchor=T,
    )


def test_due_fires_once_per_period_on_the_schedules_clock() -> None:
    real = _schedule(1.0)
    assert due(real, None, T + timedelta(minutes=30)) is None  # 10:47: the 10:00 fire precedes the schedule
    first = due(real, None, T + timedelta(minutes=43))  # 11:00:05
    assert first == datetime(2026, 12, 3, 11, tzinfo=UTC)
    assert due(real, first, T + timedelta(minutes=50)) is None  # already ran
    # At 60x an hour of model time is a wall minute: 11:00 model time comes 42m55s of model time after 10:17:05.
    fast = _schedule(60.0)
    assert due(fast, None, T + timedelta(seconds=42)) is None
    assert due(fast, None, T + timedelta(seconds=43)) == datetime(2026, 12, 3, 11, tzinfo=UTC)
    # missed fire times are not back-filled: only the latest one runs
    assert due(fast, None, T + timedelta(seconds=43 + 180)) == datetime(2026, 12, 3, 14, tzinfo=UTC)


def test_the_hooks_known_rows_are_the_ones_monitoring_excludes() -> None:
    from lambdas.hooks import pre_traffic
    from safedeploy.monitoring.analyzer import formats

    assert pre_traffic.KNOWN_ROWS_PREFIX == formats.KNOWN_ROWS_INFERENCE_PREFIX
    assert formats.SYNTHETIC_INFERENCE_PREFIX == "synthetic-"  # lambdas/api/app.py's prefix for the canary
