"""Model-quality monitoring of production: the ``<pipeline>-model-quality`` schedule and its executions.

Beside the data-quality schedule, DeployPrd points this one at the endpoint now serving and the model-quality
baseline of the version it serves (``DriftCheckBaselines.ModelQuality``). An execution analyses the inferences of
one window against the labels uploaded so far: the job reads every ground-truth hour folder from the window's
start until it runs, and the window ends ``label_delay_periods`` schedule periods before the run (SageMaker's
``EndOffset``), so labels had time to arrive. The merged records go to
``naming.merged_ground_truth_uri(spec)/<endpoint>/yyyy/mm/dd/hh/<job>.jsonl`` (the hour of the window's start),
the metrics (``auc``, ``f1``, ...) to ``aws/sagemaker/Endpoints/model-metrics`` in the metric log, and the AUC
alarm (``naming.model_quality_alarm_name``) follows CloudWatch's rules: an ``InsufficientData`` execution
publishes nothing, which the alarm treats as missing (never OK). State changes are CloudWatch's events, as the
drift alarms'.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from safedeploy import naming
from safedeploy.alarms import AlarmRule, AlarmState, evaluate
from safedeploy.events import alarm_state_change
from safedeploy.ids import random_uuid
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.monitor import Monitor, hour_folders
from safedeploy.monitoring.records import MonitoringExecution, MonitoringSchedule
from safedeploy.monitoring.schedule import parse_schedule
from safedeploy.sagemaker_requests.processing import model_quality_job_request
from safedeploy.shipping import upload_analyzer
from safedeploy.spec import PipelineSpec
from safedeploy.store import S3Uri

LOG = logging.getLogger(__name__)
MAX_GROUND_TRUTH_HOURS = 48
"""More hour folders than this are staged as the ground-truth root (the job filters by hour anyway)."""
AUC_METRIC = "auc"


def label_delay_seconds(spec: PipelineSpec) -> float:
    """Wall seconds a window waits for labels: ``label_delay_periods`` schedule periods on the scaled clock."""
    quality = spec.monitoring.model_quality
    period = parse_schedule(quality.schedule_expression).every_hours * 3600
    return quality.label_delay_periods * period / spec.monitoring.time_scale


def model_quality_alarm_rule(spec: PipelineSpec, threshold: float) -> AlarmRule:
    """The AUC alarm: ``auc`` below ``threshold`` (the spec's override, else the serving baseline's)."""
    quality = spec.monitoring.model_quality
    return AlarmRule(
        name=naming.model_quality_alarm_name(spec),
        threshold=threshold,
        comparison="LessThanThreshold",
        period_seconds=float(parse_schedule(quality.schedule_expression).every_hours * 3600),
        evaluation_periods=quality.alarm_evaluation_periods,
        datapoints_to_alarm=quality.alarm_datapoints_to_alarm,
        treat_missing_data="missing",
    )


class ModelQualityMonitor(Monitor):
    """The model-quality schedule of one pipeline (same records, lock and history semantics as data quality)."""

    metric_namespace = F.MODEL_METRIC_NAMESPACE_ENDPOINT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schedule_name = naming.model_quality_schedule_name(self.spec)

    def _schedule_fields(self) -> dict[str, Any]:
        """The model-quality schedule's type, cron, label location and label delay (saved with the rest at once)."""
        return {
            "MonitoringType": "ModelQuality",
            "ScheduleExpression": self.spec.monitoring.model_quality.schedule_expression,
            "GroundTruthUri": str(naming.ground_truth_uri(self.spec)),
            "LabelDelaySeconds": label_delay_seconds(self.spec),
        }

    def run(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        trigger: str = "safedeploy monitor quality",
        scheduled_time: datetime | None = None,
    ) -> MonitoringExecution:
        """Analyse ``[start, end)`` (inference time); by default up to the label delay before now."""
        if end is None:
            end = self.now() - timedelta(seconds=self.schedule().LabelDelaySeconds)
        return super().run(start=start, end=end, trigger=trigger, scheduled_time=scheduled_time)

    def _ground_truth_prefixes(self, schedule: MonitoringSchedule, start: datetime) -> list[S3Uri]:
        root = S3Uri.parse(schedule.GroundTruthUri or str(naming.ground_truth_uri(self.spec)))
        through = self.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)  # the current hour too
        return hour_folders(root, start, through, MAX_GROUND_TRUTH_HOURS)

    def _execute(
        self, schedule: MonitoringSchedule, start: datetime, end: datetime, trigger: str, scheduled: datetime
    ) -> MonitoringExecution:
        created = self.now()
        job_name = naming.monitoring_job_name(self.spec, "quality", created, random_uuid().replace("-", ""))
        report = naming.monitoring_reports_prefix(self.spec).join(
            schedule.EndpointName, self.schedule_name, created.strftime("%Y/%m/%d/%H"), job_name
        )
        merged = naming.merged_ground_truth_uri(self.spec).join(schedule.EndpointName, start.strftime("%Y/%m/%d/%H"))
        self._verify_baseline(schedule.Baseline)
        request = model_quality_job_request(
            self.spec,
            job_name=job_name,
            schedule_name=self.schedule_name,
            endpoint=schedule.EndpointName,
            capture_prefixes=self._capture_prefixes(schedule, start, self.now()),
            ground_truth_prefixes=self._ground_truth_prefixes(schedule, start),
            start=start,
            end=end,
            baseline_constraints=schedule.Baseline.constraints,
            output=report,
            merged_output=merged,
            code=upload_analyzer(self.store, self.spec),
            image_uri=self.image_uri,
        )
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
            MonitoringType="ModelQuality",
            ModelPackageVersion=schedule.ModelPackageVersion,
            Trigger=trigger,
            WindowStart=start,
            WindowEnd=end,
            ExitMessage=job.exit_message,
            FailureReason=job.failure_reason,
        )
        if job.processing_job_status != "Completed":
            LOG.warning("model-quality job %s %s: %s", job_name, job.processing_job_status, job.failure_reason)
            return execution
        summary = json.loads(self.store.get_bytes(report.join(F.EXECUTION_SUMMARY_FILE)))
        violations = json.loads(self.store.get_bytes(report.join(F.VIOLATIONS_FILE)))["violations"]
        metrics = self._publish_metrics(Path(job.work_dir), schedule, end)
        kept = {k: v for k, v in summary.items() if k not in ("metrics",) and not k.endswith("_examples")}
        kept["merged_uri"] = str(merged.join(f"{job_name}.jsonl")) if summary.get("labelled") else None
        return execution.model_copy(
            update={
                "MonitoringExecutionStatus": summary["status"],
                "ReportUri": str(report),
                "Summary": kept,
                "Violations": violations,
                "Metrics": metrics,
            }
        )

    def _evaluate_alarms(self, executions: list[MonitoringExecution]) -> None:
        evaluate_model_quality_alarm(self, executions)

    def alarm_states(self) -> dict[str, dict[str, Any]]:
        """The AUC alarm's record (``DescribeAlarms``)."""
        name = naming.model_quality_alarm_name(self.spec)
        return {name: self.alarms.get(name)}


def _threshold(spec: PipelineSpec, executions: Sequence[MonitoringExecution]) -> float | None:
    """The spec's AUC threshold, else the one the latest execution judged against (its baseline's)."""
    if spec.monitoring.model_quality.auc_threshold is not None:
        return spec.monitoring.model_quality.auc_threshold
    for execution in reversed(executions):
        value = execution.Summary.get("auc_threshold")
        if isinstance(value, (int, float)):
            return float(value)
    return None


def evaluate_model_quality_alarm(monitor: ModelQualityMonitor, executions: Sequence[MonitoringExecution]) -> str:
    """Re-evaluate the AUC alarm on the executions (one datapoint each; missing when nothing was published)."""
    periods = [e for e in executions if e.MonitoringExecutionStatus != "InProgress"]
    name = naming.model_quality_alarm_name(monitor.spec)
    record = monitor.alarms.get(name)
    old = AlarmState(record["StateValue"])
    threshold = _threshold(monitor.spec, periods)
    if threshold is None:
        new, rule = AlarmState.INSUFFICIENT_DATA, None
        reason = "no AUC threshold yet: the serving version has no model-quality baseline and the spec sets none"
    else:
        rule = model_quality_alarm_rule(monitor.spec, threshold)
        datapoints = [e.Metrics.get(AUC_METRIC) for e in periods]
        new = evaluate(rule, datapoints, old)
        recent = datapoints[-rule.evaluation_periods :]
        shown = ", ".join("-" if v is None else f"{v:.4g}" for v in recent) or "no executions"
        reason = (
            f"{AUC_METRIC} [{shown}] vs threshold {rule.comparison} {threshold:g} "
            f"({rule.datapoints_to_alarm} of {rule.evaluation_periods} executions)"
        )
    now = monitor.now().isoformat()
    updated = {
        **record,
        "AlarmName": name,
        "AlarmArn": monitor.alarms.arn(name),
        "StateValue": new.value,
        "StateReason": reason,
        "StateUpdatedTimestamp": record.get("StateUpdatedTimestamp") if new == old else now,
        "LastEvaluated": now,
        "MetricName": AUC_METRIC,
        "Namespace": F.MODEL_METRIC_NAMESPACE_ENDPOINT,
        "Threshold": threshold,
    }
    monitor.alarms.set(updated)
    if new != old:
        configuration: dict[str, Any] = {"description": "model quality (AUC)"}
        if rule is not None:
            configuration.update(
                {
                    "metrics": [
                        {"metricStat": {"metric": {"namespace": F.MODEL_METRIC_NAMESPACE_ENDPOINT, "name": AUC_METRIC}}}
                    ],
                    "threshold": rule.threshold,
                    "comparisonOperator": rule.comparison,
                    "evaluationPeriods": rule.evaluation_periods,
                    "datapointsToAlarm": rule.datapoints_to_alarm,
                    "treatMissingData": rule.treat_missing_data,
                }
            )
        alarm_state_change(monitor.events, name, monitor.alarms.arn(name), old.value, new.value, reason, configuration)
    return new.value
