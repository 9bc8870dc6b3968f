"""Distribution distances as Model Monitor's ``baseline_drift_check`` computes them (deequ's ``Distance``).

Numerical features are compared through their KLL sketches with the L-infinity (Kolmogorov-Smirnov) distance
between the two sketches' CDFs, either as is ("Simple") or minus the KS critical value for the two sample sizes
("Robust"). String features are compared through their category counts, with the L-infinity distance between
the two frequency vectors (Simple or Robust) or Pearson's chi-squared goodness-of-fit test of the current
counts against the baseline's, after deequ's merging of small categories.

Algorithm source (read, not copied): awslabs/deequ at commit 0b8cea54b25fd4713c6212c17703117f9eddc734,
``src/main/scala/com/amazon/deequ/analyzers/Distance.scala`` (and, for the chi-squared test it calls, Apache
Spark's ``mllib/stat/test/ChiSqTest.scala``, ``chiSquared``). Hand-written because the rules below are deequ's
own (its Robust correction, its flag, its regrouping of categories) and no Python library reproduces them.

deequ's rules, as implemented here:

* deequ's flag is named ``correctForLowNumberOfSamples`` but means the opposite of what it says: ``true``
  returns the *Simple* distance, ``false`` (its default) the *Robust* one. Here the method is named.
* Numerical L-infinity: the maximum over the union of both sketches' distinct items ``x`` of
  ``|rank1(x) / n - rank2(x) / m|``, ranks from each sketch's rank map (weights ``2**level``), ``n`` and ``m``
  the sketches' total weights (the item counts).
* Categorical L-infinity: the maximum over the union of categories of ``|count1 / n - count2 / m|``.
* Robust: ``max(0, simple - c_alpha * sqrt((n + m) / (n * m)))`` with ``c_alpha = 1.8`` (deequ's default,
  about alpha 0.003) or, for a given alpha, ``sqrt(-ln(alpha / 2) / 2)``.
* Chi-squared: the baseline counts are rescaled to the current total over the baseline's categories
  (``expected = baseline / sum(baseline) * sum(current in baseline's categories)``); current categories the
  baseline lacks are ignored. Then, while the table is not valid, the category with the smallest expected count
  is merged into the one with the next smallest (expected and current counts added). With more than two
  categories the table is valid when at most ``floor(0.2 * categories)`` expected counts are below 5 (Yates,
  Moore and McCabe); with two, when neither is below 10 (Cochran). Fewer than two categories left: no test
  (NaN). Statistic ``sum((current - expected)**2 / expected)``, ``categories - 1`` degrees of freedom, p-value
  ``1 - CDF`` of the chi-squared distribution (Spark's formula; it underflows to 0 below about 1e-16). An
  expected count of 0 with a current count above 0 gives statistic infinity and p-value 0; 0 and 0 is an
  error (Spark's rules).

The chi-squared CDF comes from scipy (``scipy.special.chdtr``, the regularized lower incomplete gamma function,
which is what Apache Commons Math computes for Spark); scipy is installed as a dependency of scikit-learn.

Deviations: deequ's tie-breaking in the merging follows its hash map's iteration order; here the first of the
tied categories in the baseline mapping's order is taken. Empty inputs raise ``ValueError`` where deequ returns
NaN (categorical) or throws (numerical).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from safedeploy.monitoring.analyzer.kll import QuantileSketch, rank_lookup

ComparisonMethod = Literal["Simple", "Robust"]
CategoricalMethod = Literal["LInfinity", "ChiSquared"]

DEFAULT_C_ALPHA = 1.8
"""deequ's default c(alpha) for the Robust distance (Knuth, TAOCP vol. 2, 3.3.1 eq. 15: alpha about 0.003)."""
YATES_ABSOLUTE_THRESHOLD = 5
"""More than two categories: expected counts below this are small (deequ's ``defaultAbsThresholdYates``)."""
YATES_PERCENT_THRESHOLD = 0.2
"""More than two categories: the share of small expected counts allowed (``defaultPercThresholdYates``)."""
COCHRAN_ABSOLUTE_THRESHOLD = 10
"""Two categories: every expected count must be at least this (deequ's ``defaultAbsThresholdCochran``)."""
KS_C_ALPHA_005 = 1.358
"""The textbook two-sample KS c(0.05), 1.358 (the formula gives 1.35810)."""


@dataclass(frozen=True)
class NumericalDistance:
    """An L-infinity distance between two numerical sketches.

    Attributes:
        distance: The distance of ``method``.
        method: "Simple" or "Robust".
        n_baseline: The baseline sketch's item count (total weight).
        n_current: The current sketch's item count.
        simple_distance: The Simple (uncorrected) distance; equals ``distance`` for Simple.
        c_alpha: The KS coefficient subtracted for Robust; None for Simple.
    """

    distance: float
    method: ComparisonMethod
    n_baseline: int
    n_current: int
    simple_distance: float
    c_alpha: float | None = None


@dataclass(frozen=True)
class CategoricalDistance:
    """A distance between two categorical count maps.

    Attributes:
        distance: The L-infinity distance of ``comparison`` ("LInfinity"), or the chi-squared statistic
            ("ChiSquared"; NaN when fewer than two categories remain after merging).
        method: "LInfinity" or "ChiSquared".
        n_baseline: The baseline's total count.
        n_current: The current total count (for ChiSquared: over the baseline's categories only).
        comparison: "Simple" or "Robust" for LInfinity; None for ChiSquared.
        simple_distance: The Simple L-infinity distance (LInfinity only).
        c_alpha: The KS coefficient subtracted for Robust; None otherwise.
        p_value: The chi-squared test's p-value (ChiSquared only; NaN when no test was possible).
        degrees_of_freedom: Categories after merging minus one (ChiSquared only; None when no test).
    """

    distance: float
    method: CategoricalMethod
    n_baseline: int
    n_current: int
    comparison: ComparisonMethod | None = None
    simple_distance: float | None = None
    c_alpha: float | None = None
    p_value: float | None = None
    degrees_of_freedom: int | None = None


def c_alpha_for(alpha: float | None) -> float:
    """The KS coefficient c(alpha) as deequ computes it: ``sqrt(-ln(alpha / 2) / 2)``, or 1.8 when alpha is None.

    Args:
        alpha: The significance level, in (0, 1), or None for deequ's default coefficient.

    Returns:
        The coefficient.

    Raises:
        ValueError: alpha is not in (0, 1).
    """
    if alpha is None:
        return DEFAULT_C_ALPHA
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    return math.sqrt(-math.log(alpha / 2) * 1 / 2)


def minimum_detectable_distance(
    n_baseline: int | float,
    n_current: int | float,
    alpha: float = 0.05,
    *,
    c_alpha: float | None = None,
) -> float:
    """The smallest L-infinity (KS) distance a two-sample test at level ``alpha`` tells apart from noise.

    The two-sample Kolmogorov-Smirnov test rejects "same distribution" at significance ``alpha`` when the
    distance between the empirical CDFs exceeds ``c(alpha) * sqrt((n + m) / (n * m))``, with
    ``c(alpha) = sqrt(-ln(alpha / 2) / 2)`` (1.358 for 0.05; 1.8 is alpha about 0.003, deequ's Robust default).
    A measured distance below this value is within sampling noise for these sizes, so a drift threshold below
    it cannot be enforced reliably: the check would fire on noise or, read the other way, the data cannot show
    a drift that small. deequ's Robust distance is the Simple one minus this value (with c 1.8), floored at 0.

    Args:
        n_baseline: The baseline's sample size.
        n_current: The current sample size.
        alpha: The significance level, in (0, 1).
        c_alpha: A coefficient to use instead of the one computed from alpha.

    Returns:
        The critical distance.

    Raises:
        ValueError: A sample size is not positive, or alpha is not in (0, 1).
    """
    if not (n_baseline > 0 and n_current > 0):
        raise ValueError(f"sample sizes must be positive, got {n_baseline!r} and {n_current!r}")
    coefficient = c_alpha if c_alpha is not None else c_alpha_for(alpha)
    n, m = float(n_baseline), float(n_current)
    return coefficient * math.sqrt((n + m) / (n * m))


def _select(
    simple: float, n: float, m: float, comparison: ComparisonMethod, alpha: float | None
) -> tuple[float, float | None]:
    """The Simple distance, or the Robust one and its coefficient (deequ's ``selectMetrics``)."""
    if comparison == "Simple":
        return simple, None
    if comparison != "Robust":
        raise ValueError(f"comparison must be 'Simple' or 'Robust', got {comparison!r}")
    coefficient = c_alpha_for(alpha)
    return max(0.0, simple - coefficient * math.sqrt((n + m) / (n * m))), coefficient


def numerical_distance(
    baseline: QuantileSketch,
    current: QuantileSketch,
    method: ComparisonMethod = "Robust",
    alpha: float | None = None,
) -> NumericalDistance:
    """The L-infinity distance between two sketches, as deequ's ``Distance.numericalDistance`` (symmetric).

    Args:
        baseline: The baseline's sketch.
        current: The current data's sketch.
        method: "Robust" (deequ's default, its flag false) or "Simple" (its flag true).
        alpha: The significance for Robust's c(alpha); None for deequ's 1.8.

    Returns:
        The distance.

    Raises:
        ValueError: A sketch is empty, or method or alpha is invalid.
    """
    map1, map2 = baseline.rank_map(), current.rank_map()
    if map1[1].size == 0 or map2[1].size == 0:
        raise ValueError("cannot compare an empty sketch")
    n, m = int(map1[1].max()), int(map2[1].max())
    keys = np.union1d(map1[0], map2[0])
    cdf1 = rank_lookup(map1, keys) / float(n)
    cdf2 = rank_lookup(map2, keys) / float(m)
    simple = float(np.max(np.abs(cdf1 - cdf2)))
    distance, coefficient = _select(simple, float(n), float(m), method, alpha)
    return NumericalDistance(distance, method, n, m, simple, coefficient)


def categorical_linf_distance(
    baseline: Mapping[str, int],
    current: Mapping[str, int],
    comparison: ComparisonMethod = "Robust",
    alpha: float | None = None,
) -> CategoricalDistance:
    """The L-infinity distance between two category count maps, as deequ computes it.

    Args:
        baseline: Counts per category in the baseline.
        current: Counts per category in the current data.
        comparison: "Robust" (deequ's default) or "Simple".
        alpha: The significance for Robust's c(alpha); None for deequ's 1.8.

    Returns:
        The distance.

    Raises:
        ValueError: A map's total is not positive, a count is negative, or comparison or alpha is invalid.
    """
    n, m = _total(baseline, "baseline"), _total(current, "current")
    simple = 0.0
    for key in {**baseline, **current}:
        simple = max(simple, abs(baseline.get(key, 0) / n - current.get(key, 0) / m))
    distance, coefficient = _select(simple, n, m, comparison, alpha)
    return CategoricalDistance(
        distance, "LInfinity", int(n), int(m), comparison=comparison, simple_distance=simple, c_alpha=coefficient
    )


def chi_squared_distance(
    baseline: Mapping[str, int],
    current: Mapping[str, int],
    *,
    yates_threshold: float = YATES_ABSOLUTE_THRESHOLD,
    yates_share: float = YATES_PERCENT_THRESHOLD,
    cochran_threshold: float = COCHRAN_ABSOLUTE_THRESHOLD,
) -> CategoricalDistance:
    """Chi-squared test of the current counts against the baseline's, with deequ's merging of categories.

    Args:
        baseline: Counts per category in the baseline (deequ's ``expected``).
        current: Counts per category in the current data (deequ's ``sample``).
        yates_threshold: More than two categories: expected counts below this are small.
        yates_share: More than two categories: at most ``floor(share * categories)`` may be small.
        cochran_threshold: Two categories: every expected count must reach this.

    Returns:
        The statistic as ``distance``, its p-value and degrees of freedom (NaN, NaN and None when fewer than
        two categories remain).

    Raises:
        ValueError: The baseline's total is not positive, a count is negative, or a category has both expected
            and current counts 0 (Spark's chi-squared test rejects such a table).
    """
    expected_total = _total(baseline, "baseline")
    _total(current, "current", allow_zero=True)
    current_total = float(sum(count for key, count in current.items() if key in baseline))
    expected = {key: count / expected_total * current_total for key, count in baseline.items()}
    observed = {key: float(count) for key, count in current.items()}
    _regroup(observed, expected, yates_threshold, yates_share, cochran_threshold)
    n_baseline, n_current = int(expected_total), int(current_total)
    if len(expected) < 2:
        return CategoricalDistance(math.nan, "ChiSquared", n_baseline, n_current, p_value=math.nan)
    statistic, p_value = _chi_squared_test([observed.get(key, 0.0) for key in expected], list(expected.values()))
    return CategoricalDistance(
        statistic, "ChiSquared", n_baseline, n_current, p_value=p_value, degrees_of_freedom=len(expected) - 1
    )


def categorical_distance(
    baseline: Mapping[str, int],
    current: Mapping[str, int],
    method: CategoricalMethod = "LInfinity",
    comparison: ComparisonMethod = "Robust",
    alpha: float | None = None,
) -> CategoricalDistance:
    """Categorical distance by method, as deequ's ``Distance.categoricalDistance``: LInfinity or ChiSquared.

    Args:
        baseline: Counts per category in the baseline.
        current: Counts per category in the current data.
        method: "LInfinity" (deequ's default) or "ChiSquared".
        comparison: For LInfinity: "Robust" (deequ's default) or "Simple".
        alpha: For LInfinity Robust: the significance for c(alpha); None for deequ's 1.8.

    Returns:
        The distance.

    Raises:
        ValueError: As :func:`categorical_linf_distance` or :func:`chi_squared_distance`, or an unknown method.
    """
    if method == "LInfinity":
        return categorical_linf_distance(baseline, current, comparison, alpha)
    if method == "ChiSquared":
        return chi_squared_distance(baseline, current)
    raise ValueError(f"method must be 'LInfinity' or 'ChiSquared', got {method!r}")


def _total(counts: Mapping[str, int], name: str, *, allow_zero: bool = False) -> float:
    total = 0.0
    for key, count in counts.items():
        if count < 0:
            raise ValueError(f"{name} count of {key!r} is negative: {count}")
        total += count
    if total <= 0 and not allow_zero:
        raise ValueError(f"{name} counts must have a positive total")
    return total


def _regroup(
    observed: dict[str, float],
    expected: dict[str, float],
    yates_threshold: float,
    yates_share: float,
    cochran_threshold: float,
) -> None:
    """Merge the smallest expected category until the table is valid, in place (deequ's ``regroupCategories``)."""
    while len(expected) >= 2:
        if len(expected) > 2:
            threshold, allowed = yates_threshold, int(yates_share * len(expected))
        else:
            threshold, allowed = cochran_threshold, 0
        if sum(1 for value in expected.values() if value < threshold) <= allowed:
            return
        smallest = min(expected, key=expected.__getitem__)
        smallest_expected = expected.pop(smallest)
        smallest_observed = observed.pop(smallest, 0.0)
        second = min(expected, key=expected.__getitem__)
        expected[second] += smallest_expected
        observed[second] = smallest_observed + observed.get(second, 0.0)


def _chi_squared_test(observed: list[float], expected: list[float]) -> tuple[float, float]:
    """Spark's ``ChiSqTest.chiSquared`` (Pearson, goodness of fit): ``(statistic, p-value)``."""
    observed_sum, expected_sum = sum(observed), sum(expected)
    scale = 1.0 if abs(observed_sum - expected_sum) < 1e-7 else observed_sum / expected_sum
    statistic = 0.0
    for obs, exp in zip(observed, expected):
        if exp == 0.0:
            if obs == 0.0:
                raise ValueError("chi-squared statistic undefined: a category has 0 expected and 0 observed")
            return math.inf, 0.0
        exp_scaled = exp if scale == 1.0 else exp * scale
        statistic += (obs - exp_scaled) * (obs - exp_scaled) / exp_scaled
    return statistic, 1.0 - _chi_squared_cdf(statistic, len(observed) - 1)


def _chi_squared_cdf(statistic: float, degrees_of_freedom: int) -> float:
    from scipy.special import chdtr  # type: ignore[import-untyped]  # scipy ships no type information

    return float(chdtr(degrees_of_freedom, statistic))
