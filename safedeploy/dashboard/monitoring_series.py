"""Monitoring over time as the views show it: drift per feature, model quality, the synthetic canary's success.

Drift and quality come from the monitoring executions' published metrics (``Metrics``: what the jobs put to
``/aws/sagemaker/Endpoints/data-metric`` and ``aws/sagemaker/Endpoints/model-metrics``), the canary's from the
metric log, where the probe publishes CloudWatch Synthetics' ``SuccessPercent``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from safedeploy import constants as C
from safedeploy.dashboard.views import Series, as_utc
from safedeploy.metric_log import MetricLog
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.records import MonitoringExecution
from safedeploy.spec import PipelineSpec

QUALITY_METRICS = ("auc", "f1", "accuracy", "precision", "recall")
"""The model-quality metrics drawn over time (``aws/sagemaker/Endpoints/model-metrics``)."""
MAX_DRIFT_FEATURES = 8
"""The drift chart shows the features that drifted most (and every feature with a drift alarm)."""


def drift_series(executions: Sequence[MonitoringExecution], spec: PipelineSpec) -> list[Series]:
    """Per feature, ``feature_baseline_drift_<name>`` per execution and its threshold (the alarm's, else the check's).

    The features with a drift alarm, then those that moved most, at most :data:`MAX_DRIFT_FEATURES` of the latter.
    """
    values: dict[str, list[tuple[datetime, float]]] = {}
    thresholds: dict[str, float] = {}
    for execution in executions:
        verdicts = execution.Summary.get("verdicts")
        for metric, value in execution.Metrics.items():
            if not metric.startswith(F.DRIFT_METRIC_PREFIX):
                continue
            feature = metric.removeprefix(F.DRIFT_METRIC_PREFIX)
            values.setdefault(feature, []).append((as_utc(execution.WindowEnd), float(value)))
            verdict = verdicts.get(feature) if isinstance(verdicts, Mapping) else None
            if isinstance(verdict, Mapping) and isinstance(verdict.get("threshold"), (int, float)):
                thresholds[feature] = float(verdict["threshold"])
    thresholds.update(spec.monitoring.drift_alarms)  # an alarm's threshold is what matters where there is one
    alarmed = [f for f in values if f in spec.monitoring.drift_alarms]
    ranked = sorted(values, key=lambda f: -max(v for _, v in values[f]))
    moved = [f for f in ranked if max(v for _, v in values[f]) > 0] or ranked  # features at 0 throughout: noise
    chosen = list(dict.fromkeys([*alarmed, *moved]))[: max(MAX_DRIFT_FEATURES, len(alarmed))]
    return [
        Series(
            name=feature,
            times=tuple(t for t, _ in sorted(values[feature])),
            values=tuple(v for _, v in sorted(values[feature])),
            threshold=thresholds.get(feature),
            comparison="GreaterThanThreshold",
        )
        for feature in chosen
    ]


def quality_series(executions: Sequence[MonitoringExecution], auc_threshold: float | None) -> list[Series]:
    """Each of :data:`QUALITY_METRICS` the executions published; ``auc`` with the alarm's threshold."""
    series = []
    for name in QUALITY_METRICS:
        points = [(as_utc(e.WindowEnd), float(e.Metrics[name])) for e in executions if name in e.Metrics]
        if points:
            series.append(
                Series(
                    name=name,
                    times=tuple(t for t, _ in points),
                    values=tuple(v for _, v in points),
                    threshold=auc_threshold if name == "auc" else None,
                    comparison="LessThanThreshold" if name == "auc" else "",
                )
            )
    return series


def canary_series(log: MetricLog, threshold: float | None = None) -> list[Series]:
    """``SuccessPercent`` per ``CanaryName`` from the metric log (other metrics and dimensions are not a canary's).

    ``threshold`` is the probe alarm's (``monitoring.synthetic_canary.alarm``), drawn beside the series.
    """
    series = []
    for metric, dimensions in log.metrics(C.SYNTHETICS_NAMESPACE):
        names = dict(dimensions)
        if metric != C.SYNTHETICS_SUCCESS_METRIC or C.SYNTHETICS_CANARY_DIMENSION not in names:
            continue
        points = log.query(C.SYNTHETICS_NAMESPACE, metric, names)
        if points:
            series.append(
                Series(
                    name=names[C.SYNTHETICS_CANARY_DIMENSION],
                    times=tuple(as_utc(t) for t, _ in points),
                    values=tuple(v for _, v in points),
                    threshold=threshold,
                )
            )
    return series
