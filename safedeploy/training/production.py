"""The version serving production, as the comparative quality gate needs it, and its score on held-out rows.

The training job measures production on its own test channel (``model/train.py``, ``production:test:*``). When the
Train stage reuses an already registered version instead, it measures production here, in-process, with the same
column alignment (:func:`safedeploy.features.align_columns`) on the same test split.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from safedeploy.errors import ArtifactError, GateFailedError, SafeDeployError
from safedeploy.features import FeatureAlignmentError, FeatureSchema, align_columns
from safedeploy.spec import PipelineSpec
from safedeploy.store import ArtifactStore, S3Uri

if TYPE_CHECKING:
    from safedeploy.backends import Backend

MODEL_FILE = "xgboost-model.json"
FEATURE_SCHEMA_FILE = "feature-schema.json"
TEST_FILE = "test.csv"


@dataclass(frozen=True)
class Production:
    """The registered version production serves: its number and model archive (with the registered sha256)."""

    version: int
    model_data_url: str
    model_data_sha256: str


def find_production(spec: PipelineSpec, backend: Backend) -> Production | None:
    """What production serves per the deployment ledger, resolved in the registry; None before a first deployment."""
    live = backend.deployments.live()
    if live is None:
        return None
    try:
        package = backend.registry.describe(spec.model_name, live.version)
    except SafeDeployError as exc:
        raise GateFailedError(
            f"production serves v{live.version} ({live.endpoint}) but the registry cannot describe it ({exc}): "
            "the candidate cannot be compared with production; the model was not registered"
        ) from None
    return Production(live.version, package.ModelDataUrl, package.ModelDataETag)


def verified_archive(store: ArtifactStore, uri: str, sha256: str) -> bytes:
    """The archive's bytes, checked against the sha256 the registry recorded (empty: not recorded, not checked).

    Raises:
        ArtifactError: it is gone or its content changed since registration.
    """
    data = store.get_bytes(S3Uri.parse(uri))
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise ArtifactError(f"{uri} no longer has the sha256 the registry recorded ({sha256[:12]}...)")
    return data


def _member(archive: tarfile.TarFile, name: str) -> bytes:
    try:
        member = archive.getmember(name)
    except KeyError:
        raise ArtifactError(f"the model archive has no {name}") from None
    handle = archive.extractfile(member) if member.isfile() else None
    if handle is None:
        raise ArtifactError(f"the model archive's {name} is not a regular file")
    return handle.read()


def measure_on_test(
    store: ArtifactStore, model_archive: bytes, test_prefix: str, feature_schema_uri: str
) -> dict[str, float]:
    """``test:auc`` of the model in ``model_archive`` on the test split (encoded by ``feature_schema_uri``'s schema).

    Raises:
        ArtifactError: an unreadable archive, or columns that cannot be aligned (a missing numeric feature).
    """
    import xgboost as xgb  # numpy/xgboost-heavy, only Train needs it
    from sklearn.metrics import roc_auc_score

    with tarfile.open(fileobj=io.BytesIO(model_archive), mode="r:gz") as archive:
        model, schema_text = _member(archive, MODEL_FILE), _member(archive, FEATURE_SCHEMA_FILE)
    schema = FeatureSchema.from_json(schema_text)
    have = json.loads(store.get_bytes(S3Uri.parse(feature_schema_uri)))["features"]
    text = store.get_bytes(S3Uri.parse(test_prefix).join(TEST_FILE)).decode("utf-8")
    data = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2)
    try:
        rows = align_columns(data[:, 1:], have, schema)
    except FeatureAlignmentError as exc:
        raise ArtifactError(f"cannot score the production model on the test split: {exc}") from None
    booster = xgb.Booster()
    booster.load_model(bytearray(model))
    scores = booster.predict(xgb.DMatrix(rows, feature_names=schema.features)).astype(np.float64)
    return {"test:auc": float(roc_auc_score(data[:, 0].astype(np.int64), scores))}
