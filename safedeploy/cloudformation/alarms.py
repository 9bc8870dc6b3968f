"""CloudWatch alarms of the production stack, rendered from the alarm catalog (``spec.alarms.deployment``).

* **Deployment alarms** (CodeDeploy's ``Alarms``, or the endpoint's ``AutoRollbackConfiguration``), each the
  catalog's alarm (name, threshold, comparison, period, evaluation periods, datapoints to alarm, missing data:
  :func:`safedeploy.alarm_catalog.evaluation_fields`, the fields the local evaluator's rules carry) around
  metric math that leaves a period *missing* when green served fewer than ``min_requests`` requests (the local
  alarms' rule). Missing data is ``breaching`` by default: a period without evidence counts against green, so no
  traffic never lets CodeDeploy shift to 100 %.

  - error rate: ``IF(invocations >= min, errors / invocations)`` on green's variant;
  - latency relative to blue (as the local controller judges a window): green's p99 ``ModelLatency`` minus
    ``latency_ratio`` x blue's p99 + ``latency_slack_ms`` in the same period, or minus ``max_latency_ms`` when
    blue served fewer than ``min_requests`` (no blue: the first deployment, or during the bake); blue is the
    endpoint production served when the stack update began (the ``BlueEndpoint`` parameter). Guardrails modes
    update one endpoint, whose old fleet has no name here: the absolute budget;
  - prediction shift (CodeDeploy only, with the synthetic canary): ``IF(SampleCount >= min, Average)`` of the
    canary's ``PredictionShift`` custom metric (one value per held-out row green answered: |green - blue|).
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
from safedeploy.alarm_catalog import aws_alarm_name, evaluation_fields
from safedeploy.cloudformation.template import Json, Template, ref
from safedeploy.errors import ConfigError
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.drift_alarms import drift_alarm_rules
from safedeploy.spec import AlarmSpec, MetricSpec, PipelineSpec

ALARM_LOGICAL_IDS = {
    "error_rate": "ErrorRateAlarm",
    "latency": "LatencyAlarm",
    "prediction_shift": "PredictionShiftAlarm",
}


def _metric(metric_id: str, metric: MetricSpec, name: str, dimensions: Sequence[Json], period: int, stat: str) -> Json:
    return {
        "Id": metric_id,
        "MetricStat": {
            "Metric": {"Namespace": metric.namespace, "MetricName": name, "Dimensions": list(dimensions)},
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
    template: Template, spec: PipelineSpec, logical_id: str, alarm: AlarmSpec, metrics: list[Json], expression: str
) -> str:
    """The catalog's ``alarm`` on a metric-math ``expression`` over ``metrics``."""
    return template.add(
        logical_id,
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": aws_alarm_name(spec, alarm),
            "AlarmDescription": f"{alarm.description} ({alarm.comparison} {alarm.threshold:g})",
            **evaluation_fields(alarm),
            "Metrics": [
                *metrics,
                {"Id": "judged", "Expression": expression, "Label": alarm.description, "ReturnData": True},
            ],
        },
    )


def latency_expression(spec: PipelineSpec, *, with_blue: bool) -> str:
    """Green's p99 minus what blue allows, in ms (ModelLatency is in microseconds), as the local controller judges."""
    deployment = spec.alarms.deployment
    least = deployment.min_requests
    budget = f"green_p99 / 1000 - {deployment.max_latency_ms:g}"
    if not with_blue:
        return f"IF(green_n >= {least}, {budget})"
    relative = (
        f"green_p99 / 1000 - ({deployment.latency_ratio:g} * FILL(blue_p99, 0) / 1000 + "
        f"{deployment.latency_slack_ms:g})"
    )
    return f"IF(green_n >= {least}, IF(FILL(blue_n, 0) >= {least}, {relative}, {budget}))"


def deployment_alarms(
    template: Template,
    spec: PipelineSpec,
    dimensions: Sequence[Json],
    *,
    blue_dimensions: Sequence[Json] | None = None,
    canary_endpoint: Any | None = None,
) -> list[str]:
    """Green's deployment alarms from the catalog; return their logical ids (``Ref`` gives the alarm name).

    ``blue_dimensions``: blue's variant (latency relative to blue); ``canary_endpoint``: the endpoint the synthetic
    canary feeds and publishes ``PredictionShift`` for (adds the prediction-shift alarm).
    """
    deployment = spec.alarms.deployment
    least = deployment.min_requests
    errors_alarm, latency_alarm, shift_alarm = deployment.all
    period = errors_alarm.period_seconds
    if period % 60:
        raise ConfigError(
            f"alarms.deployment periods must be whole minutes for CloudWatch's endpoint metrics (published per "
            f"minute), got {period}"
        )
    invocations = errors_alarm.metric.model_copy(update={"name": "Invocations"})
    errors = _math_alarm(
        template,
        spec,
        ALARM_LOGICAL_IDS["error_rate"],
        errors_alarm,
        [
            _metric("invocations", invocations, "Invocations", dimensions, period, "Sum"),
            _metric(
                "errors", errors_alarm.metric, errors_alarm.metric.name, dimensions, period, errors_alarm.statistic
            ),
        ],
        f"IF(invocations >= {least}, errors / invocations)",
    )
    latency_metrics = [
        _metric("green_n", invocations, "Invocations", dimensions, period, "Sum"),
        _metric(
            "green_p99", latency_alarm.metric, latency_alarm.metric.name, dimensions, period, latency_alarm.statistic
        ),
    ]
    if blue_dimensions is not None:
        latency_metrics += [
            _metric("blue_n", invocations, "Invocations", blue_dimensions, period, "Sum"),
            _metric(
                "blue_p99", latency_alarm.metric, latency_alarm.metric.name, blue_dimensions, period,
                latency_alarm.statistic,
            ),
        ]  # fmt: skip
    latency = _math_alarm(
        template,
        spec,
        ALARM_LOGICAL_IDS["latency"],
        latency_alarm,
        latency_metrics,
        latency_expression(spec, with_blue=blue_dimensions is not None),
    )
    alarms = [errors, latency]
    if canary_endpoint is not None:
        shift_dimensions = [{"Name": "EndpointName", "Value": canary_endpoint}]
        metric = shift_alarm.metric
        alarms.append(
            _math_alarm(
                template,
                spec,
                ALARM_LOGICAL_IDS["prediction_shift"],
                shift_alarm,
                [
                    _metric("rows", metric, metric.name, shift_dimensions, period, "SampleCount"),
                    _metric("shift", metric, metric.name, shift_dimensions, period, shift_alarm.statistic),
                ],
                f"IF(rows >= {least}, shift)",
            )
        )
    return alarms


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
