"""The runtime's scheduled child processes: monitoring executions and standing-probe runs, each on its own clock.

Every second the runtime reads each kind's schedules, asks whether a fire time has passed (model time, no
back-filling) and starts ``python -m <module> --state-dir DIR <flag> NAME --fire ISO`` for it, one at a time per
schedule, logging to ``<state>/runtime/logs/<logs>/<name>.log``. A child that ends well has recorded its fire, which
is read back from disk; one that failed may have recorded nothing, so the fire it had stays taken and the next one
waits its turn (a broken child is not restarted every second). One loop for both kinds, so a fix lands in both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Generic, TypeVar

from safedeploy.runtime.paths import RuntimePaths

if TYPE_CHECKING:
    from safedeploy.monitoring.probe import ProbeSchedule
    from safedeploy.monitoring.records import MonitoringSchedule

LOG = logging.getLogger("safedeploy.runtime")
TICK_S = 1.0
"""How often the schedules are looked at (wall time)."""

S = TypeVar("S")


@dataclass(frozen=True)
class ScheduledChildren(Generic[S]):
    """One kind of scheduled child: where its schedules are, when each fires, what process runs a fire."""

    kind: str
    """For the log: ``monitoring schedule``, ``probe``."""
    schedules: Callable[[], Sequence[S]]
    name_of: Callable[[S], str]
    last_fire: Callable[[str], datetime | None]
    """The fire time of the schedule's latest recorded run, read from disk."""
    due: Callable[[S, datetime | None, datetime], datetime | None]
    """The fire time due now after the last one, or None."""
    module: str
    name_flag: str
    logs: str


async def run_scheduled_children(paths: RuntimePaths, stop: asyncio.Event, children: ScheduledChildren[S]) -> None:
    """Start each schedule's due fire as a child process until ``stop``; then terminate the running ones."""
    running: dict[str, asyncio.subprocess.Process] = {}
    fired: dict[str, datetime | None] = {}  # each schedule's last fire: read from disk once per run, else the one taken
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TICK_S)
        for name, process in list(running.items()):
            if process.returncode is None:
                continue
            del running[name]
            if process.returncode == 0:
                fired.pop(name, None)  # its fire is recorded now: read it back once
            else:  # it may have recorded nothing: the fire it had stays taken, the next one waits its turn
                LOG.warning("%s %s: the run for %s exited %s (see its log)", children.kind, name, fired.get(name),
                            process.returncode)  # fmt: skip
        try:
            schedules = children.schedules()
        except (OSError, ValueError, KeyError) as exc:
            LOG.warning("cannot read the %s schedules: %s", children.kind, exc)
            continue
        for schedule in schedules:
            name = children.name_of(schedule)
            if name in running:
                continue
            try:
                if name not in fired:
                    fired[name] = children.last_fire(name)
                fire = children.due(schedule, fired[name], datetime.now(UTC))
            except (OSError, ValueError) as exc:
                LOG.warning("%s %s: %s", children.kind, name, exc)
                continue
            if fire is None:
                continue
            fired[name] = fire
            log = (paths.root / "logs" / children.logs).resolve()
            log.mkdir(parents=True, exist_ok=True)
            with (log / f"{name}.log").open("ab") as out:
                running[name] = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", children.module, "--state-dir", str(paths.state_dir),
                    children.name_flag, name, "--fire", fire.isoformat(), stdout=out, stderr=out,
                )  # fmt: skip
            LOG.info("%s %s: run for %s started (pid %s)", children.kind, name, fire, running[name].pid)
    for process in running.values():
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        await process.wait()


def monitoring_children(paths: RuntimePaths) -> ScheduledChildren[MonitoringSchedule]:
    """Data-quality and model-quality schedules: ``python -m safedeploy.monitoring.scheduler``."""
    from safedeploy.monitoring.records import MonitoringRecords
    from safedeploy.monitoring.schedule import due, last_fire, records_root

    records = MonitoringRecords(records_root(paths.state_dir))
    return ScheduledChildren(
        kind="monitoring schedule",
        schedules=records.schedules,
        name_of=lambda schedule: schedule.MonitoringScheduleName,
        last_fire=lambda name: last_fire(records, name),
        due=due,
        module="safedeploy.monitoring.scheduler",
        name_flag="--schedule",
        logs="monitoring",
    )


def probe_children(paths: RuntimePaths) -> ScheduledChildren[ProbeSchedule]:
    """The standing synthetic probes: ``python -m safedeploy.local.probe_run``."""
    from safedeploy.monitoring.probe import due, last_fire, schedules

    return ScheduledChildren(
        kind="probe",
        schedules=lambda: schedules(paths.state_dir),
        name_of=lambda schedule: schedule.CanaryName,
        last_fire=lambda name: last_fire(paths.state_dir, name),
        due=due,
        module="safedeploy.local.probe_run",
        name_flag="--canary",
        logs="probes",
    )
