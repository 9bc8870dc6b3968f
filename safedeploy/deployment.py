"""Deploy a registered model version to an endpoint with SageMaker's own calls.

``CreateModel`` -> ``CreateEndpointConfig`` (with data capture) -> ``CreateEndpoint`` or ``UpdateEndpoint`` ->
wait for ``InService``. The calls go to whatever SageMaker client the backend's serving host gives: boto3
against the local runtime, or against AWS.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from botocore.exceptions import ClientError

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.errors import DeploymentError
from safedeploy.spec import PipelineSpec

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.literals import ProductionVariantInstanceTypeType
    from mypy_boto3_sagemaker.type_defs import DescribeEndpointOutputTypeDef, ProductionVariantTypeDef

_POLL_S = 0.1


@dataclass(frozen=True)
class ModelSource:
    """What a model version needs to be served: its archive, its handler code and the image."""

    model_data_url: str
    source_dir_uri: str
    image: str
    version: int


@dataclass(frozen=True)
class DeployedEndpoint:
    """The outcome of a deployment."""

    endpoint_name: str
    endpoint_config_name: str
    model_name: str
    status: str


def _settled_status(sagemaker: SageMakerClient, name: str, timeout_s: float) -> str | None:
    """The endpoint's status once no change is in progress (an update is refused meanwhile); None if absent."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            status = sagemaker.describe_endpoint(EndpointName=name)["EndpointStatus"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ValidationException":
                return None
            raise
        if status not in ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"):
            return status
        if time.monotonic() > deadline:
            raise DeploymentError(f"endpoint {name} is still {status} after {timeout_s:.0f} s; try again later")
        time.sleep(_POLL_S)


def deploy(
    sagemaker: SageMakerClient,
    spec: PipelineSpec,
    source: ModelSource,
    *,
    stage: str,
    execution_id: str,
    endpoint_name: str | None = None,
    instance_count: int | None = None,
    instance_type: str | None = None,
    extra_environment: Mapping[str, str] | None = None,
) -> DeployedEndpoint:
    """Create or update the stage's endpoint to serve ``source``; raise :class:`DeploymentError` on failure.

    ``endpoint_name`` overrides the stage's stable name (blue/green production gives each version its own).
    """
    serving = spec.serving
    suffix = naming.deployment_suffix(source.version, execution_id)
    endpoint = endpoint_name or naming.endpoint_name(spec, stage)
    model_name = f"{spec.model_name}-{stage}-{suffix}"
    config_name = f"{endpoint}-{suffix}" if endpoint_name is None else endpoint
    variant: ProductionVariantTypeDef = {
        "VariantName": C.DEFAULT_VARIANT,
        "ModelName": model_name,
        "InitialInstanceCount": instance_count or serving.instance_count,
        "InstanceType": cast("ProductionVariantInstanceTypeType", instance_type or serving.instance_type),
        "InitialVariantWeight": 1.0,
    }
    try:
        sagemaker.create_model(
            ModelName=model_name,
            PrimaryContainer={
                "Image": source.image,
                "ModelDataUrl": source.model_data_url,
                "Environment": {
                    C.SM_PROGRAM_ENV: C.INFERENCE_PROGRAM,
                    C.SM_SUBMIT_DIRECTORY_ENV: source.source_dir_uri,
                    "SAGEMAKER_REGION": spec.region,
                    **(extra_environment or {}),
                },
            },
            ExecutionRoleArn=naming.execution_role_arn(spec),
        )
        sagemaker.create_endpoint_config(
            EndpointConfigName=config_name,
            ProductionVariants=[variant],
            DataCaptureConfig={
                "EnableCapture": serving.capture_percentage > 0,
                "InitialSamplingPercentage": serving.capture_percentage,
                "DestinationS3Uri": str(naming.capture_uri(spec)),
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "CaptureContentTypeHeader": {
                    "CsvContentTypes": ["text/csv"],
                    "JsonContentTypes": ["application/json"],
                },
            },
        )
        if _settled_status(sagemaker, endpoint, serving.ready_timeout_seconds) is not None:
            sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=config_name)
        else:
            sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=config_name)
        described = wait_in_service(sagemaker, endpoint, serving.ready_timeout_seconds)
    except ClientError as exc:
        raise DeploymentError(f"deploying {model_name} to {endpoint} failed: {exc}") from None
    if described["EndpointConfigName"] != config_name:
        raise DeploymentError(
            f"endpoint {endpoint} kept serving {described['EndpointConfigName']}: the update to {config_name} "
            f"failed: {described.get('FailureReason', 'no reason given')}"
        )
    return DeployedEndpoint(endpoint, config_name, model_name, described["EndpointStatus"])


def wait_in_service(sagemaker: SageMakerClient, endpoint: str, timeout_s: float) -> DescribeEndpointOutputTypeDef:
    """Poll ``DescribeEndpoint`` until it leaves Creating/Updating; raise if it ends Failed or times out."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
        status = described["EndpointStatus"]
        if status == "InService":
            return described
        if status == "Failed":
            raise DeploymentError(f"endpoint {endpoint} failed: {described.get('FailureReason', 'no reason given')}")
        if time.monotonic() > deadline:
            raise DeploymentError(f"endpoint {endpoint} still {status} after {timeout_s:.0f} s")
        time.sleep(_POLL_S)
