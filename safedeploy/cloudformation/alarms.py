"""CloudWatch alarms of the production stack, from ``spec.production`` (the local controller's settings).

* **Deployment alarms** (CodeDeploy's ``Alarms``, or the endpoint's ``AutoRollbackConfiguration``): green's
  5XX share and green's p99 model latency, each a metric-math alarm that leaves a period *missing* when green
  served fewer than ``alarm_min_requests`` requests (the local alarms' rule). CloudWatch cannot compare with
  blue's p99 here (blue's endpoint is the previous stack's), so latency uses the absolute ``max_latency_ms``
  budget the local controller applies without a blue. Missing periods never alarm; the post-traffic hook
  requires ``MIN_REQUESTS`` served, so a deployment nobody exercised still fails.
* **The drift alarm** ``naming.alarm_name(spec, "drift")`` (the base infrastructure's EventBridge rule
  retrains on it): the largest ``feature_baseline_drift_<feature>`` Model Monitor publishes for the numeric
  features. An alarm's metric math may reference at most 10 metrics, so more features are split across
  alarms that a composite alarm of that name combines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.cloudformation.template import Json, Template, ref
from safedeploy.data.raw_table import NUMERIC_FEATURES
from safedeploy.errors import ConfigError
from safedeploy.spec import PipelineSpec

MONITOR_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
DRIFT_METRIC_PREFIX = "feature_baseline_drift_"
DRIFT_THRESHOLD = 0.1
"""Model Monitor's default ``comparison_threshold`` for distribution drift in a suggested baseline."""
DRIFT_PERIOD_SECONDS = 3600
"""The data-quality schedule runs hourly; each run publishes one drift datapoint per feature."""
MAX_ALARM_METRICS = 10


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


def _drift_metric(index: int, feature: str, dimensions: Sequence[Json]) -> Json:
    return {
        "Id": f"drift{index}",
        "MetricStat": {
            "Metric": {
                "Namespace": MONITOR_NAMESPACE,
                "MetricName": f"{DRIFT_METRIC_PREFIX}{feature}",
                "Dimensions": list(dimensions),
            },
            "Period": DRIFT_PERIOD_SECONDS,
            "Stat": "Maximum",
        },
        "Label": feature,
        "ReturnData": False,
    }


def _drift_properties(name: str, features: Sequence[str], dimensions: Sequence[Json]) -> Json:
    return {
        "AlarmName": name,
        "AlarmDescription": f"Model Monitor baseline drift above {DRIFT_THRESHOLD:g} on {', '.join(features)}",
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": DRIFT_THRESHOLD,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        # An hour without a monitoring run is no evidence of drift: it must not trigger a retraining.
        "TreatMissingData": "notBreaching",
        "Metrics": [
            *(_drift_metric(index, feature, dimensions) for index, feature in enumerate(features)),
            {"Id": "drift", "Expression": "MAX(METRICS())", "Label": "largest feature drift", "ReturnData": True},
        ],
    }


def drift_alarm(template: Template, spec: PipelineSpec, endpoint: Any, schedule: str) -> str:
    """The drift alarm on the schedule's published metrics; return its logical id."""
    dimensions = [{"Name": "Endpoint", "Value": endpoint}, {"Name": "MonitoringSchedule", "Value": schedule}]
    name = naming.alarm_name(spec, "drift")
    features = list(NUMERIC_FEATURES)
    if len(features) <= MAX_ALARM_METRICS:
        return template.add("DriftAlarm", "AWS::CloudWatch::Alarm", _drift_properties(name, features, dimensions))
    chunks = [features[i : i + MAX_ALARM_METRICS] for i in range(0, len(features), MAX_ALARM_METRICS)]
    parts = [
        template.add(
            f"DriftAlarm{number}",
            "AWS::CloudWatch::Alarm",
            _drift_properties(naming.alarm_name(spec, f"drift-{number}"), chunk, dimensions),
        )
        for number, chunk in enumerate(chunks, start=1)
    ]
    rule = " OR ".join(f'ALARM("{naming.alarm_name(spec, f"drift-{n}")}")' for n in range(1, len(parts) + 1))
    return template.add(
        "DriftAlarm",
        "AWS::CloudWatch::CompositeAlarm",
        {
            "AlarmName": name,
            "AlarmDescription": f"Data drift on {spec.model_name}'s production endpoint (retrains the model)",
            "AlarmRule": rule,
        },
        depends_on=parts,
    )


def alarm_refs(alarms: Sequence[str]) -> list[Json]:
    """``[{"AlarmName": Ref}]`` as SageMaker's ``AutoRollbackConfiguration`` lists alarms."""
    return [{"AlarmName": ref(alarm)} for alarm in alarms]
