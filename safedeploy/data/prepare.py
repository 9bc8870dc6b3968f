"""Data stage: validated raw table -> encoded, stratified train/validation/test/baseline sets.

Outputs, all in the artifact store under one dataset prefix (content-addressed by input and split settings):

* ``train/train.csv``, ``validation/validation.csv``, ``test/test.csv``: SageMaker CSV, label first, no header;
* ``train/feature-schema.json`` (in the train channel, so training packs it into ``model.tar.gz``) and
  ``feature-schema.json``;
* ``baseline/baseline.csv``: training features with a header, the Model Monitor baseline dataset;

plus the seed's data-source contract ``data-source.zip`` (``inputData.json`` + ``hyperparameters.json``).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.data.raw_table import CATEGORICAL_FEATURES, IGNORED_COLUMNS, NUMERIC_FEATURES, read_raw_table
from safedeploy.errors import DataProblem, DataValidationError
from safedeploy.features import FeatureSchema
from safedeploy.spec import PipelineSpec
from safedeploy.store import ArtifactRef, ArtifactStore, S3Uri

MIN_ROWS_PER_CLASS = 20
"""Fewer rows of either label than this cannot give every split both labels."""

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class PreparedData:
    """What the data stage produced."""

    dataset_id: str
    data_sha256: str
    rows: dict[str, int]
    positives: dict[str, int]
    feature_count: int
    artifacts: dict[str, ArtifactRef]
    input_data: dict[str, str]
    """The data-source contract's ``inputData.json`` (channel URIs)."""


def _csv(matrix: npt.NDArray[np.float64], header: list[str] | None = None) -> bytes:
    buffer = io.StringIO()
    if header is not None:
        buffer.write(",".join(header) + "\n")
    np.savetxt(buffer, matrix, delimiter=",", fmt="%.10g")
    return buffer.getvalue().encode("utf-8")


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=_ZIP_EPOCH), content)
    return buffer.getvalue()


def read_data_source(store: ArtifactStore, uri: S3Uri) -> tuple[dict[str, str], dict[str, str]]:
    """Read the data-source contract: ``(inputData, hyperparameters)``."""
    with zipfile.ZipFile(io.BytesIO(store.get_bytes(uri))) as archive:
        input_data = json.loads(archive.read(C.INPUT_DATA_FILE))
        hyperparameters = json.loads(archive.read(C.HYPERPARAMETERS_FILE))
    return input_data, hyperparameters


def _split(
    labels: npt.NDArray[np.int64], spec: PipelineSpec
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    # Imported here: scikit-learn (with scipy) takes about 2 s to import, and every CLI command imports this
    # module; only the Data stage splits.
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    holdout = spec.data.validation_fraction + spec.data.test_fraction
    train, rest = train_test_split(indices, test_size=holdout, stratify=labels, random_state=spec.data.seed)
    validation, test = train_test_split(
        rest, test_size=spec.data.test_fraction / holdout, stratify=labels[rest], random_state=spec.data.seed
    )
    return np.sort(train), np.sort(validation), np.sort(test)


def prepare_dataset(spec: PipelineSpec, store: ArtifactStore, source: Path) -> PreparedData:
    """Validate ``source``, encode and split it, and write every dataset artifact to ``store``.

    Raises:
        DataValidationError: if the table breaks the contract; nothing is written then.
    """
    table = read_raw_table(source)
    labels = np.asarray(table.labels, dtype=np.int64)
    counts = {"positive": int(labels.sum()), "negative": int(len(labels) - labels.sum())}
    if min(counts.values()) < MIN_ROWS_PER_CLASS:
        raise DataValidationError(
            source,
            [
                DataProblem(
                    None,
                    C.LABEL_COLUMN,
                    f"too few rows to split: {counts['positive']} {C.LABEL_POSITIVE} and {counts['negative']} "
                    f"{C.LABEL_NEGATIVE}; each label needs at least {MIN_ROWS_PER_CLASS}",
                )
            ],
        )

    schema = FeatureSchema.learn(
        table.records, numeric=NUMERIC_FEATURES, categorical=CATEGORICAL_FEATURES, ignored=IGNORED_COLUMNS
    )
    features = schema.encode(table.records)
    splits = dict(zip(("train", "validation", "test"), _split(labels, spec), strict=True))

    settings = f"{table.sha256}:{schema.version}:{spec.data.validation_fraction}:{spec.data.test_fraction}"
    dataset_id = hashlib.sha256(f"{settings}:{spec.data.seed}".encode()).hexdigest()[:16]
    prefix = naming.dataset_prefix(spec, dataset_id)

    # Everything is rendered in memory first; the store is only touched once the input is known good.
    schema_json = schema.to_json().encode("utf-8")
    objects: dict[str, tuple[S3Uri, bytes, str]] = {
        "raw": (naming.raw_data_uri(spec, table.sha256, source.name), table.content, "text/csv"),
        "feature_schema": (prefix.join(C.FEATURE_SCHEMA_FILE), schema_json, "application/json"),
        "train_feature_schema": (
            prefix.join("train", C.FEATURE_SCHEMA_FILE),
            schema_json,
            "application/json",
        ),
        "baseline": (
            prefix.join("baseline", "baseline.csv"),
            _csv(features[splits["train"]], header=schema.features),
            "text/csv",
        ),
    }
    for name, rows in splits.items():
        with_label = np.column_stack([labels[rows], features[rows]])
        objects[name] = (prefix.join(name, f"{name}.csv"), _csv(with_label), "text/csv")

    input_data = {
        "TrainingUri": str(prefix.join("train")) + "/",
        "ValidationUri": str(prefix.join("validation")) + "/",
        "TestUri": str(prefix.join("test")) + "/",
        "BaselineUri": str(objects["baseline"][0]),
        "FeatureSchemaUri": str(objects["feature_schema"][0]),
        "DataSha256": table.sha256,
    }
    contract = _zip(
        {
            C.INPUT_DATA_FILE: json.dumps(input_data, indent=2).encode(),
            C.HYPERPARAMETERS_FILE: json.dumps(spec.hyperparameters.as_sagemaker(), indent=2).encode(),
        }
    )
    objects["data_source"] = (naming.data_source_uri(spec), contract, "application/zip")

    refs = {name: store.put_bytes(uri, body, ctype) for name, (uri, body, ctype) in objects.items()}
    return PreparedData(
        dataset_id=dataset_id,
        data_sha256=table.sha256,
        rows={name: len(rows) for name, rows in splits.items()},
        positives={name: int(labels[rows].sum()) for name, rows in splits.items()},
        feature_count=len(schema.features),
        artifacts=refs,
        input_data=input_data,
    )
