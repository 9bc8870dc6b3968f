"""The pipeline's customer-managed KMS key: buckets, build output, logs, topics, notebook volume."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from constructs import Construct

from cdktf_app.names import TerraformNames
from cdktf_app.policy import Principal, Statement, condition, policy_document, service
from safedeploy import naming

_KEY_POLICY_SKIPS = {
    "CKV_AWS_109": "Key policy: Resource '*' is the key itself; kms:* goes to the account root only (the AWS default "
    "statement that lets IAM policies grant use of the key), every service statement is narrow.",
    "CKV_AWS_111": "Key policy: Resource '*' is the key itself (a key policy cannot name other resources); write "
    "actions are the root account's administration statement and encrypt/decrypt for log and alarm delivery.",
    "CKV_AWS_356": "Key policy: Resource '*' is the only resource a key policy can name, and it means this key.",
}


@dataclass(frozen=True, kw_only=True)
class PipelineKeyConfig:
    """Settings of the pipeline key.

    Attributes:
        names: The environment's names.
        deletion_window_days: Waiting period before deletion.
    """

    names: TerraformNames
    deletion_window_days: int


class PipelineKey(Construct):
    """A symmetric key with yearly rotation, a key policy scoped to the account and two services, and its alias.

    IAM principals of the account use the key through their IAM policies (the root statement delegates to IAM);
    the key policy itself only adds the service principals that act without a role of ours: CloudWatch Logs
    (encrypted log groups) and CloudWatch alarms / EventBridge publishing to the encrypted SNS topics.
    """

    def __init__(self, scope: Construct, id_: str, *, config: PipelineKeyConfig) -> None:
        super().__init__(scope, id_)
        names = config.names
        account_root = f"arn:aws:iam::{names.account_id}:root"
        policy = policy_document(
            self,
            "policy",
            [
                Statement(
                    sid="AccountAdministration",
                    principals=(Principal(type="AWS", identifiers=(account_root,)),),
                    actions=("kms:*",),
                    resources=("*",),
                ),
                Statement(
                    sid="CloudWatchLogsEncryption",
                    principals=(service(f"logs.{names.region}.amazonaws.com"),),
                    actions=("kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"),
                    resources=("*",),
                    conditions=(
                        condition(
                            "ArnLike",
                            "kms:EncryptionContext:aws:logs:arn",
                            names.arn("logs", "log-group:*"),
                        ),
                    ),
                ),
                Statement(
                    sid="AlarmsToEncryptedTopics",
                    principals=(service("cloudwatch.amazonaws.com"),),
                    actions=("kms:Decrypt", "kms:GenerateDataKey*"),
                    resources=("*",),
                    conditions=(
                        # only this account's alarms: a service principal acts for every account otherwise
                        condition("StringEquals", "aws:SourceAccount", names.account_id),
                        condition("ArnLike", "aws:SourceArn", names.arn("cloudwatch", "alarm:*")),
                    ),
                ),
                Statement(
                    sid="EventsToEncryptedTopics",
                    principals=(service("events.amazonaws.com"),),
                    actions=("kms:Decrypt", "kms:GenerateDataKey*"),
                    resources=("*",),
                    conditions=(
                        condition("StringEquals", "aws:SourceAccount", names.account_id),
                        condition("ArnLike", "aws:SourceArn", names.arn("events", "rule/*")),
                    ),
                ),
            ],
            skips=_KEY_POLICY_SKIPS,
        )
        self.key = KmsKey(
            self,
            "key",
            description=f"{names.pipeline}: pipeline data, artifacts, logs and notifications",
            enable_key_rotation=True,
            rotation_period_in_days=365,
            deletion_window_in_days=config.deletion_window_days,
            policy=policy.json,
        )
        self.alias = KmsAlias(self, "alias", name=names.name(naming.kms_alias), target_key_id=self.key.key_id)

    @property
    def arn(self) -> str:
        """The key's ARN."""
        return self.key.arn
