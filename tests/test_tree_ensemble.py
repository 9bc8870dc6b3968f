"""The numpy tree evaluator agrees with XGBoost, refuses model kinds it does not implement, and verifies itself."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import xgboost as xgb

from model.tree_ensemble import TreeEnsemble, UnsupportedModelError, compile_booster


def _train(params: dict[str, Any], rounds: int = 30, seed: int = 0, rows: int = 600) -> xgb.Booster:
    generator = np.random.default_rng(seed)
    x = generator.normal(size=(rows, 8)).astype(np.float32)
    x[generator.random(size=x.shape) < 0.1] = np.nan  # trains default directions
    label = ((np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) * np.nan_to_num(x[:, 2])) > 0).astype(np.float32)
    if params.get("objective", "").startswith("multi:"):
        label = (np.nan_to_num(x[:, 0]) > 0).astype(np.float32) + (np.nan_to_num(x[:, 1]) > 0)
    booster = xgb.train({"nthread": 1, "seed": seed, **params}, xgb.DMatrix(x, label=label), num_boost_round=rounds)
    return booster


def _json(booster: xgb.Booster) -> bytes:
    return bytes(booster.save_raw("json"))


@pytest.mark.parametrize(
    "params",
    [
        {"objective": "binary:logistic", "max_depth": 6, "eta": 0.3},
        {"objective": "binary:logistic", "max_depth": 2, "eta": 0.5, "base_score": 0.2},
        {"objective": "reg:logistic", "max_depth": 4},
        {"objective": "binary:logistic", "max_depth": 6, "min_child_weight": 200},  # some trees are a lone leaf
    ],
)
def test_predictions_match_xgboost_on_probe_and_random_rows(params: dict[str, Any]) -> None:
    booster = _train(params)
    ensemble = compile_booster(_json(booster), booster)
    assert ensemble is not None
    generator = np.random.default_rng(7)
    random_rows = generator.normal(scale=2, size=(300, 8)).astype(np.float32)
    random_rows[generator.random(size=random_rows.shape) < 0.15] = np.nan
    for rows in (random_rows, ensemble.probe_rows(300, seed=11), random_rows[:1]):
        expected = booster.inplace_predict(rows)
        got = ensemble.predict(rows)
        assert got.dtype == np.float32 and got.shape == (len(rows),)
        assert np.abs(got - expected).max() <= 1e-6


def test_margins_are_xgboost_margins() -> None:
    booster = _train({"objective": "binary:logistic", "max_depth": 5})
    ensemble = TreeEnsemble.from_model_json(json.loads(_json(booster)))
    rows = ensemble.probe_rows(200)
    assert np.abs(ensemble.margins(rows) - booster.inplace_predict(rows, predict_type="margin")).max() <= 1e-5


def test_lone_leaf_trees_keep_the_arrays_regular() -> None:
    booster = _train({"objective": "binary:logistic", "max_depth": 3, "gamma": 1e6}, rounds=5)
    document = json.loads(_json(booster))
    assert all(len(tree["left_children"]) == 1 for tree in document["learner"]["gradient_booster"]["model"]["trees"])
    ensemble = TreeEnsemble.from_model_json(document)
    rows = ensemble.probe_rows(20)
    assert np.abs(ensemble.predict(rows) - booster.inplace_predict(rows)).max() <= 1e-6


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"objective": "reg:squarederror"}, "objective reg:squarederror"),
        ({"objective": "multi:softprob", "num_class": 3}, "objective multi:softprob"),
        ({"objective": "binary:logistic", "booster": "gblinear"}, "booster gblinear"),
        ({"objective": "binary:logistic", "max_depth": 0, "max_leaves": 100, "grow_policy": "lossguide"}, "leaves"),
    ],
)
def test_unsupported_kinds_are_refused_and_left_to_xgboost(params: dict[str, Any], reason: str) -> None:
    booster = _train(params, rows=3000)
    with pytest.raises(UnsupportedModelError, match=reason):
        TreeEnsemble.from_model_json(json.loads(_json(booster)))
    assert compile_booster(_json(booster), booster) is None


def test_categorical_splits_are_refused() -> None:
    generator = np.random.default_rng(0)
    codes = generator.integers(0, 5, size=400)
    features = np.column_stack([codes, generator.normal(size=400)]).astype(np.float32)
    data = xgb.DMatrix(features, label=(codes % 2).astype(float), feature_types=["c", "q"], enable_categorical=True)
    booster = xgb.train({"objective": "binary:logistic", "tree_method": "hist"}, data, num_boost_round=3)
    with pytest.raises(UnsupportedModelError, match="categorical"):
        TreeEnsemble.from_model_json(json.loads(_json(booster)))


class _DisagreeingReference:
    """A reference whose predictions differ from the model's: verification must reject the evaluator."""

    def __init__(self, booster: xgb.Booster, shift: float) -> None:
        self.booster = booster
        self.shift = shift

    def inplace_predict(self, rows: np.ndarray, validate_features: bool = True) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(rows, validate_features=validate_features)) + self.shift


def test_verification_rejects_an_evaluator_that_disagrees_with_the_booster() -> None:
    booster = _train({"objective": "binary:logistic"})
    assert compile_booster(_json(booster), _DisagreeingReference(booster, 0.0)) is not None
    assert compile_booster(_json(booster), _DisagreeingReference(booster, 2e-6)) is None


def test_unparseable_model_text_falls_back() -> None:
    booster = _train({"objective": "binary:logistic"})
    assert compile_booster(b"not json", booster) is None
    assert compile_booster(bytes(booster.save_raw("ubj")), booster) is None


def test_wrong_width_is_an_error() -> None:
    booster = _train({"objective": "binary:logistic"})
    ensemble = TreeEnsemble.from_model_json(json.loads(_json(booster)))
    with pytest.raises(ValueError, match="8 features"):
        ensemble.predict(np.zeros((1, 7), dtype=np.float32))
