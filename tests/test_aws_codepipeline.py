"""CodePipeline queries and the manual approval on AWS (botocore Stubber: moto has no GetPipelineState or
PutApprovalResult), and the CLI's ``--target aws`` for approve, reject and status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from safedeploy import cli
from safedeploy.aws import codepipeline as cp
from safedeploy.aws.clients import AwsClients
from safedeploy.errors import ConfigError

PIPELINE = "customerchurn-dev"
EXECUTION = "0f1e2d3c-aaaa-bbbb-cccc-000000000001"
OLDER = "9a8b7c6d-aaaa-bbbb-cccc-000000000000"
TOKEN = "3b0e2c0c-1111-2222-3333-444455556666"
REQUESTED = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _session() -> boto3.Session:
    return boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


@pytest.fixture
def clients() -> AwsClients:
    return AwsClients(_session())


@pytest.fixture
def stub(clients: AwsClients) -> Iterator[Stubber]:
    with Stubber(clients.codepipeline) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def _action(name: str, category: str, provider: str, run_order: int, **extra: Any) -> dict[str, Any]:
    owner = "AWS"
    return {
        "name": name,
        "actionTypeId": {"category": category, "owner": owner, "provider": provider, "version": "1"},
        "runOrder": run_order,
        **extra,
    }


def _pipeline(timeout_minutes: int | None = None, approval: bool = True) -> dict[str, Any]:
    extra: dict[str, Any] = {"configuration": {"CustomData": "Shall this model be put into production?"}}
    if timeout_minutes is not None:
        extra["timeoutInMinutes"] = timeout_minutes
    deploy_dev = [_action("DeployDevModel", "Deploy", "CloudFormation", 1)]
    gate = [_action("ApproveDeploy", "Approval", "Manual", 1, **extra)] if approval else [deploy_dev[0]]
    return {
        "pipeline": {
            "name": PIPELINE,
            "roleArn": "arn:aws:iam::111122223333:role/customerchurn-dev-codepipeline",
            "stages": [
                {"name": "Source", "actions": [_action("Source", "Source", "CodeCommit", 1)]},
                {"name": "Build", "actions": [_action("Build", "Build", "CodeBuild", 1)]},
                {"name": "DeployDev", "actions": deploy_dev},
                {"name": "ApproveDeployment", "actions": gate},
                {"name": "DeployPrd", "actions": [_action("DeployPrdModel", "Deploy", "CloudFormation", 1)]},
            ],
            "version": 3,
        }
    }


def _latest(status: str, **extra: Any) -> dict[str, Any]:
    return {"status": status, "lastStatusChange": REQUESTED, **extra}


def _state(approval: str | None = "InProgress", token: bool = True, dev_execution: str = EXECUTION) -> dict[str, Any]:
    approval_state: dict[str, Any] = {"actionName": "ApproveDeploy"}
    if approval is not None:
        approval_state["latestExecution"] = _latest(approval, **({"token": TOKEN} if token else {}))
    return {
        "pipelineName": PIPELINE,
        "pipelineVersion": 3,
        "stageStates": [
            {
                "stageName": "Source",
                "latestExecution": {"pipelineExecutionId": EXECUTION, "status": "Succeeded"},
                "actionStates": [{"actionName": "Source", "latestExecution": _latest("Succeeded", summary="commit")}],
            },
            {
                "stageName": "Build",
                "latestExecution": {"pipelineExecutionId": EXECUTION, "status": "Succeeded"},
                "actionStates": [{"actionName": "Build", "latestExecution": _latest("Succeeded")}],
            },
            {
                "stageName": "DeployDev",
                "latestExecution": {"pipelineExecutionId": dev_execution, "status": "Succeeded"},
                "actionStates": [{"actionName": "DeployDevModel", "latestExecution": _latest("Succeeded")}],
            },
            {
                "stageName": "ApproveDeployment",
                "latestExecution": {"pipelineExecutionId": dev_execution, "status": "InProgress"},
                "actionStates": [approval_state],
            },
            {
                "stageName": "DeployPrd",
                "latestExecution": {"pipelineExecutionId": OLDER, "status": "Failed"},
                "actionStates": [
                    {
                        "actionName": "DeployPrdModel",
                        "latestExecution": _latest(
                            "Failed", errorDetails={"code": "JobFailed", "message": "rolled back"}
                        ),
                    }
                ],
            },
        ],
        "created": REQUESTED - timedelta(days=3),
        "updated": REQUESTED - timedelta(days=1),
    }


def _expect_pending(stub: Stubber, **state: Any) -> None:
    stub.add_response("get_pipeline", _pipeline(), {"name": PIPELINE})
    stub.add_response("get_pipeline_state", _state(**state), {"name": PIPELINE})


def _summary(execution_id: str, status: str, started: datetime = REQUESTED) -> dict[str, Any]:
    return {
        "pipelineExecutionId": execution_id,
        "status": status,
        "startTime": started,
        "lastUpdateTime": started + timedelta(minutes=5),
        "trigger": {"triggerType": "CloudWatchEvent", "triggerDetail": "data-source.zip uploaded"},
    }


# --- queries ---------------------------------------------------------------------------------------------------


def test_latest_execution_asks_for_one_and_parses_it(clients: AwsClients, stub: Stubber) -> None:
    stub.add_response(
        "list_pipeline_executions",
        {"pipelineExecutionSummaries": [_summary(EXECUTION, "InProgress")]},
        {"pipelineName": PIPELINE, "maxResults": 1},
    )
    latest = cp.latest_execution(clients.codepipeline, PIPELINE)
    assert latest == cp.ExecutionSummary(
        EXECUTION,
        "InProgress",
        REQUESTED,
        REQUESTED + timedelta(minutes=5),
        "CloudWatchEvent (data-source.zip uploaded)",
    )
    stub.add_response(
        "list_pipeline_executions", {"pipelineExecutionSummaries": []}, {"pipelineName": PIPELINE, "maxResults": 1}
    )
    assert cp.latest_execution(clients.codepipeline, PIPELINE) is None


def test_list_executions_follows_next_token_up_to_the_limit(clients: AwsClients, stub: Stubber) -> None:
    stub.add_response(
        "list_pipeline_executions",
        {"pipelineExecutionSummaries": [_summary("a1", "InProgress"), _summary("b2", "Failed")], "nextToken": "t1"},
        {"pipelineName": PIPELINE, "maxResults": 3},
    )
    stub.add_response(
        "list_pipeline_executions",
        {"pipelineExecutionSummaries": [_summary("c3", "Succeeded")], "nextToken": "t2"},
        {"pipelineName": PIPELINE, "maxResults": 1, "nextToken": "t1"},
    )
    assert [e.execution_id for e in cp.list_executions(clients.codepipeline, PIPELINE, limit=3)] == ["a1", "b2", "c3"]


def test_find_execution_by_prefix(clients: AwsClients, stub: Stubber) -> None:
    page = {"pipelineExecutionSummaries": [_summary(EXECUTION, "InProgress"), _summary(OLDER, "Failed")]}
    for _ in range(3):
        stub.add_response("list_pipeline_executions", page, {"pipelineName": PIPELINE, "maxResults": 100})
    assert cp.find_execution(clients.codepipeline, PIPELINE, "9a8b").execution_id == OLDER
    with pytest.raises(cp.PipelineQueryError, match="no execution 'ffff' among the latest 100"):
        cp.find_execution(clients.codepipeline, PIPELINE, "ffff")
    with pytest.raises(cp.PipelineQueryError, match="matches 2 executions"):
        cp.find_execution(clients.codepipeline, PIPELINE, "")


def test_stage_states_carry_each_stage_execution_and_action(clients: AwsClients, stub: Stubber) -> None:
    stub.add_response("get_pipeline_state", _state(), {"name": PIPELINE})
    stages = cp.stage_states(clients.codepipeline, PIPELINE)
    assert [(s.name, s.status, s.execution_id) for s in stages] == [
        ("Source", "Succeeded", EXECUTION),
        ("Build", "Succeeded", EXECUTION),
        ("DeployDev", "Succeeded", EXECUTION),
        ("ApproveDeployment", "InProgress", EXECUTION),
        ("DeployPrd", "Failed", OLDER),
    ]
    approval = stages[3].action("ApproveDeploy")
    assert approval is not None and approval.status == "InProgress" and approval.token == TOKEN
    failed = stages[4].action("DeployPrdModel")
    assert failed is not None and failed.error == "rolled back"


def test_a_missing_pipeline_is_a_clear_error(clients: AwsClients, stub: Stubber) -> None:
    stub.add_client_error(
        "get_pipeline_state", "PipelineNotFoundException", "Account does not have a pipeline", 400, {"name": PIPELINE}
    )
    with pytest.raises(cp.PipelineNotFoundError, match="there is no CodePipeline named customerchurn-dev"):
        cp.stage_states(clients.codepipeline, PIPELINE)


# --- the pending approval ----------------------------------------------------------------------------------------


def test_pending_approval_finds_the_manual_action_of_its_stage_with_its_token(
    clients: AwsClients, stub: Stubber
) -> None:
    _expect_pending(stub)
    approval = cp.pending_approval(clients.codepipeline, PIPELINE)
    assert approval == cp.PendingApproval(
        pipeline_name=PIPELINE,
        stage_name="ApproveDeployment",
        action_name="ApproveDeploy",
        token=TOKEN,
        execution_id=EXECUTION,
        requested_at=REQUESTED,
        expires_at=REQUESTED + timedelta(days=7),
        custom_data="Shall this model be put into production?",
    )


def test_the_approval_expiry_follows_the_action_timeout(clients: AwsClients, stub: Stubber) -> None:
    stub.add_response("get_pipeline", _pipeline(timeout_minutes=90), {"name": PIPELINE})
    stub.add_response("get_pipeline_state", _state(), {"name": PIPELINE})
    approval = cp.pending_approval(clients.codepipeline, PIPELINE)
    assert approval is not None and approval.expires_at == REQUESTED + timedelta(minutes=90)


@pytest.mark.parametrize(
    "state",
    [
        {"approval": "Succeeded", "token": False},  # already approved
        {"approval": "InProgress", "token": False},  # no token (not an open request)
        {"approval": None},  # never reached
    ],
)
def test_nothing_pending(clients: AwsClients, stub: Stubber, state: dict[str, Any]) -> None:
    _expect_pending(stub, **state)
    assert cp.pending_approval(clients.codepipeline, PIPELINE) is None


def test_a_stage_without_a_manual_approval_or_a_missing_stage_is_reported(clients: AwsClients, stub: Stubber) -> None:
    stub.add_response("get_pipeline", _pipeline(approval=False), {"name": PIPELINE})
    with pytest.raises(
        cp.PipelineQueryError, match="stage ApproveDeployment of pipeline customerchurn-dev has no Manual"
    ):
        cp.pending_approval(clients.codepipeline, PIPELINE)
    stub.add_response("get_pipeline", _pipeline(), {"name": PIPELINE})
    with pytest.raises(cp.PipelineQueryError, match=r"has no stage Approve \(its stages: Source, Build, DeployDev"):
        cp.pending_approval(clients.codepipeline, PIPELINE, stage="Approve")


# --- deciding ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("approved", "status"), [(True, "Approved"), (False, "Rejected")])
def test_decide_puts_the_approval_result_with_the_comment_and_token(
    clients: AwsClients, stub: Stubber, approved: bool, status: str
) -> None:
    _expect_pending(stub)
    stub.add_response(
        "put_approval_result",
        {"approvedAt": REQUESTED + timedelta(hours=2)},
        {
            "pipelineName": PIPELINE,
            "stageName": "ApproveDeployment",
            "actionName": "ApproveDeploy",
            "result": {"summary": "AUC 0.93 on dev, smoke test clean", "status": status},
            "token": TOKEN,
        },
    )
    decision = cp.decide(
        clients.codepipeline, PIPELINE, approved=approved, comment="  AUC 0.93 on dev, smoke test clean\n"
    )
    assert decision.status == status and decision.comment == "AUC 0.93 on dev, smoke test clean"
    assert decision.approval.execution_id == EXECUTION and decision.decided_at == REQUESTED + timedelta(hours=2)


@pytest.mark.parametrize(
    ("comment", "message"), [("  ", "needs a comment"), ("x" * 513, "513 characters; CodePipeline keeps at most 512")]
)
def test_decide_checks_the_comment_before_any_call(
    clients: AwsClients, stub: Stubber, comment: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        cp.decide(clients.codepipeline, PIPELINE, approved=True, comment=comment)


def test_decide_with_nothing_waiting(clients: AwsClients, stub: Stubber) -> None:
    _expect_pending(stub, approval="Succeeded", token=False)
    with pytest.raises(cp.NoPendingApprovalError, match="nothing is waiting for approval in customerchurn-dev"):
        cp.decide(clients.codepipeline, PIPELINE, approved=True, comment="ok")


def test_decide_for_another_execution_than_the_one_waiting(clients: AwsClients, stub: Stubber) -> None:
    _expect_pending(stub)
    with pytest.raises(cp.NoPendingApprovalError, match=f"execution 9a8b is not the one waiting .* {EXECUTION} is"):
        cp.decide(clients.codepipeline, PIPELINE, approved=True, comment="ok", execution_id="9a8b")


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("InvalidApprovalTokenException", "no longer the one waiting"),
        ("ApprovalAlreadyCompletedException", "was already answered"),
    ],
)
def test_a_stale_token_is_a_clear_error(clients: AwsClients, stub: Stubber, code: str, message: str) -> None:
    _expect_pending(stub)
    stub.add_client_error("put_approval_result", code, "The token is invalid", 400)
    with pytest.raises(cp.StaleApprovalError, match=message):
        cp.decide(clients.codepipeline, PIPELINE, approved=False, comment="drift on dev")


def test_stop_execution_abandons_and_ignores_one_that_already_ended(clients: AwsClients, stub: Stubber) -> None:
    params = {"pipelineName": PIPELINE, "pipelineExecutionId": EXECUTION, "abandon": True, "reason": "why"}
    stub.add_response("stop_pipeline_execution", {"pipelineExecutionId": EXECUTION}, params)
    stub.add_client_error("stop_pipeline_execution", "PipelineExecutionNotStoppableException", "ended", 400, params)
    stub.add_client_error("stop_pipeline_execution", "ValidationException", "bad", 400, params)
    cp.stop_execution(clients.codepipeline, PIPELINE, EXECUTION, "why")
    cp.stop_execution(clients.codepipeline, PIPELINE, EXECUTION, "why")
    with pytest.raises(cp.PipelineQueryError, match="StopPipelineExecution of pipeline customerchurn-dev failed"):
        cp.stop_execution(clients.codepipeline, PIPELINE, EXECUTION, "why")


# --- the CLI -----------------------------------------------------------------------------------------------------


@pytest.fixture
def aws_cli(clients: AwsClients, monkeypatch: pytest.MonkeyPatch) -> AwsClients:
    monkeypatch.setattr(cli, "aws_clients", lambda spec: clients)
    return clients


def test_the_cli_targets_local_by_default() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["approve", "--comment", "ok"]).target == "local"
    assert parser.parse_args(["status"]).target == "local"
    assert parser.parse_args(["destroy"]).target == "local"


def test_cli_approve_and_reject_on_aws(aws_cli: AwsClients, stub: Stubber, capsys: pytest.CaptureFixture[str]) -> None:
    with mock_aws():  # the registry (SageMaker) and the caller (STS); CodePipeline is stubbed
        sagemaker = aws_cli.sagemaker
        sagemaker.create_model_package_group(ModelPackageGroupName="customerchurn")
        for execution in ("an-earlier-execution", EXECUTION):
            sagemaker.create_model_package(
                ModelPackageGroupName="customerchurn",
                ModelApprovalStatus="PendingManualApproval",
                InferenceSpecification={
                    "Containers": [{"Image": "xgb", "ModelDataUrl": "s3://b/model.tar.gz"}],
                    "SupportedContentTypes": ["text/csv"],
                    "SupportedResponseMIMETypes": ["text/csv"],
                },
                CustomerMetadataProperties={"PipelineExecutionId": execution},
            )
        _approve_and_reject(stub, capsys)
        # The version the waiting execution registered (v2) carries the decisions; v1 is untouched.
        v1, v2 = (
            sagemaker.describe_model_package(
                ModelPackageName=f"arn:aws:sagemaker:us-east-1:123456789012:model-package/customerchurn/{v}"
            )
            for v in (1, 2)
        )
        assert v1["ModelApprovalStatus"] == "PendingManualApproval"
        assert v2["ModelApprovalStatus"] == "Rejected" and v2["ApprovalDescription"] == "looks right"
        meta = v2["CustomerMetadataProperties"]
        assert meta["ApprovalDecidedBy"].startswith("arn:aws:") and meta["ApprovalComment"] == "looks right"
        assert meta["ServesIn"] == "dev" and meta["DevEndpoint"] == "customerchurn-dev"


def _approve_and_reject(stub: Stubber, capsys: pytest.CaptureFixture[str]) -> None:
    for command, status in (("approve", "Approved"), ("reject", "Rejected")):
        _expect_pending(stub)
        stub.add_response(
            "put_approval_result",
            {"approvedAt": REQUESTED},
            {
                "pipelineName": PIPELINE,
                "stageName": "ApproveDeployment",
                "actionName": "ApproveDeploy",
                "result": {"summary": "looks right", "status": status},
                "token": TOKEN,
            },
        )
        account = ["--set", "account_id=123456789012"]  # moto's: the registry's ARNs are the spec account's
        assert cli.main([command, "--target", "aws", "--comment", "looks right", *account]) == 0
        out = capsys.readouterr().out
        assert f"{status} {PIPELINE} execution {EXECUTION} at ApproveDeployment/ApproveDeploy: 'looks right'" in out
        assert f"model package customerchurn/2 is now {status} (ApprovalDescription 'looks right'" in out


def test_cli_approve_on_aws_with_nothing_waiting_exits_2(
    aws_cli: AwsClients, stub: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    _expect_pending(stub, approval="Succeeded", token=False)
    assert cli.main(["approve", "--target", "aws", "--comment", "ok"]) == 2
    assert "nothing is waiting for approval in customerchurn-dev" in capsys.readouterr().err
    assert cli.main(["reject", "--target", "aws", "--comment", " "]) == 2  # no call at all
    assert "needs a comment" in capsys.readouterr().err


def test_cli_status_on_aws(aws_cli: AwsClients, stub: Stubber, capsys: pytest.CaptureFixture[str]) -> None:
    stub.add_response(
        "list_pipeline_executions",
        {"pipelineExecutionSummaries": [_summary(EXECUTION, "InProgress")]},
        {"pipelineName": PIPELINE, "maxResults": 1},
    )
    stub.add_response("get_pipeline_state", _state(), {"name": PIPELINE})
    stub.add_response("get_pipeline", _pipeline(), {"name": PIPELINE})
    assert cli.main(["status", "--target", "aws"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"CodePipeline {PIPELINE}"
    assert lines[1].startswith(f"Execution {EXECUTION}  InProgress  started 2026-12-01 10:00:00")
    assert next(line for line in lines if line.startswith("Approve")).split() == ["ApproveDeployment", "InProgress"]
    assert "DeployPrd          Failed      (from execution 9a8b7c6d)" in out  # a stage still showing an older execution
    assert "rolled back" in out
    assert (
        f"Waiting for approval at ApproveDeployment/ApproveDeploy (Shall this model be put into production?), execution {EXECUTION}"
        in out
    )
    assert "make approve TARGET=aws COMMENT='why'" in out


def test_cli_status_on_aws_as_json_and_all(
    aws_cli: AwsClients, stub: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    stub.add_response(
        "list_pipeline_executions",
        {"pipelineExecutionSummaries": [_summary(EXECUTION, "InProgress")]},
        {"pipelineName": PIPELINE, "maxResults": 1},
    )
    stub.add_response("get_pipeline_state", _state(approval="Succeeded", token=False), {"name": PIPELINE})
    stub.add_response("get_pipeline", _pipeline(), {"name": PIPELINE})
    assert cli.main(["status", "--target", "aws", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["execution"]["execution_id"] == EXECUTION and document["pending_approval"] is None
    assert [s["name"] for s in document["stages"]] == ["Source", "Build", "DeployDev", "ApproveDeployment", "DeployPrd"]

    stub.add_response(
        "list_pipeline_executions",
        {"pipelineExecutionSummaries": [_summary(EXECUTION, "InProgress"), _summary(OLDER, "Failed")]},
        {"pipelineName": PIPELINE, "maxResults": 100},
    )
    assert cli.main(["status", "--target", "aws", "--all"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"2026-12-01 10:00:00  {EXECUTION}  InProgress",
        f"2026-12-01 10:00:00  {OLDER}  Failed",
    ]


def test_cli_status_on_aws_without_the_pipeline(
    aws_cli: AwsClients, stub: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    stub.add_client_error("list_pipeline_executions", "PipelineNotFoundException", "no pipeline", 400)
    assert cli.main(["status", "--target", "aws"]) == 2
    assert "there is no CodePipeline named customerchurn-dev" in capsys.readouterr().err


# --- retry -------------------------------------------------------------------------------------------------------


def _expect_retry(stub: Stubber, summaries: list[dict[str, Any]], *, max_results: int) -> None:
    """Listing the executions, the pipeline's state, then RetryStageExecution of OLDER's failed DeployPrd."""
    stub.add_response(
        "list_pipeline_executions",
        {"pipelineExecutionSummaries": summaries},
        {"pipelineName": PIPELINE, "maxResults": max_results},
    )
    stub.add_response("get_pipeline_state", _state(), {"name": PIPELINE})
    stub.add_response(
        "retry_stage_execution",
        {"pipelineExecutionId": OLDER},
        {
            "pipelineName": PIPELINE,
            "stageName": "DeployPrd",
            "pipelineExecutionId": OLDER,
            "retryMode": "FAILED_ACTIONS",
        },
    )


def test_retry_reruns_the_failed_actions_of_the_executions_failed_stage(clients: AwsClients, stub: Stubber) -> None:
    """The DeployPrd stage failed in OLDER: retrying OLDER asks CodePipeline for exactly that stage's failed actions."""
    _expect_retry(stub, [_summary(EXECUTION, "InProgress"), _summary(OLDER, "Failed")], max_results=100)
    retried = cp.retry_failed_stage(clients.codepipeline, PIPELINE, OLDER[:8])
    assert retried == cp.RetriedStage(OLDER, "DeployPrd")


def test_retry_refuses_an_execution_without_a_failed_stage(clients: AwsClients, stub: Stubber) -> None:
    stub.add_response(
        "list_pipeline_executions",
        {"pipelineExecutionSummaries": [_summary(EXECUTION, "InProgress")]},
        {"pipelineName": PIPELINE, "maxResults": 1},
    )
    stub.add_response("get_pipeline_state", _state(), {"name": PIPELINE})
    with pytest.raises(cp.PipelineQueryError, match=f"execution {EXECUTION} of {PIPELINE} .InProgress. has no failed"):
        cp.retry_failed_stage(clients.codepipeline, PIPELINE, None)


def test_cli_retry_on_aws(aws_cli: AwsClients, stub: Stubber, capsys: pytest.CaptureFixture[str]) -> None:
    _expect_retry(stub, [_summary(OLDER, "Failed")], max_results=1)
    assert cli.main(["retry", "--target", "aws"]) == 0
    assert f"retrying the failed actions of stage DeployPrd of {PIPELINE} execution {OLDER}" in capsys.readouterr().out
