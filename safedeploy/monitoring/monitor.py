"""Monitoring production: the schedule on the serving endpoint, and one execution of it end to end.

:class:`Monitor` is what ``make monitor``, ``safedeploy monitor run/executions`` and the runtime's scheduler
call. An execution: pick the window (since the previous execution, or as asked), build the monitoring job's
``CreateProcessingJob`` request (one input per capture hour folder, the serving version's baseline), run it
on the backend's processing jobs, publish the metric lines it wrote to the metric log, re-evaluate the drift
alarms (state changes become events), and record the execution as ``ListMonitoringExecutions`` shows it.
One execution per schedule at a time (a lock); a failed job is recorded ``Failed`` with its reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from safedeploy import naming
from safedeploy.events import EventLog
from safedeploy.ids import random_uuid
from safedeploy.locking import exclusive_lock
from safedeploy.metric_log import Datum, MetricLog
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.drift_alarms import AlarmStates, drift_alarm_rules, evaluate_drift_alarms
from safedeploy.monitoring.records import (
    BaselineFiles,
    MonitoringError,
    MonitoringExecution,
    MonitoringRecords,
    MonitoringSchedule,
)
from safedeploy.monitoring.schedule import ScheduleClock, parse_schedule
from safedeploy.processing.local_job import ProcessingJobDescription
from safedeploy.sagemaker_requests.processing import BaselineUris, monitoring_job_request
from safedeploy.shipping import upload_analyzer
from safedeploy.spec import PipelineSpec
from safedeploy.store import ArtifactStore, S3Uri

LOG = logging.getLogger(__name__)
MAX_HOUR_INPUTS = 48
"""A longer window is staged as the endpoint's whole capture prefix (the job filters by time anyway)."""


def hour_folders(root: S3Uri, first: datetime, stop: datetime, limit: int) -> list[S3Uri]:
    """``root``'s ``yyyy/mm/dd/hh`` folders from ``first``'s hour up to (not including) ``stop``.

    ``[root]`` itself when there would be more than ``limit`` (a Processing job takes few inputs).
    """
    hours: list[S3Uri] = []
    moment = first.replace(minute=0, second=0, microsecond=0)
    while moment < stop and len(hours) <= limit:
        hours.append(root.join(moment.strftime("%Y/%m/%d/%H")))
        moment += timedelta(hours=1)
    return [root] if len(hours) > limit else hours


class ProcessingJobs(Protocol):
    """Runs ``CreateProcessingJob`` requests to completion."""

    def run(self, request: Any, keep: bool = False) -> ProcessingJobDescription:
        """Run one job and describe the outcome."""
        ...


@dataclass(frozen=True)
class MonitoringPaths:
    """Where monitoring keeps its local records, under the pipeline's state directory."""

    state_dir: Path

    @property
    def records(self) -> Path:
        """Schedules and executions."""
        return self.state_dir / "monitoring"

    @property
    def alarms(self) -> Path:
        """Alarm states."""
        return self.state_dir / "alarms"

    @property
    def metrics(self) -> Path:
        """The custom-metric log."""
        return self.state_dir / "metrics"

    @property
    def events(self) -> Path:
        """The event log."""
        return self.state_dir / "events"


class Monitor:
    """One pipeline's production monitoring."""

    metric_namespace: str = F.METRIC_NAMESPACE_ENDPOINT
    """Where the job's metric lines are published (model quality: ``aws/sagemaker/Endpoints/model-metrics``)."""

    def __init__(
        self,
        spec: PipelineSpec,
        store: ArtifactStore,
        processing: ProcessingJobs,
        image_uri: str,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.spec = spec
        self.store = store
        self.processing = processing
        self.image_uri = image_uri
        self.now = now
        paths = MonitoringPaths(spec.state_dir.resolve())
        self.records = MonitoringRecords(paths.records)
        self.metric_log = MetricLog(paths.metrics)
        self.events = EventLog(paths.events, spec.region, spec.account_id)
        self.alarms = AlarmStates(paths.alarms, spec.region, spec.account_id)
        self.schedule_name = naming.monitoring_schedule_name(spec)

    # --- the schedule --------------------------------------------------------------------------------------
    def ensure_schedule(self, endpoint: str, variant: str, version: int, baseline: BaselineFiles) -> MonitoringSchedule:
        """Point the schedule at ``endpoint`` and the baseline of the version it serves (created if absent)."""
        now = self.now()
        existing = self.records.schedule(self.schedule_name)
        schedule = MonitoringSchedule(
            MonitoringScheduleName=self.schedule_name,
            MonitoringScheduleStatus=existing.MonitoringScheduleStatus if existing else "Scheduled",
            ScheduleExpression=self.spec.monitoring.schedule_expression,
            EndpointName=endpoint,
            VariantName=variant,
            ModelPackageVersion=version,
            Baseline=baseline,
            CaptureUri=str(naming.capture_uri(self.spec)),
            CreationTime=existing.CreationTime if existing else now,
            LastModifiedTime=now,
            EndpointSince=existing.EndpointSince
            if existing is not None and existing.EndpointName == endpoint and existing.EndpointSince
            else now,
            TimeScale=self.spec.monitoring.time_scale,
            Anchor=now
            if existing is None or existing.TimeScale != self.spec.monitoring.time_scale
            else existing.Anchor,
            Spec=self.spec.model_dump(mode="json"),
        ).model_copy(update=self._schedule_fields())
        self.records.save_schedule(schedule)
        return schedule

    def _schedule_fields(self) -> dict[str, Any]:
        """Fields a kind of schedule sets beyond data quality's (model quality: its type, cron, labels)."""
        return {}

    def schedule(self) -> MonitoringSchedule:
        """The schedule; raise :class:`MonitoringError` naming what to do if production has none yet."""
        schedule = self.records.schedule(self.schedule_name)
        if schedule is None:
            raise MonitoringError(
                f"{self.schedule_name} does not exist: production has not served a version yet. "
                "Deploy one first: make deploy AUTO_APPROVE=1"
            )
        return schedule

    def set_status(self, status: str) -> MonitoringSchedule:
        """``StartMonitoringSchedule`` / ``StopMonitoringSchedule``: a stopped schedule does not fire."""
        if status not in ("Scheduled", "Stopped"):
            raise MonitoringError(f"a schedule is Scheduled or Stopped, not {status!r}")
        schedule = self.schedule().model_copy(
            update={"MonitoringScheduleStatus": status, "LastModifiedTime": self.now()}
        )
        self.records.save_schedule(schedule)
        return schedule

    def executions(self) -> list[MonitoringExecution]:
        """Every execution of the schedule, oldest first."""
        return self.records.executions(self.schedule_name)

    def next_fire(self, schedule: MonitoringSchedule) -> tuple[datetime, datetime]:
        """(model time, wall time) of the schedule's next run after the last one (or after its creation)."""
        cron = parse_schedule(schedule.ScheduleExpression)
        clock = ScheduleClock(schedule.Anchor, schedule.TimeScale)
        scheduled = [e.ScheduledTime for e in self.executions() if e.Trigger.startswith("schedule")]
        after = max([clock.model_time(schedule.CreationTime), *scheduled])
        fire = cron.next_after(after)
        return fire, clock.wall_time(fire)

    # --- one execution -------------------------------------------------------------------------------------
    def run(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        trigger: str = "make monitor",
        scheduled_time: datetime | None = None,
    ) -> MonitoringExecution:
        """Analyse ``[start, end)`` (wall time; default: since the previous execution, until now)."""
        schedule = self.schedule()
        with exclusive_lock(self.records.lock_path(self.schedule_name), {"trigger": trigger}, wait=True):
            previous = self.executions()
            if end is None:
                end = self.now()
            if start is None:
                ended = [e.WindowEnd for e in previous if e.EndpointName == schedule.EndpointName]
                start = max(ended) if ended else (schedule.EndpointSince or schedule.CreationTime)
                if start >= end:  # the previous window ended now or later (a clock step): a second back
                    start = end - timedelta(seconds=1)
            if start >= end:
                raise MonitoringError(f"the window's start {start.isoformat()} is not before its end {end.isoformat()}")
            execution = self._execute(schedule, start, end, trigger, scheduled_time or end)
            self.records.save_execution(execution)
            self._evaluate_alarms([*previous, execution])
        return execution

    def _evaluate_alarms(self, executions: list[MonitoringExecution]) -> None:
        """Re-evaluate this schedule's alarms on its executions (the drift alarms here)."""
        evaluate_drift_alarms(self.spec, executions, self.alarms, self.events)

    def _capture_prefixes(self, schedule: MonitoringSchedule, start: datetime, end: datetime) -> list[S3Uri]:
        root = S3Uri.parse(schedule.CaptureUri).join(schedule.EndpointName, schedule.VariantName)
        return hour_folders(root, start - timedelta(hours=1), end, MAX_HOUR_INPUTS)

    def _execute(
        self, schedule: MonitoringSchedule, start: datetime, end: datetime, trigger: str, scheduled: datetime
    ) -> MonitoringExecution:
        created = self.now()
        job_name = naming.monitoring_job_name(self.spec, "monitor", created, random_uuid().replace("-", ""))
        report = naming.monitoring_reports_prefix(self.spec).join(
            schedule.EndpointName, self.schedule_name, created.strftime("%Y/%m/%d/%H"), job_name
        )
        baseline = schedule.Baseline
        request = monitoring_job_request(
            self.spec,
            job_name=job_name,
            schedule_name=self.schedule_name,
            endpoint=schedule.EndpointName,
            capture_prefixes=self._capture_prefixes(schedule, start, end),
            start=start,
            end=end,
            baseline=BaselineUris(
                statistics=baseline.statistics,
                constraints=baseline.constraints,
                feature_schema=baseline.feature_schema,
                output_statistics=baseline.output_statistics,
                output_constraints=baseline.output_constraints,
            ),
            output=report,
            code=upload_analyzer(self.store, self.spec),
            image_uri=self.image_uri,
        )
        self._verify_baseline(baseline)
        job = self.processing.run(request)
        execution = MonitoringExecution(
            MonitoringScheduleName=self.schedule_name,
            ScheduledTime=scheduled,
            CreationTime=created,
            LastModifiedTime=self.now(),
            MonitoringExecutionStatus="Failed",
            ProcessingJobName=job_name,
            ProcessingJobArn=f"arn:aws:sagemaker:{self.spec.region}:{self.spec.account_id}:processing-job/{job_name}",
            EndpointName=schedule.EndpointName,
            ModelPackageVersion=schedule.ModelPackageVersion,
            Trigger=trigger,
            WindowStart=start,
            WindowEnd=end,
            ExitMessage=job.exit_message,
            FailureReason=job.failure_reason,
        )
        if job.processing_job_status != "Completed":
            LOG.warning("monitoring job %s %s: %s", job_name, job.processing_job_status, job.failure_reason)
            return execution
        summary = json.loads(self.store.get_bytes(report.join(F.EXECUTION_SUMMARY_FILE)))
        violations = json.loads(self.store.get_bytes(report.join(F.VIOLATIONS_FILE)))["violations"]
        metrics = self._publish_metrics(Path(job.work_dir), schedule, end)
        execution = execution.model_copy(
            update={
                "MonitoringExecutionStatus": summary["status"],
                "ReportUri": str(report),
                "Summary": {k: v for k, v in summary.items() if k not in ("metrics", "malformed_examples")},
                "Violations": violations,
                "Metrics": metrics,
            }
        )
        return execution

    def _verify_baseline(self, baseline: BaselineFiles) -> None:
        for name, digest in baseline.sha256.items():
            uri = getattr(baseline, name, None)
            if uri is None:
                continue
            head = self.store.head(S3Uri.parse(uri))
            if head is None:
                raise MonitoringError(f"the serving version's baseline {name} {uri} is gone")
            if head.sha256 != digest:
                raise MonitoringError(
                    f"the serving version's baseline {name} {uri} changed since it was registered "
                    f"(sha256 {head.sha256[:12]}..., registered {digest[:12]}...)"
                )

    def _publish_metrics(self, work_dir: Path, schedule: MonitoringSchedule, end: datetime) -> dict[str, float]:
        """PutMetricData of every line the job wrote under ``output/metrics/cloudwatch``."""
        data: list[Datum] = []
        values: dict[str, float] = {}
        for path in sorted((work_dir / "output" / "metrics" / "cloudwatch").glob("*.json*")):
            for line in path.read_text("utf-8").splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                dimensions = tuple(sorted((d["Name"], d["Value"]) for d in item["Dimensions"]))
                data.append(
                    Datum(
                        namespace=self.metric_namespace,
                        metric=item["MetricName"],
                        dimensions=dimensions,
                        timestamp=end,
                        value=float(item["Value"]),
                        unit=item.get("Unit", "None"),
                    )
                )
                values[item["MetricName"]] = float(item["Value"])
        if data:
            self.metric_log.put(data)
        return values

    def alarm_states(self) -> dict[str, dict[str, Any]]:
        """The drift alarms' records (``DescribeAlarms``), the combined one first."""
        names = [naming.drift_alarm_name(self.spec), *(a.rule.name for a in drift_alarm_rules(self.spec))]
        return {name: self.alarms.get(name) for name in names}
