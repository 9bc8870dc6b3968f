"""Autoscaling of the production variant: target tracking on invocations per instance."""

from __future__ import annotations

from collections.abc import Sequence

from safedeploy import constants as C
from safedeploy.cloudformation.template import Json, Template, ref
from safedeploy.spec import PipelineSpec

MAX_CAPACITY_FACTOR = 4
"""The variant scales out to this many times ``production.instance_count`` (the spec has no maximum yet)."""
INVOCATIONS_PER_INSTANCE = 750
"""Target requests per instance per minute (SageMakerVariantInvocationsPerInstance)."""
SCALE_OUT_COOLDOWN_SECONDS = 60
SCALE_IN_COOLDOWN_SECONDS = 300


def add_autoscaling(template: Template, spec: PipelineSpec, resource_id: Json, depends_on: Sequence[str] = ()) -> str:
    """Register the variant as a scalable target and attach the policy; return the target's logical id.

    ``resource_id`` is ``endpoint/<endpoint>/variant/<variant>`` (``Fn::Sub``).
    """
    minimum = spec.production.instance_count
    target = template.add(
        "ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            # RoleARN is left unset on purpose: Application Auto Scaling then uses its service-linked role
            # (AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint, created on first use). The seed
            # pointed RoleARN at a role that did not exist, which failed the stack.
            "ServiceNamespace": "sagemaker",
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "ResourceId": resource_id,
            "MinCapacity": minimum,
            "MaxCapacity": minimum * MAX_CAPACITY_FACTOR,
        },
        depends_on=depends_on,
    )
    template.add(
        "ScalingPolicy",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyName": f"{spec.pipeline_name}-{C.PRD_STAGE}-invocations",
            "PolicyType": "TargetTrackingScaling",
            "ScalingTargetId": ref(target),
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": INVOCATIONS_PER_INSTANCE,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
                "ScaleOutCooldown": SCALE_OUT_COOLDOWN_SECONDS,
                "ScaleInCooldown": SCALE_IN_COOLDOWN_SECONDS,
            },
        },
    )
    return target


def variant_resource_id(endpoint_expression: str) -> Json:
    """``Fn::Sub`` of the variant's ``ResourceId`` for an endpoint name expression (``${Endpoint.EndpointName}``)."""
    return {"Fn::Sub": f"endpoint/{endpoint_expression}/variant/{C.DEFAULT_VARIANT}"}
