"""The quality gate compares with production: a candidate worse than the version serving production, on the same
held-out rows, is refused naming both values; locally, in the training job and in the Step Functions gate."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from safedeploy.cloudformation import quality_gate
from safedeploy.cloudformation.stacks import render_stacks
from safedeploy.data.prepare import prepare_dataset
from safedeploy.errors import GateFailedError
from safedeploy.features import FeatureAlignmentError, FeatureSchema, align_columns
from safedeploy.sagemaker_requests.training import production_metrics, training_job_request
from safedeploy.spec import GateSpec, PipelineSpec
from safedeploy.store import LocalArtifactStore, S3Uri
from safedeploy.training.gate import ProductionComparison, compare_with_production
from safedeploy.training.production import Production
from tests.conftest import REPO_ROOT
from tests.test_templates import KMS_ARN, _described, _run_gate, build_context, fixture_spec

TRAIN = REPO_ROOT / "model" / "train.py"


# --- the comparison -----------------------------------------------------------------------------------------------


def test_a_worse_candidate_is_refused_naming_both_values() -> None:
    with pytest.raises(GateFailedError) as info:
        compare_with_production(GateSpec(), {"test:auc": 0.8712}, {"test:auc": 0.9263}, 3, 750)
    assert str(info.value) == (
        "quality gate failed: test:auc 0.8712 is below production v3's 0.9263 on the same 750 held-out rows "
        "(tolerance 0.005); the model was not registered"
    )


@pytest.mark.parametrize(("candidate", "passed"), [(0.9263, True), (0.9214, True), (0.9212, False), (0.95, True)])
def test_an_equal_candidate_passes_within_the_tolerance(candidate: float, passed: bool) -> None:
    gate = GateSpec(production_tolerance=0.005)
    if passed:
        comparison = compare_with_production(gate, {"test:auc": candidate}, {"test:auc": 0.9263}, 3, 750)
        assert comparison.describe() == f"test:auc {candidate:.4f} vs production v3 0.9263"
    else:
        with pytest.raises(GateFailedError, match=r"below production v3's 0\.9263"):
            compare_with_production(gate, {"test:auc": candidate}, {"test:auc": 0.9263}, 3, 750)


def test_an_unmeasured_production_fails_rather_than_passing_silently() -> None:
    with pytest.raises(GateFailedError, match="test:auc of production v2 was not measured"):
        compare_with_production(GateSpec(), {"test:auc": 0.93}, {}, 2, 750)


def test_the_tolerance_is_typed_and_bounded() -> None:
    assert GateSpec().production_tolerance == 0.005 and GateSpec().compare_with_production is True
    with pytest.raises(ValueError, match="production_tolerance"):
        GateSpec(production_tolerance=-0.1)
    with pytest.raises(ValueError, match="production_tolerance"):
        GateSpec.model_validate({"production_tolerance": "a lot"})


# --- column alignment (shared by model/train.py and the Train stage) ------------------------------------------------


def _schema(states: tuple[str, ...], numeric: tuple[str, ...] = ("Day Mins", "Eve Mins")) -> FeatureSchema:
    return FeatureSchema(numeric=numeric, categorical=(("State", states),))


def test_alignment_zeroes_a_missing_one_hot_column_and_ignores_an_unknown_one() -> None:
    rows_schema = _schema(("NJ", "TX"))  # the candidate's data: no CA, but TX
    production = _schema(("CA", "NJ"))  # production knows CA, never saw TX
    rows = np.array([[1.0, 2.0, 1.0, 0.0], [3.0, 4.0, 0.0, 1.0]])
    aligned = align_columns(rows, rows_schema.features, production)
    assert production.features == ["Day Mins", "Eve Mins", "State_CA", "State_NJ"]
    assert aligned.tolist() == [[1.0, 2.0, 0.0, 1.0], [3.0, 4.0, 0.0, 0.0]]


def test_alignment_reorders_by_name() -> None:
    have = ["State_NJ", "Eve Mins", "Day Mins"]
    aligned = align_columns(np.array([[1.0, 2.0, 3.0]]), have, _schema(("NJ",)))
    assert aligned.tolist() == [[3.0, 2.0, 1.0]]


def test_alignment_refuses_a_missing_numeric_feature_naming_it() -> None:
    rows = np.array([[1.0, 1.0]])
    with pytest.raises(FeatureAlignmentError, match="'Eve Mins'"):
        align_columns(rows, ["Day Mins", "State_NJ"], _schema(("NJ",)))
    with pytest.raises(FeatureAlignmentError, match="3 feature names"):
        align_columns(rows, ["Day Mins", "Eve Mins", "State_NJ"], _schema(("NJ",)))


# --- the training job measures production on its own test channel ------------------------------------------------


def test_the_request_gets_a_production_channel_and_its_metrics(make_spec: Callable[..., PipelineSpec]) -> None:
    spec = make_spec()
    common: dict[str, Any] = {
        "job_name": "j",
        "input_data": {"TrainingUri": "s3://b/t/", "ValidationUri": "s3://b/v/", "TestUri": "s3://b/x/"},
        "hyperparameters": {},
        "output_prefix": S3Uri("b", "out"),
        "image_uri": "img",
    }
    without = training_job_request(spec, **common)
    uri = "s3://b/customerchurn/training-jobs/j0/output/model.tar.gz"
    with_production = training_job_request(spec, **common, production_model_uri=uri)
    assert [c["ChannelName"] for c in without["InputDataConfig"]] == ["train", "validation", "test"]
    [channel] = [c for c in with_production["InputDataConfig"] if c["ChannelName"] == "production"]
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == uri
    names = {d["Name"] for d in with_production["AlgorithmSpecification"]["MetricDefinitions"]}
    assert set(production_metrics()) <= names
    assert not set(production_metrics()) & {d["Name"] for d in without["AlgorithmSpecification"]["MetricDefinitions"]}


def _train(tmp_path: Path, channels: dict[str, Path], out: str, production: Path | None) -> tuple[int, str, Path]:
    env = {
        "PATH": "/usr/bin:/bin",
        "SM_CHANNEL_TRAIN": str(channels["train"]),
        "SM_CHANNEL_VALIDATION": str(channels["validation"]),
        "SM_CHANNEL_TEST": str(channels["test"]),
        "SM_MODEL_DIR": str(tmp_path / out / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / out / "output" / "data"),
        "SM_OUTPUT_DIR": str(tmp_path / out / "output"),
        "SM_HPS": json.dumps({"max_depth": "3", "num_round": "60", "early_stopping_rounds": "10"}),
        "SAGEMAKER_BASE_DIR": str(tmp_path / "nonexistent-opt-ml"),
    }
    if production is not None:
        env["SM_CHANNEL_PRODUCTION"] = str(production)
    proc = subprocess.run(
        [sys.executable, str(TRAIN)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    return proc.returncode, proc.stdout + proc.stderr, tmp_path / out


def _archive(model_dir: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    with tarfile.open(target / "model.tar.gz", "w:gz") as archive:
        for path in sorted(model_dir.iterdir()):
            archive.add(path, arcname=path.name)
    return target


@pytest.mark.slow
def test_the_job_scores_production_on_the_same_test_rows(tmp_path: Path, channels: dict[str, Path]) -> None:
    code, log, first = _train(tmp_path, channels, "first", None)
    assert code == 0, log
    production = _archive(first / "model", tmp_path / "production")
    code, log, second = _train(tmp_path, channels, "second", production)
    assert code == 0, log
    report = json.loads((second / "output" / "data" / "metrics.json").read_text())
    metrics = report["metrics"]
    # the same data and hyperparameters train the same model: production's score on the rows is the candidate's
    assert metrics["production:test:auc"] == metrics["test:auc"]
    assert (
        report["production"]["test"]["binary_classification_metrics"]["rows"]
        == report["test"]["binary_classification_metrics"]["rows"]
    )
    assert "#metric production:test:auc=" in log


@pytest.mark.slow
def test_a_hostile_production_archive_is_refused_without_extracting(tmp_path: Path, channels: dict[str, Path]) -> None:
    channel = tmp_path / "production"
    channel.mkdir()
    with tarfile.open(channel / "model.tar.gz", "w:gz") as archive:
        link = tarfile.TarInfo("xgboost-model.json")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
        schema = b"{}"
        info = tarfile.TarInfo("feature-schema.json")
        info.size = len(schema)
        archive.addfile(info, io.BytesIO(schema))
    code, _, out = _train(tmp_path, channels, "job", channel)
    assert code == 1
    failure = (out / "output" / "failure").read_text()
    assert failure == "the production model archive's xgboost-model.json is not a regular file of sane size"
    assert not (out / "model").exists()


@pytest.fixture
def channels(tmp_path: Path, churn_csv: Path, make_spec: Callable[..., PipelineSpec]) -> dict[str, Path]:
    """Prepared train/validation/test channel directories, as SageMaker would download them."""
    store = LocalArtifactStore(tmp_path / "s3")
    prepared = prepare_dataset(make_spec(), store, churn_csv)
    out = {}
    for name, key in (("train", "TrainingUri"), ("validation", "ValidationUri"), ("test", "TestUri")):
        prefix = S3Uri.parse(prepared.input_data[key])
        for ref in store.list_objects(prefix):
            uri = S3Uri.parse(ref.uri)
            store.download(uri, tmp_path / "channels" / name / Path(uri.key).name)
        out[name] = tmp_path / "channels" / name
    return out


# --- the Step Functions gate, rendered from the same spec ----------------------------------------------------------


def _definition_with(tmp_path: Path, production: Production | None, **overrides: Any) -> dict[str, Any]:
    ctx = dataclasses.replace(build_context(tmp_path, fixture_spec(**overrides)), production=production)
    definition: dict[str, Any] = render_stacks(ctx, KMS_ARN)["training-job"].template["Resources"]["StateMachine"][
        "Properties"
    ]["Definition"]
    return definition


@pytest.fixture
def jsonata() -> Callable[[str, dict[str, Any]], Any]:
    """Evaluate a state's JSONata as Step Functions does (jsonata-python)."""
    module = pytest.importorskip("jsonata", reason="jsonata-python is not installed: JSONata checked structurally")

    def evaluate(expression: str, states: dict[str, Any]) -> Any:
        assert expression.startswith("{%") and expression.endswith("%}"), expression
        compiled = module.Jsonata(expression[2:-2].strip())
        compiled.register_lambda("parse", json.loads)
        return compiled.evaluate(None, {"states": states})

    return evaluate


PRODUCTION = Production(3, "s3://customerchurn-dev-artifacts-123456789012-us-east-1/customerchurn/x/model.tar.gz", "")


def test_the_aws_gate_compares_with_production_as_the_local_gate_does(
    tmp_path: Path, jsonata: Callable[[str, dict[str, Any]], Any]
) -> None:
    definition = _definition_with(tmp_path, PRODUCTION)
    states = definition["States"]
    assert states["Gate1"]["Choices"][0]["Next"] == quality_gate.COMPARE_STATE
    assert states[quality_gate.COMPARE_STATE]["Choices"][0] == {
        "Condition": '{% $lookup($states.input.Metrics, "test:auc") >= '
        '$lookup($states.input.Metrics, "production:test:auc") - 0.005 %}',
        "Next": "SuggestBaselines",
    }
    channels = [c["ChannelName"] for c in states["TrainModel"]["Arguments"]["InputDataConfig"]]
    assert channels[-1] == "production"

    state, cause = _run_gate(definition, _described(**{"test:auc": 0.9212, "production:test:auc": 0.9263}), jsonata)
    assert state == quality_gate.COMPARE_FAILED
    assert cause == ProductionComparison(3, 0.9212, 0.9263, 0.005).failure()
    assert cause == (
        "quality gate failed: test:auc 0.9212 is below production v3's 0.9263 on the same held-out rows "
        "(tolerance 0.005); the model was not registered"
    )
    state, _ = _run_gate(definition, _described(**{"test:auc": 0.9263, "production:test:auc": 0.9263}), jsonata)
    assert state == "SuggestBaselines"
    state, _ = _run_gate(definition, _described(**{"test:auc": 0.9214, "production:test:auc": 0.9263}), jsonata)
    assert state == "SuggestBaselines"
    # an absolute failure still comes first, and an unmeasured production is named, never passed
    state, _ = _run_gate(definition, _described(**{"test:auc": 0.85, "production:test:auc": 0.84}), jsonata)
    assert state == "Gate1Failed"
    state, cause = _run_gate(definition, _described(**{"test:auc": 0.95}), jsonata)
    assert state == quality_gate.NOT_REPORTED and "production:test:auc not reported" in cause


def test_the_aws_gate_follows_the_spec_tolerance_and_switch(tmp_path: Path) -> None:
    loose = _definition_with(tmp_path / "a", PRODUCTION, **{"gate.production_tolerance": 0.02})
    assert loose["States"][quality_gate.COMPARE_STATE]["Choices"][0]["Condition"].endswith("- 0.02 %}")
    off = _definition_with(tmp_path / "b", PRODUCTION, **{"gate.compare_with_production": False})
    assert quality_gate.COMPARE_STATE not in off["States"]
    assert "production" not in [c["ChannelName"] for c in off["States"]["TrainModel"]["Arguments"]["InputDataConfig"]]
    first = _definition_with(tmp_path / "c", None)  # no production yet: the absolute gate only
    assert quality_gate.COMPARE_STATE not in first["States"]
    assert first["States"]["Gate1"]["Choices"][0]["Next"] == "SuggestBaselines"
