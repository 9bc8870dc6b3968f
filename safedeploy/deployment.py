"""Deploy a registered model version to an endpoint with SageMaker's own calls.

``CreateModel`` -> ``CreateEndpointConfig`` (with data capture) -> ``CreateEndpoint`` or ``UpdateEndpoint`` ->
wait for ``InService``. The calls go to whatever SageMaker client the backend's serving host gives: boto3
against the local runtime, or against AWS.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from safedeploy.errors import DeploymentError
from safedeploy.sagemaker_requests.serving import deployment_names, endpoint_config_request, model_request
from safedeploy.spec import PipelineSpec

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.type_defs import DescribeEndpointOutputTypeDef

_POLL_S = 0.1


@dataclass(frozen=True)
class ModelSource:
    """What a model version needs to be served: its archive (and its sha256), its handler code and the image."""

    model_data_url: str
    source_dir_uri: str
    image: str
    version: int
    model_data_sha256: str | None = None
    """The archive's digest recorded at registration; sent with CreateModel as the model data's ETag."""


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
    kms_key_id: str | None = None,
) -> DeployedEndpoint:
    """Create or update the stage's endpoint to serve ``source``; raise :class:`DeploymentError` on failure.

    ``endpoint_name`` overrides the stage's stable name (blue/green production gives each version its own).
    The requests come from :mod:`safedeploy.sagemaker_requests`, which the CloudFormation templates render too;
    ``kms_key_id`` encrypts the instances' volumes and the captured data (the local runtime has no KMS).
    """
    serving = spec.serving
    names = deployment_names(
        spec, stage=stage, version=source.version, execution_id=execution_id, endpoint_name=endpoint_name
    )
    endpoint, model_name, config_name = names.endpoint, names.model, names.endpoint_config
    try:
        sagemaker.create_model(
            **model_request(
                spec,
                model_name=model_name,
                image=source.image,
                model_data_url=source.model_data_url,
                source_dir_uri=source.source_dir_uri,
                extra_environment=extra_environment,
                model_data_etag=source.model_data_sha256,
            )
        )
        sagemaker.create_endpoint_config(
            **endpoint_config_request(
                spec,
                config_name=config_name,
                model_name=model_name,
                instance_count=instance_count or serving.instance_count,
                instance_type=instance_type or serving.instance_type,
                kms_key_id=kms_key_id,
            )
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
