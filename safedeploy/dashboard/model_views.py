"""Registered versions as the views show them: training metrics and the model-quality baseline's curves.

The baseline is Model Monitor's binary-classification ``statistics.json`` that the Baseline stage computes on the
validation set and Register records as ``DriftCheckBaselines.ModelQuality``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from safedeploy.dashboard.views import Curve, ModelQualityBaseline, ModelView, as_utc
from safedeploy.registry import ModelPackage
from safedeploy.store import LocalArtifactStore, S3Uri


def _number(value: Any) -> float:
    if value is None or value == "NaN":
        return math.nan
    return float(value)


def read_quality_baseline(document: Mapping[str, Any]) -> ModelQualityBaseline:
    """The parts of a ``statistics.json`` (binary classification) the views draw.

    Raises:
        ValueError: the document is not Model Monitor's binary-classification statistics.
    """
    body = document.get("binary_classification_metrics")
    if not isinstance(body, Mapping):
        raise ValueError("no binary_classification_metrics: not a binary-classification statistics.json")
    try:
        roc = body["receiver_operating_characteristic_curve"]
        pr = body["precision_recall_curve"]
        matrix = body["confusion_matrix"]
        confusion = (
            (int(matrix["0"]["0"]), int(matrix["0"]["1"])),
            (int(matrix["1"]["0"]), int(matrix["1"]["1"])),
        )
        metrics = {
            name: _number(entry.get("value"))
            for name, entry in body.items()
            if isinstance(entry, Mapping) and "value" in entry
        }
        return ModelQualityBaseline(
            item_count=int(document.get("dataset", {}).get("item_count", 0)),
            roc=Curve(
                tuple(_number(v) for v in roc["false_positive_rates"]),
                tuple(_number(v) for v in roc["true_positive_rates"]),
            ),
            precision_recall=Curve(
                tuple(_number(v) for v in pr["recalls"]), tuple(_number(v) for v in pr["precisions"])
            ),
            confusion=confusion,
            metrics={k: v for k, v in metrics.items() if not math.isnan(v)},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"binary_classification_metrics lacks {exc}") from None


def model_view(package: ModelPackage, role: str, store: LocalArtifactStore) -> ModelView:
    """The version with its training metrics and, if it has one, its model-quality baseline read from ``store``."""
    baseline: ModelQualityBaseline | None = None
    missing = ""
    source = package.DriftCheckBaselines.get("ModelQuality", {}).get("Statistics")
    if source is None:
        missing = f"v{package.ModelPackageVersion} has no model-quality baseline (registered before there were any)"
    else:
        try:
            baseline = read_quality_baseline(json.loads(store.get_bytes(S3Uri.parse(source.S3Uri))))
        except (OSError, ValueError, KeyError) as exc:
            missing = f"v{package.ModelPackageVersion}'s model-quality baseline {source.S3Uri} is unreadable: {exc}"
    return ModelView(
        version=package.ModelPackageVersion,
        role=role,
        approval=package.ModelApprovalStatus,
        created=as_utc(package.CreationTime),
        training_metrics=dict(package.Metrics),
        baseline=baseline,
        baseline_missing=missing,
    )
