"""Binary-classification model quality in Model Monitor's formats: statistics, constraints, violations.

``statistics.json``::

    {"version": 0.0, "dataset": {"item_count": n, "evaluation_time": "..."},
     "binary_classification_metrics": {"confusion_matrix": {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}},
                                       "recall": {"value": v, "standard_deviation": sd}, ...}}

The confusion matrix is keyed actual label, then predicted label (the developer guide's example: 1 true
negative, 2 false positives, 0 false negatives, 1 true positive gives precision 1/3). The "best constant
classifier" is the one that always answers the positive class (the guide's example: its accuracy is the
positive share, its recall 1). ``true_negative_rate`` is ``1 - false_positive_rate`` and ``false_negative_rate``
``1 - true_positive_rate``, computed so (the guide prints 0.33333333333333337 for 1 - 2/3).

A score at or above the probability threshold (0.5 by default) predicts 1. The curves and the AUC are
scikit-learn's (the framework image ships scikit-learn 1.8, as ``model/train.py`` relies on): the ROC curve has a
point per distinct score (``roc_curve(drop_intermediate=False)``, from (0, 0) to (1, 1)), ``auc`` is
``roc_auc_score``, the precision-recall curve is ``precision_recall_curve`` in increasing recall from (recall 0,
precision 1). The scalar metrics are counts of the confusion matrix written out here, because Model Monitor's
conventions differ from scikit-learn's ``zero_division`` ones (NaN where a denominator is 0; the best constant
classifier answers the positive class).

Standard deviation: Model Monitor's rule, only from 200 samples (else ``"NaN"``): 5 random subsamples of 80 %
without replacement, the sample standard deviation (ddof 1) of the metric over them. The subsamples come from
numpy's PCG64 seeded with ``bootstrap_seed``: the same input and seed give byte-identical output.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn import metrics

Json = dict[str, Any]

BOOTSTRAP_MIN_SAMPLES = 200
BOOTSTRAP_ROUNDS = 5
BOOTSTRAP_FRACTION = 0.8
DEFAULT_THRESHOLD = 0.5
DEFAULT_SEED = 0
NAN = "NaN"
CONSTRAINT_SIGMAS = 3.0
"""Suggested threshold: the baseline's value minus this many standard deviations..."""
CONSTRAINT_MIN_MARGIN = 0.02
"""...or minus this margin when it is larger (or the standard deviation is NaN: fewer than 200 samples)."""

SCALAR_METRICS = (
    "recall",
    "precision",
    "accuracy",
    "recall_best_constant_classifier",
    "precision_best_constant_classifier",
    "accuracy_best_constant_classifier",
    "true_positive_rate",
    "true_negative_rate",
    "false_positive_rate",
    "false_negative_rate",
    "auc",
    "f0_5",
    "f1",
    "f2",
    "f0_5_best_constant_classifier",
    "f1_best_constant_classifier",
    "f2_best_constant_classifier",
)
LOWER_IS_WORSE = (
    "recall",
    "precision",
    "accuracy",
    "true_positive_rate",
    "true_negative_rate",
    "auc",
    "f0_5",
    "f1",
    "f2",
)
HIGHER_IS_WORSE = ("false_positive_rate", "false_negative_rate")
LESS_THAN = "LessThanThreshold"
GREATER_THAN = "GreaterThanThreshold"


class ModelQualityError(ValueError):
    """The predictions or labels cannot be evaluated; the message names the problem."""


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def _f_beta(precision: float, recall: float, beta: float) -> float:
    b2 = beta * beta
    denominator = b2 * precision + recall
    if math.isnan(precision) or math.isnan(recall):
        return math.nan
    return (1 + b2) * precision * recall / denominator if denominator else 0.0


def roc_curve(labels: Any, scores: Any) -> tuple[list[float], list[float], list[float]]:
    """False and true positive rates at every distinct score (highest first), from (0, 0); and the thresholds.

    scikit-learn's ``roc_curve`` without dropping collinear points (Model Monitor lists one point per score); NaN
    rates when a class is absent (scikit-learn warns and divides by zero).
    """
    positives = int(np.sum(labels))
    if positives in (0, labels.size):
        return [math.nan] * (labels.size + 1), [math.nan] * (labels.size + 1), []
    fpr, tpr, thresholds = metrics.roc_curve(labels, scores, drop_intermediate=False)
    return fpr.tolist(), tpr.tolist(), thresholds[1:].tolist()  # the first threshold is scikit-learn's +inf


def auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve (scikit-learn's ``roc_auc_score``, ties as trapezoids); NaN with only one class."""
    positives = int(np.sum(labels))
    if positives in (0, labels.size):
        return math.nan
    return float(metrics.roc_auc_score(labels, scores))


def precision_recall_curve(labels: Any, scores: Any) -> tuple[list[float], list[float]]:
    """Precision and recall per distinct score in increasing recall, from (recall 0, precision 1) to full recall.

    scikit-learn's ``precision_recall_curve`` (which stops at full recall, as the developer guide's example does),
    reversed into Model Monitor's order; empty without a positive label.
    """
    if not int(np.sum(labels)):
        return [], []
    precisions, recalls, _ = metrics.precision_recall_curve(labels, scores)
    return precisions[::-1].tolist(), recalls[::-1].tolist()


def scalar_metrics(labels: Any, scores: Any, threshold: float) -> dict[str, float]:
    """Every scalar metric of one sample (the bootstrap recomputes these on each subsample)."""
    predicted = (scores >= threshold).astype(np.int64)
    tp = float(np.sum((predicted == 1) & (labels == 1)))
    fp = float(np.sum((predicted == 1) & (labels == 0)))
    fn = float(np.sum((predicted == 0) & (labels == 1)))
    n = float(labels.size)
    positives = tp + fn
    recall = _ratio(tp, positives)
    precision = _ratio(tp, tp + fp)
    fpr = _ratio(fp, n - positives)
    constant_precision = _ratio(positives, n)
    constant_recall = 1.0 if positives else math.nan
    metrics = {
        "recall": recall,
        "precision": precision,
        "accuracy": _ratio(n - fp - fn, n),
        "recall_best_constant_classifier": constant_recall,
        "precision_best_constant_classifier": constant_precision,
        "accuracy_best_constant_classifier": constant_precision,
        "true_positive_rate": recall,
        "true_negative_rate": 1 - fpr,
        "false_positive_rate": fpr,
        "false_negative_rate": 1 - recall,
        "auc": auc(labels, scores),
    }
    for beta, name in ((0.5, "f0_5"), (1.0, "f1"), (2.0, "f2")):
        metrics[name] = _f_beta(precision, recall, beta)
        metrics[f"{name}_best_constant_classifier"] = _f_beta(constant_precision, constant_recall, beta)
    return metrics


def _json_number(value: float) -> float | str:
    return NAN if math.isnan(value) else value


def bootstrap_deviations(labels: Any, scores: Any, threshold: float, seed: int) -> dict[str, float]:
    """Model Monitor's standard deviations: 5 subsamples of 80 % without replacement (NaN below 200 samples)."""
    n = int(labels.size)
    if n < BOOTSTRAP_MIN_SAMPLES:
        return dict.fromkeys(SCALAR_METRICS, math.nan)
    rng = np.random.default_rng(seed)
    size = int(n * BOOTSTRAP_FRACTION)
    rounds = []
    for _ in range(BOOTSTRAP_ROUNDS):
        chosen = np.sort(rng.choice(n, size=size, replace=False))
        rounds.append(scalar_metrics(labels[chosen], scores[chosen], threshold))
    return {name: float(np.std([r[name] for r in rounds], ddof=1)) for name in SCALAR_METRICS}


def _validated(labels: Any, scores: Any) -> tuple[Any, Any]:
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ModelQualityError(f"{y.size} labels and {s.size} scores: every prediction needs exactly one label")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ModelQualityError(f"labels must be 0 or 1; found {sorted(set(np.unique(y).tolist()) - {0, 1})[:5]}")
    if not np.isfinite(s).all():
        raise ModelQualityError(f"{int((~np.isfinite(s)).sum())} scores are not finite numbers")
    return y.astype(np.int64), s


def statistics(
    labels: Any,
    scores: Any,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = DEFAULT_SEED,
    evaluation_time: str,
) -> Json:
    """``statistics.json`` of one sample (Model Monitor's ``binary_classification_metrics``)."""
    y, s = _validated(labels, scores)
    predicted = (s >= threshold).astype(np.int64)
    matrix = {
        str(actual): {str(guess): int(np.sum((y == actual) & (predicted == guess))) for guess in (0, 1)}
        for actual in (0, 1)
    }
    values = scalar_metrics(y, s, threshold) if y.size else dict.fromkeys(SCALAR_METRICS, math.nan)
    deviations = bootstrap_deviations(y, s, threshold, seed)
    fpr, tpr, _ = roc_curve(y, s) if y.size else ([], [], [])
    precisions, recalls = precision_recall_curve(y, s) if y.size else ([], [])

    def metric(name: str) -> Json:
        return {"value": _json_number(values[name]), "standard_deviation": _json_number(deviations[name])}

    body: Json = {"confusion_matrix": matrix}
    for name in SCALAR_METRICS[:10]:
        body[name] = metric(name)
    body["receiver_operating_characteristic_curve"] = {
        "false_positive_rates": [_json_number(v) for v in fpr],
        "true_positive_rates": [_json_number(v) for v in tpr],
    }
    body["precision_recall_curve"] = {"precisions": precisions, "recalls": recalls}
    for name in SCALAR_METRICS[10:]:
        body[name] = metric(name)
    return {
        "version": 0.0,
        "dataset": {"item_count": int(y.size), "evaluation_time": evaluation_time},
        "binary_classification_metrics": body,
    }


def _number(value: Any) -> float:
    if value == NAN or value is None:
        return math.nan
    return float(value)


def suggest_constraints(statistics_doc: Mapping[str, Any], auc_threshold: float | None = None) -> Json:
    """``constraints.json`` from a baseline's statistics.

    Model Monitor suggests thresholds from the baseline without documenting its rule; ours: a metric where lower
    is worse must stay above ``value - max(3 sd, 0.02)`` (``LessThanThreshold`` is the violation), a rate where
    higher is worse below ``value + max(3 sd, 0.02)`` (``GreaterThanThreshold``); a NaN standard deviation uses
    the margin. ``auc_threshold`` (the spec's) replaces AUC's. Metrics undefined on the baseline get none.
    """
    metrics = statistics_doc.get("binary_classification_metrics") or {}
    constraints: Json = {}
    for name in (*LOWER_IS_WORSE, *HIGHER_IS_WORSE):
        entry = metrics.get(name)
        if not isinstance(entry, Mapping):
            continue
        value, sd = _number(entry.get("value")), _number(entry.get("standard_deviation"))
        if math.isnan(value):
            continue
        margin = max(CONSTRAINT_SIGMAS * sd, CONSTRAINT_MIN_MARGIN) if not math.isnan(sd) else CONSTRAINT_MIN_MARGIN
        if name in HIGHER_IS_WORSE:
            constraints[name] = {"threshold": min(1.0, value + margin), "comparison_operator": GREATER_THAN}
        else:
            constraints[name] = {"threshold": max(0.0, value - margin), "comparison_operator": LESS_THAN}
    if auc_threshold is not None:
        constraints["auc"] = {"threshold": float(auc_threshold), "comparison_operator": LESS_THAN}
    return {"version": 0.0, "binary_classification_constraints": constraints}


def read_constraints(document: Mapping[str, Any]) -> dict[str, tuple[float, str]]:
    """``{metric: (threshold, operator)}`` of a ``constraints.json``; raise naming a bad entry."""
    body = document.get("binary_classification_constraints")
    if not isinstance(body, Mapping):
        raise ModelQualityError("constraints have no binary_classification_constraints")
    result: dict[str, tuple[float, str]] = {}
    for name, entry in body.items():
        try:
            threshold = float(entry["threshold"])
            operator = str(entry["comparison_operator"])
        except (KeyError, TypeError, ValueError):
            raise ModelQualityError(
                f"constraint {name!r} needs a numeric threshold and a comparison_operator"
            ) from None
        if operator not in (LESS_THAN, GREATER_THAN):
            raise ModelQualityError(f"constraint {name!r}: comparison_operator {operator!r} is not supported")
        result[str(name)] = (threshold, operator)
    return result


def violations(statistics_doc: Mapping[str, Any], constraints: Mapping[str, tuple[float, str]]) -> list[Json]:
    """``constraint_violations.json``'s list: every metric on the wrong side of its threshold.

    A metric that is NaN in the window (e.g. no positive label) is not judged: the summary's counts say why.
    """
    metrics = statistics_doc.get("binary_classification_metrics") or {}
    found: list[Json] = []
    for name, (threshold, operator) in constraints.items():
        entry = metrics.get(name)
        if not isinstance(entry, Mapping):
            continue
        value = _number(entry.get("value"))
        if math.isnan(value):
            continue
        broken = value < threshold if operator == LESS_THAN else value > threshold
        if broken:
            sd = entry.get("standard_deviation")
            spread = NAN if sd == NAN or sd is None else repr(float(sd))
            found.append(
                {
                    "constraint_check_type": operator,
                    "description": f"Metric {name} with {value!r} +/- {spread} was {operator} '{threshold!r}'",
                    "metric_name": name,
                }
            )
    return found


def cloudwatch_metrics(statistics_doc: Mapping[str, Any]) -> dict[str, float]:
    """The scalar metrics Model Monitor publishes (``auc``, ``f1``, ``recall``...), NaN ones left out."""
    metrics = statistics_doc.get("binary_classification_metrics") or {}
    published: dict[str, float] = {}
    for name in SCALAR_METRICS:
        entry = metrics.get(name)
        if isinstance(entry, Mapping):
            value = _number(entry.get("value"))
            if not math.isnan(value):
                published[name] = value
    return published
