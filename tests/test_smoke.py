"""The DeployDev smoke test: held-out rows through the endpoint must equal the archive's offline predictions."""

from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from safedeploy import constants as C
from safedeploy.errors import DeploymentError
from safedeploy.local import daemon
from safedeploy.pipeline import Pipeline
from safedeploy.runtime.paths import RuntimePaths
from safedeploy.runtime.state_file import read_state
from safedeploy.smoke import SmokeResult, held_out_rows, offline_predictions, smoke_test
from safedeploy.spec import ServingSpec, load_spec
from safedeploy.store import LocalArtifactStore, S3Uri
from tests.conftest import REPO_ROOT, churn_rows, write_table
from tests.serving import Live

ROWS = np.arange(12 * 3, dtype=np.float32).reshape(12, 3)
EXPECTED = np.linspace(0.1, 0.9, 12).astype(np.float32)


def _client() -> Any:
    return boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def _answer(stubber: Stubber, scores: list[float], expected_params: dict[str, Any] | None = None) -> None:
    body = "".join(f"{s!r}\n" for s in scores).encode()
    stubber.add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "text/csv"},
        expected_params,
    )


def _stub(answers: list[list[float]]) -> tuple[Any, Stubber]:
    client = _client()
    stubber = Stubber(client)
    for scores in answers:
        _answer(stubber, scores)
    return client, stubber


def _expected_batches(scores: np.ndarray) -> list[list[float]]:
    values = [float(v) for v in scores]
    return [values[:1], values[:10], values[10:]]  # the first row alone, then batches of 10


def test_equal_answers_pass_and_every_row_is_sent() -> None:
    client, stubber = _stub(_expected_batches(EXPECTED))
    with stubber:
        result = smoke_test(client, "churn-dev", ROWS, EXPECTED)
    stubber.assert_no_pending_responses()
    assert result.rows == 12 and result.requests == 3 and result.max_abs_error == 0.0


def test_a_difference_beyond_the_tolerance_fails_naming_the_row() -> None:
    answers = EXPECTED.astype(np.float64).copy()
    answers[7] += 1e-4
    client, stubber = _stub(_expected_batches(answers))
    with stubber, pytest.raises(DeploymentError, match=r"held-out row 7: .*1 of 12 rows differ"):
        smoke_test(client, "churn-dev", ROWS, EXPECTED)


def test_a_difference_within_the_tolerance_passes() -> None:
    answers = EXPECTED.astype(np.float64) + 5e-7
    client, stubber = _stub(_expected_batches(answers))
    with stubber:
        assert smoke_test(client, "churn-dev", ROWS, EXPECTED).max_abs_error == pytest.approx(5e-7, rel=0.5)


@pytest.mark.parametrize(("deviation", "passes"), [(1e-7, True), (9e-7, True), (1e-5, False), (2e-6, False)])
def test_the_default_tolerance_is_one_in_a_million(deviation: float, passes: bool) -> None:
    """Without a tolerance argument, and with the spec's default, 1e-6 is the limit (1e-5 fails, 1e-7 passes)."""
    assert ServingSpec().smoke_test_tolerance == 1e-6
    answers = EXPECTED.astype(np.float64).copy()
    answers[4] -= deviation
    runs: list[Callable[[Any], SmokeResult]] = [
        lambda client: smoke_test(client, "churn-dev", ROWS, EXPECTED),
        lambda client: smoke_test(client, "churn-dev", ROWS, EXPECTED, tolerance=ServingSpec().smoke_test_tolerance),
    ]
    for run in runs:
        client, stubber = _stub(_expected_batches(answers))
        with stubber:
            if passes:
                assert run(client).max_abs_error <= 1e-6
            else:
                with pytest.raises(DeploymentError, match=r"held-out row 4: .*> 1e-06\); 1 of 12 rows differ"):
                    run(client)


def test_a_difference_exactly_at_the_tolerance_passes() -> None:
    answers = EXPECTED.astype(np.float64).copy()
    answers[3] += 1e-6
    exact = float(abs(answers[3] - np.float64(EXPECTED[3])))  # the difference as the smoke test computes it
    client, stubber = _stub(_expected_batches(answers))
    with stubber:
        assert smoke_test(client, "churn-dev", ROWS, EXPECTED, tolerance=exact).max_abs_error == exact
    client, stubber = _stub(_expected_batches(answers))
    with stubber, pytest.raises(DeploymentError, match="held-out row 3"):
        smoke_test(client, "churn-dev", ROWS, EXPECTED, tolerance=np.nextafter(exact, 0.0))


def test_wrong_count_and_non_numeric_answers_fail() -> None:
    client, stubber = _stub([[0.1, 0.2]])
    with stubber, pytest.raises(DeploymentError, match="answered 2 scores for 1 rows"):
        smoke_test(client, "churn-dev", ROWS, EXPECTED)
    client = _client()
    stubber = Stubber(client)
    stubber.add_response(
        "invoke_endpoint", {"Body": StreamingBody(io.BytesIO(b"oops\n"), 5), "ContentType": "text/csv"}
    )
    with stubber, pytest.raises(DeploymentError, match="non-numeric"):
        smoke_test(client, "churn-dev", ROWS, EXPECTED)


def test_rows_go_as_csv_the_first_alone_then_in_batches_of_ten() -> None:
    client = _client()
    stubber = Stubber(client)
    for part, scores in zip((slice(0, 1), slice(0, 10), slice(10, 12)), _expected_batches(EXPECTED), strict=True):
        body = "\n".join(",".join(f"{v:.9g}" for v in row) for row in ROWS[part])
        params = {"EndpointName": "churn-dev", "ContentType": "text/csv", "Accept": "text/csv", "Body": body}
        _answer(stubber, scores, params)
    assert ROWS[1].tolist() == [3.0, 4.0, 5.0]  # the second request's second line is "3,4,5"
    with stubber:
        result = smoke_test(client, "churn-dev", ROWS, EXPECTED)
    stubber.assert_no_pending_responses()
    assert result.requests == 3 and 0.0 <= result.seconds < 60.0
    assert result.describe() == "smoke test: 12 held-out rows equal offline predictions (max |diff| 0)"


def test_the_failure_counts_only_rows_beyond_the_tolerance() -> None:
    answers = EXPECTED.astype(np.float64).copy()
    answers[3] += 1e-6
    answers[7] += 1e-3
    at_limit = float(abs(answers[3] - np.float64(EXPECTED[3])))
    client, stubber = _stub(_expected_batches(answers))
    with stubber, pytest.raises(DeploymentError, match=r"held-out row 7: .*; 1 of 12 rows differ$"):
        smoke_test(client, "churn-dev", ROWS, EXPECTED, tolerance=at_limit)


def test_a_short_answer_in_a_later_batch_names_that_batch_size() -> None:
    values = [float(v) for v in EXPECTED]
    client, stubber = _stub([values[:1], values[:10], values[10:11]])
    with stubber, pytest.raises(DeploymentError, match=r"^smoke test: churn-dev answered 1 scores for 2 rows$"):
        smoke_test(client, "churn-dev", ROWS, EXPECTED)


def test_non_numeric_answers_are_quoted_three_at_most() -> None:
    client = _client()
    stubber = Stubber(client)
    _answer(stubber, [float(EXPECTED[0])])
    body = b"oops\n" * 10
    stubber.add_response(
        "invoke_endpoint", {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "text/csv"}
    )
    with stubber, pytest.raises(DeploymentError) as failure:
        smoke_test(client, "churn-dev", ROWS, EXPECTED)
    assert str(failure.value) == "smoke test: churn-dev answered non-numeric scores: ['oops', 'oops', 'oops']"


def test_held_out_rows_are_the_first_test_rows_without_their_label(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "s3")
    store.put_bytes(S3Uri("b", "data/test/test.csv"), b"1,0.5,2.25,3\n0,1.5,0,7\n1,9,9,9\n")
    rows = held_out_rows(store, "s3://b/data/test", limit=2)
    assert rows.dtype == np.float32 and rows.tolist() == [[0.5, 2.25, 3.0], [1.5, 0.0, 7.0]]
    assert held_out_rows(store, "s3://b/data/test/", limit=10).shape == (3, 3)
    assert held_out_rows(store, "s3://b/data/test", limit=1).tolist() == [[0.5, 2.25, 3.0]]  # one row is still a table
    store.put_bytes(S3Uri("b", "empty/test.csv"), b"")
    with (
        pytest.warns(UserWarning, match="input contained no data"),
        pytest.raises(DeploymentError, match=r"the test split s3://b/empty/test\.csv is empty"),
    ):
        held_out_rows(store, "s3://b/empty", limit=5)


def _archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_offline_predictions_are_the_archived_boosters() -> None:
    import xgboost as xgb

    generator = np.random.default_rng(3)
    features = generator.normal(size=(200, 3)).astype(np.float32)
    booster = xgb.train(
        {"objective": "binary:logistic", "nthread": 1},
        xgb.DMatrix(features, label=(features[:, 0] > 0).astype(np.float32)),
        num_boost_round=5,
    )
    archive = _archive({"xgboost-model.json": bytes(booster.save_raw("json")), "other.txt": b"x"})
    predicted = offline_predictions(archive, features[:7])
    assert predicted.dtype == np.float32 and predicted.shape == (7,)
    assert np.array_equal(predicted, booster.inplace_predict(features[:7]).astype(np.float32))
    with pytest.raises(DeploymentError, match=r"the model archive has no xgboost-model\.json"):
        offline_predictions(_archive({"other.txt": b"x"}), features)
    directory = io.BytesIO()
    with tarfile.open(fileobj=directory, mode="w:gz") as tar:
        entry = tarfile.TarInfo("xgboost-model.json")
        entry.type = tarfile.DIRTYPE
        tar.addfile(entry)
    with pytest.raises(DeploymentError, match=r"the model archive has no xgboost-model\.json"):
        offline_predictions(directory.getvalue(), features)


def test_a_model_error_fails_the_smoke_test() -> None:
    client = _client()
    stubber = Stubber(client)
    stubber.add_client_error("invoke_endpoint", "ModelError", "Received server error (500)", 424)
    with stubber, pytest.raises(DeploymentError, match="refused held-out rows 0-1"):
        smoke_test(client, "churn-dev", ROWS, EXPECTED)


def test_live_deploy_dev_ran_the_smoke_test(live: Live) -> None:
    execution_dir = live.state_dir / "executions"
    records = sorted(execution_dir.rglob("*.json"))
    assert records
    from safedeploy.runner import PipelineExecution

    stage = PipelineExecution.model_validate_json(records[-1].read_text()).stage(C.STAGE_DEPLOY_DEV)
    assert stage.outputs["smoke_test"]["rows"] == 50
    assert stage.outputs["smoke_test"]["max_abs_error"] <= 1e-6
    assert "held-out rows equal offline predictions" in stage.summary


@pytest.mark.slow
def test_endpoint_code_that_disagrees_with_the_archive_fails_deploy_dev(tmp_path: Path) -> None:
    """Serving code that changes the scores (train/serve skew) is caught before the REST API moves."""
    source = tmp_path / "model"
    shutil.copytree(REPO_ROOT / "model", source, ignore=shutil.ignore_patterns("__pycache__"))
    inference = source / "inference.py"
    text = inference.read_text()
    assert "    return model.predict(matrix)\n" in text
    inference.write_text(
        text.replace("    return model.predict(matrix)\n", "    return model.predict(matrix) * 0.99\n")
    )
    state = tmp_path / "state"
    spec = load_spec(
        overrides={
            "state_dir": str(state),
            "data": {"source": str(write_table(tmp_path / "churn.csv", churn_rows(800, seed=5)))},
            "training": {"source_dir": str(source)},
            "hyperparameters": {"num_round": 60},
            "gate": {"conditions": [{"metric": "test:auc", "op": ">=", "threshold": 0.5}]},
            "serving": {"enabled": True},
        }
    )
    try:
        execution = Pipeline(spec, project_root=REPO_ROOT).run()
        assert execution.status == "Failed"
        stage = execution.stage(C.STAGE_DEPLOY_DEV)
        assert stage.status == "Failed" and stage.error is not None
        assert "smoke test" in stage.error and "differs from the offline predictions" in stage.error
        info = daemon.read_info(RuntimePaths(state))
        assert info is not None
        state_file = LocalArtifactStore(state / "s3")  # the REST API was never pointed at the bad endpoint
        assert state_file.head(S3Uri.parse(execution.stage("Train").outputs["model_data_url"])) is not None

        assert not read_state(RuntimePaths(state).state).Routes  # neither API was published
    finally:
        daemon.stop(state)


def test_the_source_archive_serves_on_its_own(live: Live, tmp_path: Path) -> None:
    """The handler code in sourcedir.tar.gz needs nothing from this checkout (as in SageMaker's container)."""
    import subprocess
    import sys

    from safedeploy.archives import unpack

    store = LocalArtifactStore(live.state_dir / "s3")
    unpack(store.get_bytes(S3Uri.parse(live.source_uri)), tmp_path / "code")
    unpack(store.get_bytes(S3Uri.parse(live.model_data_url)), tmp_path / "model")
    assert {"inference.py", "features.py", "tree_ensemble.py", "train.py"} <= {
        p.name for p in (tmp_path / "code").iterdir()
    }
    script = (
        "import sys\n"
        "sys.modules['safedeploy'] = None; sys.modules['model'] = None  # the checkout is out of reach\n"
        f"sys.path.insert(0, {str(tmp_path / 'code')!r})\n"
        "import inference\n"
        f"m = inference.model_fn({str(tmp_path / 'model')!r})\n"
        "print(type(m.schema).__module__, type(m.fast).__module__)\n"
        f"print(inference.transform_fn(m, {live.csv_rows[0]!r}, 'text/csv', 'text/csv')[0].decode())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    modules, score = result.stdout.split("\n")[:2]
    assert modules == "features tree_ensemble"
    assert 0.0 < float(score) < 1.0
