"""deequ's distances: numerical and categorical L-infinity (Simple, Robust), chi-squared, the KS critical distance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safedeploy.monitoring.analyzer.distance import (
    KS_C_ALPHA_005,
    c_alpha_for,
    categorical_distance,
    categorical_linf_distance,
    chi_squared_distance,
    minimum_detectable_distance,
    numerical_distance,
)
from safedeploy.monitoring.analyzer.kll import QuantileSketch


def sketch_of(values: np.ndarray | list[float]) -> QuantileSketch:
    sketch = QuantileSketch()
    sketch.update(np.asarray(values, dtype=np.float64))
    return sketch


# -- numerical ----------------------------------------------------------------------------------------------------


def test_numerical_simple_and_robust_on_a_hand_computed_example() -> None:
    baseline = sketch_of(np.arange(1000.0))  # 0..999
    current = sketch_of(np.arange(500.0, 1500.0))  # 500..1499
    simple = numerical_distance(baseline, current, "Simple")
    assert simple.distance == 0.5  # at 999: 1000/1000 - 500/1000
    assert (simple.method, simple.n_baseline, simple.n_current, simple.c_alpha) == ("Simple", 1000, 1000, None)
    robust = numerical_distance(baseline, current, "Robust")
    # 0.5 - 1.8 * sqrt(2000 / 1e6) = 0.5 - 0.0804984...
    assert robust.distance == pytest.approx(0.4195016, abs=1e-7)
    assert robust.distance == 0.5 - 1.8 * math.sqrt(2000 / 1e6)
    assert (robust.simple_distance, robust.c_alpha) == (0.5, 1.8)
    at_005 = numerical_distance(baseline, current, "Robust", alpha=0.05)
    assert at_005.distance == pytest.approx(0.5 - 1.358102 * math.sqrt(2000 / 1e6), abs=1e-7)


def test_robust_is_floored_at_zero_for_small_samples() -> None:
    baseline, current = sketch_of([1.0, 2.0, 3.0, 4.0]), sketch_of([3.0, 4.0, 5.0, 6.0])
    assert numerical_distance(baseline, current, "Simple").distance == 0.5
    robust = numerical_distance(baseline, current)  # deequ's default: Robust
    assert (robust.method, robust.distance, robust.simple_distance) == ("Robust", 0.0, 0.5)


def test_numerical_distance_uses_sketch_weights() -> None:
    weighted = QuantileSketch.from_data([[0.0], [1.0]])  # 0 weighs 1, 1 weighs 2: CDF 1/3 at 0
    flat = QuantileSketch.from_data([[0.0, 1.0]])  # CDF 1/2 at 0
    result = numerical_distance(weighted, flat, "Simple")
    assert result.distance == pytest.approx(1 / 6)
    assert (result.n_baseline, result.n_current) == (3, 2)
    same = QuantileSketch.from_data([[0.0, 1.0, 1.0]])
    assert numerical_distance(weighted, same, "Simple").distance == 0.0


def test_numerical_distance_is_the_ks_statistic_while_nothing_is_compacted() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=1500), rng.normal(0.2, 1.0, size=900)
    grid = np.union1d(a, b)
    ks = np.max(
        np.abs(
            np.searchsorted(np.sort(a), grid, "right") / a.size - np.searchsorted(np.sort(b), grid, "right") / b.size
        )
    )
    assert numerical_distance(sketch_of(a), sketch_of(b), "Simple").distance == pytest.approx(ks, abs=1e-15)


def test_numerical_distance_of_compacted_sketches_is_close_to_ks() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=200_000), rng.normal(0.1, 1.0, size=150_000)
    grid = np.union1d(a, b)
    ks = np.max(
        np.abs(
            np.searchsorted(np.sort(a), grid, "right") / a.size - np.searchsorted(np.sort(b), grid, "right") / b.size
        )
    )
    result = numerical_distance(sketch_of(a), sketch_of(b), "Simple")
    assert abs(result.distance - ks) < 0.01
    assert (result.n_baseline, result.n_current) == (200_000, 150_000)


@settings(max_examples=40, deadline=None)
@given(
    a=st.lists(st.integers(-30, 30).map(float), min_size=1, max_size=300),
    b=st.lists(st.integers(-30, 30).map(float), min_size=1, max_size=300),
)
def test_robust_is_simple_minus_the_critical_distance(a: list[float], b: list[float]) -> None:
    sa, sb = sketch_of(a), sketch_of(b)
    simple = numerical_distance(sa, sb, "Simple")
    robust = numerical_distance(sa, sb, "Robust")
    assert simple.distance == numerical_distance(sb, sa, "Simple").distance  # symmetric
    assert robust.distance == max(0.0, simple.distance - minimum_detectable_distance(len(a), len(b), c_alpha=1.8))
    assert 0.0 <= robust.distance <= simple.distance <= 1.0


def test_numerical_distance_rejects_empty_sketches_and_unknown_methods() -> None:
    with pytest.raises(ValueError, match="empty"):
        numerical_distance(QuantileSketch(), sketch_of([1.0]))
    with pytest.raises(ValueError, match="Simple"):
        numerical_distance(sketch_of([1.0]), sketch_of([1.0]), "Fancy")  # type: ignore[arg-type]


# -- categorical L-infinity ---------------------------------------------------------------------------------------


def test_categorical_linf_on_a_hand_computed_example() -> None:
    baseline = {"a": 50, "b": 30, "c": 20}
    current = {"a": 30, "b": 30, "c": 30, "d": 10}  # d is new
    simple = categorical_linf_distance(baseline, current, "Simple")
    assert simple.distance == pytest.approx(0.2)  # a: 0.5 vs 0.3
    assert (simple.method, simple.comparison, simple.n_baseline, simple.n_current) == ("LInfinity", "Simple", 100, 100)
    assert categorical_linf_distance(baseline, current).distance == 0.0  # Robust: 0.2 - 1.8 * sqrt(0.02) < 0
    big = categorical_linf_distance({k: v * 100 for k, v in baseline.items()}, {k: v * 100 for k, v in current.items()})
    assert big.distance == pytest.approx(0.2 - 1.8 * math.sqrt(20_000 / 1e8))
    assert big.c_alpha == 1.8
    assert big.simple_distance == pytest.approx(0.2)
    assert categorical_distance(baseline, current, "LInfinity", "Simple") == simple


def test_categorical_linf_rejects_empty_or_negative_counts() -> None:
    with pytest.raises(ValueError, match="positive total"):
        categorical_linf_distance({}, {"a": 1})
    with pytest.raises(ValueError, match="negative"):
        categorical_linf_distance({"a": -1, "b": 3}, {"a": 1})


# -- chi-squared --------------------------------------------------------------------------------------------------


def test_chi_squared_on_a_hand_computed_example() -> None:
    # expected 20 each: (10-20)^2/20 + 0 + (30-20)^2/20 = 10 with 2 degrees of freedom: p = exp(-10/2)
    result = chi_squared_distance({"a": 40, "b": 40, "c": 40}, {"a": 10, "b": 20, "c": 30})
    assert result.distance == pytest.approx(10.0)
    assert result.p_value == pytest.approx(math.exp(-5.0), rel=1e-12)
    assert result.p_value == pytest.approx(0.006737946999085467, rel=1e-12)
    assert (result.method, result.degrees_of_freedom, result.n_baseline, result.n_current) == ("ChiSquared", 2, 120, 60)
    assert categorical_distance({"a": 40, "b": 40, "c": 40}, {"a": 10, "b": 20, "c": 30}, "ChiSquared") == result


def test_chi_squared_with_one_degree_of_freedom_matches_the_known_p_value() -> None:
    result = chi_squared_distance({"yes": 500, "no": 500}, {"yes": 60, "no": 40})
    assert result.distance == pytest.approx(4.0)  # 100/50 + 100/50
    assert result.degrees_of_freedom == 1
    assert result.p_value == pytest.approx(0.04550026389635842, rel=1e-9)  # erfc(sqrt(2)), the textbook chi2(1) tail


def test_chi_squared_ignores_current_categories_the_baseline_lacks() -> None:
    with_new = chi_squared_distance({"a": 40, "b": 40, "c": 40}, {"a": 10, "b": 20, "c": 30, "new": 1000})
    assert with_new.distance == pytest.approx(10.0)
    assert with_new.n_current == 60


def test_chi_squared_merges_small_expected_categories_yates() -> None:
    # 4 categories: at most int(0.2 * 4) = 0 expected counts below 5; c (3) and d (2) are: d merges into c (5).
    # 3 categories then: none below 5. Statistic: (40-50)^2/50 + (50-45)^2/45 + (10-5)^2/5 = 2 + 5/9 + 5.
    result = chi_squared_distance({"a": 50, "b": 45, "c": 3, "d": 2}, {"a": 40, "b": 50, "c": 5, "d": 5})
    statistic = 2 + 25 / 45 + 5
    assert result.distance == pytest.approx(statistic)
    assert result.degrees_of_freedom == 2
    assert result.p_value == pytest.approx(math.exp(-statistic / 2), rel=1e-12)


def test_chi_squared_allows_a_fifth_of_small_categories() -> None:
    # 5 categories: int(0.2 * 5) = 1 expected count below 5 is allowed, so nothing merges.
    baseline = {"a": 250, "b": 250, "c": 250, "d": 240, "e": 10}  # expected e: 10/1000 * 300 = 3
    current = {"a": 80, "b": 70, "c": 70, "d": 75, "e": 5}
    result = chi_squared_distance(baseline, current)
    assert result.degrees_of_freedom == 4
    expected = {k: v / 1000 * 300 for k, v in baseline.items()}
    assert result.distance == pytest.approx(sum((current[k] - expected[k]) ** 2 / expected[k] for k in baseline))


def test_chi_squared_two_categories_need_ten_expected_each_cochran() -> None:
    result = chi_squared_distance({"a": 95, "b": 5}, {"a": 90, "b": 10})  # b expects 5 < 10: merged, 1 left
    assert math.isnan(result.distance)
    assert result.p_value is not None and math.isnan(result.p_value)
    assert result.degrees_of_freedom is None
    fine = chi_squared_distance({"a": 90, "b": 10}, {"a": 85, "b": 15})  # expected 90 and 10: valid
    assert fine.degrees_of_freedom == 1


def test_chi_squared_zero_expected_with_observations_is_infinite() -> None:
    baseline = {"a": 100, "b": 100, "c": 100, "d": 100, "e": 0}  # e is the one allowed small category
    result = chi_squared_distance(baseline, {"a": 100, "b": 100, "c": 100, "d": 100, "e": 10})
    assert (result.distance, result.p_value) == (math.inf, 0.0)
    with pytest.raises(ValueError, match="0 expected and 0 observed"):
        chi_squared_distance(baseline, {"a": 100, "b": 100, "c": 100, "d": 100, "e": 0})


def test_chi_squared_with_no_current_data_in_the_baselines_categories_is_no_test() -> None:
    result = chi_squared_distance({"a": 10, "b": 20, "c": 30}, {"z": 7})
    assert math.isnan(result.distance)


def test_unknown_categorical_method_is_rejected() -> None:
    with pytest.raises(ValueError, match="LInfinity"):
        categorical_distance({"a": 1}, {"a": 1}, "KL")  # type: ignore[arg-type]


# -- minimum detectable distance ----------------------------------------------------------------------------------


def test_minimum_detectable_distance() -> None:
    assert c_alpha_for(0.05) == pytest.approx(KS_C_ALPHA_005, abs=1e-3)
    assert c_alpha_for(0.05) == pytest.approx(1.3581015, abs=1e-7)
    assert c_alpha_for(None) == 1.8
    assert c_alpha_for(0.003) == pytest.approx(1.8, abs=0.01)  # deequ's default is alpha about 0.003
    assert minimum_detectable_distance(1000, 1000) == pytest.approx(1.3581015 * math.sqrt(0.002), abs=1e-9)
    assert minimum_detectable_distance(1000, 1000, c_alpha=1.8) == 1.8 * math.sqrt(2000 / 1e6)
    # Smaller alpha or smaller samples: a larger distance is needed.
    assert minimum_detectable_distance(1000, 1000, 0.01) > minimum_detectable_distance(1000, 1000, 0.05)
    assert minimum_detectable_distance(100, 1000) > minimum_detectable_distance(1000, 1000)
    with pytest.raises(ValueError):
        minimum_detectable_distance(0, 10)
    with pytest.raises(ValueError):
        minimum_detectable_distance(10, 10, alpha=1.5)
