"""A service role (one per AWS service that acts for the pipeline) and the statements several roles share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from constructs import Construct

from cdktf_app.names import TerraformNames
from cdktf_app.policy import Statement, condition, policy_document, service
from safedeploy import naming


@dataclass(frozen=True, kw_only=True)
class ServiceRoleConfig:
    """One role.

    Attributes:
        names: The environment's names.
        service: The role's service key: the role is ``naming.role_name(spec, service)``.
        principal: The service principal that assumes it (``codebuild.amazonaws.com``).
        description: What the role is for.
        statements: Its inline policy.
        skips: Justified checkov suppressions for the policy document.
    """

    names: TerraformNames
    service: str
    principal: str
    description: str
    statements: Sequence[Statement]
    skips: Mapping[str, str] = field(default_factory=dict)


class ServiceRole(Construct):
    """An IAM role a service assumes, with one inline policy (nothing managed, nothing shared)."""

    def __init__(self, scope: Construct, id_: str, *, config: ServiceRoleConfig) -> None:
        super().__init__(scope, id_)
        trust = policy_document(
            self,
            "trust",
            [
                Statement(
                    sid="AssumedBy", principals=(service(config.principal),), actions=("sts:AssumeRole",), resources=()
                )
            ],
        )
        self.role = IamRole(
            self,
            "role",
            name=config.names.name(naming.role_name, config.service),
            description=config.description,
            assume_role_policy=trust.json,
            max_session_duration=3600,
        )
        self.document = policy_document(self, "permissions", config.statements, skips=config.skips or None)
        self.policy = IamRolePolicy(
            self, "policy", name=f"{config.service}-permissions", role=self.role.id, policy=self.document.json
        )

    @property
    def arn(self) -> str:
        """The role's ARN (referencing it orders creation after the role)."""
        return self.role.arn


def use_key(key_arn: str, *, sid: str = "UsePipelineKey", decrypt_only: bool = False) -> Statement:
    """Encrypt and decrypt with the pipeline key (or only decrypt)."""
    actions: tuple[str, ...] = ("kms:Decrypt", "kms:DescribeKey")
    if not decrypt_only:
        actions += ("kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*")
    return Statement(sid=sid, actions=actions, resources=(key_arn,))


def grant_key_to_services(key_arn: str, *, sid: str = "GrantPipelineKeyToServices") -> Statement:
    """Let the services this role calls create grants on the key for their own resources (volumes, endpoints)."""
    return Statement(
        sid=sid,
        actions=("kms:CreateGrant",),
        resources=(key_arn,),
        conditions=(condition("Bool", "kms:GrantIsForAWSResource", "true"),),
    )


BUCKET_ACTIONS = ("s3:ListBucket", "s3:GetBucketLocation")
"""Actions on a bucket: granted on bucket ARNs only (``arn:aws:s3:::<bucket>``), never on object ARNs."""
READ_OBJECT_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")
"""Reading objects: granted on object ARNs only (``arn:aws:s3:::<bucket>/<key pattern>``)."""


def read_objects(sid: str, bucket_arns: Sequence[str], object_arns: Sequence[str]) -> tuple[Statement, Statement]:
    """List ``bucket_arns`` (statement ``<sid>List``) and read the objects matching ``object_arns`` (``<sid>``).

    Two statements, so that each action is granted only on the kind of ARN it applies to: ``s3:ListBucket`` on
    an object ARN grants nothing, and ``s3:GetObject`` on a bucket ARN reads nothing.
    """
    if any("/" in arn.removeprefix("arn:aws:s3:::") for arn in bucket_arns):
        raise ValueError(f"{sid}: bucket ARNs must not name objects: {list(bucket_arns)}")
    if any("/" not in arn.removeprefix("arn:aws:s3:::") for arn in object_arns):
        raise ValueError(f"{sid}: object ARNs must name objects (<bucket>/<key pattern>): {list(object_arns)}")
    return (
        Statement(sid=f"{sid}List", actions=BUCKET_ACTIONS, resources=tuple(bucket_arns)),
        Statement(sid=sid, actions=READ_OBJECT_ACTIONS, resources=tuple(object_arns)),
    )


def write_objects(sid: str, object_arns: Sequence[str]) -> Statement:
    """Write the objects matching ``object_arns``."""
    return Statement(sid=sid, actions=("s3:PutObject", "s3:AbortMultipartUpload"), resources=tuple(object_arns))


def write_logs(sid: str, names: TerraformNames, *log_groups: str, create: bool = True) -> Statement:
    """Write log streams of ``log_groups`` (names or ``prefix*`` patterns), creating the groups if ``create``."""
    actions: tuple[str, ...] = ("logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams")
    if create:
        actions = ("logs:CreateLogGroup", *actions)
    resources = tuple(
        arn
        for group in log_groups
        for arn in (names.arn("logs", f"log-group:{group}"), names.arn("logs", f"log-group:{group}:*"))
    )
    return Statement(sid=sid, actions=actions, resources=resources)


def pass_role(sid: str, role_arns: Sequence[str], to_service: str) -> Statement:
    """``iam:PassRole`` on exactly ``role_arns``, only to ``to_service``."""
    return Statement(
        sid=sid,
        actions=("iam:PassRole",),
        resources=tuple(role_arns),
        conditions=(condition("StringEquals", "iam:PassedToService", to_service),),
    )
