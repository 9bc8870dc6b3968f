"""Constraint checks on String features: the domain check and categorical drift (L-infinity and chi-squared)."""

from __future__ import annotations

from typing import Any

import pytest

from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.analyzer.checks import WindowFeature, evaluate
from safedeploy.monitoring.analyzer.constraints import Constraints, parse_constraints
from safedeploy.monitoring.analyzer.statistics import BaselineFeature
from safedeploy.monitoring.analyzer.table import TypeCounts

BASELINE = {"no": 700, "yes": 300}


def _constraints(method: str, threshold: float = 0.1) -> Constraints:
    return parse_constraints(
        {
            "features": [
                {
                    "name": "plan",
                    "inferred_type": "String",
                    "completeness": 1.0,
                    "string_constraints": {"domains": ["no", "yes"]},
                }
            ],
            "monitoring_config": {
                "distribution_constraints": {
                    "perform_comparison": "Enabled",
                    "categorical_comparison_threshold": threshold,
                    "categorical_drift_method": method,
                    "comparison_method": "Simple",
                }
            },
        },
        "test",
    )


def _run(method: str, window: dict[str, int]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    baseline = [BaselineFeature("plan", "String", sum(BASELINE.values()), 0, None, dict(BASELINE))]
    rows = sum(window.values())
    observed = WindowFeature("plan", TypeCounts(string=rows), rows, None, window)
    result = evaluate(_constraints(method), baseline, {"plan": observed})
    return result.violations, result.verdicts["plan"]


@pytest.mark.parametrize("method", ["LInfinity", "ChiSquared"])
def test_the_same_mix_is_no_drift(method: str) -> None:
    violations, verdict = _run(method, {"no": 70, "yes": 30})
    assert violations == [] and verdict["verdict"] == "ok"


def test_l_infinity_drift_names_the_distance() -> None:
    violations, verdict = _run("LInfinity", {"no": 40, "yes": 60})
    (drift,) = [v for v in violations if v["constraint_check_type"] == F.BASELINE_DRIFT_CHECK]
    assert drift["distance"] == pytest.approx(0.3)  # |0.7 - 0.4|, Simple
    assert drift["method"] == "LInfinity" and verdict["verdict"] == "violation"


def test_chi_squared_drift_is_judged_by_its_p_value() -> None:
    violations, verdict = _run("ChiSquared", {"no": 40, "yes": 60})
    (drift,) = [v for v in violations if v["constraint_check_type"] == F.BASELINE_DRIFT_CHECK]
    assert drift["p_value"] < 1e-6 and drift["method"] == "ChiSquared"
    assert verdict["p_value"] == drift["p_value"]


def test_values_outside_the_domain_are_a_categorical_values_violation() -> None:
    violations, _ = _run("LInfinity", {"no": 70, "yes": 25, "gold": 5})
    (domain,) = [v for v in violations if v["constraint_check_type"] == F.CATEGORICAL_VALUES_CHECK]
    assert domain["observed"] == pytest.approx(0.95) and domain["unknown_values"] == ["gold"]
