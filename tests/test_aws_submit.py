"""``make deploy TARGET=aws`` offline: the Data stage writes into moto's S3, the contract last, checksummed."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.aws.submit import submit
from safedeploy.errors import ConfigError, DataValidationError
from safedeploy.spec import PipelineSpec
from tests.conftest import churn_rows, write_table

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@pytest.fixture
def s3() -> Iterator[S3Client]:
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1")


def _buckets(s3: S3Client, spec: PipelineSpec) -> None:
    for bucket in (naming.data_bucket(spec), naming.artifact_bucket(spec)):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def test_submit_uploads_the_splits_then_the_versioned_contract(
    s3: S3Client, make_spec: Callable[..., PipelineSpec], churn_csv: Path
) -> None:
    spec = make_spec()
    _buckets(s3, spec)
    result = submit(spec, s3, churn_csv)
    contract = naming.data_source_uri(spec)
    assert result.contract_uri == str(contract) and result.contract_version
    assert result.pipeline == spec.pipeline_name
    body = s3.get_object(Bucket=contract.bucket, Key=contract.key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        input_data = json.loads(archive.read(C.INPUT_DATA_FILE))
        hyperparameters = json.loads(archive.read(C.HYPERPARAMETERS_FILE))
    assert hyperparameters == spec.hyperparameters.as_sagemaker()
    for key, split in (("TrainingUri", "train"), ("ValidationUri", "validation"), ("TestUri", "test")):
        prefix = input_data[key].removeprefix(f"s3://{contract.bucket}/")
        listed = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=contract.bucket, Prefix=prefix)["Contents"]}
        assert listed[f"{prefix}{split}.csv"] > 0
    heads = {
        ref.uri: s3.head_object(Bucket=contract.bucket, Key=ref.uri.split("/", 3)[3])
        for ref in result.prepared.artifacts.values()
    }
    assert all(
        h["Metadata"]["sha256"] == result.prepared.artifacts[n].sha256
        for n, h in zip(result.prepared.artifacts, heads.values(), strict=True)
    )
    # the trigger object is written after everything it points at
    contract_time = heads[str(contract)]["LastModified"]
    assert all(h["LastModified"] <= contract_time for h in heads.values())


def test_submit_without_the_base_infrastructure_names_the_bucket(
    s3: S3Client, make_spec: Callable[..., PipelineSpec], churn_csv: Path
) -> None:
    spec = make_spec()
    with pytest.raises(ConfigError, match=f"bucket {naming.data_bucket(spec)} does not exist.*make plan ENV=dev"):
        submit(spec, s3, churn_csv)


def test_an_invalid_table_uploads_nothing(s3: S3Client, make_spec: Callable[..., PipelineSpec], tmp_path: Path) -> None:
    spec = make_spec()
    _buckets(s3, spec)
    rows = churn_rows(200, seed=3)
    rows[7]["Day Mins"] = "lots"
    bad = write_table(tmp_path / "bad.csv", rows)
    with pytest.raises(DataValidationError, match="Day Mins"):
        submit(spec, s3, bad)
    for bucket in (naming.data_bucket(spec), naming.artifact_bucket(spec)):
        assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_cli_run_target_aws_uploads_and_names_the_next_steps(
    make_spec: Callable[..., PipelineSpec],
    churn_csv: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from safedeploy import cli
    from safedeploy.aws.clients import AwsClients

    spec = make_spec(account_id="123456789012")  # moto's account
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        _buckets(session.client("s3"), spec)
        monkeypatch.setattr(cli, "aws_clients", lambda spec: AwsClients(session))
        code = cli.main(["run", "--target", "aws", "--data", str(churn_csv), "--set", "account_id=123456789012"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert f"CodePipeline {spec.pipeline_name} starts on it" in out and "make status TARGET=aws" in out
        contract = naming.data_source_uri(spec)
        assert session.client("s3").head_object(Bucket=contract.bucket, Key=contract.key)["ContentLength"] > 0
        # another account's credentials are refused before anything is uploaded
        code = cli.main(["run", "--target", "aws", "--data", str(churn_csv), "--set", "account_id=210987654321"])
        assert code == 2 and "credentials are for account 123456789012" in capsys.readouterr().err
