"""The data-source contract as the AWS build reads it: ``inputData.json`` + ``hyperparameters.json``.

CodePipeline hands CodeBuild the Data stage's ``data-source.zip`` unpacked into a directory
(``CODEBUILD_SRC_DIR_DataSourceOutput``); run offline, the zip itself works too. Every problem is reported
with the file and key it concerns, before anything is rendered or written.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.errors import ArtifactError, SafeDeployError
from safedeploy.spec import PipelineSpec
from safedeploy.store import S3Uri

URI_KEYS = ("TrainingUri", "ValidationUri", "TestUri", "BaselineUri", "FeatureSchemaUri")
"""The ``inputData.json`` entries the stacks read (each an ``s3://`` URI in the pipeline's data bucket)."""
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ContractError(SafeDeployError):
    """The data-source contract is missing, unreadable or incomplete; the message names file and key."""


@dataclass(frozen=True)
class DataSourceContract:
    """A validated data-source contract."""

    input_data: Mapping[str, str]
    hyperparameters: Mapping[str, str]
    origin: str
    """Where it was read from (for messages)."""

    def uri(self, key: str) -> str:
        """One of :data:`URI_KEYS`."""
        return self.input_data[key]

    @property
    def data_sha256(self) -> str:
        """sha256 of the raw table the datasets were prepared from."""
        return self.input_data["DataSha256"]


def _read_files(path: Path) -> tuple[dict[str, bytes], str]:
    names = (C.INPUT_DATA_FILE, C.HYPERPARAMETERS_FILE)
    if path.is_dir():
        if not (path / C.INPUT_DATA_FILE).exists() and (path / C.DATA_SOURCE_ARCHIVE).is_file():
            return _read_files(path / C.DATA_SOURCE_ARCHIVE)
        missing = [name for name in names if not (path / name).is_file()]
        if missing:
            raise ContractError(
                f"data-source contract {path}: missing {', '.join(missing)} (expected the unpacked "
                f"{C.DATA_SOURCE_ARCHIVE} of the Data stage: {', '.join(names)})"
            )
        return {name: (path / name).read_bytes() for name in names}, str(path)
    if path.is_file():
        try:
            with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
                present = set(archive.namelist())
                missing = [name for name in names if name not in present]
                if missing:
                    raise ContractError(f"data-source contract {path}: the archive has no {', '.join(missing)}")
                return {name: archive.read(name) for name in names}, str(path)
        except zipfile.BadZipFile:
            raise ContractError(f"data-source contract {path}: not a zip archive (nor a directory)") from None
    raise ContractError(f"data-source contract {path}: no such file or directory")


def _object(raw: bytes, where: str) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ContractError(f"{where}: expected a JSON object, got {type(document).__name__}")
    return document


def read_contract(path: Path, spec: PipelineSpec) -> DataSourceContract:
    """Read and validate the contract at ``path`` (a directory or ``data-source.zip``) for ``spec``'s pipeline.

    Raises:
        ContractError: naming the file and the key that is missing or wrong.
    """
    files, origin = _read_files(path)
    input_where = f"{origin}: {C.INPUT_DATA_FILE}"
    input_data = _object(files[C.INPUT_DATA_FILE], input_where)
    hyper_where = f"{origin}: {C.HYPERPARAMETERS_FILE}"
    hyperparameters = _object(files[C.HYPERPARAMETERS_FILE], hyper_where)

    problems: list[str] = []
    bucket = naming.data_bucket(spec)
    for key in URI_KEYS:
        value = input_data.get(key)
        if not isinstance(value, str) or not value:
            problems.append(f"{key} is missing")
            continue
        try:
            uri = S3Uri.parse(value)
        except ArtifactError:
            problems.append(f"{key} is not an s3:// URI: {value!r}")
            continue
        if uri.bucket != bucket:
            problems.append(f"{key} {value} is not in this pipeline's data bucket {bucket}")
    sha = input_data.get("DataSha256")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        problems.append(f"DataSha256 must be 64 lowercase hex digits, got {sha!r}")
    if problems:
        raise ContractError(f"{input_where}: " + "; ".join(problems))

    wrong = sorted(name for name, value in hyperparameters.items() if not isinstance(value, str))
    if wrong:
        raise ContractError(
            f"{hyper_where}: SageMaker takes hyperparameters as strings; not strings: {', '.join(wrong)}"
        )
    if not hyperparameters:
        raise ContractError(f"{hyper_where}: no hyperparameters")
    return DataSourceContract(
        input_data={key: str(value) for key, value in input_data.items() if isinstance(value, str)},
        hyperparameters=dict(hyperparameters),
        origin=origin,
    )


def write_example_contract(directory: Path, spec: PipelineSpec, *, dataset_id: str, data_sha256: str) -> Path:
    """Write an unpacked contract shaped as the Data stage writes it, for a given dataset id (offline renders)."""
    prefix = naming.dataset_prefix(spec, dataset_id)
    input_data = {
        "TrainingUri": f"{prefix.join('train')}/",
        "ValidationUri": f"{prefix.join('validation')}/",
        "TestUri": f"{prefix.join('test')}/",
        "BaselineUri": str(prefix.join("baseline", "baseline.csv")),
        "FeatureSchemaUri": str(prefix.join(C.FEATURE_SCHEMA_FILE)),
        "DataSha256": data_sha256,
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / C.INPUT_DATA_FILE).write_text(json.dumps(input_data, indent=2))
    (directory / C.HYPERPARAMETERS_FILE).write_text(json.dumps(spec.hyperparameters.as_sagemaker(), indent=2))
    return directory
