"""``<model>-training-job``: train (the local backend's request), hold to the quality gate, register.

A Step Functions state machine (Standard, JSONata) the Train stage runs:
``TrainModel`` (``createTrainingJob.sync`` with exactly :func:`training_job_request`'s content) ->
the quality gate (:mod:`.quality_gate`) -> ``SuggestBaselines`` (a Parallel state: the local Baseline stage's
Processing jobs, :func:`baseline_job_request` on the training features, :func:`output_baseline_job_request` on
the validation channel with the trained model and, with ``monitoring.model_quality.enabled``,
:func:`model_quality_baseline_job_request` on the same channel and model, writing under
``naming.execution_baseline_prefix``'s ``data/``, ``output/`` and ``quality/``) -> ``ReadDataDigests`` /
``ReadOutputDigests`` / ``ReadQualityDigests`` (each job's ``digests.json``) -> ``ReadQualityConstraints`` (the AUC
threshold the version is judged by) -> ``RegisterModel`` (``CreateModelPackage``, PendingManualApproval, into the
model's group, with the baselines' URIs and sha256) -> ``PublishModelVersion`` -> ``PublishAucThreshold``. Its
output names the new version (and its AUC threshold) for the deploy stacks.

Identical training inputs (:func:`inputs_digest`, the local Train stage's) to a registered, non-rejected version
render the reuse variant instead (:func:`reuse_definition`): no training job, no baseline jobs, no
``CreateModelPackage``; the existing version is published for the deploy stacks ("identical inputs to vN:
reusing vN, no new version").
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
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.sagemaker_requests.processing import (
    baseline_job_request,
    model_quality_baseline_job_request,
    output_baseline_job_request,
)
from safedeploy.sagemaker_requests.serving import serving_environment
from safedeploy.sagemaker_requests.training import training_job_request
from safedeploy.store import S3Uri
from safedeploy.training.inputs import INPUTS_METADATA_KEY, TrainingInputs, code_identity

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import CreateProcessingJobRequestTypeDef, CreateTrainingJobRequestTypeDef

TRAIN_STATE = "TrainModel"
REGISTER_STATE = "RegisterModel"
PUBLISH_STATE = "PublishModelVersion"
BASELINES_STATE = "SuggestBaselines"
DATA_BASELINE_STATE = "SuggestDataBaseline"
OUTPUT_BASELINE_STATE = "SuggestOutputBaseline"
READ_DATA_DIGESTS = "ReadDataDigests"
READ_OUTPUT_DIGESTS = "ReadOutputDigests"
QUALITY_BASELINE_STATE = "SuggestQualityBaseline"
READ_QUALITY_DIGESTS = "ReadQualityDigests"
READ_QUALITY_CONSTRAINTS = "ReadQualityConstraints"
PUBLISH_THRESHOLD_STATE = "PublishAucThreshold"
REUSE_STATE = "ReuseModelVersion"
PROCESSING_TASK = "arn:aws:states:::sagemaker:createProcessingJob.sync"
GET_OBJECT_TASK = "arn:aws:states:::aws-sdk:s3:getObject"
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
        production_model_uri=ctx.production.model_data_url
        if ctx.production and ctx.spec.gate.compare_with_production
        else None,
    )


def inputs_digest(ctx: BuildContext) -> str:
    """The training inputs' digest (data, code, hyperparameters, image), as the local Train stage computes it."""
    return TrainingInputs(
        data_sha256=ctx.contract.data_sha256,
        code_revision=code_identity(ctx.code_revision, ctx.source_archive_sha256),
        hyperparameters=dict(ctx.contract.hyperparameters),
        image=ctx.images.training,
    ).digest


def baseline_requests(ctx: BuildContext, kms_key_id: str | None) -> list[CreateProcessingJobRequestTypeDef]:
    """This execution's baseline jobs, what the local Baseline stage runs.

    Features, the model's scores and (``monitoring.model_quality.enabled``) its quality on the validation channel.
    """
    prefix = naming.execution_baseline_prefix(ctx.spec, ctx.execution_id)
    data = baseline_job_request(
        ctx.spec,
        job_name=ctx.baseline_job("data"),
        dataset=ctx.contract.uri("BaselineUri"),
        output=prefix.join("data"),
        code=ctx.analyzer_code,
        image_uri=ctx.images.processing,
        kms_key_id=kms_key_id,
    )
    output = output_baseline_job_request(
        ctx.spec,
        job_name=ctx.baseline_job("output"),
        dataset=ctx.contract.uri("ValidationUri"),
        model_archive=ctx.model_data_url,
        output=prefix.join("output"),
        code=ctx.analyzer_code,
        image_uri=ctx.images.processing,
        kms_key_id=kms_key_id,
    )
    if not ctx.spec.monitoring.model_quality.enabled:
        return [data, output]
    quality = model_quality_baseline_job_request(
        ctx.spec,
        job_name=ctx.baseline_job("quality"),
        dataset=ctx.contract.uri("ValidationUri"),
        model_archive=ctx.model_data_url,
        output=prefix.join("quality"),
        code=ctx.analyzer_code,
        image_uri=ctx.images.processing,
        evaluation_time=ctx.started,  # the statistics' evaluation_time: the build's, so the request is fixed
        kms_key_id=kms_key_id,
    )
    return [data, output, quality]


def _digest(field: str, filename: str) -> str:
    """JSONata: the ``sha256:<hex>`` a baseline job reported for ``filename`` (its ``digests.json``)."""
    return f'$lookup($states.input.{field}, "{filename}")'


def _read_digests(ctx: BuildContext, folder: str, field: str, next_state: str) -> Json:
    uri = naming.execution_baseline_prefix(ctx.spec, ctx.execution_id).join(folder, F.DIGESTS_FILE)
    return {
        "Type": "Task",
        "Comment": f"The sha256 the {folder} baseline job reported for the files it wrote",
        "Resource": GET_OBJECT_TASK,
        "Arguments": {"Bucket": uri.bucket, "Key": uri.key},
        "Output": "{% $merge([$states.input, {" + json.dumps(field) + ": $parse($states.result.Body)}]) %}",
        "Next": next_state,
    }


def _read_auc_threshold(ctx: BuildContext, next_state: str) -> Json:
    """The AUC threshold of the quality baseline's ``constraints.json`` (the deploy-prd alarm's, via SSM)."""
    uri = S3Uri.parse(ctx.quality_baseline.constraints)
    return {
        "Type": "Task",
        "Comment": "The AUC threshold the version's model quality is judged by (the spec's, else the suggested one)",
        "Resource": GET_OBJECT_TASK,
        "Arguments": {"Bucket": uri.bucket, "Key": uri.key},
        "Output": '{% $merge([$states.input, {"AucThreshold": '
        "$parse($states.result.Body).binary_classification_constraints.auc.threshold}]) %}",
        "Next": next_state,
    }


def _baseline_branch(state: str, request: Json) -> Json:
    return {
        "StartAt": state,
        "States": {
            state: {
                "Type": "Task",
                "Resource": PROCESSING_TASK,
                "Arguments": request,
                "Output": "{% $states.result.ProcessingJobName %}",
                "End": True,
            }
        },
    }


def _registration(ctx: BuildContext) -> Json:
    spec = ctx.spec
    properties = {
        "DataSha256": ctx.contract.data_sha256,
        "CodeRevision": ctx.code_revision,
        "TrainingJobName": ctx.training_job_name,
        "PipelineExecutionId": ctx.execution_id,
        "FeatureSchemaUri": ctx.contract.uri("FeatureSchemaUri"),
        INPUTS_METADATA_KEY: inputs_digest(ctx),
        "RegisteredBy": f"pipeline {spec.pipeline_name} ({naming.state_machine_name(spec, 'training-job')})",
    }
    if ctx.production is not None and spec.gate.compare_with_production:
        properties["ComparedWithProductionVersion"] = str(ctx.production.version)
    literal = json.dumps(properties)  # a JSON object is a JSONata object constructor
    # the candidate's own metrics (production's score on the same rows is the gate's, not this version's)
    metrics = (
        '$each($sift($states.input.Metrics, function($v, $k) {$not($contains($k, "production:"))}), '
        'function($v, $k) {{"metric:" & $k: $string($v)}})'
    )
    baseline = ctx.baseline
    output_baseline = (
        "{"
        f'"OutputStatisticsUri": {json.dumps(baseline.output_statistics)}, '
        f'"OutputStatisticsSha256": {_digest("OutputDigests", F.STATISTICS_FILE)}, '
        f'"OutputConstraintsUri": {json.dumps(baseline.output_constraints)}, '
        f'"OutputConstraintsSha256": {_digest("OutputDigests", F.CONSTRAINTS_FILE)}'
        "}"
    )
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
        "CustomerMetadataProperties": f"{{% $merge($append([{literal}, {output_baseline}], {metrics})) %}}",
        "DriftCheckBaselines": drift_check_baselines(ctx),
    }


def drift_check_baselines(ctx: BuildContext) -> Json:
    """The version's data-quality (and model-quality) baseline: the files this execution's baseline jobs wrote.

    With the sha256 each job reported (``ContentDigest``, read from its ``digests.json`` by ``ReadDataDigests`` and
    ``ReadQualityDigests``).
    """
    baseline = ctx.baseline

    def source(uri: str, filename: str, field: str) -> Json:
        digest = "{% " + _digest(field, filename) + " %}"
        return {"ContentType": "application/json", "S3Uri": uri, "ContentDigest": digest}

    baselines: Json = {
        "ModelDataQuality": {
            "Statistics": source(baseline.statistics, F.STATISTICS_FILE, "DataDigests"),
            "Constraints": source(baseline.constraints, F.CONSTRAINTS_FILE, "DataDigests"),
        }
    }
    if ctx.spec.monitoring.model_quality.enabled:
        quality = ctx.quality_baseline
        baselines["ModelQuality"] = {
            "Statistics": source(quality.statistics, F.STATISTICS_FILE, "QualityDigests"),
            "Constraints": source(quality.constraints, F.CONSTRAINTS_FILE, "QualityDigests"),
        }
    return baselines


def _publish_states(ctx: BuildContext, what: str) -> Json:
    """``PublishModelVersion`` (and ``PublishAucThreshold``): what the deploy stacks' parameters resolve."""
    quality = ctx.spec.monitoring.model_quality.enabled
    publish: Json = {
        PUBLISH_STATE: {
            "Type": "Task",
            "Comment": "The deploy stacks' ModelVersion parameter resolves this SSM parameter",
            "Resource": PUBLISH_TASK,
            "Arguments": {
                "Name": naming.model_version_parameter(ctx.spec, ctx.execution_id),
                "Description": f"Model Registry version {what} by pipeline execution {ctx.execution_id}",
                "Type": "String",
                "Value": "{% $states.input.ModelPackageVersion %}",
                "Overwrite": True,
            },
            "Output": "{% $states.input %}",
            **({"Next": PUBLISH_THRESHOLD_STATE} if quality else {"End": True}),
        }
    }
    if quality:
        publish[PUBLISH_THRESHOLD_STATE] = {
            "Type": "Task",
            "Comment": "The deploy-prd stack's model-quality alarm resolves this SSM parameter",
            "Resource": PUBLISH_TASK,
            "Arguments": {
                "Name": naming.auc_threshold_parameter(ctx.spec, ctx.execution_id),
                "Description": f"AUC threshold of the version {what} by pipeline execution {ctx.execution_id}",
                "Type": "String",
                "Value": "{% $string($states.input.AucThreshold) %}",
                "Overwrite": True,
            },
            "Output": "{% $states.input %}",
            "End": True,
        }
    return publish


def reuse_definition(ctx: BuildContext) -> Json:
    """The reuse variant: identical inputs to a registered version, so no training, no baselines, no registration.

    ``ReuseModelVersion`` (a Pass state naming the version, its job and archive, and why) -> with model quality,
    ``ReadQualityConstraints`` (the reused version's own ``constraints.json``, under its execution's baseline
    prefix, which the role may already read) -> ``PublishModelVersion`` (this execution's SSM parameter, so the
    deploy stacks serve the reused version) -> ``PublishAucThreshold``. The quality gate is not run again: the
    version passed it on the same data, and ``model/run.py`` reuses it only when its recorded metrics still pass
    the spec's gate and, comparing with production, it was compared with the version production serves now (or
    is that version). Every task is one the normal variant runs, so the state machine's grants do not widen.
    """
    reused = ctx.reused
    if reused is None:
        raise ValueError("reuse_definition needs a BuildContext with a reused version")
    quality = ctx.spec.monitoring.model_quality.enabled
    summary = reused.describe() + (" (it already serves production)" if reused.serves_production else "")
    reuse: Json = {
        "Type": "Pass",
        "Comment": summary,
        "Output": {
            "ModelPackageArn": reused.model_package_arn,
            "ModelPackageVersion": str(reused.version),
            "ReusedVersion": reused.version,
            "TrainingJobName": reused.training_job_name,
            "ModelDataUrl": reused.model_data_url,
            "InputsSha256": reused.inputs_sha256,
            "ServesProduction": reused.serves_production,
            "Summary": summary,
        },
        "Next": READ_QUALITY_CONSTRAINTS if quality else PUBLISH_STATE,
    }
    reads: Json = {READ_QUALITY_CONSTRAINTS: _read_auc_threshold(ctx, PUBLISH_STATE)} if quality else {}
    return {
        "Comment": f"{ctx.spec.model_name}: {summary}; no training job, no baseline jobs, no CreateModelPackage",
        "QueryLanguage": "JSONata",
        "StartAt": REUSE_STATE,
        "States": {REUSE_STATE: reuse, **reads, **_publish_states(ctx, f"v{reused.version} reused")},
    }


def definition(ctx: BuildContext) -> Json:
    """The state machine definition (CloudFormation resolves the KMS key parameter inside it).

    The reuse variant (:func:`reuse_definition`) when the build found a version with identical inputs.
    """
    if ctx.reused is not None:
        return reuse_definition(ctx)
    quality = ctx.spec.monitoring.model_quality.enabled
    first_gate, gate = gate_states(ctx.spec.gate, BASELINES_STATE, ctx.production)
    train = parameterize(training_request(ctx, token(KMS_KEY_PARAMETER)))
    jobs = baseline_requests(ctx, token(KMS_KEY_PARAMETER))
    branches = [DATA_BASELINE_STATE, OUTPUT_BASELINE_STATE, QUALITY_BASELINE_STATE][: len(jobs)]
    reads: Json = {
        READ_DATA_DIGESTS: _read_digests(ctx, "data", "DataDigests", READ_OUTPUT_DIGESTS),
        READ_OUTPUT_DIGESTS: _read_digests(
            ctx, "output", "OutputDigests", READ_QUALITY_DIGESTS if quality else REGISTER_STATE
        ),
    }
    if quality:
        reads[READ_QUALITY_DIGESTS] = _read_digests(ctx, "quality", "QualityDigests", READ_QUALITY_CONSTRAINTS)
        reads[READ_QUALITY_CONSTRAINTS] = _read_auc_threshold(ctx, REGISTER_STATE)
    publish = _publish_states(ctx, "registered")
    register_output = (
        "{% {"
        '"ModelPackageArn": $states.result.ModelPackageArn, '
        '"ModelPackageVersion": $split($states.result.ModelPackageArn, "/")[-1], '
        '"TrainingJobName": $states.input.TrainingJobName, '
        '"ModelDataUrl": $states.input.ModelDataUrl, '
        '"BaselineJobs": $states.input.BaselineJobs, '
        + ('"AucThreshold": $states.input.AucThreshold, ' if quality else "")
        + '"Metrics": $states.input.Metrics} %}'
    )
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
            BASELINES_STATE: {
                "Type": "Parallel",
                "Comment": "The Baseline stage: training features, the model's validation scores"
                + (" and its model quality" if quality else ""),
                "Branches": [
                    _baseline_branch(state, parameterize(dict(job))) for state, job in zip(branches, jobs, strict=True)
                ],
                "Output": '{% $merge([$states.input, {"BaselineJobs": $states.result}]) %}',
                "Next": READ_DATA_DIGESTS,
            },
            **reads,
            REGISTER_STATE: {
                "Type": "Task",
                "Resource": REGISTER_TASK,
                "Arguments": _registration(ctx),
                "Output": register_output,
                "Next": PUBLISH_STATE,
            },
            **publish,
        },
    }


def training_job_template(ctx: BuildContext) -> Json:
    """The ``<model>-training-job`` stack."""
    spec = ctx.spec
    reused = ctx.reused
    purpose = "training job, quality gate and registration" if reused is None else reused.describe()
    template = Template(f"{spec.pipeline_name}: {purpose} ({ctx.execution_id})")
    kms = template.kms_key_parameter(naming.kms_alias(spec))
    # The model package group is base infrastructure (cdktf_app/registry.py): the registry outlives this stack,
    # and a stack-owned, retained group would collide when the stack is created again after `make destroy`.
    group = naming.model_package_group(spec)
    machine = add_state_machine(template, spec, "training-job", definition(ctx), kms)
    template.output("StateMachineArn", ref(machine), "The state machine the Train stage runs")
    if reused is None:
        template.output("TrainingJobName", ctx.training_job_name, "This execution's training job")
        template.output("ModelDataUrl", ctx.model_data_url, "Where the trained model lands")
    else:
        template.output("TrainingJobName", ctx.training_job_name, f"The job that trained v{reused.version}")
        template.output("ModelDataUrl", ctx.model_data_url, f"v{reused.version}'s model archive")
        template.output("ReusedModelVersion", str(reused.version), "The registered version this execution serves")
        template.output("Summary", reused.describe(), "What this execution's Train does")
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
