"""CloudWatch alarms of the production stack, from ``spec.production`` (the local controller's settings).

* **Deployment alarms** (CodeDeploy's ``Alarms``, or the endpoint's ``AutoRollbackConfiguration``): green's
  5XX share and green's p99 model latency, each a metric-math alarm that leaves a period *missing* when green
  served fewer than ``alarm_min_requests`` requests (the local alarms' rule). CloudWatch cannot compare with
  blue's p99 here (blue's endpoint is the previous stack's), so latency uses the absolute ``max_latency_ms``
  budget the local controller applies without a blue. Missing periods never alarm; the post-traffic hook
  requires ``MIN_REQUESTS`` served, so a deployment nobody exercised still fails.
* **The drift alarms** (:func:`safedeploy.monitoring.drift_alarms.drift_alarm_rules`, the local monitor's
  rules): one per configured feature on ``feature_baseline_drift_<feature>`` in
  ``/aws/sagemaker/Endpoints/data-metric``, and the composite ``naming.drift_alarm_name(spec)`` combining them
  (the base infrastructure's EventBridge rule retrains on it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.cloudformation.template import Json, Template, ref
from safedeploy.errors import ConfigError
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.drift_alarms import drift_alarm_rules
from safedeploy.spec import PipelineSpec


def _period(spec: PipelineSpec) -> int:
    seconds = spec.production.alarm_period_seconds
    if seconds != int(seconds) or int(seconds) % 60:
        raise ConfigError(
            f"production.alarm_period_seconds must be a whole number of minutes for CloudWatch's endpoint "
            f"metrics (published per minute), got {seconds:g}"
        )
    return int(seconds)


def _metric(metric_id: str, name: str, dimensions: Sequence[Json], period: int, stat: str) -> Json:
    return {
        "Id": metric_id,
        "MetricStat": {
            "Metric": {"Namespace": C.METRICS_NAMESPACE, "MetricName": name, "Dimensions": list(dimensions)},
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": False,
    }


def endpoint_dimensions(endpoint: Any, endpoint_config: Any | None = None) -> list[Json]:
    """Green's variant; with ``endpoint_config``, only the fleet of that config (SageMaker blue/green)."""
    dimensions = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": C.DEFAULT_VARIANT}]
    if endpoint_config is not None:
        dimensions.append({"Name": "EndpointConfigName", "Value": endpoint_config})
    return dimensions


def _math_alarm(
    template: Template,
    spec: PipelineSpec,
    logical_id: str,
    purpose: str,
    description: str,
    dimensions: Sequence[Json],
    value: tuple[str, str, str],
    threshold: float,
) -> str:
    """An alarm on ``IF(invocations >= min, <expression>)`` over green's metrics."""
    production = spec.production
    period = _period(spec)
    metric_name, stat, expression = value
    return template.add(
        logical_id,
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": naming.alarm_name(spec, purpose),
            "AlarmDescription": description,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": threshold,
            "EvaluationPeriods": production.alarm_evaluation_periods,
            "DatapointsToAlarm": production.alarm_datapoints_to_alarm,
            "TreatMissingData": "missing",
            "Metrics": [
                _metric("invocations", "Invocations", dimensions, period, "Sum"),
                _metric("value", metric_name, dimensions, period, stat),
                {
                    "Id": "judged",
                    "Expression": f"IF(invocations >= {production.alarm_min_requests}, {expression})",
                    "Label": description,
                    "ReturnData": True,
                },
            ],
        },
    )


def deployment_alarms(template: Template, spec: PipelineSpec, dimensions: Sequence[Json]) -> list[str]:
    """Green's error-rate and latency alarms; return their logical ids (``Ref`` gives the alarm name)."""
    production = spec.production
    errors = _math_alarm(
        template,
        spec,
        "ErrorRateAlarm",
        "prd-5xx-rate",
        f"Green's 5XX share is above {production.max_error_rate:g}",
        dimensions,
        ("Invocation5XXErrors", "Sum", "value / invocations"),
        production.max_error_rate,
    )
    latency = _math_alarm(
        template,
        spec,
        "LatencyAlarm",
        "prd-latency-p99",
        f"Green's p99 model latency is above {production.max_latency_ms:g} ms",
        dimensions,
        ("ModelLatency", "p99", "value / 1000"),  # ModelLatency is in microseconds
        production.max_latency_ms,
    )
    return [errors, latency]


def drift_alarms(template: Template, spec: PipelineSpec, endpoint: Any) -> str:
    """The drift alarms of :func:`drift_alarm_rules` on the monitor's metrics; return the combined alarm's id.

    One metric alarm per configured feature on ``feature_baseline_drift_<feature>`` (namespace and dimensions as
    the analyzer publishes them: ``Endpoint``, ``MonitoringSchedule``), and the composite alarm
    ``naming.drift_alarm_name(spec)``: ``ALARM(a) OR ALARM(b) ...``, what retraining subscribes to.
    """
    dimensions = [
        {"Name": F.DIMENSION_ENDPOINT, "Value": endpoint},
        {"Name": F.DIMENSION_SCHEDULE, "Value": naming.monitoring_schedule_name(spec)},
    ]
    rules = drift_alarm_rules(spec)
    if not rules:
        raise ConfigError(
            "monitoring.drift_alarms is empty: the drift alarm (which retrains the model) needs a feature"
        )
    parts = []
    for number, alarm in enumerate(rules, start=1):
        rule = alarm.rule
        parts.append(
            template.add(
                f"DriftAlarm{number}",
                "AWS::CloudWatch::Alarm",
                {
                    "AlarmName": rule.name,
                    "AlarmDescription": f"Baseline drift of {alarm.feature} above {rule.threshold:g} on "
                    f"{spec.model_name}'s production endpoint",
                    "Namespace": F.METRIC_NAMESPACE_ENDPOINT,
                    "MetricName": alarm.metric,
                    "Dimensions": dimensions,
                    "Statistic": "Maximum",
                    "Period": int(rule.period_seconds),
                    "EvaluationPeriods": rule.evaluation_periods,
                    "DatapointsToAlarm": rule.datapoints_to_alarm,
                    "Threshold": rule.threshold,
                    "ComparisonOperator": rule.comparison,
                    # A period without a verdict (too little data, no capture, a failed job) is no evidence of drift.
                    "TreatMissingData": rule.treat_missing_data,
                },
            )
        )
    return template.add(
        "DriftAlarm",
        "AWS::CloudWatch::CompositeAlarm",
        {
            "AlarmName": naming.drift_alarm_name(spec),
            "AlarmDescription": f"Data drift on {spec.model_name}'s production endpoint (retrains the model)",
            "AlarmRule": " OR ".join(f'ALARM("{alarm.rule.name}")' for alarm in rules),
        },
        depends_on=parts,
    )


def alarm_refs(alarms: Sequence[str]) -> list[Json]:
    """``[{"AlarmName": Ref}]`` as SageMaker's ``AutoRollbackConfiguration`` lists alarms."""
    return [{"AlarmName": ref(alarm)} for alarm in alarms]
