"""Serving handlers: the SageMaker inference-toolkit contract for every content type, and bad input as 4xx."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.inference import (
    FAST_PATH_MAX_ROWS,
    InferenceError,
    LoadedModel,
    encode,
    model_fn,
    predict,
    transform_fn,
)
from safedeploy.data.raw_table import read_raw_table
from safedeploy.pipeline import Pipeline
from safedeploy.spec import load_spec
from safedeploy.store import LocalArtifactStore, S3Uri
from tests.conftest import REPO_ROOT, churn_rows, write_table


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedModel, list[dict[str, object]]]:
    """A model trained by the real pipeline, loaded with model_fn, plus raw records to score."""
    root = tmp_path_factory.mktemp("served")
    data = write_table(root / "churn.csv", churn_rows(800, seed=3))
    spec = load_spec(
        overrides={
            "state_dir": str(root / "state"),
            "data": {"source": str(data)},
            "training": {"source_dir": str(REPO_ROOT / "model")},
            "hyperparameters": {"num_round": 200},
        }
    )
    execution = Pipeline(spec, project_root=REPO_ROOT).run()
    assert execution.status == "Succeeded", execution.error
    archive = LocalArtifactStore(root / "state" / "s3").get_bytes(
        S3Uri.parse(execution.stage("Train").outputs["model_data_url"])
    )
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root / "model", filter="data")
    records: list[dict[str, object]] = [dict(r) for r in read_raw_table(data).records[:20]]
    return model_fn(root / "model"), records


def _csv_body(model: LoadedModel, records: list[dict[str, object]]) -> bytes:
    matrix = model.schema.encode(records)
    return "\n".join(",".join(f"{v:.10g}" for v in row) for row in matrix).encode()


def test_model_fn_loads_single_threaded(served: tuple[LoadedModel, list[dict[str, object]]]) -> None:
    model, _ = served
    config = json.loads(model.booster.save_config())
    assert config["learner"]["generic_param"]["nthread"] == "1"
    assert model.booster.num_features() == len(model.schema.features) == 69


def test_csv_rows_json_rows_and_raw_records_score_identically(
    served: tuple[LoadedModel, list[dict[str, object]]],
) -> None:
    model, records = served
    from_csv, ctype = transform_fn(model, _csv_body(model, records), "text/csv", "text/csv")
    assert ctype == "text/csv"
    scores = np.array([float(line) for line in from_csv.decode().splitlines()])
    assert len(scores) == 20 and ((scores > 0) & (scores < 1)).all()

    rows = model.schema.encode(records).tolist()
    from_rows, _ = transform_fn(model, json.dumps(rows).encode(), "application/json", "application/json")
    from_records, _ = transform_fn(
        model, json.dumps(records).encode(), "application/json; charset=utf-8", "application/json"
    )
    one_record, _ = transform_fn(model, json.dumps(records[0]).encode(), "application/json", "application/json")
    for body in (from_rows, from_records):
        predictions = json.loads(body)["predictions"]
        assert np.allclose([p["score"] for p in predictions], scores, atol=1e-6)
    assert json.loads(one_record) == {"predictions": [{"score": pytest.approx(scores[0], abs=1e-6)}]}


def test_predictions_equal_offline_booster_predictions(served: tuple[LoadedModel, list[dict[str, object]]]) -> None:
    model, records = served
    matrix = model.schema.encode(records).astype(np.float32)
    import xgboost as xgb

    offline = model.booster.predict(xgb.DMatrix(matrix, feature_names=model.schema.features))
    assert np.allclose(predict(matrix, model), offline, atol=1e-6)
    # Small requests take the compiled fast path (verified at load); its answers are the booster's.
    assert model.fast is not None
    singles = np.concatenate([predict(matrix[i : i + 1], model) for i in range(len(matrix))])
    assert np.abs(singles - offline).max() <= 1e-6
    assert np.abs(model.fast.predict(matrix[:1]) - predict(matrix[:1], model)).max() == 0


class _Refuses:
    """Stands in for one of the two predictors: a call means the request took the other path than expected."""

    def __init__(self, which: str) -> None:
        self.which = which

    def inplace_predict(self, *args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError(f"{self.which} answered")

    def predict(self, *args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError(f"{self.which} answered")


def test_up_to_4_rows_are_answered_by_the_compiled_ensemble_and_more_by_xgboost(
    served: tuple[LoadedModel, list[dict[str, object]]],
) -> None:
    model, records = served
    assert FAST_PATH_MAX_ROWS == 4 and model.fast is not None  # model_fn compiled and verified the fast path
    matrix = model.schema.encode(records).astype(np.float32)
    offline = np.asarray(model.booster.inplace_predict(matrix, validate_features=False))
    ensemble_only = LoadedModel(_Refuses("XGBoost"), model.schema, model.fast)  # type: ignore[arg-type]
    xgboost_only = LoadedModel(model.booster, model.schema, _Refuses("the ensemble"))  # type: ignore[arg-type]
    for start in range(0, len(matrix), 4):  # every real row, in requests of 1..4 rows
        for size in (1, 2, 3, 4):
            rows = matrix[start : start + size]
            fast = predict(rows, ensemble_only)
            assert fast.dtype == np.float32 and np.abs(fast - offline[start : start + size]).max() <= 1e-6
    body = "\n".join(",".join(f"{v:.10g}" for v in row) for row in matrix[:4]).encode()
    answer, _ = transform_fn(ensemble_only, body, "text/csv", "text/csv")  # the whole handler path
    assert np.abs(np.array([float(line) for line in answer.split()]) - offline[:4]).max() <= 1e-6
    with pytest.raises(AssertionError, match="XGBoost answered"):
        predict(matrix[:5], ensemble_only)
    with pytest.raises(AssertionError, match="the ensemble answered"):
        predict(matrix[:4], xgboost_only)
    assert np.array_equal(predict(matrix[:5], xgboost_only), offline[:5].astype(np.float32))


@pytest.mark.parametrize(
    ("accept", "expected"),
    [(None, "text/csv"), ("*/*", "text/csv"), ("application/json", "application/json"),
     ("text/html, application/json", "application/json"), ("text/csv;q=1", "text/csv")],
)  # fmt: skip
def test_accept_negotiation(accept: str | None, expected: str) -> None:
    body, ctype = encode(np.array([0.25], dtype=np.float32), accept)
    assert ctype == expected
    assert body == (b"0.25\n" if expected == "text/csv" else b'{"predictions": [{"score": 0.25}]}')


def test_unacceptable_accept_is_406() -> None:
    with pytest.raises(InferenceError) as info:
        encode(np.array([0.5], dtype=np.float32), "application/x-protobuf")
    assert info.value.status == 406


BAD: list[tuple[str, bytes, str | None, int, str]] = [
    ("content type", b"1,2", "application/x-npy", 415, "unsupported content type"),
    ("no content type", b"1,2", None, 415, "unsupported content type"),
    ("empty csv", b"", "text/csv", 400, "empty request"),
    ("wrong width", b"1,2,3", "text/csv", 400, "expected 69 features per row, found 3"),
    ("non-numeric", b",".join([b"1"] * 68 + [b"x"]), "text/csv", 400, "'x' is not a number"),
    ("nan", b",".join([b"1"] * 68 + [b"nan"]), "text/csv", 400, "is not a finite number"),
    ("malformed json", b"{", "application/json", 400, "malformed JSON"),
    ("empty json list", b"[]", "application/json", 400, "expected a record object"),
    ("json scalar", b"42", "application/json", 400, "expected a record object"),
    ("json bool feature", json.dumps([[True] * 69]).encode(), "application/json", 400, "must be a number"),
    ("json inf", b"[[" + b",".join([b"1"] * 68 + [b"1e999"]) + b"]]", "application/json", 400, "not a finite number"),
    ("mixed", b'[[1], {"State": "NJ"}]', "application/json", 400, "mixed request"),
    ("unknown field", b'{"Referrer": 1}', "application/json", 400, "field 'Referrer': unknown field"),
    ("missing field", b'{"State": "NJ"}', "application/json", 400, "missing field"),
    ("not utf-8", b"\xff\xfe", "text/csv", 400, "not UTF-8"),
    # Client mistakes that used to escape as 500s (and count toward green's error-rate alarm):
    ("5000-digit integer", b"[[" + b"1" * 5000 + b"]]", "application/json", 400, "malformed JSON"),
    ("nested 100000 deep", b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "nested too deeply"),
    (
        "integer beyond a double in a row",
        json.dumps([[10**400] * 69]).encode(),
        "application/json",
        400,
        "not a finite number",
    ),
    (
        "integer beyond a double in a record",
        b'{"Account Length": ' + b"9" * 400 + b"}",
        "application/json",
        400,
        "beyond a double's range",
    ),
    ("deep value in a record", b'{"State": ' + b"[" * 900 + b"]" * 900 + b"}", "application/json", 400, "record 0"),
    (
        "beyond float32, one row",
        b",".join([b"1"] * 68 + [b"1e39"]),
        "text/csv",
        400,
        "row 1, column 69: 1e+39 is beyond float32's range",
    ),
    (
        "beyond float32, five rows",
        b"\n".join([b",".join([b"1"] * 69)] * 4 + [b",".join([b"-1e300"] + [b"1"] * 68)]),
        "text/csv",
        400,
        "row 5, column 1",
    ),
    (
        "beyond float32 in json rows",
        json.dumps([[1e39] * 69] * 6).encode(),
        "application/json",
        400,
        "beyond float32's range",
    ),
]


@pytest.mark.parametrize(("case", "body", "ctype", "status", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_are_client_errors(
    served: tuple[LoadedModel, list[dict[str, object]]],
    case: str,
    body: bytes,
    ctype: str | None,
    status: int,
    message: str,
) -> None:
    model, _ = served
    with pytest.raises(InferenceError) as info:
        transform_fn(model, body, ctype, "application/json")
    assert info.value.status == status
    assert message in info.value.message


def test_values_beyond_float32_in_records_and_matrices_are_client_errors(
    served: tuple[LoadedModel, list[dict[str, object]]],
) -> None:
    model, records = served
    record = {**records[0], "Day Mins": -1e39}
    with pytest.raises(InferenceError) as info:
        transform_fn(model, json.dumps([record] * 6).encode(), "application/json", "text/csv")
    assert (
        info.value.status == 400
        and "record 0, field 'Day Mins': the value is beyond float32's range" in info.value.message
    )
    matrix = np.ones((5, model.schema.width), dtype=np.float32)
    matrix[3, 2] = np.inf
    with pytest.raises(InferenceError) as info:
        predict(matrix, model)
    assert info.value.status == 400 and "row 4, column 3" in info.value.message


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)),
    ctype=st.sampled_from(["text/csv", "application/json", "text/plain", ""]),
)
def test_arbitrary_bodies_never_raise_anything_but_a_client_error(
    served: tuple[LoadedModel, list[dict[str, object]]], body: bytes, ctype: str
) -> None:
    model, _ = served
    try:
        transform_fn(model, body, ctype, "application/json")
    except InferenceError as exc:
        assert 400 <= exc.status < 500
