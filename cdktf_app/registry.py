"""The model's SageMaker Model Registry group: base infrastructure, because the registry outlives every stack.

The training-job stack registers versions into it (``createModelPackage``); ``make destroy`` deletes that stack
and, with the base infrastructure, the group. Owning the group here (not in the per-model stack, with a
``Retain`` policy) means re-creating the training-job stack never collides with a group left behind.

The group, the per-model stacks and the endpoints are named by model only (the seed's ``<model>-training-job``...),
so one account and region holds one environment of a model. The construct claims it with an SSM parameter
(:func:`safedeploy.naming.environment_claim`) whose precondition reads the claims already there: planning a second
environment into the same account and region fails at ``terraform plan``, naming the environment that is there,
before anything is created.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import Fn, Op, Precondition, TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.data_aws_ssm_parameters_by_path import DataAwsSsmParametersByPath
from cdktf_cdktf_provider_aws.sagemaker_model_package_group import SagemakerModelPackageGroup
from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter
from constructs import Construct

from cdktf_app.names import TerraformNames
from safedeploy import naming


@dataclass(frozen=True, kw_only=True)
class ModelRegistryConfig:
    """The registry group.

    Attributes:
        names: The environment's names.
        key_arn: The pipeline's KMS key (the claim parameter is a SecureString).
    """

    names: TerraformNames
    key_arn: str


class ModelRegistry(Construct):
    """The model package group named ``naming.model_package_group``, and this environment's claim on the model."""

    def __init__(self, scope: Construct, id_: str, *, config: ModelRegistryConfig) -> None:
        super().__init__(scope, id_)
        names = config.names
        claim = names.name(naming.environment_claim)
        claims = DataAwsSsmParametersByPath(self, "claims", path=names.name(naming.environment_claims_path))
        others = Fn.setsubtract(claims.names, [claim])
        self.claim = SsmParameter(
            self,
            "claim",
            name=claim,
            type="SecureString",
            key_id=config.key_arn,
            value=names.environment,
            description=f"{names.model}'s per-model stacks and endpoints in this account and region belong to "
            f"the {names.environment} environment",
            lifecycle=TerraformResourceLifecycle(
                precondition=[
                    Precondition(
                        condition=Op.lt(Fn.length_of(others), 1),  # (a literal 0 is lost in jsii: "== undefined")
                        error_message=(
                            f"another environment of {names.model} already lives in this account and region "
                            f"(SSM {Fn.join(', ', others)}): its per-model stacks, registry "
                            f"group and endpoints are named by model, so the {names.environment} environment "
                            "needs its own account or region (set aws_region in terraform.tfvars.json)"
                        ),
                    )
                ]
            ),
        )
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
