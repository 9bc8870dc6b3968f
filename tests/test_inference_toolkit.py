"""model/inference.py as SageMaker's XGBoost image runs it: under sagemaker-inference's own ``Transformer``.

The code comes from the shipped ``sourcedir.tar.gz`` (``safedeploy/shipping.py``), unpacked into a code directory,
with the project's packages hidden, so the archive must stand alone as it does in the container. The toolkit is
the image's version (1.5.5, a dev dependency). Its ``Transformer`` answers anything but its own error type with
500: client mistakes must come out 4xx with their message, and good requests must score exactly as the local
serving instance (``safedeploy/instance/worker.py``) scores them.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from sagemaker_inference.errors import BaseInferenceToolkitError  # type: ignore[import-untyped]
from sagemaker_inference.transformer import Transformer  # type: ignore[import-untyped]

from safedeploy import constants as C
from safedeploy import shipping
from safedeploy.data.raw_table import CATEGORICAL_FEATURES, IGNORED_COLUMNS, NUMERIC_FEATURES, read_raw_table
from safedeploy.features import FeatureSchema
from safedeploy.http.server import Handler, Request, Response
from safedeploy.instance import worker
from tests.conftest import REPO_ROOT, churn_rows, write_table

SHIPPED_MODULES = ("inference", "features", "tree_ensemble")
"""What the Transformer imports from the code directory (the archive's own copies)."""
HIDDEN = ("safedeploy", "safedeploy.features", "model", "model.tree_ensemble", "model.inference")
"""The project's packages, absent in the container: the shipped code must not need them."""


@dataclass
class _RequestProcessor:
    headers: dict[str, str]

    def get_request_properties(self) -> dict[str, str]:
        return self.headers


@dataclass
class MmsContext:
    """The parts of the model server's per-request context that the toolkit's ``Transformer`` reads and sets."""

    model_dir: str
    headers: dict[str, str]
    status: tuple[int, str] | None = None
    content_types: dict[int, str] = field(default_factory=dict)

    @property
    def system_properties(self) -> dict[str, str]:
        return {"model_dir": self.model_dir}

    @property
    def request_processor(self) -> list[_RequestProcessor]:
        return [_RequestProcessor(self.headers)]

    def set_response_status(self, code: int, phrase: str) -> None:
        self.status = (code, phrase)

    def set_response_content_type(self, index: int, value: str) -> None:
        self.content_types[index] = value


@dataclass(frozen=True)
class Shipped:
    code_dir: Path
    model_dir: Path
    records: list[dict[str, object]]
    schema: FeatureSchema


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Shipped:
    """The source archive unpacked as the container unpacks it, and a small model in the training job's format."""
    root = tmp_path_factory.mktemp("toolkit")
    code = root / "code"
    with tarfile.open(fileobj=io.BytesIO(shipping.source_archive(REPO_ROOT / "model"))) as tar:
        tar.extractall(code, filter="data")
    rows = churn_rows(400, seed=11)
    table = read_raw_table(write_table(root / "churn.csv", rows))
    schema = FeatureSchema.learn(table.records, NUMERIC_FEATURES, CATEGORICAL_FEATURES, IGNORED_COLUMNS)
    labels = np.array([row[C.LABEL_COLUMN] == C.LABEL_POSITIVE for row in rows], dtype=np.float32)
    matrix = xgb.DMatrix(schema.encode(table.records), label=labels, feature_names=schema.features)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1}, matrix, num_boost_round=20)
    model = root / "model"
    model.mkdir()
    booster.save_model(model / "xgboost-model.json")
    (model / "feature-schema.json").write_text(schema.to_json(), "utf-8")
    records: list[dict[str, object]] = [
        {k: v for k, v in dict(r).items() if k != C.LABEL_COLUMN} for r in table.records[:12]
    ]
    return Shipped(code, model, records, schema)


def _forget_shipped_modules() -> None:
    for name in SHIPPED_MODULES:
        sys.modules.pop(name, None)


def _load_toolkit(shipped: Shipped, monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> Any:
    """The toolkit's Transformer with the shipped module loaded (imported and model_fn run, as on the first call)."""
    monkeypatch.setenv("SAGEMAKER_PROGRAM", C.INFERENCE_PROGRAM)
    monkeypatch.delenv(C.SM_DEFAULT_ACCEPT_ENV, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.syspath_prepend(str(shipped.code_dir))
    _forget_shipped_modules()
    toolkit = Transformer()
    with monkeypatch.context() as hidden:
        for name in HIDDEN:
            hidden.setitem(sys.modules, name, None)  # importing it raises ImportError, as in the container
        toolkit.validate_and_initialize(model_dir=str(shipped.model_dir))
    assert sys.modules["inference"].__file__ == str(shipped.code_dir / "inference.py")
    assert sys.modules["features"].__file__ == str(shipped.code_dir / "features.py")
    return toolkit


def _load_local(shipped: Shipped, environment: dict[str, str]) -> Handler:
    """The local serving instance's HTTP handler over the same code directory and model."""
    environ = {
        C.SM_BASE_DIR_ENV: str(shipped.model_dir.parent),
        C.SM_SUBMIT_DIRECTORY_ENV: str(shipped.code_dir),
        C.SM_PROGRAM_ENV: C.INFERENCE_PROGRAM,
        **environment,
    }
    _forget_shipped_modules()
    try:
        return worker.build_handler(worker.load_transform(worker.ContainerSettings.from_environ(environ)))
    finally:
        _forget_shipped_modules()
        sys.path.remove(str(shipped.code_dir))  # load_transform put it first, as the framework containers do


@pytest.fixture
def transformer(shipped: Shipped, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The toolkit's Transformer over the shipped code, with no environment beyond ``SAGEMAKER_PROGRAM``."""
    yield _load_toolkit(shipped, monkeypatch, {})
    _forget_shipped_modules()


@pytest.fixture
def local(shipped: Shipped) -> Handler:
    """The local serving instance's handler with no environment beyond the code and model."""
    return _load_local(shipped, {})


def _toolkit(toolkit: Any, shipped: Shipped, body: bytes, headers: dict[str, str]) -> tuple[MmsContext, Any]:
    context = MmsContext(str(shipped.model_dir), headers)
    [answer] = toolkit.transform([{"body": body}], context)
    return context, answer


def _local(handler: Handler, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
    request = Request("POST", "/invocations", "", "HTTP/1.1", list(headers.items()), body, None)

    async def call() -> Response:
        return await handler(request)

    response = asyncio.run(call())
    content_type = dict((name.lower(), value) for name, value in response.headers).get("content-type", "")
    return response.status, response.body, content_type


def _csv_body(shipped: Shipped) -> bytes:
    return "\n".join(",".join(f"{v:.10g}" for v in row) for row in shipped.schema.encode(shipped.records)).encode()


def test_the_shipped_error_type_is_the_toolkits(transformer: Any) -> None:
    inference = sys.modules["inference"]
    assert issubclass(inference.InferenceError, BaseInferenceToolkitError)
    error = inference.InferenceError(415, "unsupported")
    assert (error.status_code, error.status, error.message, error.phrase) == (
        415,
        415,
        "unsupported",
        "Unsupported Media Type",
    )
    assert str(error) == "unsupported"


def test_good_requests_score_as_the_local_instance_scores_them(
    transformer: Any, local: Handler, shipped: Shipped
) -> None:
    cases = [
        (json.dumps(shipped.records).encode(), {"Content-Type": "application/json", "Accept": "application/json"}),
        (json.dumps(shipped.records[0]).encode(), {"content-type": "application/json", "accept": "application/json"}),
        (_csv_body(shipped), {"Content-Type": "text/csv", "Accept": "application/json"}),
        (_csv_body(shipped), {"Content-Type": "text/csv", "Accept": "text/csv"}),
    ]
    for body, headers in cases:
        _assert_same_answer(transformer, local, shipped, body, headers)


def _assert_same_answer(toolkit: Any, local: Handler, shipped: Shipped, body: bytes, headers: dict[str, str]) -> str:
    """Both answer 200 with the same bytes and content type, scores of every row; returns the content type."""
    context, answer = _toolkit(toolkit, shipped, body, headers)
    assert context.status is None, (headers, answer)
    status, local_body, local_type = _local(local, body, headers)
    assert status == 200, local_body
    assert context.content_types == {0: local_type}
    assert answer == local_body  # the same bytes: the same scores, the same encoding
    if local_type == "application/json":
        scores = [p["score"] for p in json.loads(answer)["predictions"]]
    else:
        scores = [float(line) for line in answer.decode().splitlines()]
    assert len(scores) == (1 if body.startswith(b"{") else len(shipped.records))
    assert all(0.0 < s < 1.0 for s in scores)
    return local_type


@pytest.mark.parametrize(
    ("environment", "answer_type"),
    [
        ({}, C.TOOLKIT_DEFAULT_ACCEPT),  # the toolkits' own default
        ({C.SM_DEFAULT_ACCEPT_ENV: C.DEFAULT_INVOCATIONS_ACCEPT}, "text/csv"),  # what model_request sets
    ],
)
def test_without_accept_both_answer_the_default_type(
    shipped: Shipped, monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], answer_type: str
) -> None:
    toolkit = _load_toolkit(shipped, monkeypatch, environment)
    local = _load_local(shipped, environment)
    try:
        for accept in (None, "*/*"):
            headers = {"Content-Type": "text/csv", **({"Accept": accept} if accept else {})}
            assert _assert_same_answer(toolkit, local, shipped, _csv_body(shipped), headers) == answer_type
    finally:
        _forget_shipped_modules()


BAD_REQUESTS: list[tuple[str, bytes | None, str, str, int, str]] = [
    # (id, body (None: good CSV rows), Content-Type, Accept, status, what the message says)
    ("record-missing-fields", b'{"State": "NJ"}', "application/json", "application/json", 400, "missing"),
    ("malformed-json", b"[1, 2", "application/json", "application/json", 400, "malformed JSON"),
    ("csv-not-a-number", b"1,2,abc", "text/csv", "text/csv", 400, "'abc' is not a number"),
    ("csv-width", b"1,2,3", "text/csv", "text/csv", 400, "expected 69 features per row, found 3"),
    ("beyond-float32", b"[[1e39, 2]]", "application/json", "text/csv", 400, "float32"),
    ("content-type", b"<r/>", "application/xml", "text/csv", 415, "unsupported content type"),
    ("accept", None, "text/csv", "application/x-protobuf", 406, "cannot answer in"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "message"), [pytest.param(*c[1:], id=c[0]) for c in BAD_REQUESTS]
)
def test_client_mistakes_are_4xx_with_their_message_under_the_toolkit_and_locally(
    transformer: Any,
    local: Handler,
    shipped: Shipped,
    body: bytes | None,
    content_type: str,
    accept: str,
    status: int,
    message: str,
) -> None:
    payload = body if body is not None else _csv_body(shipped)
    headers = {"Content-Type": content_type, "Accept": accept}
    context, answer = _toolkit(transformer, shipped, payload, headers)
    assert context.status == (status, HTTPStatus(status).phrase), answer
    first_line = answer.splitlines()[0]  # the toolkit answers the message, then the traceback
    assert message in first_line
    local_status, local_body, _ = _local(local, payload, headers)
    assert local_status == status
    assert local_body.decode() == first_line


def test_under_a_flask_worker_a_client_mistake_is_a_response_with_its_status(
    transformer: Any, shipped: Shipped
) -> None:
    """The image's single-model server is sagemaker-containers' Flask worker (the image's Flask 3.1.3, as here): it
    wraps every exception from the handlers into its ``ClientError``, which Flask answers 500. There
    ``transform_fn`` returns the error as a Flask response with its status; the view below dispatches as that
    worker's ``Transformer.transform`` does (a tuple becomes a response with that content type, a response passes).
    (sagemaker-containers itself pins Flask 1.1.1, so it is not installed here.)
    """
    import flask

    inference = sys.modules["inference"]
    model = inference.model_fn(str(shipped.model_dir))
    app = flask.Flask("xgboost-image-worker")

    @app.post("/invocations")
    def invocations() -> Any:
        request = flask.request
        accept = request.headers.get("Accept") or "application/json"
        try:
            result = inference.transform_fn(model, request.get_data(), request.headers.get("Content-Type"), accept)
        except Exception as exc:  # the worker's error wrapper: never a client's status
            raise RuntimeError(f"ClientError: {exc}") from exc
        if isinstance(result, tuple):
            return flask.Response(result[0], mimetype=result[1])
        return result

    client = app.test_client()
    good = client.post(
        "/invocations", data=_csv_body(shipped), headers={"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    assert good.status_code == 200 and good.mimetype == "text/csv"
    assert len(good.get_data(as_text=True).splitlines()) == len(shipped.records)
    for _, body, content_type, accept, status, message in BAD_REQUESTS:
        payload = body if body is not None else _csv_body(shipped)
        answer = client.post("/invocations", data=payload, headers={"Content-Type": content_type, "Accept": accept})
        assert answer.status_code == status, answer.get_data(as_text=True)
        assert message in answer.get_data(as_text=True)
        assert answer.mimetype == "text/plain"


def test_a_failure_inside_the_model_is_still_a_500(
    transformer: Any, shipped: Shipped, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only client mistakes become 4xx: a failure inside the model stays a server error."""

    def broken(data: Any, model: Any) -> Any:
        raise RuntimeError("the booster is gone")

    monkeypatch.setattr(sys.modules["inference"], "predict", broken)
    context, answer = _toolkit(transformer, shipped, _csv_body(shipped), {"Content-Type": "text/csv"})
    assert context.status is not None and context.status[0] == 500
    assert answer.startswith("the booster is gone")


def test_a_module_with_transform_fn_and_input_fn_is_refused_locally_as_by_the_toolkits(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "both_handlers.py").write_text(
        "def model_fn(model_dir):\n    return None\n\n"
        "def transform_fn(model, body, content_type, accept):\n    return body, accept\n\n"
        "def input_fn(body, content_type):\n    return body\n"
    )
    settings = worker.ContainerSettings(tmp_path, code, "both_handlers.py")
    try:
        with pytest.raises(worker.ModelLoadError, match="defines transform_fn and input_fn"):
            worker.load_transform(settings)
    finally:
        sys.modules.pop("both_handlers", None)
        sys.path.remove(str(code))
