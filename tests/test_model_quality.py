"""Model-quality statistics, constraints and violations (Model Monitor's binary-classification formats)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import precision_recall_curve as sk_pr_curve
from sklearn.metrics import roc_auc_score, roc_curve

from safedeploy.monitoring.analyzer import model_quality as M


def test_the_developer_guide_example_scalars_match_exactly() -> None:
    # 1 true negative, 2 false positives, 1 true positive: the guide's confusion matrix; the positive outranks all.
    doc = M.statistics(np.array([0, 0, 0, 1]), np.array([0.1, 0.6, 0.7, 0.9]), evaluation_time="t")
    body = doc["binary_classification_metrics"]
    assert body["confusion_matrix"] == {"0": {"0": 1, "1": 2}, "1": {"0": 0, "1": 1}}
    expected = {
        "recall": 1.0,
        "precision": 0.3333333333333333,
        "accuracy": 0.5,
        "recall_best_constant_classifier": 1.0,
        "precision_best_constant_classifier": 0.25,
        "accuracy_best_constant_classifier": 0.25,
        "true_positive_rate": 1.0,
        "true_negative_rate": 0.33333333333333337,
        "false_positive_rate": 0.6666666666666666,
        "false_negative_rate": 0.0,
        "auc": 1.0,
        "f0_5": 0.3846153846153846,
        "f1": 0.5,
        "f2": 0.7142857142857143,
        "f0_5_best_constant_classifier": 0.29411764705882354,
        "f1_best_constant_classifier": 0.4,
        "f2_best_constant_classifier": 0.625,
    }
    for name, value in expected.items():
        assert body[name] == {"value": value, "standard_deviation": "NaN"}, name
    assert doc["dataset"] == {"item_count": 4, "evaluation_time": "t"}


def test_auc_and_curves_agree_with_sklearn_with_ties() -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 300)
    scores = np.round(np.clip(labels * 0.3 + rng.random(300) * 0.7, 0, 1), 2)  # ties on purpose
    assert M.auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    fpr, tpr, _ = M.roc_curve(labels, scores)
    sk_fpr, sk_tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    precisions, recalls = M.precision_recall_curve(labels, scores)
    sk_p, sk_r, _ = sk_pr_curve(labels, scores)
    # scikit-learn lists decreasing recall ending at (1, 0); ours increasing from (0, 1)
    np.testing.assert_allclose(precisions, sk_p[::-1])
    np.testing.assert_allclose(recalls, sk_r[::-1])


def _sample(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 2, n)
    return labels, np.clip(labels * 0.4 + rng.random(n) * 0.6, 0, 1)


def test_bootstrap_is_seeded_and_needs_200_samples() -> None:
    labels, scores = _sample(400)
    one = json.dumps(M.statistics(labels, scores, seed=1, evaluation_time="t"))
    again = json.dumps(M.statistics(labels, scores, seed=1, evaluation_time="t"))
    other = M.statistics(labels, scores, seed=2, evaluation_time="t")
    assert one == again
    sd_one = json.loads(one)["binary_classification_metrics"]["auc"]["standard_deviation"]
    sd_other = other["binary_classification_metrics"]["auc"]["standard_deviation"]
    assert isinstance(sd_one, float) and sd_one > 0 and sd_one != sd_other
    # the sd is the ddof-1 spread of 5 subsamples of 80 %: recompute one by hand
    rng = np.random.default_rng(1)
    aucs = []
    for _ in range(5):
        chosen = np.sort(rng.choice(400, size=320, replace=False))
        aucs.append(roc_auc_score(labels[chosen], scores[chosen]))
    assert sd_one == pytest.approx(float(np.std(aucs, ddof=1)), abs=1e-12)
    small = M.statistics(*_sample(199), evaluation_time="t")["binary_classification_metrics"]
    assert small["auc"]["standard_deviation"] == "NaN" and isinstance(small["auc"]["value"], float)
    assert isinstance(
        M.statistics(*_sample(200), evaluation_time="t")["binary_classification_metrics"]["auc"]["standard_deviation"],
        float,
    )


def test_constraints_and_violations() -> None:
    labels, scores = _sample(400)
    baseline = M.statistics(labels, scores, evaluation_time="t")
    constraints = M.suggest_constraints(baseline)
    body = constraints["binary_classification_constraints"]
    auc = baseline["binary_classification_metrics"]["auc"]
    assert body["auc"] == {
        "threshold": auc["value"] - max(3 * auc["standard_deviation"], 0.02),
        "comparison_operator": "LessThanThreshold",
    }
    assert body["false_positive_rate"]["comparison_operator"] == "GreaterThanThreshold"
    assert M.violations(baseline, M.read_constraints(constraints)) == []
    # a worse model: scores unrelated to labels
    rng = np.random.default_rng(3)
    worse = M.statistics(labels, rng.random(400), evaluation_time="t")
    found = M.violations(worse, M.read_constraints(M.suggest_constraints(baseline, auc_threshold=0.85)))
    by_name = {v["metric_name"]: v for v in found}
    value = worse["binary_classification_metrics"]["auc"]["value"]
    sd = worse["binary_classification_metrics"]["auc"]["standard_deviation"]
    assert by_name["auc"] == {
        "constraint_check_type": "LessThanThreshold",
        "description": f"Metric auc with {value!r} +/- {sd!r} was LessThanThreshold '0.85'",
        "metric_name": "auc",
    }
    with pytest.raises(M.ModelQualityError, match="comparison_operator 'Between'"):
        M.read_constraints(
            {"binary_classification_constraints": {"auc": {"threshold": 1, "comparison_operator": "Between"}}}
        )


def test_bad_input_is_named() -> None:
    with pytest.raises(M.ModelQualityError, match="0 or 1"):
        M.statistics(np.array([0, 2]), np.array([0.1, 0.2]), evaluation_time="t")
    with pytest.raises(M.ModelQualityError, match="not finite"):
        M.statistics(np.array([0, 1]), np.array([0.1, np.nan]), evaluation_time="t")
