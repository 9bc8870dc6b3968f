"""Constraint checks: a window's statistics against the baseline's, as Model Monitor's violations and more.

Every violation keeps Model Monitor's three fields (``feature_name``, ``constraint_check_type``,
``description`` in the analyzer's words) and adds structured fields beside them (``observed``, ``threshold``,
``distance``, ``method``, ``window_n``, ``baseline_n``, ``p_value``, ``min_detectable_distance``), so nobody
parses text.

Beyond Model Monitor, drift verdicts are **power-aware**. For every numeric feature the smallest L-infinity
distance between the baseline's and the window's distributions that a two-sample Kolmogorov-Smirnov test could
tell from sampling noise, at a family-wise false-alarm rate spread over the features compared (Bonferroni),
is ``c(alpha) * sqrt((n + m) / (n * m))``. A drift violation needs the distance above the threshold *and* the
uncorrected distance above that noise floor (large and significant). A window whose floor is above the threshold
and whose distance does not clear it is ``insufficient_data``, with the smallest detectable distance: never a pass,
and no drift metric (an alarm sees missing data). A shift large enough to clear the floor is still a violation
in a small window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.analyzer.constraints import Constraints, FeatureConstraints
from safedeploy.monitoring.analyzer.distance import (
    categorical_distance,
    minimum_detectable_distance,
    numerical_distance,
)
from safedeploy.monitoring.analyzer.kll import QuantileSketch
from safedeploy.monitoring.analyzer.statistics import BaselineFeature
from safedeploy.monitoring.analyzer.table import TypeCounts

Json = dict[str, Any]
OK, VIOLATION, INSUFFICIENT = "ok", "violation", "insufficient_data"
DEFAULT_SIGNIFICANCE = 0.05


def _percent(value: float) -> str:
    """As the analyzer prints it: the shortest repr of the percentage (``100.0%``, ``99.64592817400101%``)."""
    return f"{value * 100!r}%"


@dataclass(frozen=True)
class WindowFeature:
    """What the checks need of one feature in the window."""

    name: str
    types: TypeCounts
    rows: int
    sketch: QuantileSketch | None = None
    categories: Mapping[str, int] | None = None


@dataclass
class CheckResult:
    """Violations, per-feature drift verdicts and the metrics to publish."""

    violations: list[Json] = field(default_factory=list)
    verdicts: dict[str, Json] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def add(self, feature: str, check: str, description: str, **details: Any) -> None:
        """Record one violation (AWS's three fields first, the structured ones beside them)."""
        violation: Json = {"feature_name": feature, "constraint_check_type": check, "description": description}
        violation.update({k: v for k, v in details.items() if v is not None})
        self.violations.append(violation)


def data_type_violation(result: CheckResult, constraint: FeatureConstraints, window: WindowFeature) -> None:
    """``data_type_check``: the share of present values of the baseline's type is below the threshold."""
    present = window.types.present
    if present == 0 or constraint.inferred_type not in (F.INTEGRAL, F.FRACTIONAL):
        return
    share = window.types.matching(constraint.inferred_type) / present
    threshold = constraint.config.datatype_check_threshold
    if share < threshold:
        result.add(
            constraint.name,
            F.DATA_TYPE_CHECK,
            f"Data type match requirement is not met. Expected data type: {constraint.inferred_type}, "
            f"Expected match: {_percent(threshold)}. Observed: Only {_percent(share)} of data is "
            f"{constraint.inferred_type}.",
            observed=share,
            threshold=threshold,
            expected_type=constraint.inferred_type,
            window_n=present,
        )


def completeness_violation(result: CheckResult, constraint: FeatureConstraints, window: WindowFeature) -> float:
    """``completeness_check``: fewer non-null values than the baseline's completeness; return the completeness."""
    completeness = window.types.present / window.rows if window.rows else 0.0
    expected = constraint.completeness
    if window.rows and completeness < expected - 1e-12:
        result.add(
            constraint.name,
            F.COMPLETENESS_CHECK,
            f"Data completeness requirement is not met. Expected: {_percent(expected)}. "
            f"Observed: Only {_percent(completeness)}.",
            observed=completeness,
            threshold=expected,
            window_n=window.rows,
        )
    return completeness


def domain_violation(result: CheckResult, constraint: FeatureConstraints, window: WindowFeature) -> None:
    """``categorical_values_check``: too few of a String feature's values are in the baseline's domain."""
    if constraint.domains is None or not window.categories:
        return
    total = sum(window.categories.values())
    inside = sum(count for value, count in window.categories.items() if value in constraint.domains)
    share = inside / total if total else 1.0
    threshold = constraint.config.domain_content_threshold
    if share < threshold:
        unknown = sorted(v for v in window.categories if v not in constraint.domains)
        result.add(
            constraint.name,
            F.CATEGORICAL_VALUES_CHECK,
            f"Data does not meet the domain content requirement. Expected: {_percent(threshold)} of values in the "
            f"baseline's domain. Observed: {_percent(share)}; values not seen in the baseline: {unknown[:10]}.",
            observed=share,
            threshold=threshold,
            unknown_values=unknown[:100],
            window_n=total,
        )


def drift_verdict(
    result: CheckResult,
    constraint: FeatureConstraints,
    baseline: BaselineFeature,
    window: WindowFeature,
    alpha: float,
) -> None:
    """``baseline_drift_check`` with a power-aware verdict; the drift metric is published unless insufficient."""
    config = constraint.config
    name = constraint.name
    if not config.perform_comparison:
        return
    if baseline.sketch is not None and window.sketch is not None:
        n, m = baseline.num_present, window.types.matching(F.FRACTIONAL)
        threshold, method = config.comparison_threshold, config.comparison_method
        if m == 0 or n == 0:
            result.verdicts[name] = {"verdict": INSUFFICIENT, "reason": "no values in the window", "window_n": m}
            return
        measured = numerical_distance(baseline.sketch, window.sketch, "Simple" if method == "Simple" else "Robust")
        detectable = minimum_detectable_distance(n, m, alpha)
        verdict: Json = {
            "distance": measured.distance,
            "simple_distance": measured.simple_distance,
            "threshold": threshold,
            "method": method,
            "baseline_n": n,
            "window_n": m,
            "min_detectable_distance": detectable,
        }
        drifted = measured.distance > threshold and measured.simple_distance > detectable
        if drifted or detectable <= threshold:
            result.metrics[f"{F.DRIFT_METRIC_PREFIX}{name}"] = measured.distance
        if drifted:
            verdict["verdict"] = VIOLATION
            result.add(
                name,
                F.BASELINE_DRIFT_CHECK,
                f"Baseline drift distance: {measured.distance} exceeds threshold: {threshold}",
                distance=measured.distance,
                threshold=threshold,
                method=method,
                window_n=m,
                baseline_n=n,
                min_detectable_distance=detectable,
            )
        elif detectable > threshold:
            verdict["verdict"] = INSUFFICIENT
            verdict["reason"] = (
                f"{m} values cannot tell a distance of {threshold:g} from sampling noise; the smallest detectable "
                f"distance is {detectable:.3f}"
            )
        else:
            verdict["verdict"] = OK
        result.verdicts[name] = verdict
        return
    if baseline.categories and window.categories:
        method = config.categorical_drift_method
        threshold = config.categorical_comparison_threshold
        measured_c = categorical_distance(
            dict(baseline.categories),
            dict(window.categories),
            "ChiSquared" if method == "ChiSquared" else "LInfinity",
            "Simple" if config.comparison_method == "Simple" else "Robust",
        )
        m = sum(window.categories.values())
        verdict = {
            "distance": measured_c.distance,
            "threshold": threshold,
            "method": method,
            "baseline_n": baseline.num_present,
            "window_n": m,
            "p_value": measured_c.p_value,
        }
        drifted = (
            measured_c.p_value is not None and measured_c.p_value < threshold
            if method == "ChiSquared"
            else measured_c.distance > threshold
        )
        # The drift metric: the L-infinity distance, or for chi-squared 1 - p (higher is more drift, in [0, 1]).
        metric = 1 - measured_c.p_value if method == "ChiSquared" and measured_c.p_value is not None else None
        value = measured_c.distance if method != "ChiSquared" else metric
        if value is not None and value == value:  # not NaN (chi-squared needs two categories)
            result.metrics[f"{F.DRIFT_METRIC_PREFIX}{name}"] = value
        verdict["verdict"] = VIOLATION if drifted else OK
        if drifted:
            shown = f"p-value: {measured_c.p_value}" if method == "ChiSquared" else f"distance: {measured_c.distance}"
            result.add(
                name,
                F.BASELINE_DRIFT_CHECK,
                f"Baseline drift {shown} exceeds threshold: {threshold}",
                distance=measured_c.distance,
                p_value=measured_c.p_value,
                threshold=threshold,
                method=method,
                window_n=m,
                baseline_n=baseline.num_present,
            )
        result.verdicts[name] = verdict


def evaluate(
    constraints: Constraints,
    baseline: Sequence[BaselineFeature],
    window: Mapping[str, WindowFeature],
    *,
    significance: float = DEFAULT_SIGNIFICANCE,
) -> CheckResult:
    """Every check of every baseline feature present in the window (columns already aligned by the preflight)."""
    result = CheckResult()
    compared = [f for f in baseline if f.name in window]
    alpha = significance / max(1, len(compared))  # Bonferroni over the features compared
    for feature in compared:
        constraint = constraints.feature(feature.name)
        observed = window[feature.name]
        if constraint is None:
            continue
        completeness = observed.types.present / observed.rows if observed.rows else 0.0
        if constraint.config.emit_metrics:
            result.metrics[f"{F.NON_NULL_METRIC_PREFIX}{feature.name}"] = completeness
        if not constraint.config.evaluate_constraints:
            continue
        data_type_violation(result, constraint, observed)
        completeness_violation(result, constraint, observed)
        domain_violation(result, constraint, observed)
        drift_verdict(result, constraint, feature, observed, alpha)
    if not constraints.config.emit_metrics:
        result.metrics.clear()
    return result
