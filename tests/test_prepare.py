"""Data stage outputs: SageMaker CSVs, stratified splits, baseline, feature schema, data-source contract."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from safedeploy.data.prepare import prepare_dataset, read_data_source
from safedeploy.data.raw_table import read_raw_table
from safedeploy.features import FeatureSchema
from safedeploy.spec import PipelineSpec
from safedeploy.store import LocalArtifactStore, S3Uri


def test_outputs(tmp_path: Path, churn_csv: Path, make_spec: Callable[..., PipelineSpec]) -> None:
    spec = make_spec()
    store = LocalArtifactStore(tmp_path / "s3")
    prepared = prepare_dataset(spec, store, churn_csv)

    assert prepared.rows == {"train": 700, "validation": 150, "test": 150}
    overall = sum(prepared.positives.values()) / 1000
    for split, rows in prepared.rows.items():  # stratified: each split keeps the churn rate
        assert abs(prepared.positives[split] / rows - overall) < 0.01, split

    for ref in prepared.artifacts.values():
        assert store.verify(ref)

    schema = FeatureSchema.from_json(store.get_bytes(S3Uri.parse(prepared.input_data["FeatureSchemaUri"])))
    train = np.loadtxt(io.BytesIO(store.get_bytes(S3Uri.parse(prepared.artifacts["train"].uri))), delimiter=",")
    assert train.shape == (700, 1 + len(schema.features))  # label first, no header
    assert set(np.unique(train[:, 0])) == {0.0, 1.0}

    baseline = store.get_bytes(S3Uri.parse(prepared.input_data["BaselineUri"])).decode().splitlines()
    assert baseline[0].split(",") == schema.features  # header, features only
    assert len(baseline) == 701

    input_data, hyperparameters = read_data_source(store, S3Uri.parse(prepared.artifacts["data_source"].uri))
    assert {"TrainingUri", "ValidationUri", "BaselineUri"} <= set(input_data)
    assert input_data == prepared.input_data
    assert hyperparameters["objective"] == "binary:logistic"
    assert all(isinstance(v, str) for v in hyperparameters.values())  # as the SageMaker API carries them
    with zipfile.ZipFile(io.BytesIO(store.get_bytes(S3Uri.parse(prepared.artifacts["data_source"].uri)))) as zf:
        assert sorted(zf.namelist()) == ["hyperparameters.json", "inputData.json"]
        assert json.loads(zf.read("inputData.json"))["TrainingUri"].startswith("s3://customerchurn-dev-data-")


def test_test_split_is_the_encoded_raw_records(
    tmp_path: Path, churn_csv: Path, make_spec: Callable[..., PipelineSpec]
) -> None:
    """Encoding raw records with the saved schema reproduces the written rows exactly (no train/serve skew)."""
    store = LocalArtifactStore(tmp_path / "s3")
    prepared = prepare_dataset(make_spec(), store, churn_csv)
    schema = FeatureSchema.from_json(store.get_bytes(S3Uri.parse(prepared.input_data["FeatureSchemaUri"])))
    all_rows = np.vstack(
        [
            np.loadtxt(io.BytesIO(store.get_bytes(S3Uri.parse(prepared.artifacts[s].uri))), delimiter=",")
            for s in ("train", "validation", "test")
        ]
    )
    encoded = schema.encode(read_raw_table(churn_csv).records)
    written = {tuple(row) for row in all_rows[:, 1:]}
    assert all(tuple(row) in written for row in np.round(encoded, 10))


def test_same_input_same_dataset(tmp_path: Path, churn_csv: Path, make_spec: Callable[..., PipelineSpec]) -> None:
    spec = make_spec()
    one = prepare_dataset(spec, LocalArtifactStore(tmp_path / "a"), churn_csv)
    two = prepare_dataset(spec, LocalArtifactStore(tmp_path / "b"), churn_csv)
    assert one.dataset_id == two.dataset_id
    assert {k: r.sha256 for k, r in one.artifacts.items()} == {k: r.sha256 for k, r in two.artifacts.items()}
    other_seed = prepare_dataset(make_spec(**{"data.seed": 7}), LocalArtifactStore(tmp_path / "c"), churn_csv)
    assert other_seed.dataset_id != one.dataset_id
