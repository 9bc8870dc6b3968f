"""model/train.py honours the SageMaker training-container contract and runs from env vars alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from safedeploy.data.prepare import prepare_dataset
from safedeploy.spec import PipelineSpec
from safedeploy.store import LocalArtifactStore, S3Uri
from tests.conftest import REPO_ROOT

TRAIN = REPO_ROOT / "model" / "train.py"


@pytest.fixture
def channels(tmp_path: Path, churn_csv: Path, make_spec: Callable[..., PipelineSpec]) -> dict[str, Path]:
    """Prepared train/validation/test channel directories, as SageMaker would download them."""
    store = LocalArtifactStore(tmp_path / "s3")
    prepared = prepare_dataset(make_spec(), store, churn_csv)
    out = {}
    for name, key in (("train", "TrainingUri"), ("validation", "ValidationUri"), ("test", "TestUri")):
        prefix = S3Uri.parse(prepared.input_data[key])
        for ref in store.list_objects(prefix):
            uri = S3Uri.parse(ref.uri)
            store.download(uri, tmp_path / "channels" / name / Path(uri.key).name)
        out[name] = tmp_path / "channels" / name
    return out


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TRAIN), *args], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def test_runs_from_sm_environment_variables_alone(tmp_path: Path, channels: dict[str, Path]) -> None:
    env = {
        "SM_CHANNEL_TRAIN": str(channels["train"]),
        "SM_CHANNEL_VALIDATION": str(channels["validation"]),
        "SM_CHANNEL_TEST": str(channels["test"]),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output" / "data"),
        "SM_OUTPUT_DIR": str(tmp_path / "output"),
        "SM_HPS": json.dumps({"max_depth": "4", "eta": "0.1", "num_round": "200", "early_stopping_rounds": "20"}),
        "SAGEMAKER_BASE_DIR": str(tmp_path / "nonexistent-opt-ml"),
    }
    proc = _run(env)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    model_files = sorted(p.name for p in (tmp_path / "model").iterdir())
    # JSON model, never pickle; plus the known rows the pre-traffic hook checks a new endpoint against
    assert model_files == ["feature-schema.json", "pre-traffic-checks.json", "xgboost-model.json"]
    booster = xgb.Booster()
    booster.load_model(tmp_path / "model" / "xgboost-model.json")
    assert json.loads(booster.save_config())["learner"]["objective"]["name"] == "binary:logistic"

    report = json.loads((tmp_path / "output" / "data" / "metrics.json").read_text())
    for split in ("validation", "test"):
        metrics = report[split]["binary_classification_metrics"]
        assert {"auc", "accuracy", "precision", "recall", "f1", "log_loss", "confusion_matrix"} <= set(metrics)
        matrix = metrics["confusion_matrix"]
        assert sum(matrix[a][b] for a in "01" for b in "01") == metrics["rows"] == 150

    # The reported test AUC is the saved model's AUC on the test channel.
    test = np.loadtxt(channels["test"] / "test.csv", delimiter=",")
    features = json.loads((tmp_path / "model" / "feature-schema.json").read_text())["features"]
    scores = booster.predict(xgb.DMatrix(test[:, 1:], feature_names=features))
    assert roc_auc_score(test[:, 0], scores) == pytest.approx(report["metrics"]["test:auc"], abs=1e-9)
    assert f"#metric test:auc={report['metrics']['test:auc']:.6f}" in proc.stdout

    # The known rows are test rows, scored by the saved model (what a correct endpoint answers).
    checks = json.loads((tmp_path / "model" / "pre-traffic-checks.json").read_text())
    rows = np.array([[float(v) for v in row.split(",")] for row in checks["rows"]])
    assert rows.shape == (20, test.shape[1] - 1) and np.array_equal(rows, test[:20, 1:])
    assert checks["expected"] == pytest.approx(scores[:20].tolist(), abs=1e-7)


def test_runs_from_the_container_layout(tmp_path: Path, channels: dict[str, Path]) -> None:
    """Only SAGEMAKER_BASE_DIR set: channels, hyperparameters.json and outputs where /opt/ml has them."""
    base = tmp_path / "opt-ml"
    for name, path in channels.items():
        shutil.copytree(path, base / "input" / "data" / name)
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({"num_round": "50", "max_depth": "3", "sagemaker_program": "train.py"})
    )
    proc = _run({"SAGEMAKER_BASE_DIR": str(base)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (base / "model" / "xgboost-model.json").is_file()
    assert json.loads((base / "output" / "data" / "metrics.json").read_text())["best_iteration"] < 50


@pytest.mark.parametrize(
    ("hps", "reason"),
    [
        ({"objective": "reg:linear"}, "objective must be binary:logistic"),
        ({"max_dept": "4"}, "unknown hyperparameter 'max_dept'"),
        ({"max_depth": "deep"}, "hyperparameter max_depth='deep' is not a int"),
    ],
)
def test_bad_configuration_fails_with_a_reason(
    tmp_path: Path, channels: dict[str, Path], hps: dict[str, str], reason: str
) -> None:
    base = tmp_path / "opt-ml"
    env = {
        "SAGEMAKER_BASE_DIR": str(base),
        "SM_CHANNEL_TRAIN": str(channels["train"]),
        "SM_CHANNEL_VALIDATION": str(channels["validation"]),
        "SM_HPS": json.dumps(hps),
    }
    proc = _run(env)
    assert proc.returncode == 1
    assert reason in (base / "output" / "failure").read_text()
    assert not (base / "model").exists()


def test_missing_channel_fails_with_a_reason(tmp_path: Path) -> None:
    base = tmp_path / "opt-ml"
    proc = _run({"SAGEMAKER_BASE_DIR": str(base)})
    assert proc.returncode == 1
    assert "feature-schema.json" in (base / "output" / "failure").read_text()


def test_wrong_width_channel(tmp_path: Path, channels: dict[str, Path]) -> None:
    (channels["validation"] / "validation.csv").write_text("1,2,3\n0,2,3\n")
    base = tmp_path / "opt-ml"
    env = {
        "SAGEMAKER_BASE_DIR": str(base),
        "SM_CHANNEL_TRAIN": str(channels["train"]),
        "SM_CHANNEL_VALIDATION": str(channels["validation"]),
    }
    assert _run(env).returncode == 1
    assert "validation.csv has 3 columns, expected 70" in (base / "output" / "failure").read_text()


def test_script_and_core_agree_on_file_names() -> None:
    """train.py must stay standalone (it runs in the SageMaker container), so it repeats a few names."""
    import runpy

    from safedeploy import constants as C

    script = runpy.run_path(str(TRAIN))  # defines, does not run (not __main__)
    assert (script["FEATURE_SCHEMA_FILE"], script["METRICS_FILE"]) == (C.FEATURE_SCHEMA_FILE, C.METRICS_FILE)
