"""Duplicate versions on AWS: ``model/run.py`` reuses the registered version with identical training inputs.

The whole build path against moto (S3, KMS, SSM, SageMaker Model Registry): the first build trains (normal
variant) and the state machine would register; a version registered the way the state machine does it (its
``InputsSha256``, ``TrainingJobName``, ``PipelineExecutionId``, metrics); the next build with the same inputs
renders the reuse variant (no training, baseline or registration task; it publishes the existing version for this
execution), exports ``VERSION_SERVES_PRODUCTION`` for the pipeline's skip conditions, and a changed hyperparameter
trains again.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.aws.registry import AwsModelRegistry, published_version, record_decision, version_of_execution
from safedeploy.cloudformation import training_job as T
from safedeploy.cloudformation.reuse import why_not_reusable
from safedeploy.errors import RegistryError
from safedeploy.registry import ModelPackage
from safedeploy.spec import PipelineSpec, load_spec
from safedeploy.training.production import Production
from tests.conftest import REPO_ROOT
from tests.test_run_py import REVISION, _vendor
from tests.test_templates import ACCOUNT, STARTED, write_contract

FIRST, SECOND, THIRD, FOURTH = (f"{n}1234567-89ab-cdef-0123-456789abcdef" for n in "abcd")
TASKS = (T.TRAINING_TASK, T.PROCESSING_TASK, T.REGISTER_TASK)


@pytest.fixture(scope="module")
def run_py() -> ModuleType:
    spec = importlib.util.spec_from_file_location("model_run", REPO_ROOT / "model" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto's account: the artifact bucket, the pipeline key (alias) and the model's registry group."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SAFEDEPLOY_ACCOUNT_ID": ACCOUNT,
        "CODEBUILD_RESOLVED_SOURCE_VERSION": REVISION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        spec = load_spec()
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=naming.artifact_bucket(spec))
        kms = boto3.client("kms", region_name="us-east-1")
        key = kms.create_key(Description="pipeline key")["KeyMetadata"]
        kms.create_alias(AliasName=naming.kms_alias(spec), TargetKeyId=key["KeyId"])
        sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        sagemaker.create_model_package_group(ModelPackageGroupName=naming.model_package_group(spec))
        yield {"spec": spec, "s3": s3, "sagemaker": sagemaker, "ssm": boto3.client("ssm", region_name="us-east-1")}


def _build(run_py: ModuleType, tmp_path: Path, contract: Path, execution: str) -> tuple[dict[str, Any], str, Path]:
    """One build in CodeBuild's shape (boto3 clients of its own: the real look-ups): the templates and output."""
    out = tmp_path / execution
    vendor = tmp_path / "vendor"
    vendor = vendor if vendor.is_dir() else _vendor(vendor)
    status = run_py.main(
        ["--data-source", str(contract), "--out", str(out), "--vendor", str(vendor)],
        environ={"PIPELINE_EXECUTION_ID": execution},
        now=lambda: STARTED,
    )
    assert status == 0
    stacks = {kind: json.loads((out / f"{kind}.template.json").read_text()) for kind in naming.STACK_KINDS}
    return stacks, str(out), out / run_py.VARIABLES_FILE


def _register_as_the_state_machine_does(aws: dict[str, Any], training: dict[str, Any], digest: str) -> int:
    """What ``RegisterModel`` records (the metrics passing the spec's gate); the archive the job would write."""
    spec: PipelineSpec = aws["spec"]
    outputs = {name: output["Value"] for name, output in training["Outputs"].items()}
    metrics = {f"metric:{c.metric}": str(c.threshold + (0.03 if c.op == ">=" else -0.03)) for c in spec.gate.conditions}
    arn = aws["sagemaker"].create_model_package(
        ModelPackageGroupName=naming.model_package_group(spec),
        ModelApprovalStatus=C.APPROVAL_PENDING,
        InferenceSpecification={
            "Containers": [{"Image": "xgb:3.0-5", "ModelDataUrl": outputs["ModelDataUrl"]}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        CustomerMetadataProperties={
            "InputsSha256": digest,
            "TrainingJobName": outputs["TrainingJobName"],
            "PipelineExecutionId": FIRST,
            **metrics,
        },
    )["ModelPackageArn"]
    bucket, key = outputs["ModelDataUrl"].removeprefix("s3://").split("/", 1)
    aws["s3"].put_object(Bucket=bucket, Key=key, Body=b"model.tar.gz")
    return int(arn.rsplit("/", 1)[1])


def _states(template: dict[str, Any]) -> dict[str, Any]:
    states: dict[str, Any] = template["Resources"]["StateMachine"]["Properties"]["Definition"]["States"]
    return states


def _digest(printed: str) -> str:
    (digest,) = re.findall(r"^training inputs ([0-9a-f]{64})$", printed, re.MULTILINE)
    return str(digest)


def test_identical_inputs_reuse_the_registered_version_and_a_changed_hyperparameter_trains(
    run_py: ModuleType, aws: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec: PipelineSpec = aws["spec"]
    contract = write_contract(tmp_path / "DataSourceOutput", spec)

    # 1. Nothing registered: the normal variant trains, baselines and registers; nothing to skip.
    first, _, variables = _build(run_py, tmp_path, contract, FIRST)
    printed = capsys.readouterr().out
    assert "no registered version has them, training" in printed
    assert {T.TRAIN_STATE, T.REGISTER_STATE, T.BASELINES_STATE} <= set(_states(first["training-job"]))
    assert variables.read_text() == "export REUSED_MODEL_VERSION=none\nexport VERSION_SERVES_PRODUCTION=false\n"
    digest = _digest(printed)
    version = _register_as_the_state_machine_does(aws, first["training-job"], digest)

    # 2. The same inputs again: the reuse variant, publishing the existing version for this execution.
    second, _, variables = _build(run_py, tmp_path, contract, SECOND)
    printed = capsys.readouterr().out
    said = f"identical inputs to v{version}: reusing v{version}, no new version"
    assert said in printed and _digest(printed) == digest
    assert not any(line.startswith("uploaded") and "/source/" in line for line in printed.splitlines())
    training = second["training-job"]
    states = _states(training)
    assert not {T.TRAIN_STATE, T.REGISTER_STATE, T.BASELINES_STATE} & set(states)
    assert not {state.get("Resource") for state in states.values()} & set(TASKS)  # no job, no package
    reuse = states[T.REUSE_STATE]
    assert reuse["Type"] == "Pass" and reuse["Output"]["ModelPackageVersion"] == str(version)
    publish = states[T.PUBLISH_STATE]["Arguments"]
    assert publish["Name"] == naming.model_version_parameter(spec, SECOND)  # this execution's: the deploy stacks'
    assert publish["Value"] == "{% $states.input.ModelPackageVersion %}"
    assert training["Outputs"]["Summary"]["Value"] == said
    assert training["Outputs"]["ReusedModelVersion"]["Value"] == str(version)
    assert training["Outputs"]["ModelDataUrl"]["Value"] == first["training-job"]["Outputs"]["ModelDataUrl"]["Value"]
    # the deploy stacks serve the reused version's archive and the baselines its execution wrote
    model_data_url = first["training-job"]["Outputs"]["ModelDataUrl"]["Value"]
    assert model_data_url in json.dumps(second["deploy-dev"]) and model_data_url in json.dumps(second["deploy-prd"])
    baseline = str(naming.execution_baseline_prefix(spec, FIRST))
    assert baseline in json.dumps(second["deploy-prd"])
    assert str(naming.execution_baseline_prefix(spec, SECOND)) + "/data" not in json.dumps(second["deploy-prd"])
    assert variables.read_text() == (f"export REUSED_MODEL_VERSION={version}\nexport VERSION_SERVES_PRODUCTION=false\n")

    # 3. Once production serves it: the same reuse, and the approval and DeployPrd are to be skipped.
    aws["ssm"].put_parameter(
        Name=naming.production_endpoint_parameter(spec),
        Value=naming.green_endpoint_name(spec, version, SECOND),
        Type="String",
    )
    third, _, variables = _build(run_py, tmp_path, contract, THIRD)
    printed = capsys.readouterr().out
    assert f"{said} (it already serves production)" in printed
    assert T.REUSE_STATE in _states(third["training-job"])
    assert variables.read_text() == f"export REUSED_MODEL_VERSION={version}\nexport VERSION_SERVES_PRODUCTION=true\n"

    # 4. One hyperparameter changed: other inputs, the normal variant trains a new version.
    hyperparameters = json.loads((contract / C.HYPERPARAMETERS_FILE).read_text())
    hyperparameters["max_depth"] = str(int(hyperparameters.get("max_depth", "5")) + 1)
    (contract / C.HYPERPARAMETERS_FILE).write_text(json.dumps(hyperparameters))
    fourth, _, variables = _build(run_py, tmp_path, contract, FOURTH)
    printed = capsys.readouterr().out
    assert _digest(printed) != digest and "no registered version has them, training" in printed
    assert {T.TRAIN_STATE, T.REGISTER_STATE} <= set(_states(fourth["training-job"]))
    assert variables.read_text() == "export REUSED_MODEL_VERSION=none\nexport VERSION_SERVES_PRODUCTION=false\n"


def test_a_version_compared_with_another_production_or_without_its_archive_trains_anew(
    run_py: ModuleType, aws: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec: PipelineSpec = aws["spec"]
    contract = write_contract(tmp_path / "DataSourceOutput", spec)
    first, _, _ = _build(run_py, tmp_path, contract, FIRST)
    digest = _digest(capsys.readouterr().out)
    version = _register_as_the_state_machine_does(aws, first["training-job"], digest)
    # production serves another version, which v1 was never compared with: the comparison must be measured
    other = _register_as_the_state_machine_does(aws, first["training-job"], "0" * 64)
    aws["ssm"].put_parameter(
        Name=naming.production_endpoint_parameter(spec),
        Value=naming.green_endpoint_name(spec, other, FIRST),
        Type="String",
    )
    second, _, variables = _build(run_py, tmp_path, contract, SECOND)
    printed = capsys.readouterr().out
    assert f"identical inputs to v{version}, but v{version} was compared with production nothing" in printed
    assert f"production now serves v{other}: the comparison must be measured: training anew" in printed
    assert T.TRAIN_STATE in _states(second["training-job"])
    assert "REUSED_MODEL_VERSION=none" in variables.read_text()

    # its model archive gone (production none again): nothing to serve, so it trains
    aws["ssm"].put_parameter(Name=naming.production_endpoint_parameter(spec), Value="none", Overwrite=True)
    url = first["training-job"]["Outputs"]["ModelDataUrl"]["Value"]
    bucket, key = url.removeprefix("s3://").split("/", 1)
    aws["s3"].delete_object(Bucket=bucket, Key=key)
    third, _, _ = _build(run_py, tmp_path, contract, THIRD)
    assert f"v{version}'s model archive {url} is gone: training anew" in capsys.readouterr().out
    assert T.TRAIN_STATE in _states(third["training-job"])


def test_the_approval_of_a_reusing_execution_is_recorded_on_the_reused_version(aws: dict[str, Any]) -> None:
    """No version carries the reusing execution's id: its published ``model-version`` parameter names the version."""
    spec: PipelineSpec = aws["spec"]
    registry = AwsModelRegistry(aws["sagemaker"], "us-east-1", ACCOUNT)
    group = naming.model_package_group(spec)
    archive = f"s3://{naming.artifact_bucket(spec)}/customerchurn/training-jobs/j/output/model.tar.gz"
    training = {"Outputs": {"ModelDataUrl": {"Value": archive}, "TrainingJobName": {"Value": "j"}}}
    version = _register_as_the_state_machine_does(aws, training, "ab" * 32)  # registered by FIRST
    with pytest.raises(RegistryError, match=f"was registered by execution {SECOND}"):
        version_of_execution(registry, group, SECOND)

    def published(execution: str) -> int | None:
        return published_version(aws["ssm"], spec, execution)

    assert published(SECOND) is None  # not published (yet): still unknown
    with pytest.raises(RegistryError):
        version_of_execution(registry, group, SECOND, published)
    # what the reuse variant's PublishModelVersion writes
    aws["ssm"].put_parameter(Name=naming.model_version_parameter(spec, SECOND), Value=str(version), Type="String")
    decided = record_decision(
        registry,
        group,
        SECOND,
        approved=True,
        by="arn:aws:iam::123456789012:user/reviewer",
        comment="same model, smoke test clean",
        dev_endpoint=naming.endpoint_name(spec, C.DEV_STAGE),
        dev_since=None,
        published=published,
    )
    assert (decided.ModelPackageVersion, decided.ModelApprovalStatus) == (version, C.APPROVAL_APPROVED)


class _Archives:
    """Every archive exists (``head_object`` answers)."""

    def head_object(self, **_: str) -> dict[str, Any]:
        return {}


def test_a_tightened_gate_trains_anew_unless_production_already_serves_the_version() -> None:
    spec = load_spec().model_copy(deep=True)
    package = ModelPackage(
        ModelPackageGroupName="customerchurn",
        ModelPackageVersion=4,
        ModelPackageArn=f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/customerchurn/4",
        ModelApprovalStatus=C.APPROVAL_APPROVED,
        CreationTime=STARTED,
        LastModifiedTime=STARTED,
        ModelDataUrl="s3://bucket/customerchurn/training-jobs/j/output/model.tar.gz",
        FrameworkVersion="3.0-5",
        Hyperparameters={},
        Metrics={c.metric: c.threshold for c in spec.gate.conditions},  # exactly at the thresholds: passes
        CustomerMetadataProperties={"TrainingJobName": "j", "PipelineExecutionId": FIRST, "InputsSha256": "ab" * 32},
    )
    archives: Any = _Archives()
    assert why_not_reusable(spec, package, None, archives) is None
    tightened = spec.model_copy(
        update={
            "gate": spec.gate.model_copy(
                update={
                    "conditions": [
                        c.model_copy(update={"threshold": c.threshold + (0.01 if c.op == ">=" else -0.01)})
                        for c in spec.gate.conditions
                    ]
                }
            )
        }
    )
    assert "recorded metrics no longer pass the gate" in (why_not_reusable(tightened, package, None, archives) or "")
    serving = Production(4, package.ModelDataUrl, "")
    assert why_not_reusable(tightened, package, serving, archives) is None  # as locally: nothing to gate
    compared = package.model_copy(
        update={
            "CustomerMetadataProperties": {**package.CustomerMetadataProperties, "ComparedWithProductionVersion": "2"}
        }
    )
    assert why_not_reusable(spec, compared, Production(2, "s3://bucket/v2.tar.gz", ""), archives) is None
    assert "production now serves v3" in (
        why_not_reusable(spec, compared, Production(3, "s3://b/v3", ""), archives) or ""
    )


def test_an_unreadable_production_fails_the_build_only_when_the_gate_compares(
    run_py: ModuleType,
    aws: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec: PipelineSpec = aws["spec"]
    contract = write_contract(tmp_path / "DataSourceOutput", spec)
    aws["ssm"].put_parameter(Name=naming.production_endpoint_parameter(spec), Value="not-an-endpoint", Type="String")
    arguments = [
        "--data-source",
        str(contract),
        "--out",
        str(tmp_path / "out"),
        "--vendor",
        str(_vendor(tmp_path / "v")),
    ]
    assert run_py.main(arguments, environ={"PIPELINE_EXECUTION_ID": FIRST}, now=lambda: STARTED) == 1
    assert "which is not a production endpoint" in capsys.readouterr().err
    monkeypatch.setenv("SAFEDEPLOY_GATE__COMPARE_WITH_PRODUCTION", "false")
    assert run_py.main(arguments, environ={"PIPELINE_EXECUTION_ID": FIRST}, now=lambda: STARTED) == 0
    printed = capsys.readouterr().out
    assert "production: unknown (" in printed and "VERSION_SERVES_PRODUCTION=false" in printed
