"""SageMaker API requests, built once here and executed by both backends.

The local backend sends these dicts to its SageMaker client or runs them as local jobs; the AWS backend renders the
very same dicts into CloudFormation properties and Step Functions task arguments (``safedeploy.cloudformation``).
Each builder is pure: spec and names in, request out, no client and no clock.

* :mod:`.training`: ``CreateTrainingJob`` (the Train stage; the training-job state machine).
* :mod:`.processing`: ``CreateProcessingJob`` of the monitor's baseline and monitoring jobs.
* :mod:`.serving`: ``CreateModel`` and ``CreateEndpointConfig`` with data capture, and the names they use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from safedeploy import naming

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import TagTypeDef

    from safedeploy.spec import PipelineSpec


def resource_tags(spec: PipelineSpec) -> list[TagTypeDef]:
    """The tags every job and resource of a pipeline carries: its model and environment."""
    return [
        {"Key": naming.MODEL_TAG_KEY, "Value": spec.model_name},
        {"Key": naming.ENVIRONMENT_TAG_KEY, "Value": spec.environment},
    ]
