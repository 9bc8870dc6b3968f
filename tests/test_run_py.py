"""model/run.py end to end, offline: moto for S3 and KMS, botocore's Stubber for CodePipeline (moto has no
GetPipelineState)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from safedeploy import naming
from safedeploy.shipping import analyzer_files, analyzer_prefix
from safedeploy.spec import load_spec
from tests.conftest import REPO_ROOT
from tests.test_templates import ACCOUNT, EXECUTION_ID, STARTED, write_contract

KINDS = naming.STACK_KINDS
OUTPUTS = sorted(f"{kind}.{suffix}.json" for kind in KINDS for suffix in ("template", "config"))
REVISION = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"


@pytest.fixture(scope="module")
def run_py() -> ModuleType:
    spec = importlib.util.spec_from_file_location("model_run", REPO_ROOT / "model" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Apis:
    """The clients a build uses: moto's S3 and KMS, a stubbed CodePipeline."""

    def __init__(self, codepipeline: Any) -> None:
        self.s3 = boto3.client("s3", region_name="us-east-1")
        self.kms = boto3.client("kms", region_name="us-east-1")
        self.codepipeline = codepipeline


class NoAws:
    """Fails the test on any client access: the build must not reach AWS."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the build used the {name} client")


def _pipeline_state(build_status: str, execution_id: str = EXECUTION_ID) -> dict[str, Any]:
    return {
        "pipelineName": "customerchurn-dev",
        "stageStates": [
            {"stageName": "Source", "latestExecution": {"pipelineExecutionId": execution_id, "status": "Succeeded"}},
            {"stageName": "Build", "latestExecution": {"pipelineExecutionId": execution_id, "status": build_status}},
        ],
    }


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto's account with the base infrastructure's artifact bucket and KMS key (alias) of the spec."""
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
        yield {"spec": spec, "s3": s3, "key_arn": key["Arn"]}


def _objects(s3: Any, bucket: str) -> dict[str, dict[str, Any]]:
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: item for item in listed}


def test_builds_uploads_and_writes_every_stack(
    run_py: ModuleType, aws: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, s3 = aws["spec"], aws["s3"]
    contract = write_contract(tmp_path / "DataSourceOutput", spec)
    codepipeline = boto3.client("codepipeline", region_name="us-east-1")
    out = tmp_path / "templates"
    vendor = _vendor(tmp_path / "vendor")
    with Stubber(codepipeline) as stubber:
        stubber.add_response("get_pipeline_state", _pipeline_state("InProgress"), {"name": "customerchurn-dev"})
        status = run_py.main(
            ["--out", str(out), "--vendor", str(vendor)],
            apis=Apis(codepipeline),
            environ={"CODEBUILD_SRC_DIR_DataSourceOutput": str(contract)},
            now=lambda: STARTED,
        )
        stubber.assert_no_pending_responses()
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, run_py.VARIABLES_FILE])

    bucket = naming.artifact_bucket(spec)
    objects = _objects(s3, bucket)
    lambda_keys = [key for key in objects if key.startswith("customerchurn/lambda/")]
    assert len(lambda_keys) == 1
    body = s3.get_object(Bucket=bucket, Key=lambda_keys[0])
    content = body["Body"].read()
    assert lambda_keys[0] == f"customerchurn/lambda/{hashlib.sha256(content).hexdigest()}.zip"  # content-addressed
    assert body["ServerSideEncryption"] == "aws:kms"
    with zipfile.ZipFile(io.BytesIO(content)) as bundle:
        assert {"lambdas/api/app.py", "safedeploy/store.py", "pydantic/__init__.py"} <= set(bundle.namelist())

    prd = json.loads((out / "deploy-prd.template.json").read_text())
    code = prd["Resources"]["ApiFunction"]["Properties"]["CodeUri"]
    assert code == {"Bucket": bucket, "Key": lambda_keys[0]}
    training = json.loads((out / "training-job.template.json").read_text())
    job = training["Outputs"]["TrainingJobName"]["Value"]
    assert job == naming.training_job_name(spec, EXECUTION_ID, STARTED)
    source_key = f"customerchurn/training-jobs/{job}/source/sourcedir.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=source_key)["Body"].read())) as tar:
        assert {"train.py", "inference.py", "features.py"} <= set(tar.getnames())

    # The monitor's code: content-addressed, KMS-encrypted, the code input of both Processing jobs.
    prefix = analyzer_prefix(spec, REPO_ROOT)
    assert f"monitor code {prefix}/" in printed.out
    for name, path in analyzer_files(REPO_ROOT).items():
        put = s3.get_object(Bucket=bucket, Key=prefix.join(name).key)
        assert put["Body"].read() == path.read_bytes() and put["ServerSideEncryption"] == "aws:kms"
    baselines = training["Resources"]["StateMachine"]["Properties"]["Definition"]["States"]["SuggestBaselines"]
    for branch in baselines["Branches"]:  # the features and the scores baseline jobs
        code = branch["States"][branch["StartAt"]]["Arguments"]["ProcessingInputs"][0]
        assert code["InputName"] == "code" and code["S3Input"]["S3Uri"] == str(prefix)
    assert str(prefix) in json.dumps(prd["Resources"]["MonitoringStateMachine"])

    for kind in KINDS:
        config = json.loads((out / f"{kind}.config.json").read_text())
        assert config["Parameters"]["KmsKeyArn"] == aws["key_arn"]
        assert config["Tags"]["safedeploy:pipeline-execution"] == EXECUTION_ID
        assert config["Tags"]["safedeploy:code-revision"] == REVISION
    assert f"pipeline execution {EXECUTION_ID}" in printed.out
    assert "not vendored" not in printed.out

    # Again (the execution id from the build's environment this time): the bundle is not uploaded twice.
    before = _objects(s3, bucket)[lambda_keys[0]]["LastModified"]
    status = run_py.main(
        ["--data-source", str(contract), "--out", str(out), "--vendor", str(vendor)],
        apis=Apis(codepipeline=None),
        environ={"PIPELINE_EXECUTION_ID": EXECUTION_ID},
        now=lambda: STARTED,
    )
    again = capsys.readouterr()
    assert status == 0, again.err
    assert not any("lambda/" in line for line in again.out.splitlines() if line.startswith("uploaded"))
    assert not any("monitor-code/" in line for line in again.out.splitlines() if line.startswith("uploaded"))
    assert _objects(s3, bucket)[lambda_keys[0]]["LastModified"] == before
    assert json.loads((out / "deploy-prd.template.json").read_text()) == prd  # same inputs, same stacks


def _vendor(directory: Path) -> Path:
    """A stand-in for `pip install --target` of lambdas/requirements.txt (the real one: test_lambda_bundle.py)."""
    for package in ("aws_lambda_powertools", "pydantic", "pydantic_core"):
        (directory / package).mkdir(parents=True)
        (directory / package / "__init__.py").write_text("")
    return directory


def test_uploading_lambda_code_without_its_packages_is_refused(
    run_py: ModuleType, aws: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contract = write_contract(tmp_path / "DataSourceOutput", aws["spec"])
    status = run_py.main(
        ["--data-source", str(contract), "--out", str(tmp_path / "out"), "--execution-id", EXECUTION_ID],
        apis=Apis(codepipeline=None),
        environ={},
        now=lambda: STARTED,
    )
    err = capsys.readouterr().err
    assert status == 1 and "aws_lambda_powertools" in err and "--vendor" in err
    assert not (tmp_path / "out").exists()
    assert _objects(aws["s3"], naming.artifact_bucket(aws["spec"])) == {}


def test_a_bad_contract_is_named_and_nothing_is_written_or_uploaded(
    run_py: ModuleType, aws: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, s3 = aws["spec"], aws["s3"]
    out = tmp_path / "templates"
    out.mkdir()
    (out / "deploy-dev.template.json").write_text("previous build")
    contract = write_contract(tmp_path / "contract", spec)
    (contract / "inputData.json").unlink()
    status = run_py.main(
        ["--data-source", str(contract), "--out", str(out), "--execution-id", EXECUTION_ID],
        apis=NoAws(),
        environ={},
    )
    err = capsys.readouterr().err
    assert status == 1
    assert "data-source contract" in err and "missing inputData.json" in err and str(contract) in err
    assert sorted(p.name for p in out.iterdir()) == ["deploy-dev.template.json"]
    assert (out / "deploy-dev.template.json").read_text() == "previous build"
    assert _objects(s3, naming.artifact_bucket(spec)) == {}

    contract = write_contract(tmp_path / "contract2", spec)
    (contract / "inputData.json").write_text(json.dumps({"TrainingUri": "not-a-uri"}))
    status = run_py.main(["--data-source", str(contract), "--out", str(out)], apis=NoAws(), environ={})
    err = capsys.readouterr().err
    assert status == 1 and "TrainingUri is not an s3:// URI" in err and "BaselineUri is missing" in err
    assert sorted(p.name for p in out.iterdir()) == ["deploy-dev.template.json"]


def test_offline_build_touches_no_aws(run_py: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEDEPLOY_ACCOUNT_ID", ACCOUNT)
    contract = write_contract(tmp_path / "contract", load_spec())
    arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    out = tmp_path / "out"
    argv = ["--data-source", str(contract), "--out", str(out), "--no-upload", "--execution-id", EXECUTION_ID]
    assert run_py.main([*argv, "--kms-key-arn", arn], apis=NoAws(), environ={}) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUTS, run_py.VARIABLES_FILE])
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left behind


def test_a_build_stage_that_is_not_running_is_refused(
    run_py: ModuleType, aws: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contract = write_contract(tmp_path / "contract", aws["spec"])
    codepipeline = boto3.client("codepipeline", region_name="us-east-1")
    with Stubber(codepipeline) as stubber:
        stubber.add_response("get_pipeline_state", _pipeline_state("Succeeded"), {"name": "other-pipeline"})
        status = run_py.main(
            [
                *("--data-source", str(contract), "--out", str(tmp_path / "out"), "--pipeline", "other-pipeline"),
                *("--vendor", str(_vendor(tmp_path / "vendor"))),
            ],
            apis=Apis(codepipeline),
            environ={},
        )
    err = capsys.readouterr().err
    assert status == 1 and "Build stage is not running" in err and "--execution-id" in err
    assert not (tmp_path / "out").exists()


def test_no_data_source_is_a_usage_error(run_py: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_py.main([], apis=NoAws(), environ={})
    assert exit_info.value.code == 2
    assert "CODEBUILD_SRC_DIR_DataSourceOutput" in capsys.readouterr().err


def test_clients_are_created_on_first_use_only(run_py: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[str] = []

    def client(self: boto3.Session, name: str, **kwargs: Any) -> object:
        created.append(name)
        return object()

    monkeypatch.setattr(boto3.Session, "client", client)
    apis = run_py.SessionApis("eu-west-1")
    assert created == []
    assert apis.kms is apis.kms
    assert created == ["kms"]


def test_buildspec_runs_run_py_and_publishes_the_files_at_the_artifact_root() -> None:
    import yaml  # type: ignore[import-untyped]  # pyyaml comes with cfn-lint

    buildspec = yaml.safe_load((REPO_ROOT / "model" / "buildspec.yml").read_text())
    commands = " ".join(buildspec["phases"]["build"]["commands"])
    assert "model/run.py" in commands and "CODEBUILD_SRC_DIR_DataSourceOutput" in commands
    assert "--extra aws" in " ".join(buildspec["phases"]["install"]["commands"])
    assert buildspec["artifacts"]["discard-paths"] is True
    assert set(buildspec["artifacts"]["files"]) == {"build/templates/*.template.json", "build/templates/*.config.json"}
