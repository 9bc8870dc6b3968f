"""The CodeCommit repository holding the project (the seed's ``MLRepo``): the pipeline's code source."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf_cdktf_provider_aws.codecommit_approval_rule_template import CodecommitApprovalRuleTemplate
from cdktf_cdktf_provider_aws.codecommit_approval_rule_template_association import (
    CodecommitApprovalRuleTemplateAssociation,
)
from cdktf_cdktf_provider_aws.codecommit_repository import CodecommitRepository
from constructs import Construct

from cdktf_app.names import TerraformNames
from safedeploy import naming


@dataclass(frozen=True, kw_only=True)
class SourceRepositoryConfig:
    """The repository.

    Attributes:
        names: The environment's names.
        key_arn: The pipeline key, which encrypts the repository.
        branch: The branch the pipeline builds: pull requests into it need an approval.
        approvals: How many approvals a pull request into ``branch`` needs.
    """

    names: TerraformNames
    key_arn: str
    branch: str
    approvals: int = 1


def approval_rule(branch: str, approvals: int) -> dict[str, object]:
    """A CodeCommit approval rule template's content: ``approvals`` approvals for pull requests into ``branch``."""
    return {
        "Version": "2018-11-08",
        "DestinationReferences": [f"refs/heads/{branch}"],
        "Statements": [{"Type": "Approvers", "NumberOfApprovalsNeeded": approvals}],
    }


class SourceRepository(Construct):
    """A KMS-encrypted CodeCommit repository named ``naming.codecommit_repository``; reviewed pull requests.

    What reaches the pipeline's branch through a pull request needs an approval (an approval rule template
    associated with the repository); pushes that bypass pull requests are a matter of the pushers' IAM policies.
    """

    def __init__(self, scope: Construct, id_: str, *, config: SourceRepositoryConfig) -> None:
        super().__init__(scope, id_)
        self.repository = CodecommitRepository(
            self,
            "repository",
            repository_name=config.names.name(naming.codecommit_repository),
            description=f"{config.names.pipeline}: model code, model/buildspec.yml and model/run.py",
            kms_key_id=config.key_arn,
        )
        template = CodecommitApprovalRuleTemplate(
            self,
            "approval_rule",
            name=f"{config.names.pipeline}-{config.branch}-review",
            description=f"Pull requests into {config.branch} need {config.approvals} approval(s)",
            content=json.dumps(approval_rule(config.branch, config.approvals), sort_keys=True),
        )
        CodecommitApprovalRuleTemplateAssociation(
            self,
            "approval_rule_association",
            approval_rule_template_name=template.name,
            repository_name=self.repository.repository_name,
        )

    @property
    def name(self) -> str:
        """The repository name."""
        return self.repository.repository_name

    @property
    def arn(self) -> str:
        """The repository ARN."""
        return self.repository.arn
