"""Monitoring schedules: SageMaker's cron expressions, their fire times, and the windows they analyse.

SageMaker accepts ``cron(Minutes Hours Day-of-month Month Day-of-week Year)`` for a monitoring schedule only in
the forms its developer guide lists: hourly ``cron(0 * ? * * *)``, daily ``cron(0 H ? * * *)`` and every N hours
``cron(0 H/N ? * * *)`` (N from 1 to 24), all in UTC. :func:`parse_schedule` accepts exactly those and names
what is wrong with anything else; croniter computes the fire times.

A schedule runs on a :class:`ScheduleClock`: model time runs ``scale`` times faster than the wall from an
anchor, as the deployment's waits do (``production.time_scale``), so an hourly schedule at scale 60 fires every
wall minute locally and analyses that minute's capture. At scale 1 (the default, and AWS) model time is wall
time.

:func:`due` and :func:`last_fire` tell the runtime's scheduler tick whether a schedule's fire time has passed
(it then starts ``safedeploy.monitoring.scheduler`` as a child process to run that execution).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from croniter import croniter

from safedeploy.errors import ConfigError
from safedeploy.monitoring.records import MonitoringRecords, MonitoringSchedule

HOURLY = "cron(0 * ? * * *)"
_CRON = re.compile(r"^cron\((?P<body>[^()]*)\)$")
_HOURS = re.compile(r"^(?P<start>\*|\d{1,2})(/(?P<step>\d{1,2}))?$")


@dataclass(frozen=True)
class CronSchedule:
    """A parsed SageMaker monitoring cron expression."""

    expression: str
    start_hour: int | None
    """None for ``*`` (every hour)."""
    every_hours: int
    """Hours between runs (1 hourly, 24 daily)."""

    @property
    def crontab(self) -> str:
        """The equivalent five-field crontab croniter evaluates (minute 0, UTC)."""
        if self.start_hour is None:
            return "0 * * * *" if self.every_hours == 1 else f"0 */{self.every_hours} * * *"
        if self.every_hours == 24:
            return f"0 {self.start_hour} * * *"
        return f"0 {self.start_hour}/{self.every_hours} * * *"

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time strictly after ``moment`` (UTC)."""
        fire: datetime = croniter(self.crontab, moment.astimezone(UTC)).get_next(datetime)
        return fire.astimezone(UTC)

    def previous_at_or_before(self, moment: datetime) -> datetime:
        """The last fire time at or before ``moment`` (UTC)."""
        utc = moment.astimezone(UTC)
        fire: datetime = croniter(self.crontab, utc + timedelta(microseconds=1)).get_prev(datetime)
        return fire.astimezone(UTC)

    def window_ending(self, fire: datetime) -> tuple[datetime, datetime]:
        """The window a run at ``fire`` analyses: the period since the previous fire time."""
        previous = self.previous_at_or_before(fire - timedelta(seconds=1))
        return previous, fire


def parse_schedule(expression: str) -> CronSchedule:
    """Parse a monitoring schedule expression as SageMaker accepts it.

    Raises:
        ConfigError: naming the field that SageMaker would refuse and the accepted forms.
    """
    forms = "cron(0 * ? * * *) hourly, cron(0 H ? * * *) daily at hour H, cron(0 H/N ? * * *) every N hours"
    match = _CRON.match(expression.strip())
    if not match:
        raise ConfigError(f"schedule {expression!r} is not a cron(...) expression; SageMaker accepts {forms}")
    fields = match.group("body").split()
    if len(fields) != 6:
        raise ConfigError(
            f"schedule {expression!r} has {len(fields)} fields; SageMaker's cron has six "
            f"(minutes hours day-of-month month day-of-week year): {forms}"
        )
    minutes, hours, day_of_month, month, day_of_week, year = fields
    if minutes not in ("0", "00"):
        raise ConfigError(f"schedule {expression!r}: minutes must be 0 (monitoring runs on the hour); {forms}")
    for name, value, allowed in (
        ("day-of-month", day_of_month, ("?", "*")),
        ("month", month, ("*",)),
        ("day-of-week", day_of_week, ("*", "?")),
        ("year", year, ("*",)),
    ):
        if value not in allowed:
            raise ConfigError(f"schedule {expression!r}: {name} must be {' or '.join(allowed)}; {forms}")
    if day_of_month == "?" and day_of_week == "?":
        raise ConfigError(f"schedule {expression!r}: day-of-month and day-of-week cannot both be '?'")
    hour_match = _HOURS.match(hours)
    if not hour_match:
        raise ConfigError(f"schedule {expression!r}: hours {hours!r} must be *, H or H/N; {forms}")
    start_text, step_text = hour_match.group("start"), hour_match.group("step")
    start = None if start_text == "*" else int(start_text)
    if start is not None and not 0 <= start <= 23:
        raise ConfigError(f"schedule {expression!r}: hour {start} is not between 0 and 23")
    if step_text is not None:
        step = int(step_text)
        if not 1 <= step <= 24:
            raise ConfigError(f"schedule {expression!r}: every {step} hours; SageMaker allows 1 to 24")
    else:
        step = 1 if start is None else 24
    return CronSchedule(expression.strip(), start, step)


@dataclass(frozen=True)
class ScheduleClock:
    """Model time = ``anchor + (wall - anchor) * scale``; converts model-time windows back to wall time."""

    anchor: datetime
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.scale >= 1.0:
            raise ConfigError(f"the monitoring time scale must be >= 1 (1 = real time), got {self.scale}")

    def model_time(self, wall: datetime) -> datetime:
        """The model time at wall time ``wall``."""
        return self.anchor + (wall.astimezone(UTC) - self.anchor) * self.scale

    def wall_time(self, model: datetime) -> datetime:
        """The wall time at which model time reads ``model``."""
        return self.anchor + (model.astimezone(UTC) - self.anchor) / self.scale


SCHEDULE_TRIGGER = "schedule"


def records_root(state_dir: Path) -> Path:
    """Where schedules live under a state directory."""
    return state_dir / "monitoring"


def due(schedule: MonitoringSchedule, last_fire: datetime | None, wall_now: datetime) -> datetime | None:
    """The latest fire time (model time) that has passed and has not run, if any."""
    if schedule.MonitoringScheduleStatus != "Scheduled":
        return None
    cron = parse_schedule(schedule.ScheduleExpression)
    clock = ScheduleClock(schedule.Anchor, schedule.TimeScale)
    model_now = clock.model_time(wall_now)
    latest = cron.previous_at_or_before(model_now)
    start = clock.model_time(schedule.CreationTime)
    if latest <= start or (last_fire is not None and latest <= last_fire):
        return None
    return latest


def last_fire(records: MonitoringRecords, name: str) -> datetime | None:
    """The fire time of the schedule's latest scheduled execution."""
    fires = [e.ScheduledTime for e in records.executions(name) if e.Trigger.startswith(SCHEDULE_TRIGGER)]
    return max(fires) if fires else None
