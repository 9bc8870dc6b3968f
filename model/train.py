"""Train the churn classifier: a SageMaker script-mode entry point that also runs as-is locally.

It follows the SageMaker training-container contract and nothing else:

* channels ``SM_CHANNEL_TRAIN``, ``SM_CHANNEL_VALIDATION`` and (optional) ``SM_CHANNEL_TEST``: directories of
  CSV files, label first, no header; the train channel also carries ``feature-schema.json``;
* ``SM_MODEL_DIR`` receives the model (``xgboost-model.json``, XGBoost's JSON format, never pickle) and its
  feature schema; SageMaker archives it as ``model.tar.gz``;
* ``SM_OUTPUT_DATA_DIR`` receives ``metrics.json``; a failure is explained in ``<SM_OUTPUT_DIR>/failure``;
* optional channel ``SM_CHANNEL_PRODUCTION``: the ``model.tar.gz`` of the version serving production; the job
  scores the test channel with it too (``production:test:*`` metrics), so the quality gate compares the candidate
  with production on the same held-out rows, measured by the same code;
* hyperparameters come from ``<base>/input/config/hyperparameters.json`` (string values, as SageMaker writes
  them), then ``SM_HPS`` (JSON), then ``--name value`` arguments (script mode), later ones winning.

Every default path derives from ``SAGEMAKER_BASE_DIR`` (``/opt/ml`` in the container), so a local run only
points that one variable, or the ``SM_*`` variables, somewhere else.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import xgboost as xgb
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

try:
    from safedeploy.features import FeatureAlignmentError, FeatureSchema, align_columns
except ImportError:  # in sourcedir.tar.gz, features.py (a copy of safedeploy/features.py) sits beside this file
    from features import (  # type: ignore[no-redef,import-not-found]
        FeatureAlignmentError,
        FeatureSchema,
        align_columns,
    )

LOG = logging.getLogger("train")
MODEL_FILE = "xgboost-model.json"
FEATURE_SCHEMA_FILE = "feature-schema.json"
METRICS_FILE = "metrics.json"
THRESHOLD = 0.5
PRE_TRAFFIC_CHECKS_FILE = "pre-traffic-checks.json"
"""Known held-out rows and this model's scores for them, in the model archive: the pre-traffic hook's reference."""
PRE_TRAFFIC_CHECK_ROWS = 20
PRODUCTION_PREFIX = "production:"
"""Metrics of the production model on this job's test channel: ``production:test:auc``, ..."""
MAX_PRODUCTION_MEMBER_BYTES = 64 * 1024 * 1024
REPORTED_METRICS = ("auc", "accuracy", "precision", "recall", "f1", "log_loss")

Matrix = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int64]

HYPERPARAMETER_TYPES: dict[str, type] = {
    "objective": str,
    "eval_metric": str,
    "max_depth": int,
    "eta": float,
    "gamma": float,
    "min_child_weight": float,
    "subsample": float,
    "colsample_bytree": float,
    "num_round": int,
    "early_stopping_rounds": int,
    "seed": int,
    "nthread": int,
}
DEFAULTS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": "auc,logloss",
    "num_round": 1000,
    "early_stopping_rounds": 50,
    "seed": 42,
}


class TrainingError(Exception):
    """A problem with the job's inputs or configuration; becomes the job's FailureReason."""


@dataclass(frozen=True)
class Paths:
    """Where the container contract puts things."""

    train: Path
    validation: Path
    test: Path | None
    model_dir: Path
    output_data_dir: Path
    output_dir: Path
    hyperparameters_file: Path
    production: Path | None = None
    """The ``production`` channel (the production version's ``model.tar.gz``), if the job has one."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Paths:
        """Resolve every path from the ``SM_*`` variables, defaulting under ``SAGEMAKER_BASE_DIR``."""
        base = Path(env.get("SAGEMAKER_BASE_DIR", "/opt/ml"))

        def path(var: str, default: Path) -> Path:
            return Path(env[var]) if env.get(var) else default

        test_default = base / "input" / "data" / "test"
        test = path("SM_CHANNEL_TEST", test_default)
        return cls(
            train=path("SM_CHANNEL_TRAIN", base / "input" / "data" / "train"),
            validation=path("SM_CHANNEL_VALIDATION", base / "input" / "data" / "validation"),
            test=test if test.is_dir() else None,
            model_dir=path("SM_MODEL_DIR", base / "model"),
            output_data_dir=path("SM_OUTPUT_DATA_DIR", base / "output" / "data"),
            output_dir=path("SM_OUTPUT_DIR", base / "output"),
            hyperparameters_file=base / "input" / "config" / "hyperparameters.json",
            production=production
            if (production := path("SM_CHANNEL_PRODUCTION", base / "input" / "data" / "production")).is_dir()
            else None,
        )


def _coerce(name: str, value: Any) -> Any:
    if name not in HYPERPARAMETER_TYPES:
        raise TrainingError(f"unknown hyperparameter {name!r} (known: {', '.join(HYPERPARAMETER_TYPES)})")
    kind = HYPERPARAMETER_TYPES[name]
    if isinstance(value, str) and kind is not str:
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise TrainingError(f"hyperparameter {name}={value!r} is not a {kind.__name__}") from None
    try:
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise TrainingError(f"hyperparameter {name}={value!r} is not a {kind.__name__}") from None


def load_hyperparameters(paths: Paths, env: Mapping[str, str], argv: Sequence[str]) -> dict[str, Any]:
    """Merge hyperparameters: file, then ``SM_HPS``, then ``--name value`` arguments."""
    layers: list[Mapping[str, Any]] = []
    if paths.hyperparameters_file.is_file():
        layers.append(json.loads(paths.hyperparameters_file.read_text("utf-8")))
    if env.get("SM_HPS"):
        layers.append(json.loads(env["SM_HPS"]))
    args = list(argv)
    if len(args) % 2 or any(not a.startswith("--") for a in args[::2]):
        raise TrainingError(f"expected '--name value' pairs, got {args!r}")
    layers.append({k[2:]: v for k, v in zip(args[::2], args[1::2], strict=True)})
    merged: dict[str, Any] = dict(DEFAULTS)
    for layer in layers:
        for name, value in layer.items():
            if not name.startswith("sagemaker_"):  # framework bookkeeping (program, submit dir, region)
                merged[name] = _coerce(name, value)
    if merged["objective"] != "binary:logistic":
        raise TrainingError(f"objective must be binary:logistic for a 0/1 churn label, got {merged['objective']!r}")
    return merged


def load_channel(name: str, directory: Path, width: int) -> tuple[Matrix, Labels]:
    """Load every CSV in a channel directory: label first, then ``width`` features, no header."""
    files = sorted(directory.glob("*.csv")) if directory.is_dir() else []
    if not files:
        raise TrainingError(f"channel {name!r} has no .csv files in {directory}")
    blocks = []
    for file in files:
        try:
            block = np.loadtxt(file, delimiter=",", ndmin=2, dtype=np.float64)
        except ValueError as exc:
            raise TrainingError(f"channel {name!r}: {file.name} is not numeric CSV ({exc})") from None
        if block.shape[1] != width + 1:
            raise TrainingError(
                f"channel {name!r}: {file.name} has {block.shape[1]} columns, expected {width + 1} "
                f"(label + {width} features of the feature schema)"
            )
        blocks.append(block)
    data = np.vstack(blocks)
    labels = data[:, 0]
    if not np.isin(labels, (0.0, 1.0)).all():
        raise TrainingError(f"channel {name!r}: the label column must be 0 or 1")
    if len(np.unique(labels)) < 2:
        raise TrainingError(f"channel {name!r}: needs rows of both labels to be evaluated")
    if not np.isfinite(data).all():
        raise TrainingError(f"channel {name!r}: contains NaN or infinite values")
    return data[:, 1:], labels.astype(np.int64)


def binary_classification_metrics(labels: Labels, scores: Matrix) -> dict[str, Any]:
    """Evaluate scores in the SageMaker model-quality report format (``binary_classification_metrics``)."""
    predicted = (scores >= THRESHOLD).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(labels, predicted, labels=[0, 1]).ravel())

    def value(v: float) -> dict[str, Any]:
        return {"value": float(v), "standard_deviation": "NaN"}

    return {
        "auc": value(roc_auc_score(labels, scores)),
        "accuracy": value(accuracy_score(labels, predicted)),
        "precision": value(precision_score(labels, predicted, zero_division=0)),
        "recall": value(recall_score(labels, predicted, zero_division=0)),
        "f1": value(f1_score(labels, predicted, zero_division=0)),
        "log_loss": value(log_loss(labels, scores, labels=[0, 1])),
        "confusion_matrix": {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}},
        "rows": len(labels),
        "positives": int(labels.sum()),
    }


def production_model(channel: Path) -> tuple[xgb.Booster, FeatureSchema]:
    """The production model and its feature schema from the channel's ``model.tar.gz``, read safely.

    Only the two members needed are read, as regular files of bounded size, straight from the archive: nothing
    is extracted to disk, so a hostile member name (``../``, a link) cannot write anywhere.
    """
    archives = sorted(channel.glob("*.tar.gz"))
    if len(archives) != 1:
        raise TrainingError(
            f"the production channel must hold exactly one model.tar.gz, found {[a.name for a in archives]}"
        )
    contents: dict[str, bytes] = {}
    try:
        with tarfile.open(archives[0], mode="r:gz") as archive:
            for name in (MODEL_FILE, FEATURE_SCHEMA_FILE):
                try:
                    member = archive.getmember(name)
                except KeyError:
                    raise TrainingError(f"the production model archive has no {name}") from None
                if not member.isfile() or member.size > MAX_PRODUCTION_MEMBER_BYTES:
                    raise TrainingError(f"the production model archive's {name} is not a regular file of sane size")
                handle = archive.extractfile(member)
                if handle is None:
                    raise TrainingError(f"the production model archive's {name} cannot be read")
                contents[name] = handle.read()
    except (tarfile.TarError, EOFError) as exc:
        raise TrainingError(f"the production model archive {archives[0].name} is not a valid tar.gz: {exc}") from None
    try:
        schema = FeatureSchema.from_json(contents[FEATURE_SCHEMA_FILE])
    except ValueError as exc:
        raise TrainingError(f"the production model's {FEATURE_SCHEMA_FILE}: {exc}") from None
    booster = xgb.Booster()
    booster.load_model(bytearray(contents[MODEL_FILE]))
    return booster, schema


def score_production(channel: Path, features: Sequence[str], rows: Matrix, labels: Labels) -> dict[str, Any]:
    """The production model's ``binary_classification_metrics`` on the candidate's test rows (columns aligned)."""
    booster, schema = production_model(channel)
    try:
        aligned = align_columns(rows, features, schema)
    except FeatureAlignmentError as exc:
        raise TrainingError(f"cannot score the production model on the test channel: {exc}") from None
    scores = booster.predict(xgb.DMatrix(aligned, feature_names=schema.features)).astype(np.float64)
    return binary_classification_metrics(labels, scores)


def train(paths: Paths, hyperparameters: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Fit with early stopping on validation; write model, schema and metrics; return the metrics."""
    schema_file = paths.train / FEATURE_SCHEMA_FILE
    if not schema_file.is_file():
        raise TrainingError(f"the train channel has no {FEATURE_SCHEMA_FILE} (written by the data stage)")
    features = json.loads(schema_file.read_text("utf-8"))["features"]

    splits = {"train": load_channel("train", paths.train, len(features))}
    splits["validation"] = load_channel("validation", paths.validation, len(features))
    if paths.test is not None:
        splits["test"] = load_channel("test", paths.test, len(features))
    matrices = {name: xgb.DMatrix(x, label=y, feature_names=features) for name, (x, y) in splits.items()}

    hp = dict(hyperparameters)
    num_round, early_stopping = hp.pop("num_round"), hp.pop("early_stopping_rounds")
    params = {
        **hp,
        "eval_metric": hp["eval_metric"].split(","),
        "nthread": hp.get("nthread") or int(env.get("SM_NUM_CPUS", "0")) or None,
    }
    LOG.info("training: %d rows x %d features; params %s", len(splits["train"][1]), len(features), params)
    booster = xgb.train(
        {k: v for k, v in params.items() if v is not None},
        matrices["train"],
        num_boost_round=num_round,
        evals=[(matrices["train"], "train"), (matrices["validation"], "validation")],
        early_stopping_rounds=early_stopping,
        verbose_eval=25,
    )
    best = booster[: booster.best_iteration + 1]  # keep exactly the trees early stopping chose

    report: dict[str, Any] = {
        "best_iteration": booster.best_iteration,
        "num_features": len(features),
        "threshold": THRESHOLD,
        "xgboost_version": xgb.__version__,
    }
    if paths.production is not None:
        if "test" not in splits:
            raise TrainingError("a production channel needs the test channel: production is compared on it")
        production = score_production(paths.production, features, *splits["test"])
        report["production"] = {"test": {"binary_classification_metrics": production}}
    for name in ("validation", "test"):
        if name in matrices:
            scores = best.predict(matrices[name]).astype(np.float64)
            report[name] = {"binary_classification_metrics": binary_classification_metrics(splits[name][1], scores)}
    report["metrics"] = {
        f"{split}:{metric}": report[split]["binary_classification_metrics"][metric]["value"]
        for split in ("validation", "test")
        if split in report
        for metric in REPORTED_METRICS
    }
    if "production" in report:
        measured = report["production"]["test"]["binary_classification_metrics"]
        report["metrics"].update({f"{PRODUCTION_PREFIX}test:{m}": measured[m]["value"] for m in REPORTED_METRICS})

    paths.model_dir.mkdir(parents=True, exist_ok=True)
    best.save_model(paths.model_dir / MODEL_FILE)
    shutil.copyfile(schema_file, paths.model_dir / FEATURE_SCHEMA_FILE)
    held_out = splits["test" if "test" in splits else "validation"][0][:PRE_TRAFFIC_CHECK_ROWS]
    expected = best.predict(xgb.DMatrix(held_out, feature_names=features)).astype(np.float64)
    checks = {
        "rows": [",".join(repr(float(v)) for v in row) for row in held_out],
        "expected": [float(v) for v in expected],
        "tolerance": 1e-6,
    }
    (paths.model_dir / PRE_TRAFFIC_CHECKS_FILE).write_text(json.dumps(checks), "utf-8")
    paths.output_data_dir.mkdir(parents=True, exist_ok=True)
    (paths.output_data_dir / METRICS_FILE).write_text(json.dumps(report, indent=2), "utf-8")
    for name, value in report["metrics"].items():
        print(f"#metric {name}={value:.6f}", flush=True)  # matched by the job's MetricDefinitions
    return report


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the job; on failure write the reason to ``<output>/failure`` and return 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    env = os.environ if env is None else env
    paths = Paths.from_env(env)
    try:
        train(paths, load_hyperparameters(paths, env, sys.argv[1:] if argv is None else argv), env)
    except (TrainingError, xgb.core.XGBoostError, OSError, ValueError) as exc:
        reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, TrainingError) else str(exc)
        LOG.error("training failed: %s", reason)
        paths.output_dir.mkdir(parents=True, exist_ok=True)
        (paths.output_dir / "failure").write_text(reason, "utf-8")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
