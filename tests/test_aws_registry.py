"""The registry on AWS (moto's SageMaker Model Registry): approvals, where versions serve, rollbacks, the listing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from safedeploy import cli
from safedeploy.aws.clients import AwsClients
from safedeploy.aws.registry import AwsModelRegistry, record_decision, version_of_execution
from safedeploy.errors import RegistryError
from safedeploy.report import format_packages

ACCOUNT = "123456789012"  # moto's account
GROUP = "customerchurn"


def _register(sm: object, execution_id: str, auc: float = 0.9) -> str:
    reply = sm.create_model_package(  # type: ignore[attr-defined]
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": "xgb:latest",
                    "ModelDataUrl": f"s3://b/{execution_id}/model.tar.gz",
                    "FrameworkVersion": "3.2-0",
                }
            ],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        CustomerMetadataProperties={"PipelineExecutionId": execution_id, "metric:test:auc": str(auc)},
    )
    return str(reply["ModelPackageArn"])


@pytest.fixture
def registry() -> Iterator[AwsModelRegistry]:
    with mock_aws():
        sm = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
        sm.create_model_package_group(ModelPackageGroupName=GROUP)
        for n in range(3):
            _register(sm, f"exec-{n + 1}", 0.9 + n / 100)
        yield AwsModelRegistry(sm, "us-east-1", ACCOUNT)


def test_the_approval_reaches_model_approval_status_with_approver_and_comment(registry: AwsModelRegistry) -> None:
    since = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    approved = record_decision(
        registry,
        GROUP,
        "exec-2",
        approved=True,
        by="arn:aws:iam::123456789012:user/alice",
        comment="metrics and smoke test reviewed",
        dev_endpoint="customerchurn-dev",
        dev_since=since,
    )
    assert approved.ModelPackageVersion == 2 and approved.ModelApprovalStatus == "Approved"
    raw = registry.sagemaker.describe_model_package(ModelPackageName=registry.arn(GROUP, 2))
    assert raw["ModelApprovalStatus"] == "Approved"
    assert raw["ApprovalDescription"] == "metrics and smoke test reviewed"
    meta = raw["CustomerMetadataProperties"]
    assert meta["ApprovalDecidedBy"] == "arn:aws:iam::123456789012:user/alice"
    assert meta["ApprovalComment"] == "metrics and smoke test reviewed"
    assert meta["ServesIn"] == "dev" and meta["DevSince"] == "2026-12-03T09:00:00Z"
    assert meta["PipelineExecutionId"] == "exec-2" and meta["metric:test:auc"] == "0.91"  # lineage kept

    rejected = record_decision(
        registry,
        GROUP,
        "exec-3",
        approved=False,
        by="bob",
        comment="recall too low",
        dev_endpoint="customerchurn-dev",
        dev_since=None,
    )
    assert rejected.ModelApprovalStatus == "Rejected" and rejected.ApprovalDescription == "recall too low"
    assert rejected.serves_in == ("dev",) and registry.describe(GROUP, 2).serves_in == ()  # dev moved on
    assert "DevUntil" in registry.describe(GROUP, 2).CustomerMetadataProperties
    with pytest.raises(RegistryError, match="exec-9"):
        version_of_execution(registry, GROUP, "exec-9")
    with pytest.raises(RegistryError, match="cannot become"):
        registry.update_approval(GROUP, 3, "PendingManualApproval", changed_by="x", reason="y")


def test_serving_rollback_and_the_listing(registry: AwsModelRegistry) -> None:
    t1, t2 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC), datetime(2026, 12, 3, 11, 0, tzinfo=UTC)
    for version in (1, 2):
        registry.update_approval(GROUP, version, "Approved", changed_by="alice", reason="ok")
    registry.record_serving(GROUP, 1, "prd", "customerchurn-prd", at=t1)
    registry.record_serving(GROUP, 2, "prd", "customerchurn-prd", at=t2)
    one = registry.describe(GROUP, 1)
    assert one.serves_in == () and one.CustomerMetadataProperties["PrdUntil"] == "2026-12-03T11:00:00Z"
    two = registry.record_rollback(GROUP, 2, reason="alarm customerchurn-prd-5xx in ALARM", by="CodeDeploy", at=t2)
    assert two.ModelApprovalStatus == "Approved" and two.rolled_back and not two.production_candidate
    assert "ServesIn" not in two.CustomerMetadataProperties
    registry.record_serving(GROUP, 1, "prd", "customerchurn-prd", at=t2)

    packages = registry.list_versions(GROUP)
    assert [p.ModelPackageVersion for p in packages] == [1, 2, 3]
    assert packages[0].Metrics == {"test:auc": 0.9} and packages[0].FrameworkVersion == "3.2-0"
    listing = format_packages(packages)
    assert "* in production: v1" in listing and "Approved, rolled back" in listing
    assert "v2 rolled back at 2026-12-03T11:00:00Z by CodeDeploy: alarm customerchurn-prd-5xx in ALARM" in listing
    with pytest.raises(RegistryError, match="training state machine"):
        registry.register(GROUP, None, None)  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="DescribeModelPackage"):
        registry.describe(GROUP, 7)


def _stack(cfn: object, name: str, version: int) -> None:
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"ModelVersion": {"Value": str(version)}},
    }
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))  # type: ignore[attr-defined]


def test_the_aws_listing_follows_the_stacks_and_a_failed_deploy_prd(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock_aws():
        session = boto3.Session(region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
        clients = AwsClients(session)
        clients.sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        for n in range(3):
            _register(clients.sagemaker, f"exec-{n + 1}")
        _stack(clients.cloudformation, "customerchurn-deploy-dev", 3)
        _stack(clients.cloudformation, "customerchurn-deploy-prd", 2)
        state = {
            "pipelineName": "customerchurn-dev",
            "stageStates": [
                {
                    "stageName": "DeployPrd",
                    "latestExecution": {"pipelineExecutionId": "exec-3", "status": "Failed"},
                    "actionStates": [
                        {
                            "actionName": "DeployPrdStack",
                            "latestExecution": {
                                "status": "Failed",
                                "lastStatusChange": datetime(2026, 12, 3, 12, 0, tzinfo=UTC),
                                "errorDetails": {"code": "JobFailed", "message": "alarm customerchurn-5xx in ALARM"},
                            },
                        }
                    ],
                }
            ],
        }
        monkeypatch.setattr(cli, "aws_clients", lambda spec: clients)
        argv = ["registry", "list", "--target", "aws", "--set", f"account_id={ACCOUNT}"]
        with Stubber(clients.codepipeline) as stub:
            stub.add_response("get_pipeline_state", state, {"name": "customerchurn-dev"})
            stub.add_response("get_pipeline_state", state, {"name": "customerchurn-dev"})
            assert cli.main(argv) == 0
            first = capsys.readouterr().out
            assert cli.main(argv) == 0  # nothing more to record the second time
            second = capsys.readouterr().out
    assert "* in production: v2" in first and "v3 serves dev" in first and "v2 serves prd" in first
    assert (
        "v3 rolled back at 2026-12-03T12:00:00Z by CodePipeline customerchurn-dev: DeployPrd of execution exec-3"
        in first
    )
    assert "alarm customerchurn-5xx in ALARM" in first and "v3 marked rolled back" in first
    assert "(updated:" not in second and "* in production: v2" in second


def test_production_is_resolved_from_the_endpoint_parameter(registry: AwsModelRegistry) -> None:
    from safedeploy import naming
    from safedeploy.aws.registry import production_version_of, resolve_production
    from safedeploy.spec import load_spec

    spec = load_spec(overrides={"account_id": ACCOUNT})
    ssm = boto3.client("ssm", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    assert resolve_production(ssm, registry, spec) is None  # no parameter: no production yet
    name = naming.production_endpoint_parameter(spec)
    ssm.put_parameter(Name=name, Value="none", Type="String")
    assert resolve_production(ssm, registry, spec) is None  # the base infrastructure's initial value
    ssm.put_parameter(Name=name, Value="customerchurn-prd-v2-1a2b3c4d", Type="String", Overwrite=True)
    production = resolve_production(ssm, registry, spec)
    assert production is not None and production.version == 2
    assert production.model_data_url == "s3://b/exec-2/model.tar.gz"
    ssm.put_parameter(Name=name, Value="customerchurn-dev", Type="String", Overwrite=True)
    with pytest.raises(RegistryError, match="not a production endpoint of customerchurn"):
        resolve_production(ssm, registry, spec)
    assert production_version_of(spec, "customerchurn-prd-v12-abcdef12") == 12
    assert production_version_of(spec, "otherchurn-prd-v12-abcdef12") is None
