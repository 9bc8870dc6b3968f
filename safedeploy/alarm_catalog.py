"""The alarm catalog (``spec.alarms``) rendered: the local evaluator's rules and CloudWatch's alarm properties.

Every alarm is defined once, in the spec (:class:`~safedeploy.spec.AlarmSpec`: name, metric, statistic,
threshold, comparison, period, evaluation periods, datapoints to alarm, missing-data treatment). This module turns
one definition into

* the local evaluator's :class:`~safedeploy.alarms.AlarmRule` (CloudWatch's M-of-N and ``TreatMissingData``
  semantics, :func:`safedeploy.alarms.evaluate`), and the blue/green controller's
  :class:`~safedeploy.blue_green.AlarmSettings` (:func:`local_alarm_settings`);
* ``AWS::CloudWatch::Alarm`` / ``PutMetricAlarm`` properties (:func:`cloudwatch_properties`): the deploy-prd
  stack's deployment alarms (``safedeploy/cloudformation/alarms.py``, metric math around these fields) and the
  base infrastructure's standing alarms (``cdktf_app/monitoring.py``, the same dictionary snake-cased).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from safedeploy import naming
from safedeploy.alarms import AlarmRule
from safedeploy.blue_green import AlarmSettings
from safedeploy.spec import AlarmSpec, PipelineSpec

PERCENTILE_PREFIX = "p"


def local_rule(alarm: AlarmSpec) -> AlarmRule:
    """The local evaluator's rule of one catalog alarm."""
    return AlarmRule(
        name=alarm.name,
        threshold=alarm.threshold,
        comparison=alarm.comparison,
        period_seconds=float(alarm.period_seconds),
        evaluation_periods=alarm.evaluation_periods,
        datapoints_to_alarm=alarm.datapoints_to_alarm,
        treat_missing_data=alarm.treat_missing_data,
        statistic=alarm.statistic,
    )


def local_alarm_settings(spec: PipelineSpec) -> AlarmSettings:
    """The blue/green controller's alarms, from ``spec.alarms.deployment``."""
    deployment = spec.alarms.deployment
    errors, latency, shift = (local_rule(alarm) for alarm in deployment.all)
    return AlarmSettings(
        period_seconds=errors.period_seconds,
        evaluation_periods=errors.evaluation_periods,
        datapoints_to_alarm=errors.datapoints_to_alarm,
        min_requests=deployment.min_requests,
        max_error_rate=errors.threshold,
        latency_ratio=deployment.latency_ratio,
        latency_slack_ms=deployment.latency_slack_ms,
        max_latency_ms=deployment.max_latency_ms,
        max_prediction_shift=shift.threshold,
        treat_missing_data=errors.treat_missing_data,
        catalog=(errors, latency, shift),
    )


def aws_alarm_name(spec: PipelineSpec, alarm: AlarmSpec) -> str:
    """The CloudWatch alarm's name: ``<pipeline>-<name>``."""
    return naming.alarm_name(spec, alarm.name)


def statistic_fields(statistic: str) -> dict[str, str]:
    """``{"Statistic": ...}`` or, for a percentile, ``{"ExtendedStatistic": ...}``."""
    if statistic.startswith(PERCENTILE_PREFIX):
        return {"ExtendedStatistic": statistic}
    return {"Statistic": statistic}


def evaluation_fields(alarm: AlarmSpec) -> dict[str, Any]:
    """The fields every rendering of the alarm shares: threshold, comparison, periods, datapoints, missing data."""
    return {
        "ComparisonOperator": alarm.comparison,
        "Threshold": alarm.threshold,
        "EvaluationPeriods": alarm.evaluation_periods,
        "DatapointsToAlarm": alarm.datapoints_to_alarm,
        "TreatMissingData": alarm.treat_missing_data,
    }


def cloudwatch_properties(
    alarm_name: str, alarm: AlarmSpec, dimensions: Mapping[str, Any], description: str | None = None
) -> dict[str, Any]:
    """A single-metric alarm's ``AWS::CloudWatch::Alarm`` properties; ``dimensions`` binds the catalog's names."""
    if set(dimensions) != set(alarm.metric.dimensions):
        raise ValueError(
            f"alarm {alarm.name}: dimensions {sorted(dimensions)} do not match the catalog's "
            f"{sorted(alarm.metric.dimensions)}"
        )
    return {
        "AlarmName": alarm_name,
        "AlarmDescription": description or alarm.description,
        "Namespace": alarm.metric.namespace,
        "MetricName": alarm.metric.name,
        "Dimensions": [{"Name": name, "Value": dimensions[name]} for name in alarm.metric.dimensions],
        **statistic_fields(alarm.statistic),
        "Period": alarm.period_seconds,
        **evaluation_fields(alarm),
    }
