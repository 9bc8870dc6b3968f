"""A numpy evaluator for the trees of an XGBoost ``binary:logistic`` model, read from its JSON file.

Why: XGBoost's ``inplace_predict`` spends 130-400 µs on a single row here, nearly all of it in per-call setup
(configuration parsing, predictor dispatch, the ctypes layer), while walking 400 trees of depth 6 is a few
hundred comparisons. This module walks every tree at once, one depth level per step: the node index of each
(row, tree) pair advances to a child until it rests on a leaf. A single row costs tens of microseconds, and a
batch of 1,000 rows costs about what XGBoost's single-threaded predictor does.

It follows XGBoost's CPU predictor exactly: the comparison ``value < split_condition`` in float32, a missing
value (NaN) takes the node's default direction, the margin starts at the base score's logit and adds the
trees' leaf values one after another in float32, and the logistic transform is applied last.

It is a cache of the booster, never the source of truth: :func:`compile_booster` accepts only the model
kinds it implements (``gbtree``, one output, numerical splits, a logistic objective) and, before it is
used, checks it against the booster's own predictions on probe rows that straddle every split threshold.
Anything else, or any disagreement beyond ``tolerance``, returns None and the caller keeps using XGBoost.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]
_LOGISTIC_OBJECTIVES = ("binary:logistic", "reg:logistic")


class UnsupportedModelError(ValueError):
    """The model uses a feature this evaluator does not implement."""


@dataclass(frozen=True)
class TreeEnsemble:
    """Every split of every tree in flat arrays, evaluated all at once (QuickScorer's bitvector walk).

    Leaves are numbered left to right within their tree. A split whose test sends the row right rules out
    every leaf of its left subtree: ``ruled_out`` holds those leaves' bits. The row's leaf in a tree is then
    the leftmost leaf no split of that tree ruled out: one comparison per split and one AND-reduction per
    tree, whatever the depth, instead of a walk down each tree.
    """

    feature: npt.NDArray[np.intp]
    threshold: Matrix
    default_left: npt.NDArray[np.bool_]
    ruled_out: npt.NDArray[np.uint64]
    split_offsets: npt.NDArray[np.intp]
    """Where each tree's splits start in the flat arrays (every tree has at least one, see ``_flatten``)."""
    leaf_values: Matrix
    leaf_offsets: npt.NDArray[np.intp]
    base_margin: np.float32
    num_features: int

    @classmethod
    def from_model_json(cls, document: dict[str, Any]) -> TreeEnsemble:
        """Build the arrays from a parsed XGBoost JSON model.

        Raises:
            UnsupportedModelError: the model is not a single-output logistic gbtree with numerical splits and at
                most 64 leaves per tree.
        """
        learner = document["learner"]
        objective = learner["objective"]["name"]
        if objective not in _LOGISTIC_OBJECTIVES:
            raise UnsupportedModelError(f"objective {objective} (only {', '.join(_LOGISTIC_OBJECTIVES)})")
        booster = learner["gradient_booster"]
        if booster.get("name") != "gbtree":
            raise UnsupportedModelError(f"booster {booster.get('name')} (only gbtree)")
        params = learner["learner_model_param"]
        if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) != 1:
            raise UnsupportedModelError("more than one output")
        trees = booster["model"]["trees"]
        if not trees:
            raise UnsupportedModelError("the model has no trees")
        features: list[int] = []
        thresholds: list[float] = []
        defaults: list[bool] = []
        ruled_out: list[int] = []
        split_offsets: list[int] = []
        leaf_values: list[float] = []
        leaf_offsets: list[int] = []
        for tree in trees:
            if any(int(t) != 0 for t in tree.get("split_type", [])):
                raise UnsupportedModelError("categorical splits")
            if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
                raise UnsupportedModelError("vector leaves")
            split_offsets.append(len(features))
            leaf_offsets.append(len(leaf_values))
            _flatten(tree, features, thresholds, defaults, ruled_out, leaf_values)
        return cls(
            feature=np.asarray(features, dtype=np.intp),
            threshold=np.asarray(thresholds, dtype=np.float32),
            default_left=np.asarray(defaults, dtype=bool),
            ruled_out=np.asarray(ruled_out, dtype=np.uint64),
            split_offsets=np.asarray(split_offsets, dtype=np.intp),
            leaf_values=np.asarray(leaf_values, dtype=np.float32),
            leaf_offsets=np.asarray(leaf_offsets, dtype=np.intp),
            base_margin=np.float32(_logit(_base_score(params["base_score"]))),
            num_features=int(params["num_feature"]),
        )

    def margins(self, rows: Matrix) -> Matrix:
        """The raw margin of each row (before the logistic transform)."""
        if rows.ndim != 2 or rows.shape[1] != self.num_features:
            raise ValueError(f"expected rows of {self.num_features} features, got shape {rows.shape}")
        x = np.asarray(rows, dtype=np.float32)
        if len(x) == 1:  # one request row: the same steps on 1-D arrays, a third cheaper
            return self._walk(x[0], self.feature, self.split_offsets, -1)[np.newaxis]
        return self._walk(x, self.feature, self.split_offsets, 1)

    def _walk(self, x: Matrix, feature: npt.NDArray[np.intp], offsets: npt.NDArray[np.intp], axis: int) -> Matrix:
        value = x.take(feature, axis=axis)
        goes_right = value >= self.threshold  # not (value < threshold), as XGBoost tests; False for NaN
        missing = np.isnan(value)
        if missing.any():
            goes_right |= missing & ~self.default_left
        ruled_out = np.bitwise_or.reduceat(self.ruled_out * goes_right, offsets, axis=axis)
        leftmost = ~ruled_out & (ruled_out + np.uint64(1))  # the lowest bit not ruled out: the row's leaf
        leaf = np.frexp(leftmost.astype(np.float64))[1] - 1  # exact: a power of two below 2**64
        terms = np.empty((*leaf.shape[:-1], len(self.leaf_offsets) + 1), dtype=np.float32)
        terms[..., 0] = self.base_margin
        terms[..., 1:] = self.leaf_values[self.leaf_offsets + leaf]
        # Sequential float32 accumulation, tree after tree, as XGBoost's predictor adds them.
        return np.add.accumulate(terms, axis=-1)[..., -1]

    def predict(self, rows: Matrix) -> Matrix:
        """Probabilities (the logistic of the margins), float32 like XGBoost's."""
        margin = self.margins(rows)
        one = np.float32(1)
        return (one / (one + np.exp(-margin))).astype(np.float32)

    def probe_rows(self, count: int, seed: int = 0) -> Matrix:
        """Rows whose values sit on, just below and just above the model's split thresholds (and some NaN)."""
        generator = np.random.default_rng(seed)
        rows = np.zeros((count, self.num_features), dtype=np.float32)
        for column in range(self.num_features):
            cuts = self.threshold[self.feature == column]
            if len(cuts) == 0:
                rows[:, column] = generator.normal(size=count).astype(np.float32)
                continue
            chosen = generator.choice(cuts, size=count)
            nudge = generator.integers(-1, 2, size=count)
            rows[:, column] = np.where(
                nudge < 0, np.nextafter(chosen, -np.inf), np.where(nudge > 0, np.nextafter(chosen, np.inf), chosen)
            )
        rows[generator.random(size=rows.shape) < 0.02] = np.nan
        return rows


_MAX_LEAVES = 64


def _flatten(
    tree: dict[str, Any],
    features: list[int],
    thresholds: list[float],
    defaults: list[bool],
    ruled_out: list[int],
    leaf_values: list[float],
) -> None:
    """Append one tree's splits (with the leaves each rules out) and its leaves, numbered left to right."""
    left, right = tree["left_children"], tree["right_children"]
    conditions, split_features, default_left = tree["split_conditions"], tree["split_indices"], tree["default_left"]
    first_leaf = len(leaf_values)
    splits: list[tuple[int, int, int]] = []  # (node, first leaf of its left subtree, leaves in it)

    def visit(node: int) -> tuple[int, int]:  # -> (first leaf, leaf count) of the subtree
        if left[node] == -1:
            leaf_values.append(float(conditions[node]))
            return len(leaf_values) - 1 - first_leaf, 1
        entry = len(splits)
        splits.append((node, 0, 0))
        start, left_count = visit(left[node])
        _, right_count = visit(right[node])
        splits[entry] = (node, start, left_count)
        return start, left_count + right_count

    _, leaves = visit(0)
    if leaves > _MAX_LEAVES:
        raise UnsupportedModelError(f"a tree with {leaves} leaves (at most {_MAX_LEAVES})")
    if not splits:  # a lone leaf: a split that rules nothing out keeps the arrays regular
        splits.append((-1, 0, 0))
    for node, start, count in splits:
        features.append(int(split_features[node]) if node >= 0 else 0)
        thresholds.append(float(conditions[node]) if node >= 0 else 0.0)
        defaults.append(bool(int(default_left[node])) if node >= 0 else True)
        ruled_out.append(((1 << count) - 1) << start)


def _base_score(text: str | float) -> float:
    """XGBoost 3 writes the base score as ``"[1.4E-1]"``; older versions as ``"1.4E-1"``."""
    value = str(text).strip().strip("[]").split(",")[0]
    return float(value)


def _logit(probability: float) -> float:
    if not 0.0 < probability < 1.0:
        raise UnsupportedModelError(f"base_score {probability} is not a probability")
    return -math.log(1.0 / probability - 1.0)


def compile_booster(
    model_json: str | bytes, reference: Any, *, tolerance: float = 1e-6, probes: int = 512
) -> TreeEnsemble | None:
    """A verified evaluator for the model, or None when XGBoost itself must serve it.

    Args:
        model_json: the model file's text (``Booster.save_model`` to ``.json``).
        reference: the loaded ``xgboost.Booster``; its ``inplace_predict`` on the probe rows is the truth.
        tolerance: the largest allowed absolute difference in probability.
        probes: how many probe rows to compare.
    """
    try:
        ensemble = TreeEnsemble.from_model_json(json.loads(model_json))
    except (UnsupportedModelError, KeyError, TypeError, ValueError):
        return None
    rows = ensemble.probe_rows(probes)
    expected = np.asarray(reference.inplace_predict(rows, validate_features=False), dtype=np.float32).reshape(-1)
    if not np.allclose(ensemble.predict(rows), expected, rtol=0.0, atol=tolerance):
        return None
    return ensemble
