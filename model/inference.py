"""Churn model serving handlers: the SageMaker inference-toolkit contract.

``model_fn`` loads ``xgboost-model.json`` and ``feature-schema.json`` from the model directory;
``transform_fn`` answers a request: ``decode`` reads the body by its content type, ``predict`` returns churn
probabilities, ``encode`` writes them for the ``Accept`` type. ``model_fn`` and ``transform_fn`` have the toolkits'
signatures, so the module runs unchanged in SageMaker's XGBoost container. The module defines no ``input_fn``/
``predict_fn``/``output_fn``: both of the image's servers (sagemaker-inference's ``Transformer`` and
sagemaker-containers') refuse a module that has them beside ``transform_fn``.

Every client mistake raises :class:`InferenceError` carrying its HTTP status (400, 406, 415), never a 5xx, and
comes out with that status wherever the module runs:

* the local serving instance (``safedeploy/instance/worker.py``) answers an exception's ``status``;
* sagemaker-inference's ``Transformer`` (the image's multi-model server) answers its own error type,
  ``BaseInferenceToolkitError``, with its ``status_code`` and anything else 500: ``InferenceError`` subclasses it
  when the toolkit is importable;
* sagemaker-containers' Flask worker (the image's single-model server) turns every exception into 500, so there
  ``transform_fn`` returns the error as a Flask response with its status instead of raising.

Inputs:

* ``text/csv``: one or more rows of encoded features (the seed's clients), no header, no label;
* ``application/json``: a list of such rows, or raw customer records keyed by the raw table's column names
  (one object or a list of objects), encoded with the model's saved feature schema.

Outputs: ``text/csv`` (one probability per line) or ``application/json`` in the shape of SageMaker's
built-in XGBoost container, ``{"predictions": [{"score": 0.42}, ...]}``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import xgboost as xgb

try:  # in the project checkout
    from safedeploy.features import FeatureEncodingError, FeatureSchema
except ImportError:  # in the model archive, features.py (a copy of safedeploy/features.py) sits beside this file
    from features import FeatureEncodingError, FeatureSchema  # type: ignore[no-redef,import-not-found]
if TYPE_CHECKING:
    from model.tree_ensemble import TreeEnsemble, compile_booster
else:
    try:  # in the model archive (the serving container's code directory is on sys.path): its own copy
        from tree_ensemble import TreeEnsemble, compile_booster
    except ImportError:  # imported as model.inference from the project checkout
        from model.tree_ensemble import TreeEnsemble, compile_booster

MODEL_FILE = "xgboost-model.json"
FEATURE_SCHEMA_FILE = "feature-schema.json"
CSV = "text/csv"
JSON = "application/json"
Matrix = npt.NDArray[np.float32]
FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Larger values become inf in the model's float32 matrix."""
FAST_PATH_MAX_ROWS = 4
"""Up to this many rows, the verified numpy evaluator answers (~50 µs); beyond, XGBoost's batch predictor."""


if TYPE_CHECKING:
    _ToolkitError = Exception
else:
    try:  # SageMaker's XGBoost image has the inference toolkit: its Transformer answers this type with its status
        from sagemaker_inference.errors import BaseInferenceToolkitError as _ToolkitError
    except ImportError:  # a local serving instance need not have it
        _ToolkitError = Exception


class InferenceError(_ToolkitError):
    """A request the model cannot serve, with the HTTP status that says why.

    The inference toolkit's ``BaseInferenceToolkitError`` where it is installed (``status_code``, ``message`` and
    ``phrase``, the HTTP reason phrase), else a plain exception with the same attributes; ``status`` is
    ``status_code``, as the local serving instance reads it.
    """

    def __init__(self, status: int, message: str) -> None:
        phrase = HTTPStatus(status).phrase
        super().__init__(status, message, phrase)  # the toolkit's (status_code, message, phrase)
        self.status = self.status_code = status
        self.message = message
        self.phrase = phrase

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class LoadedModel:
    """The booster (single-threaded: one request is small), the schema it was trained with, and its fast path.

    ``fast`` is the booster's trees compiled for small requests (see ``tree_ensemble.py``), checked against
    the booster when the model loads; None when the model is of a kind it does not implement.
    """

    booster: xgb.Booster
    schema: FeatureSchema
    fast: TreeEnsemble | None = None

    def predict(self, matrix: Matrix) -> npt.NDArray[np.float32]:
        """Probabilities for encoded rows whose width is already checked."""
        if self.fast is not None and len(matrix) <= FAST_PATH_MAX_ROWS:
            return self.fast.predict(matrix)
        # XGBoost's own feature-name check applies to data frames only; the caller checked the width.
        return np.asarray(self.booster.inplace_predict(matrix, validate_features=False), dtype=np.float32).reshape(-1)


def model_fn(model_dir: str | Path) -> LoadedModel:
    """Load the model and its feature schema from ``model_dir`` (the unpacked ``model.tar.gz``)."""
    directory = Path(model_dir)
    schema = FeatureSchema.from_json((directory / FEATURE_SCHEMA_FILE).read_text("utf-8"))
    model_json = (directory / MODEL_FILE).read_bytes()
    booster = xgb.Booster()
    booster.load_model(bytearray(model_json))
    booster.set_param({"nthread": 1})  # the multi-threaded path costs ~5 ms per single-row request
    if booster.num_features() != len(schema.features):
        raise ValueError(
            f"model expects {booster.num_features()} features but the feature schema lists {len(schema.features)}"
        )
    return LoadedModel(booster, schema, compile_booster(model_json, booster))


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _as_float(value: float) -> float:
    """A JSON number as a float; an integer beyond a double's range becomes inf (refused by the caller)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _finite_row(values: list[float], where: str) -> list[float]:
    for position, value in enumerate(values):
        if not math.isfinite(value):
            raise InferenceError(400, f"{where}, column {position + 1}: {value!r} is not a finite number")
        if abs(value) > FLOAT32_MAX:
            raise InferenceError(400, f"{where}, column {position + 1}: {value!r} is beyond float32's range (3.4e38)")
    return values


@dataclass(frozen=True)
class Batch:
    """A decoded request: feature rows (already encoded) or raw customer records (encoded by ``predict``)."""

    rows: Matrix | None = None
    records: list[Mapping[str, object]] | None = None


def _decode_csv(body: bytes) -> Batch:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InferenceError(400, "text/csv body is not UTF-8") from None
    lines = [line for line in text.splitlines() if line.strip(" \t,")]
    if not lines:
        raise InferenceError(400, "empty request: send at least one row")
    if '"' not in text:  # fast path: plain numeric CSV, parsed in one pass
        rows = [line.split(",") for line in lines]
        width = len(rows[0])
        if all(len(row) == width for row in rows):
            try:
                matrix = np.array([float(cell) for row in rows for cell in row], dtype=np.float64)
            except ValueError:
                pass  # the careful path below names the bad cell
            else:
                if (np.abs(matrix) <= FLOAT32_MAX).all():  # finite, and still finite as the model's float32
                    return Batch(rows=matrix.reshape(len(rows), width).astype(np.float32))
    return _decode_csv_carefully(text)


def _decode_csv_carefully(text: str) -> Batch:
    """Parse row by row with the csv module, to name the first bad row and cell."""
    rows: list[list[float]] = []
    width = None
    try:
        for number, cells in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            if not cells or all(not c.strip() for c in cells):
                continue
            if width is not None and len(cells) != width:
                raise InferenceError(400, f"row {number}: expected {width} features like row 1, found {len(cells)}")
            width = len(cells)
            try:
                values = [float(cell) for cell in cells]
            except ValueError:
                bad = next(c for c in cells if not _is_float(c))
                raise InferenceError(400, f"row {number}: {bad.strip()!r} is not a number") from None
            rows.append(_finite_row(values, f"row {number}"))
    except csv.Error as exc:
        raise InferenceError(400, f"malformed CSV: {exc}") from None
    if not rows:
        raise InferenceError(400, "empty request: send at least one row")
    return Batch(rows=np.asarray(rows, dtype=np.float32))


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _decode_json(body: bytes) -> Batch:
    try:
        document = json.loads(body)
    except ValueError as exc:  # not JSON, not UTF-8, or an integer past Python's int-str limit
        raise InferenceError(400, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise InferenceError(400, "malformed JSON: nested too deeply") from None
    items = [document] if isinstance(document, Mapping) else document
    if not isinstance(items, list) or not items:
        raise InferenceError(400, "expected a record object, a list of records, or a list of feature rows")
    if all(isinstance(item, Mapping) for item in items):
        return Batch(records=items)
    if all(isinstance(item, list) for item in items):
        width = len(items[0])
        rows = []
        for number, item in enumerate(items, start=1):
            if len(item) != width:
                raise InferenceError(400, f"row {number}: expected {width} features like row 1, found {len(item)}")
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in item):
                raise InferenceError(400, f"row {number}: every feature must be a number")
            rows.append(_finite_row([_as_float(v) for v in item], f"row {number}"))
        return Batch(rows=np.asarray(rows, dtype=np.float32))
    raise InferenceError(400, "mixed request: send either record objects or feature rows, not both")


DECODERS: Mapping[str, Callable[[bytes], Batch]] = {CSV: _decode_csv, JSON: _decode_json}
"""Request decoders by media type (the toolkit's decoder lookup table)."""


def decode(input_data: bytes | str, content_type: str | None) -> Batch:
    """Decode a request body by its content type (the toolkit's ``input_fn(input_data, content_type)`` contract)."""
    media = _media_type(content_type)
    decoder = DECODERS.get(media)
    if decoder is None:
        raise InferenceError(415, f"unsupported content type {content_type!r}; use one of {', '.join(DECODERS)}")
    return decoder(input_data.encode("utf-8") if isinstance(input_data, str) else input_data)


def predict(data: Batch | Matrix, model: LoadedModel) -> npt.NDArray[np.float32]:
    """Churn probabilities, one per row; raw records are encoded with the model's own feature schema."""
    if isinstance(data, Batch):
        if data.records is not None:
            try:
                encoded = model.schema.encode(data.records)
            except FeatureEncodingError as exc:
                raise InferenceError(400, str(exc)) from None
            _check_float32_range(encoded, model.schema)
            matrix = encoded.astype(np.float32)
        else:
            assert data.rows is not None  # noqa: S101 - a Batch holds one or the other
            matrix = data.rows
    else:
        matrix = data
        _check_float32_range(matrix)
    width = model.schema.width
    if matrix.shape[1] != width:
        raise InferenceError(400, f"expected {width} features per row, found {matrix.shape[1]}")
    return model.predict(matrix)


def _check_float32_range(matrix: npt.NDArray[np.floating[Any]], schema: FeatureSchema | None = None) -> None:
    """Values must be finite in the model's float32 (XGBoost refuses inf): beyond 3.4e38 is the client's 400.

    ``schema`` names the encoded columns when the rows are records (numbered from 0, as encoding errors are).
    """
    within = np.abs(matrix) <= FLOAT32_MAX
    if not within.all():
        row, column = (int(i) for i in np.argwhere(~within)[0])
        where = f"record {row}, field {schema.features[column]!r}" if schema else f"row {row + 1}, column {column + 1}"
        raise InferenceError(400, f"{where}: the value is beyond float32's range (3.4e38)")


def _encode_csv(scores: npt.NDArray[np.float32]) -> bytes:
    return "".join(f"{float(s)!r}\n" for s in scores).encode("utf-8")


def _encode_json(scores: npt.NDArray[np.float32]) -> bytes:
    return json.dumps({"predictions": [{"score": float(s)} for s in scores]}).encode("utf-8")


ENCODERS: Mapping[str, Callable[[npt.NDArray[np.float32]], bytes]] = {CSV: _encode_csv, JSON: _encode_json}
"""Response encoders by media type."""


def encode(prediction: npt.NDArray[np.float32], accept: str | None) -> tuple[bytes, str]:
    """Encode predictions for the first acceptable media type (``*/*`` or none means ``text/csv``)."""
    for candidate in (accept or "*/*").split(","):
        media = _media_type(candidate)
        if media in ("*/*", "text/*", ""):
            return _encode_csv(prediction), CSV
        if media in ENCODERS:
            return ENCODERS[media](prediction), media
    raise InferenceError(406, f"cannot answer in {accept!r}; use one of {', '.join(ENCODERS)}")


def transform_fn(model: LoadedModel, request_body: bytes | str, content_type: str | None, accept: str | None) -> Any:
    """The whole request path, decode -> predict -> encode (the toolkits' ``transform_fn`` signature).

    Returns ``(body, content type)``; a client mistake raises :class:`InferenceError`, except under
    sagemaker-containers' Flask worker, where it is returned as a response with its status (see the module's doc).
    """
    try:
        return encode(predict(decode(request_body, content_type), model), accept)
    except InferenceError as exc:
        answer = _flask_error_response(exc)
        if answer is None:
            raise
        return answer


def _flask_error_response(error: InferenceError) -> Any:
    """The error as a Flask response inside a Flask request (the image's single-model server), else None.

    A Flask worker serving this request has imported Flask already; anywhere else Flask is not imported here (its
    import would cost the first client mistake of every other server a 100 ms stall).
    """
    flask = sys.modules.get("flask")
    if flask is None or not flask.has_request_context():
        return None
    return flask.Response(f"{error.message}\n", status=error.status, mimetype="text/plain")
