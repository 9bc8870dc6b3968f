"""Model -> EndpointConfig -> Endpoint resources from the requests the local backend's ``deploy()`` sends.

The CreateModel / CreateEndpointConfig request keys are the CloudFormation property names of
``AWS::SageMaker::Model`` / ``AWS::SageMaker::EndpointConfig``; :func:`to_properties` checks each key is one
(an API-only field would be refused here, not at deploy time) and turns template-parameter tokens in the
names into intrinsic functions. Names are the request's literal names, ordering is by ``DependsOn``, so
the rendered properties equal the request once the parameters are substituted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from safedeploy import constants as C
from safedeploy.cloudformation.context import BuildContext
from safedeploy.cloudformation.template import KMS_KEY_PARAMETER, Json, Template, checkov_skips, parameterize, token
from safedeploy.sagemaker_requests.serving import DeploymentNames, endpoint_config_request, model_request

MODEL_PROPERTIES = frozenset(
    {
        "ModelName",
        "PrimaryContainer",
        "Containers",
        "ExecutionRoleArn",
        "EnableNetworkIsolation",
        "InferenceExecutionConfig",
        "VpcConfig",
        "Tags",
    }
)
ENDPOINT_CONFIG_PROPERTIES = frozenset(
    {
        "EndpointConfigName",
        "ProductionVariants",
        "DataCaptureConfig",
        "KmsKeyId",
        "AsyncInferenceConfig",
        "ExplainerConfig",
        "ShadowProductionVariants",
        "EnableNetworkIsolation",
        "ExecutionRoleArn",
        "VpcConfig",
        "Tags",
    }
)
MODEL, ENDPOINT_CONFIG, ENDPOINT = "Model", "EndpointConfig", "Endpoint"
MODEL_DIR = "/opt/ml/model"
"""Where SageMaker unpacks ``model.tar.gz`` in the serving container."""
NO_ISOLATION = (
    "CKV_AWS_370",
    "No network isolation: script-mode serving downloads its handler code (SAGEMAKER_SUBMIT_DIRECTORY, "
    "sourcedir.tar.gz) from S3 inside the container, which isolation forbids. Isolation is set as soon as the "
    "code ships inside model.tar.gz (network_isolation(): a submit directory under /opt/ml/model).",
)


def network_isolation(source_dir_uri: str) -> bool:
    """Whether the model can run network-isolated: its inference code ships inside the model archive.

    SageMaker's framework containers download an ``s3://`` ``SAGEMAKER_SUBMIT_DIRECTORY`` themselves, from inside
    the container, which ``EnableNetworkIsolation`` cuts off (SageMaker itself still downloads ``model.tar.gz``).
    Code packed into the archive (``code/`` under :data:`MODEL_DIR`) needs no network: isolate.
    """
    return source_dir_uri == MODEL_DIR or source_dir_uri.startswith(f"{MODEL_DIR}/")


def to_properties(request: Mapping[str, Any], allowed: frozenset[str], resource_type: str) -> Json:
    """A request as the properties of ``resource_type`` (same keys; parameter tokens -> ``Ref``/``Fn::Sub``)."""
    unknown = sorted(set(request) - allowed)
    if unknown:
        raise ValueError(f"{resource_type} has no properties {', '.join(unknown)} (from the SageMaker request)")
    properties: Json = parameterize(dict(request))
    return properties


@dataclass(frozen=True)
class ServingResources:
    """Logical ids of one deployment's resources, and the SageMaker names they create."""

    model: str
    endpoint_config: str
    endpoint: str
    names: DeploymentNames


def add_serving(
    template: Template,
    ctx: BuildContext,
    names: DeploymentNames,
    *,
    instance_count: int,
    instance_type: str,
    endpoint_properties: Mapping[str, Any] | None = None,
    endpoint_depends_on: tuple[str, ...] = (),
) -> ServingResources:
    """Add Model, EndpointConfig (capture and KMS on) and Endpoint serving this build's model."""
    model = model_request(
        ctx.spec,
        model_name=names.model,
        image=ctx.images.serving,
        model_data_url=ctx.model_data_url,
        source_dir_uri=str(ctx.source_archive),
    )
    config = endpoint_config_request(
        ctx.spec,
        config_name=names.endpoint_config,
        model_name=names.model,
        instance_count=instance_count,
        instance_type=instance_type,
        kms_key_id=token(KMS_KEY_PARAMETER),
    )
    isolated = network_isolation(str(ctx.source_archive))
    if isolated:
        model["EnableNetworkIsolation"] = True
    model_id = template.add(
        MODEL,
        "AWS::SageMaker::Model",
        to_properties(model, MODEL_PROPERTIES, MODEL),
        metadata=None if isolated else checkov_skips(NO_ISOLATION),
    )
    config_id = template.add(
        ENDPOINT_CONFIG,
        "AWS::SageMaker::EndpointConfig",
        to_properties(config, ENDPOINT_CONFIG_PROPERTIES, ENDPOINT_CONFIG),
        depends_on=[model_id],
    )
    endpoint_id = template.add(
        ENDPOINT,
        "AWS::SageMaker::Endpoint",
        parameterize(
            {
                "EndpointName": names.endpoint,
                "EndpointConfigName": names.endpoint_config,
                **(endpoint_properties or {}),
            }
        ),
        depends_on=[config_id, *endpoint_depends_on],
    )
    template.output("EndpointName", parameterize(names.endpoint), "The endpoint serving this version")
    template.output("EndpointConfigName", parameterize(names.endpoint_config), "Its endpoint config")
    template.output("ModelName", parameterize(names.model), "Its SageMaker model")
    template.output("Variant", C.DEFAULT_VARIANT, "The endpoint's production variant")
    return ServingResources(model_id, config_id, endpoint_id, names)
