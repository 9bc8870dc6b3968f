"""Smoke test of a deployed endpoint: held-out test rows through InvokeEndpoint must equal offline predictions.

The rows come from the test split the Data stage wrote (never seen in training); the offline predictions come
from the model archive itself, loaded with XGBoost in this process. The endpoint is called the way any client
calls it (``InvokeEndpoint``, ``text/csv`` in and out), so the check covers the whole serving path: archive
unpacking, the handler code, the fast path, the runtime and the response encoding.
"""

from __future__ import annotations

import io
import tarfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from botocore.exceptions import BotoCoreError, ClientError

from safedeploy.errors import DeploymentError
from safedeploy.store import ArtifactStore, S3Uri

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

MODEL_FILE = "xgboost-model.json"


@dataclass(frozen=True)
class SmokeResult:
    """What the smoke test saw."""

    rows: int
    requests: int
    max_abs_error: float
    seconds: float

    def describe(self) -> str:
        """``smoke test: 50 test rows equal offline (max |diff| 6e-08)``."""
        return f"smoke test: {self.rows} held-out rows equal offline predictions (max |diff| {self.max_abs_error:.1g})"


def held_out_rows(store: ArtifactStore, test_prefix: str, limit: int) -> npt.NDArray[np.float32]:
    """The first ``limit`` feature rows of the test split (label column dropped)."""
    prefix = S3Uri.parse(test_prefix)
    uri = prefix.join("test.csv")
    text = store.get_bytes(uri).decode("utf-8")
    rows = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float32, ndmin=2, max_rows=limit)
    if rows.size == 0:
        raise DeploymentError(f"the test split {uri} is empty: nothing to smoke-test with")
    return rows[:, 1:]


def offline_predictions(model_archive: bytes, rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """What the model in ``model.tar.gz`` predicts for ``rows``, computed here with XGBoost."""
    import xgboost as xgb  # here, not at the top: every CLI command imports this module, only DeployDev predicts

    with tarfile.open(fileobj=io.BytesIO(model_archive)) as archive:
        try:
            member = archive.extractfile(MODEL_FILE)
        except KeyError:  # no such member (None: a member that is not a file)
            member = None
        if member is None:
            raise DeploymentError(f"the model archive has no {MODEL_FILE}")
        booster = xgb.Booster()
        booster.load_model(bytearray(member.read()))
    booster.set_param({"nthread": 1})
    return np.asarray(booster.inplace_predict(rows, validate_features=False), dtype=np.float32).reshape(-1)


def smoke_test(
    runtime: SageMakerRuntimeClient,
    endpoint: str,
    rows: npt.NDArray[np.float32],
    expected: npt.NDArray[np.float32],
    *,
    tolerance: float = 1e-6,
    batch: int = 10,
) -> SmokeResult:
    """Send ``rows`` in batches (and the first one alone) and compare; raise :class:`DeploymentError` if not equal."""
    started = time.monotonic()
    batches = [slice(0, 1), *(slice(i, min(i + batch, len(rows))) for i in range(0, len(rows), batch))]
    got = np.full(len(rows), np.nan, dtype=np.float64)
    for part in batches:
        body = "\n".join(",".join(f"{v:.9g}" for v in row) for row in rows[part])
        try:
            reply = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Accept="text/csv", Body=body)
        except (ClientError, BotoCoreError) as exc:
            where = f"held-out rows {part.start}-{part.stop}"
            raise DeploymentError(f"smoke test: {endpoint} refused {where}: {exc}") from None
        lines = reply["Body"].read().decode("utf-8").split()
        if len(lines) != part.stop - part.start:
            raise DeploymentError(
                f"smoke test: {endpoint} answered {len(lines)} scores for {part.stop - part.start} rows"
            )
        try:
            got[part] = [float(line) for line in lines]
        except ValueError:
            raise DeploymentError(f"smoke test: {endpoint} answered non-numeric scores: {lines[:3]}") from None
    errors = np.abs(got - expected.astype(np.float64))
    worst = int(np.argmax(errors))
    if not errors[worst] <= tolerance:  # also catches NaN
        raise DeploymentError(
            f"smoke test: {endpoint} differs from the offline predictions on held-out row {worst}: "
            f"{got[worst]!r} vs {float(expected[worst])!r} (|diff| {errors[worst]:.3g} > {tolerance:g}); "
            f"{int((errors > tolerance).sum())} of {len(rows)} rows differ"
        )
    return SmokeResult(len(rows), len(batches), float(errors.max()), time.monotonic() - started)
