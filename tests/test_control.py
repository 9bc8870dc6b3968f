"""Pipeline control: one interface, chosen by the facade's target; stage outputs read back typed."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from pydantic import ValidationError

from safedeploy import constants as C
from safedeploy.approval import AutoApprove
from safedeploy.aws.clients import AwsClients
from safedeploy.control import PipelineControl
from safedeploy.control.aws import AwsControl, AwsStatus
from safedeploy.control.local import LocalControl
from safedeploy.errors import ConfigError
from safedeploy.pipeline import Pipeline
from safedeploy.runner import PipelineExecution, StageExecution, Status
from safedeploy.spec import PipelineSpec, load_spec
from safedeploy.stage_outputs import (
    ApprovalOutputs,
    BaselineOutputs,
    DataOutputs,
    DeployDevOutputs,
    DeployPrdOutputs,
    RegisterOutputs,
    StageOutputs,
    TrainOutputs,
)
from safedeploy.stages import pipeline_stages


def _spec(tmp_path: Path) -> PipelineSpec:
    return load_spec(None, {"state_dir": str(tmp_path / "state")})


def test_both_targets_implement_the_one_interface(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    local: PipelineControl = Pipeline(spec).control  # mypy checks both against the Protocol
    aws: PipelineControl = Pipeline(spec, target="aws").control
    assert isinstance(local, LocalControl) and local.target == "local"
    assert isinstance(aws, AwsControl) and aws.target == "aws"


def test_the_aws_target_never_touches_local_state(tmp_path: Path) -> None:
    """Status on AWS reads CodePipeline through the facade: no local state directory, no backend, no runtime."""
    spec = _spec(tmp_path)
    clients = AwsClients(boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"))
    pipeline = Pipeline(spec, target="aws", aws_clients=lambda _: clients)
    name = f"{spec.model_name}-{spec.environment}"
    with Stubber(clients.codepipeline) as stub:
        stub.add_response(
            "list_pipeline_executions", {"pipelineExecutionSummaries": []}, {"pipelineName": name, "maxResults": 1}
        )
        stub.add_response("get_pipeline_state", {"pipelineName": name, "stageStates": []}, {"name": name})
        stub.add_response(
            "get_pipeline",
            {"pipeline": {"name": name, "roleArn": "arn:aws:iam::1:role/r", "stages": []}},
            {"name": name},
        )
        report = pipeline.status()
        stub.assert_no_pending_responses()
    assert isinstance(report.value, AwsStatus) and report.value.execution is None and report.ok
    assert not spec.state_dir.exists()
    assert "backend" not in vars(pipeline)  # the local backend was never built


def test_local_status_before_any_run_says_how_to_start(tmp_path: Path) -> None:
    report = Pipeline(_spec(tmp_path)).status()
    assert report.value is None and "has not run yet (start it with `make deploy`)" in report.text


def test_every_stage_has_exactly_one_outputs_model(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    kinds: list[type[StageOutputs]] = [
        DataOutputs,
        TrainOutputs,
        BaselineOutputs,
        RegisterOutputs,
        DeployDevOutputs,
        ApprovalOutputs,
        DeployPrdOutputs,
    ]
    every = spec.model_copy(
        update={
            "serving": spec.serving.model_copy(update={"enabled": True}),
            "production": spec.production.model_copy(update={"enabled": True}),
            "monitoring": spec.monitoring.model_copy(update={"enabled": True}),
        }
    )
    stages = [stage.name for stage in pipeline_stages(every, Pipeline(every).backend, tmp_path)]
    assert sorted(kind.STAGE for kind in kinds) == sorted(stages)


def test_outputs_read_back_typed_and_a_missing_field_is_named() -> None:
    execution = PipelineExecution(
        pipeline_name="p",
        execution_id="e",
        status=Status.FAILED,
        trigger="t",
        started_at="2026-12-03T10:00:00Z",
        pid=1,
        host="h",
        spec={},
        stages=[
            StageExecution(
                name=C.STAGE_REGISTER,
                outputs={"model_package_arn": "arn:x", "model_package_version": "3", "approval_status": "Pending"},
            ),
            StageExecution(name=C.STAGE_TRAIN, outputs={"training_job_name": "job"}),
        ],
    )
    register = execution.output(RegisterOutputs)
    assert register.model_package_version == 3  # validated and converted, not a string read by key
    with pytest.raises(ValidationError, match="model_data_url"):
        execution.output(TrainOutputs)
    with pytest.raises(KeyError, match=C.STAGE_DATA):
        execution.output(DataOutputs)


def test_auto_approve_is_refused_on_aws_before_any_call(tmp_path: Path) -> None:
    spec = load_spec(None, {"state_dir": str(tmp_path / "state"), "data.source": str(tmp_path / "x.csv")})

    def no_clients(_: PipelineSpec) -> AwsClients:
        raise AssertionError("no AWS call may happen")

    pipeline = Pipeline(spec, approver=AutoApprove(), target="aws", aws_clients=no_clients)
    with pytest.raises(ConfigError, match="on AWS the gate is CodePipeline's manual approval"):
        pipeline.start("test")
