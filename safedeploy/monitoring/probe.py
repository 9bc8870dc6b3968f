"""The standing synthetic probe, locally: its schedule on the monitoring clock, one run, its alarm, its runs.

AWS runs ``lambdas/probe/app.py`` on an EventBridge rule (``monitoring.synthetic_canary.schedule_expression``);
here the runtime ticks every second (``safedeploy/runtime/scheduled_children.py``, one loop with monitoring), asks
:func:`due` whether a fire time has passed on the schedule's clock (model time: ``monitoring.time_scale``) and
starts ``python -m safedeploy.local.probe_run --state-dir DIR --canary NAME --fire ISO`` as a child process,
which invokes that same handler in-process with local clients (:mod:`safedeploy.local.probe_run`): the artifact
store for the known rows, the metric log for ``CloudWatchSynthetics`` ``SuccessPercent``/``Duration`` (dimension
``CanaryName``), and records the run here (:func:`append_run`).

DeployPrd creates the schedule (:func:`ensure_schedule`) and writes each version's known rows
(:func:`write_known_rows`: the first ``rows`` held-out test rows and the archive's offline scores, in
``pre-traffic-checks.json``'s shape). With nothing in production (the ledger has no successful deployment) a run
is recorded as skipped, saying so, and publishes no datapoint. After each run the alarm (``synthetic_canary.alarm``,
CloudWatch's rules through :func:`safedeploy.alarms.evaluate`) is evaluated on the period averages of the runs'
``SuccessPercent`` (periods of model time); its state is kept with the other alarms and every change is published
as CloudWatch's state-change event. :func:`latest_runs` and :func:`probe_status` are the readers for status, the
report and the console.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.alarm_catalog import aws_alarm_name, local_rule
from safedeploy.alarms import AlarmState, evaluate
from safedeploy.atomic import atomic_write_text
from safedeploy.events import EventLog, alarm_state_change
from safedeploy.locking import exclusive_lock
from safedeploy.monitoring.drift_alarms import AlarmStates
from safedeploy.monitoring.schedule import ScheduleClock
from safedeploy.spec import PipelineSpec
from safedeploy.store import ArtifactStore

LOG = logging.getLogger(__name__)
PROBE_HANDLER = Path(__file__).resolve().parents[2] / "lambdas" / "probe" / "app.py"
SKIPPED, PASSED, FAILED = "Skipped", "Passed", "Failed"


def probes_root(state_dir: Path) -> Path:
    """Where probe schedules and runs live: ``<state>/probes/<canary>/``."""
    return state_dir / "probes"


@dataclass(frozen=True)
class ProbeSchedule:
    """One pipeline's probe schedule (``schedule.json``): its spec, clock and rate."""

    CanaryName: str
    PipelineName: str
    ScheduleExpression: str
    EverySeconds: int
    Anchor: datetime
    TimeScale: float
    CreationTime: datetime
    Spec: dict[str, Any]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProbeSchedule:
        """From ``schedule.json``."""
        return cls(
            CanaryName=str(data["CanaryName"]),
            PipelineName=str(data["PipelineName"]),
            ScheduleExpression=str(data["ScheduleExpression"]),
            EverySeconds=int(data["EverySeconds"]),
            Anchor=datetime.fromisoformat(data["Anchor"]),
            TimeScale=float(data["TimeScale"]),
            CreationTime=datetime.fromisoformat(data["CreationTime"]),
            Spec=dict(data["Spec"]),
        )

    def to_json(self) -> str:
        """As ``schedule.json``."""
        return json.dumps(asdict(self), indent=2, default=lambda v: v.isoformat())

    @property
    def clock(self) -> ScheduleClock:
        """Model time of this schedule."""
        return ScheduleClock(self.Anchor, self.TimeScale)


@dataclass(frozen=True)
class ProbeRunRecord:
    """One run as ``runs.jsonl`` keeps it (and :func:`latest_runs` returns it)."""

    CanaryName: str
    ScheduledTime: datetime
    """The fire time, model time."""
    Time: datetime
    """When it ran, wall time."""
    Status: str
    """Passed, Failed or Skipped (no datapoint)."""
    Reason: str
    SuccessPercent: float | None = None
    DurationMs: float | None = None
    ModelVersion: int | None = None
    EndpointName: str | None = None
    AlarmState: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProbeRunRecord:
        """From one line of ``runs.jsonl``."""
        fields = dict(data)
        fields["ScheduledTime"] = datetime.fromisoformat(fields["ScheduledTime"])
        fields["Time"] = datetime.fromisoformat(fields["Time"])
        return cls(**fields)

    def line(self) -> bytes:
        """One JSON line."""
        return json.dumps(asdict(self), default=lambda v: v.isoformat(), allow_nan=False).encode() + b"\n"


def probe_dir(state_dir: Path, canary: str) -> Path:
    """``<state>/probes/<canary>/``: the schedule and the runs of one probe."""
    return probes_root(state_dir) / canary


def ensure_schedule(spec: PipelineSpec, state_dir: Path, now: datetime | None = None) -> ProbeSchedule | None:
    """Create or update the pipeline's probe schedule (its anchor kept); remove it when the probe is disabled.

    Disabling also deletes the probe alarm's state, as the stack update deletes ``ProbeAlarm`` on AWS: an alarm
    nothing evaluates any more must not stay in ``ALARM``.
    """
    canary = naming.probe_canary_name(spec)
    path = probe_dir(state_dir, canary) / "schedule.json"
    probe = spec.monitoring.synthetic_canary
    if not probe.enabled:
        path.unlink(missing_ok=True)
        (state_dir / "alarms" / f"{aws_alarm_name(spec, probe.alarm)}.json").unlink(missing_ok=True)
        return None
    now = now or datetime.now(UTC)
    previous = ProbeSchedule.from_json(json.loads(path.read_text("utf-8"))) if path.is_file() else None
    keep = previous is not None and previous.TimeScale == spec.monitoring.time_scale
    schedule = ProbeSchedule(
        CanaryName=canary,
        PipelineName=spec.pipeline_name,
        ScheduleExpression=probe.schedule_expression,
        EverySeconds=probe.every_seconds,
        Anchor=previous.Anchor if keep and previous else now,
        TimeScale=spec.monitoring.time_scale,
        CreationTime=previous.CreationTime if keep and previous else now,
        Spec=spec.model_dump(mode="json"),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, schedule.to_json())
    return schedule


def schedules(state_dir: Path) -> list[ProbeSchedule]:
    """Every probe schedule under the state directory."""
    return [
        ProbeSchedule.from_json(json.loads(p.read_text("utf-8")))
        for p in sorted(probes_root(state_dir).glob("*/schedule.json"))
    ]


def due(schedule: ProbeSchedule, last_fire: datetime | None, wall_now: datetime) -> datetime | None:
    """The latest fire time (model time: the anchor plus whole rates) that has passed and has not run, if any.

    Missed fire times are not back-filled (EventBridge does not either): the latest one runs.
    """
    model_now = schedule.clock.model_time(wall_now)
    runs = int((model_now - schedule.Anchor).total_seconds() // schedule.EverySeconds)
    if runs < 1:
        return None
    latest = schedule.Anchor + timedelta(seconds=runs * schedule.EverySeconds)
    if last_fire is not None and latest <= last_fire:
        return None
    return latest


def write_known_rows(
    spec: PipelineSpec, store: ArtifactStore, version: int, rows: Sequence[str], expected: Sequence[float]
) -> None:
    """The probe's known rows for ``version``: encoded CSV rows and the archive's offline scores for them."""
    count = min(spec.monitoring.synthetic_canary.rows, len(rows), len(expected))
    document = {"rows": list(rows[:count]), "expected": [float(v) for v in expected[:count]]}
    store.put_bytes(naming.probe_rows_uri(spec, version), json.dumps(document).encode(), "application/json")


def latest_runs(state_dir: Path, spec: PipelineSpec, limit: int = 20) -> list[ProbeRunRecord]:
    """The probe's last ``limit`` runs, oldest first (skipped runs included: they publish no datapoint)."""
    path = probe_dir(state_dir, naming.probe_canary_name(spec)) / "runs.jsonl"
    if not path.is_file():
        return []
    runs: list[ProbeRunRecord] = []
    for raw in path.read_bytes().splitlines():
        try:
            runs.append(ProbeRunRecord.from_json(json.loads(raw)))
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line
    return runs[-limit:] if limit > 0 else runs


def probe_status(state_dir: Path, spec: PipelineSpec) -> str:
    """One line for ``safedeploy status``: the last run, its SuccessPercent and the alarm's state."""
    probe = spec.monitoring.synthetic_canary
    canary = naming.probe_canary_name(spec)
    if not probe.enabled:
        return f"synthetic canary {canary}: disabled (monitoring.synthetic_canary.enabled = false)"
    alarm = AlarmStates(state_dir / "alarms", spec.region, spec.account_id).get(aws_alarm_name(spec, probe.alarm))
    runs = latest_runs(state_dir, spec, limit=1)
    if not runs:
        return f"synthetic canary {canary} ({probe.schedule_expression}): no run yet; alarm {alarm['StateValue']}"
    last = runs[-1]
    when = last.Time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    shown = f", SuccessPercent {last.SuccessPercent:g}" if last.SuccessPercent is not None else ""
    return (
        f"synthetic canary {canary} ({probe.schedule_expression}): last run {when} {last.Status}{shown} "
        f"({last.Reason}); alarm {alarm['StateValue']}"
    )


def append_run(path: Path, record: ProbeRunRecord) -> None:
    """Append one run to ``runs.jsonl``, locked and fsynced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(path.with_suffix(".lock"), wait=True), path.open("ab") as handle:
        handle.write(record.line())
        handle.flush()
        os.fsync(handle.fileno())


def period_datapoints(
    runs: Sequence[ProbeRunRecord], period_seconds: int, periods: int, fire: datetime
) -> list[float | None]:
    """The alarm's datapoints, oldest first: each model-time period's average SuccessPercent (None: no run).

    Periods are aligned on the epoch, as CloudWatch's are; the last one holds ``fire``.
    """
    last = int(fire.timestamp() // period_seconds)
    sums: dict[int, list[float]] = {}
    for run in runs:
        if run.SuccessPercent is None:
            continue
        sums.setdefault(int(run.ScheduledTime.timestamp() // period_seconds), []).append(run.SuccessPercent)
    return [
        sum(values) / len(values) if (values := sums.get(bucket)) else None
        for bucket in range(last - periods + 1, last + 1)
    ]


def evaluate_alarm(spec: PipelineSpec, state_dir: Path, fire: datetime) -> str:
    """Re-evaluate the probe's alarm after a run at ``fire``; record a change as an event; return the state."""
    alarm = spec.monitoring.synthetic_canary.alarm
    rule = local_rule(alarm)
    name = aws_alarm_name(spec, alarm)
    states = AlarmStates(state_dir / "alarms", spec.region, spec.account_id)
    record = states.get(name)
    old = AlarmState(record["StateValue"])
    runs = latest_runs(state_dir, spec, limit=0)
    datapoints = period_datapoints(runs, alarm.period_seconds, alarm.evaluation_periods, fire)
    new = evaluate(rule, datapoints, old)
    shown = ", ".join("-" if v is None else f"{v:.4g}" for v in datapoints)
    reason = (
        f"{alarm.metric.name} [{shown}] vs threshold {alarm.comparison} {alarm.threshold:g} "
        f"({alarm.datapoints_to_alarm} of {alarm.evaluation_periods} x {alarm.period_seconds}s, "
        f"missing data {alarm.treat_missing_data})"
    )
    now = datetime.now(UTC).isoformat()
    canary = naming.probe_canary_name(spec)
    states.set(
        {
            **record,
            "AlarmName": name,
            "AlarmArn": states.arn(name),
            "StateValue": new.value,
            "StateReason": reason,
            "StateUpdatedTimestamp": record.get("StateUpdatedTimestamp") if new == old else now,
            "LastEvaluated": now,
            "Namespace": alarm.metric.namespace,
            "MetricName": alarm.metric.name,
            "Dimensions": [{"Name": C.SYNTHETICS_CANARY_DIMENSION, "Value": canary}],
            "Threshold": alarm.threshold,
        }
    )
    if new != old:
        configuration = {
            "description": alarm.description,
            "metrics": [
                {
                    "metricStat": {
                        "metric": {
                            "namespace": alarm.metric.namespace,
                            "name": alarm.metric.name,
                            "dimensions": {C.SYNTHETICS_CANARY_DIMENSION: canary},
                        },
                        "period": alarm.period_seconds,
                        "stat": alarm.statistic,
                    }
                }
            ],
            "threshold": alarm.threshold,
            "comparisonOperator": alarm.comparison,
            "evaluationPeriods": alarm.evaluation_periods,
            "datapointsToAlarm": alarm.datapoints_to_alarm,
            "treatMissingData": alarm.treat_missing_data,
        }
        events = EventLog(state_dir / "events", spec.region, spec.account_id)
        alarm_state_change(events, name, states.arn(name), old.value, new.value, reason, configuration)
    return new.value


def last_fire(state_dir: Path, canary: str) -> datetime | None:
    """The fire time of the probe's latest recorded run."""
    path = probe_dir(state_dir, canary) / "runs.jsonl"
    if not path.is_file():
        return None
    fires = []
    for raw in path.read_bytes().splitlines():
        try:
            fires.append(datetime.fromisoformat(json.loads(raw)["ScheduledTime"]))
        except (ValueError, KeyError, TypeError):
            continue
    return max(fires) if fires else None
