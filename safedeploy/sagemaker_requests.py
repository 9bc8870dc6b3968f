"""SageMaker request bodies, built once and executed by both backends.

The local backend sends these dicts to its SageMaker client (``deploy()``); the AWS backend renders the very
same dicts into CloudFormation properties and Step Functions task arguments (``safedeploy.cloudformation``).
Each builder is pure: spec and names in, request out, no client and no clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.spec import PipelineSpec
from safedeploy.store import S3Uri

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.literals import ProcessingInstanceTypeType, ProductionVariantInstanceTypeType
    from mypy_boto3_sagemaker.type_defs import (
        ContainerDefinitionTypeDef,
        CreateEndpointConfigInputTypeDef,
        CreateModelInputTypeDef,
        CreateProcessingJobRequestTypeDef,
        DataCaptureConfigTypeDef,
        ProcessingClusterConfigTypeDef,
        ProcessingOutputConfigTypeDef,
    )

VersionRef = int | str
"""A registry version: a number, or a template token such as ``${ModelVersion}`` resolved at deploy time."""

BASELINE_INPUT_NAME = "baseline_dataset_input"
BASELINE_INPUT_PATH = f"/opt/ml/processing/input/{BASELINE_INPUT_NAME}"
MONITOR_OUTPUT_PATH = "/opt/ml/processing/output"
"""Model Monitor's analyzer container: where it reads the dataset and writes statistics/constraints."""
BASELINE_VOLUME_GB = 20
BASELINE_MAX_RUNTIME_SECONDS = 3600


@dataclass(frozen=True)
class DeploymentNames:
    """The SageMaker names of one deployment: model, endpoint config and the endpoint serving it."""

    model: str
    endpoint_config: str
    endpoint: str


def deployment_names(
    spec: PipelineSpec, *, stage: str, version: VersionRef, execution_id: str, endpoint_name: str | None = None
) -> DeploymentNames:
    """Name a deployment of ``version`` to ``stage``, as ``naming.deployment_suffix`` suffixes it.

    ``endpoint_name`` overrides the stage's stable endpoint (blue/green gives each version its own endpoint,
    whose config then carries the endpoint's name).
    """
    if isinstance(version, int):
        suffix = naming.deployment_suffix(version, execution_id)
    else:  # a template token in the same place (tests pin the two forms to each other)
        suffix = f"v{version}-{execution_id[:8]}"
    endpoint = endpoint_name or naming.endpoint_name(spec, stage)
    config = f"{endpoint}-{suffix}" if endpoint_name is None else endpoint
    return DeploymentNames(model=f"{spec.model_name}-{stage}-{suffix}", endpoint_config=config, endpoint=endpoint)


def green_endpoint_name(spec: PipelineSpec, version: VersionRef, execution_id: str) -> str:
    """A production (blue/green) endpoint of one version, as ``naming.green_endpoint_name`` names it."""
    if isinstance(version, int):
        return naming.green_endpoint_name(spec, version, execution_id)
    return f"{spec.model_name}-{C.PRD_STAGE}-v{version}-{execution_id[:8]}"


def serving_environment(
    spec: PipelineSpec, source_dir_uri: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The serving container's environment: script-mode handler, its code, the default answer type, the region."""
    return {
        C.SM_PROGRAM_ENV: C.INFERENCE_PROGRAM,
        C.SM_SUBMIT_DIRECTORY_ENV: source_dir_uri,
        C.SM_DEFAULT_ACCEPT_ENV: C.DEFAULT_INVOCATIONS_ACCEPT,
        "SAGEMAKER_REGION": spec.region,
        **(extra or {}),
    }


def model_request(
    spec: PipelineSpec,
    *,
    model_name: str,
    image: str,
    model_data_url: str,
    source_dir_uri: str,
    extra_environment: Mapping[str, str] | None = None,
    model_data_etag: str | None = None,
) -> CreateModelInputTypeDef:
    """The ``CreateModel`` request of one model version (script-mode serving of ``model/inference.py``).

    With ``model_data_etag`` (the archive's ETag: locally its sha256, the registry's ``ModelDataETag``) the model
    data goes as ``ModelDataSource.S3DataSource`` with that ``ETag``, which the local runtime requires and checks
    before unpacking; without it, as ``ModelDataUrl`` (what the CloudFormation templates render).
    """
    container: ContainerDefinitionTypeDef = {
        "Image": image,
        "Environment": serving_environment(spec, source_dir_uri, extra_environment),
    }
    if model_data_etag is None:
        container["ModelDataUrl"] = model_data_url
    else:
        container["ModelDataSource"] = {
            "S3DataSource": {
                "S3Uri": model_data_url,
                "S3DataType": "S3Object",
                "CompressionType": "Gzip",
                "ETag": model_data_etag,
            }
        }
    return {"ModelName": model_name, "PrimaryContainer": container, "ExecutionRoleArn": naming.execution_role_arn(spec)}


def data_capture_config(spec: PipelineSpec, kms_key_id: str | None = None) -> DataCaptureConfigTypeDef:
    """``DataCaptureConfig``: request and response at the spec's sampling percentage, to ``naming.capture_uri``."""
    capture: DataCaptureConfigTypeDef = {
        "EnableCapture": spec.serving.capture_percentage > 0,
        "InitialSamplingPercentage": spec.serving.capture_percentage,
        "DestinationS3Uri": str(naming.capture_uri(spec)),
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]},
    }
    if kms_key_id is not None:
        capture["KmsKeyId"] = kms_key_id
    return capture


def endpoint_config_request(
    spec: PipelineSpec,
    *,
    config_name: str,
    model_name: str,
    instance_count: int,
    instance_type: str,
    kms_key_id: str | None = None,
) -> CreateEndpointConfigInputTypeDef:
    """The ``CreateEndpointConfig`` request: one variant, data capture on; KMS for volume and capture if given."""
    request: CreateEndpointConfigInputTypeDef = {
        "EndpointConfigName": config_name,
        "ProductionVariants": [
            {
                "VariantName": C.DEFAULT_VARIANT,
                "ModelName": model_name,
                "InitialInstanceCount": instance_count,
                "InstanceType": cast("ProductionVariantInstanceTypeType", instance_type),
                "InitialVariantWeight": 1.0,
            }
        ],
        "DataCaptureConfig": data_capture_config(spec, kms_key_id),
    }
    if kms_key_id is not None:
        request["KmsKeyId"] = kms_key_id
    return request


def monitor_dataset_format() -> str:
    """The analyzer's ``dataset_format``: CSV with a header (the baseline dataset of the Data stage)."""
    return json.dumps({"csv": {"header": True, "output_columns_position": "START"}}, separators=(",", ":"))


def model_monitor_baseline_job_request(
    spec: PipelineSpec,
    *,
    job_name: str,
    baseline_uri: str,
    output: S3Uri,
    image_uri: str,
    kms_key_id: str | None = None,
) -> CreateProcessingJobRequestTypeDef:
    """``CreateProcessingJob`` of Model Monitor's own suggest-baseline job (``monitoring.use_model_monitor``).

    It reads the Data stage's baseline CSV (training features with a header) and writes ``statistics.json`` and
    ``constraints.json`` to ``output`` (the execution's baseline prefix, never a shared key). Without the switch the
    stacks run this project's analyzer instead (``safedeploy.monitoring.requests.baseline_job_request``).
    """
    cluster: ProcessingClusterConfigTypeDef = {
        "InstanceCount": 1,
        "InstanceType": cast("ProcessingInstanceTypeType", spec.training.instance_type),
        "VolumeSizeInGB": BASELINE_VOLUME_GB,
    }
    outputs: ProcessingOutputConfigTypeDef = {
        "Outputs": [
            {
                "OutputName": "monitoring_output",
                "S3Output": {
                    "S3Uri": str(output),
                    "LocalPath": MONITOR_OUTPUT_PATH,
                    "S3UploadMode": "EndOfJob",
                },
            }
        ],
    }
    if kms_key_id is not None:
        cluster["VolumeKmsKeyId"] = kms_key_id
        outputs["KmsKeyId"] = kms_key_id
    return {
        "ProcessingJobName": job_name,
        "RoleArn": naming.execution_role_arn(spec),
        "AppSpecification": {"ImageUri": image_uri},
        "Environment": {
            "dataset_format": monitor_dataset_format(),
            "dataset_source": BASELINE_INPUT_PATH,
            "output_path": MONITOR_OUTPUT_PATH,
            "publish_cloudwatch_metrics": "Disabled",
        },
        "ProcessingInputs": [
            {
                "InputName": BASELINE_INPUT_NAME,
                "S3Input": {
                    "S3Uri": baseline_uri,
                    "LocalPath": BASELINE_INPUT_PATH,
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            }
        ],
        "ProcessingOutputConfig": outputs,
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": BASELINE_MAX_RUNTIME_SECONDS},
        "Tags": [
            {"Key": "safedeploy:model", "Value": spec.model_name},
            {"Key": "safedeploy:environment", "Value": spec.environment},
        ],
    }
