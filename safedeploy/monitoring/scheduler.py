"""The local monitoring scheduler: which schedule is due, and running one scheduled execution.

The runtime (``safedeploy/runtime/scheduled_children.py``) ticks every second: ``schedule.due`` reads each
schedule and its executions and says whether a fire time has passed on the schedule's clock. It then starts
``python -m safedeploy.monitoring.scheduler --state-dir DIR --schedule NAME --fire ISO`` as a child process,
which runs that execution with the spec the schedule was created with, exactly as ``make monitor`` would, but
over the schedule's window (the period since the previous fire time). Missed fire times (the runtime was
stopped) are not back-filled, as SageMaker does not; the next one runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from safedeploy.filemodes import use_private_umask
from safedeploy.monitoring.records import MonitoringRecords
from safedeploy.monitoring.schedule import SCHEDULE_TRIGGER, ScheduleClock, parse_schedule, records_root

LOG = logging.getLogger(__name__)


def run_scheduled(state_dir: Path, name: str, fire: datetime) -> int:
    """Run the execution of ``name`` due at ``fire`` (model time); 0 unless the execution failed."""
    from safedeploy.backends import create_backend  # the child process only
    from safedeploy.monitoring.monitor import Monitor
    from safedeploy.retraining import trigger as retraining
    from safedeploy.spec import PipelineSpec

    records = MonitoringRecords(records_root(state_dir))
    schedule = records.schedule(name)
    if schedule is None or not schedule.Spec:
        LOG.error("schedule %s is gone or has no spec", name)
        return 1
    spec = PipelineSpec.model_validate(schedule.Spec)
    backend = create_backend(spec)
    cron = parse_schedule(schedule.ScheduleExpression)
    clock = ScheduleClock(schedule.Anchor, schedule.TimeScale)
    start, end = cron.window_ending(fire)
    monitor_type: type[Monitor] = Monitor
    earliest = schedule.CreationTime
    if schedule.MonitoringType == "ModelQuality":  # the window ends the label delay before the fire time
        from safedeploy.monitoring.model_quality_monitor import ModelQualityMonitor

        delay = timedelta(hours=cron.every_hours * spec.monitoring.model_quality.label_delay_periods)
        start, end = start - delay, end - delay
        monitor_type = ModelQualityMonitor
        earliest = schedule.EndpointSince or schedule.CreationTime
    monitor = monitor_type(spec, backend.store, backend.processing, backend.processing_image)
    wall_start, wall_end = max(clock.wall_time(start), earliest), clock.wall_time(end)
    if wall_start >= wall_end:  # a delayed window from before the endpoint served: recorded, empty
        wall_start = wall_end - timedelta(seconds=1)
    execution = monitor.run(
        start=wall_start,
        end=wall_end,
        trigger=f"{SCHEDULE_TRIGGER} {schedule.ScheduleExpression}",
        scheduled_time=fire,
    )
    LOG.info("%s: %s (%s)", name, execution.MonitoringExecutionStatus, execution.ExitMessage or execution.FailureReason)
    retraining.after_monitoring(spec, backend)  # alarms -> a detached retraining, if due (never raises)
    return 1 if execution.MonitoringExecutionStatus == "Failed" else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of one scheduled execution (started by the runtime)."""
    parser = argparse.ArgumentParser(prog="safedeploy-monitor-scheduler", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--schedule", required=True)
    parser.add_argument("--fire", required=True, help="the fire time (model time, ISO-8601)")
    args = parser.parse_args(argv)
    use_private_umask()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    fire = datetime.fromisoformat(args.fire)
    return run_scheduled(args.state_dir.resolve(), args.schedule, fire.astimezone(UTC))


if __name__ == "__main__":
    sys.exit(main())
