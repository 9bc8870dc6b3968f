"""The model's SageMaker Model Registry group: base infrastructure, because the registry outlives every stack.

The training-job stack registers versions into it (``createModelPackage``); ``make destroy`` deletes that stack
and, with the base infrastructure, the group. Owning the group here (not in the per-model stack, with a
``Retain`` policy) means re-creating the training-job stack never collides with a group left behind.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.sagemaker_model_package_group import SagemakerModelPackageGroup
from constructs import Construct

from cdktf_app.names import TerraformNames
from safedeploy import naming


@dataclass(frozen=True, kw_only=True)
class ModelRegistryConfig:
    """The registry group.

    Attributes:
        names: The environment's names.
    """

    names: TerraformNames


class ModelRegistry(Construct):
    """The model package group named ``naming.model_package_group``."""

    def __init__(self, scope: Construct, id_: str, *, config: ModelRegistryConfig) -> None:
        super().__init__(scope, id_)
        self.group = SagemakerModelPackageGroup(
            self,
            "group",
            model_package_group_name=config.names.name(naming.model_package_group),
            model_package_group_description=f"Versions of {config.names.model} that passed the quality gate",
        )

    @property
    def name(self) -> str:
        """The group name."""
        return self.group.model_package_group_name
