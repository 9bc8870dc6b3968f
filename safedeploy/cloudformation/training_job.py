"""``<model>-training-job``: train (the local backend's request), hold to the quality gate, register.

A Step Functions state machine (Standard, JSONata) the Train stage runs:
``TrainModel`` (``createTrainingJob.sync`` with exactly :func:`training_job_request`'s content) ->
the quality gate (:mod:`.quality_gate`) -> ``RegisterModel`` (``CreateModelPackage``, PendingManualApproval, into
the model package group this stack owns). Its output names the new version for the deploy stacks.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.cloudformation.context import BuildContext
from safedeploy.cloudformation.quality_gate import gate_states, metrics_output
from safedeploy.cloudformation.state_machine import add_state_machine
from safedeploy.cloudformation.template import KMS_KEY_PARAMETER, Json, Template, parameterize, ref, token
from safedeploy.sagemaker_requests import serving_environment
from safedeploy.training.request import training_job_request

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import CreateTrainingJobRequestTypeDef

TRAIN_STATE = "TrainModel"
REGISTER_STATE = "RegisterModel"
PUBLISH_STATE = "PublishModelVersion"
TRAINING_TASK = "arn:aws:states:::sagemaker:createTrainingJob.sync"
REGISTER_TASK = "arn:aws:states:::aws-sdk:sagemaker:createModelPackage"
PUBLISH_TASK = "arn:aws:states:::aws-sdk:ssm:putParameter"


def training_request(ctx: BuildContext, kms_key_id: str | None) -> CreateTrainingJobRequestTypeDef:
    """This execution's ``CreateTrainingJob`` request (what the local backend's Train stage would run)."""
    return training_job_request(
        ctx.spec,
        job_name=ctx.training_job_name,
        input_data=ctx.contract.input_data,
        hyperparameters=ctx.contract.hyperparameters,
        output_prefix=ctx.output_prefix,
        image_uri=ctx.images.training,
        kms_key_id=kms_key_id,
    )


def _registration(ctx: BuildContext) -> Json:
    spec = ctx.spec
    properties = {
        "DataSha256": ctx.contract.data_sha256,
        "CodeRevision": ctx.code_revision,
        "TrainingJobName": ctx.training_job_name,
        "PipelineExecutionId": ctx.execution_id,
        "FeatureSchemaUri": ctx.contract.uri("FeatureSchemaUri"),
        "RegisteredBy": f"pipeline {spec.pipeline_name} ({naming.state_machine_name(spec, 'training-job')})",
    }
    literal = json.dumps(properties)  # a JSON object is a JSONata object constructor
    metrics = '$each($states.input.Metrics, function($v, $k) {{"metric:" & $k: $string($v)}})'
    return {
        "ModelPackageGroupName": naming.model_package_group(spec),
        "ModelPackageDescription": f"{spec.model_name} trained by {ctx.training_job_name} "
        f"(pipeline {spec.pipeline_name}, execution {ctx.execution_id})",
        "ModelApprovalStatus": C.APPROVAL_PENDING,
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": ctx.images.serving,
                    "ModelDataUrl": ctx.model_data_url,
                    "Environment": serving_environment(spec, str(ctx.source_archive)),
                    "Framework": "XGBOOST",
                    "FrameworkVersion": spec.training.framework_version,
                }
            ],
            "SupportedContentTypes": ["text/csv", "application/json"],
            "SupportedResponseMIMETypes": ["text/csv", "application/json"],
            "SupportedRealtimeInferenceInstanceTypes": sorted(
                {spec.serving.instance_type, spec.production.instance_type}
            ),
        },
        "MetadataProperties": {
            "CommitId": ctx.code_revision,
            "Repository": naming.codecommit_repository(spec),
            "GeneratedBy": f"codepipeline/{naming.codepipeline_name(spec)}",
        },
        "CustomerMetadataProperties": "{% $merge($append([" + literal + "], " + metrics + ")) %}",
        "DriftCheckBaselines": drift_check_baselines(ctx),
    }


def drift_check_baselines(ctx: BuildContext) -> Json:
    """The version's data-quality baseline: the files this execution's suggest-baseline job writes.

    URIs only: the job runs beside training (the Train stage runs both state machines), so the files' sha256 is
    not known when the version is registered, and ``ContentDigest`` is optional in the API.
    """
    baseline = ctx.baseline
    return {
        "ModelDataQuality": {
            "Statistics": {"ContentType": "application/json", "S3Uri": baseline.statistics},
            "Constraints": {"ContentType": "application/json", "S3Uri": baseline.constraints},
        }
    }


def definition(ctx: BuildContext) -> Json:
    """The state machine definition (CloudFormation resolves the KMS key parameter inside it)."""
    first_gate, gate = gate_states(ctx.spec.gate, REGISTER_STATE)
    train = parameterize(training_request(ctx, token(KMS_KEY_PARAMETER)))
    return {
        "Comment": f"Train {ctx.spec.model_name}, hold it to the quality gate, register it pending approval",
        "QueryLanguage": "JSONata",
        "StartAt": TRAIN_STATE,
        "States": {
            TRAIN_STATE: {
                "Type": "Task",
                "Resource": TRAINING_TASK,
                "Arguments": train,
                "Output": metrics_output(),
                "Next": first_gate,
            },
            **gate,
            REGISTER_STATE: {
                "Type": "Task",
                "Resource": REGISTER_TASK,
                "Arguments": _registration(ctx),
                "Output": "{% {"
                '"ModelPackageArn": $states.result.ModelPackageArn, '
                '"ModelPackageVersion": $split($states.result.ModelPackageArn, "/")[-1], '
                '"TrainingJobName": $states.input.TrainingJobName, '
                '"ModelDataUrl": $states.input.ModelDataUrl, '
                '"Metrics": $states.input.Metrics} %}',
                "Next": PUBLISH_STATE,
            },
            PUBLISH_STATE: {
                "Type": "Task",
                "Comment": "The deploy stacks' ModelVersion parameter resolves this SSM parameter",
                "Resource": PUBLISH_TASK,
                "Arguments": {
                    "Name": naming.model_version_parameter(ctx.spec, ctx.execution_id),
                    "Description": f"Model Registry version registered by pipeline execution {ctx.execution_id}",
                    "Type": "String",
                    "Value": "{% $states.input.ModelPackageVersion %}",
                    "Overwrite": True,
                },
                "Output": "{% $states.input %}",
                "End": True,
            },
        },
    }


def training_job_template(ctx: BuildContext) -> Json:
    """The ``<model>-training-job`` stack."""
    spec = ctx.spec
    template = Template(f"{spec.pipeline_name}: training job, quality gate and registration ({ctx.execution_id})")
    kms = template.kms_key_parameter(naming.kms_alias(spec))
    # The model package group is base infrastructure (cdktf_app/registry.py): the registry outlives this stack,
    # and a stack-owned, retained group would collide when the stack is created again after `make destroy`.
    group = naming.model_package_group(spec)
    machine = add_state_machine(template, spec, "training-job", definition(ctx), kms)
    template.output("StateMachineArn", ref(machine), "The state machine the Train stage runs")
    template.output("TrainingJobName", ctx.training_job_name, "This execution's training job")
    template.output("ModelDataUrl", ctx.model_data_url, "Where the trained model lands")
    template.output("ModelPackageGroupName", group, "The model's registry group")
    template.output(
        "ModelPackageGroupArn",
        {
            "Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:"
            f"model-package-group/{group}"
        },
        "The model's registry group (ARN)",
    )
    return template.to_dict()
