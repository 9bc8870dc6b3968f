"""The analyzer's ``SUGGEST_OUTPUT_BASELINE``: the model's scores on the validation split, baselined in the job."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.analyzer.job import main, suggest_baseline
from safedeploy.smoke import offline_predictions

FEATURES = 6


def _archive(path: Path, members: dict[str, bytes]) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ``binary:logistic`` booster in a training job's ``model.tar.gz`` layout."""
    import xgboost as xgb

    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, FEATURES))
    y = (x[:, 0] + 0.5 * x[:, 2] + rng.normal(scale=0.5, size=400) > 0).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 1},
        xgb.DMatrix(x, label=y),
        num_boost_round=20,
    )
    root = tmp_path_factory.mktemp("model")
    return _archive(
        root / "job" / "output" / "model.tar.gz",
        {F.MODEL_FILE: bytes(booster.save_raw("json")), "feature-schema.json": b"{}"},
    )


def _validation(path: Path, rows: int = 150, width: int = FEATURES, seed: int = 5) -> Path:
    """A SageMaker CSV: label first, no header, as the Data stage writes the validation split."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, width))
    labels = rng.integers(0, 2, size=rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(f"{label}," + ",".join(f"{v:.6g}" for v in row) + "\n" for label, row in zip(labels, x, strict=True))
    )
    return path


def _run(tmp_path: Path, dataset: Path, archive: Path) -> tuple[int, Path]:
    output = tmp_path / "out"
    code = main(
        {
            F.ENV_BASE_DIR: str(tmp_path / "ml"),
            F.ENV_ANALYSIS_TYPE: "SUGGEST_OUTPUT_BASELINE",
            F.ENV_DATASET_SOURCE: str(dataset),
            F.ENV_MODEL_ARCHIVE: str(archive),
            F.ENV_OUTPUT_PATH: str(output),
        }
    )
    return code, output


def test_the_scores_baseline_is_suggest_baseline_of_the_models_exact_scores(tmp_path: Path, model: Path) -> None:
    validation = _validation(tmp_path / "validation" / "validation.csv")
    code, output = _run(tmp_path, validation.parent, model.parent)  # folders, as a Processing job stages them
    assert code == 0, (tmp_path / "ml" / "output" / "failure").read_text()
    # The scores are exactly the offline predictions DeployDev's smoke test compares with (9 significant digits).
    rows = np.loadtxt(validation, delimiter=",", ndmin=2)
    expected = offline_predictions(model.read_bytes(), rows[:, 1:].astype(np.float32))
    scores = tmp_path / "expected" / "scores.csv"
    scores.parent.mkdir()
    scores.write_text(F.OUTPUT_FEATURE + "\n" + "".join(f"{float(s):.9g}\n" for s in expected))
    suggest_baseline(scores, tmp_path / "expected" / "out")
    for name in (F.STATISTICS_FILE, F.CONSTRAINTS_FILE):
        assert (output / name).read_bytes() == (tmp_path / "expected" / "out" / name).read_bytes(), name
    statistics = json.loads((output / F.STATISTICS_FILE).read_text())
    assert statistics["dataset"]["item_count"] == len(rows) == len(expected)
    (feature,) = statistics["features"]
    assert feature["name"] == "score"
    assert feature["numerical_statistics"]["min"] == pytest.approx(float(expected.min()), abs=1e-8)
    assert feature["numerical_statistics"]["max"] == pytest.approx(float(expected.max()), abs=1e-8)
    message = (tmp_path / "ml" / "output" / "message").read_text()
    assert message == "Completed: baseline of the model's scores on 150 rows."


@pytest.mark.parametrize("analysis", ["SUGGEST_BASELINE", "SUGGEST_OUTPUT_BASELINE"])
def test_every_baseline_job_writes_the_digests_of_the_files_it_wrote(
    tmp_path: Path, model: Path, analysis: str
) -> None:
    if analysis == "SUGGEST_BASELINE":
        dataset = tmp_path / "baseline.csv"
        dataset.write_text("a,b\n1,2.5\n3,4.5\n5,0.5\n")
        env = {F.ENV_DATASET_SOURCE: str(dataset)}
    else:
        env = {F.ENV_DATASET_SOURCE: str(_validation(tmp_path / "v.csv")), F.ENV_MODEL_ARCHIVE: str(model)}
    output = tmp_path / "out"
    assert (
        main(
            {F.ENV_BASE_DIR: str(tmp_path / "ml"), F.ENV_ANALYSIS_TYPE: analysis, F.ENV_OUTPUT_PATH: str(output), **env}
        )
        == 0
    )
    digests = json.loads((output / F.DIGESTS_FILE).read_text())
    assert digests == {
        name: "sha256:" + hashlib.sha256((output / name).read_bytes()).hexdigest()
        for name in (F.STATISTICS_FILE, F.CONSTRAINTS_FILE)
    }
    for digest in digests.values():  # SageMaker's ContentDigest pattern
        assert re.fullmatch(r"[Ss][Hh][Aa]256:[0-9a-fA-F]{64}", digest)


def test_bad_inputs_fail_the_job_naming_the_file(tmp_path: Path, model: Path) -> None:
    validation = _validation(tmp_path / "validation.csv")
    no_model = _archive(tmp_path / "empty" / "model.tar.gz", {"feature-schema.json": b"{}"})
    narrow = _validation(tmp_path / "narrow.csv", width=FEATURES - 2)
    cases = {
        "missing": (validation, tmp_path / "nowhere" / "model.tar.gz", "does not exist"),
        "no folder archive": (validation, tmp_path / "empty-folder", "no model.tar.gz"),
        "no model file": (validation, no_model, f"has no {F.MODEL_FILE}"),
        "wrong width": (narrow, model, f"expected the label and the model's {FEATURES} features"),
        "no dataset": (tmp_path / "absent.csv", model, "does not exist"),
    }
    (tmp_path / "empty-folder").mkdir()
    for case, (dataset, archive, words) in cases.items():
        run = tmp_path / case.replace(" ", "-")
        code, _ = _run(run, dataset, archive)
        failure = (run / "ml" / "output" / "failure").read_text()
        assert code == 1, case
        assert words in failure, (case, failure)
        named = archive if "width" not in case and case != "no dataset" else dataset
        assert str(named) in failure, (case, failure)
