"""S3 buckets with the controls every bucket of the pipeline gets, and the three buckets themselves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleExpiration,
    S3BucketLifecycleConfigurationRuleFilter,
    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration,
)
from cdktf_cdktf_provider_aws.s3_bucket_logging import S3BucketLoggingA
from cdktf_cdktf_provider_aws.s3_bucket_notification import S3BucketNotification
from cdktf_cdktf_provider_aws.s3_bucket_ownership_controls import (
    S3BucketOwnershipControls,
    S3BucketOwnershipControlsRule,
)
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from cdktf_cdktf_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktf_cdktf_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA,
)
from cdktf_cdktf_provider_aws.s3_bucket_versioning import (
    S3BucketVersioningA,
    S3BucketVersioningVersioningConfiguration,
)
from constructs import Construct

from cdktf_app.checks import skip_checks
from cdktf_app.names import TerraformNames
from cdktf_app.policy import Principal, Statement, condition, policy_document, service
from safedeploy import naming

NO_REPLICATION = (
    "Single-region pipeline: raw data is re-uploadable from its source and every artifact is rebuilt by "
    "re-running the pipeline; versioning and noncurrent-version retention protect against overwrites and deletes."
)


@dataclass(frozen=True, kw_only=True)
class BucketConfig:
    """One bucket and its controls.

    Attributes:
        names: The environment's names (for ARNs).
        name: The bucket name (a Terraform expression).
        kms_key_arn: Default encryption key (SSE-KMS with an S3 bucket key); ``None``: SSE-S3, for the access-log
            target (server access log delivery does not support SSE-KMS destinations).
        access_logs_bucket: Where this bucket's server access logs go (``None`` for the log bucket itself).
        access_logs_policy: The log bucket's policy: S3 refuses ``PutBucketLogging`` (``InvalidTargetBucketForLogging``)
            until the target's policy lets ``logging.s3.amazonaws.com`` write, so the logging configuration waits
            for it (found by ``terraform apply`` against moto, which checks the same).
        log_sources: Buckets (ARNs) allowed to deliver server access logs into this bucket.
        noncurrent_version_days: Days a replaced or deleted object version is kept.
        abort_multipart_days: Days before an incomplete multipart upload is aborted.
        expiration_days: Days current objects are kept (``None``: until deleted).
        skips: Justified checkov suppressions for the bucket resource.
    """

    names: TerraformNames
    name: str
    kms_key_arn: str | None
    access_logs_bucket: str | None
    access_logs_policy: S3BucketPolicy | None = None
    log_sources: tuple[str, ...] = ()
    noncurrent_version_days: int
    abort_multipart_days: int
    expiration_days: int | None = None
    skips: Mapping[str, str] = field(default_factory=dict)


class SecureBucket(Construct):
    """A private, versioned, encrypted, TLS-only bucket with access logging, lifecycle rules and EventBridge events.

    Object ownership is ``BucketOwnerEnforced`` (ACLs off); the bucket policy denies every request not made over TLS.
    """

    def __init__(self, scope: Construct, id_: str, *, config: BucketConfig) -> None:
        super().__init__(scope, id_)
        self.bucket = S3Bucket(self, "bucket", bucket=config.name, force_destroy=False)
        skip_checks(self.bucket, {"CKV_AWS_144": NO_REPLICATION, **config.skips})
        bucket_id = self.bucket.id
        S3BucketOwnershipControls(
            self,
            "ownership",
            bucket=bucket_id,
            rule=S3BucketOwnershipControlsRule(object_ownership="BucketOwnerEnforced"),
        )
        public_access = S3BucketPublicAccessBlock(
            self,
            "public_access",
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
        )
        versioning = S3BucketVersioningA(
            self,
            "versioning",
            bucket=bucket_id,
            versioning_configuration=S3BucketVersioningVersioningConfiguration(status="Enabled"),
        )
        by_default = (
            S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                sse_algorithm="aws:kms", kms_master_key_id=config.kms_key_arn
            )
            if config.kms_key_arn
            else S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                sse_algorithm="AES256"
            )
        )
        S3BucketServerSideEncryptionConfigurationA(
            self,
            "encryption",
            bucket=bucket_id,
            rule=[
                S3BucketServerSideEncryptionConfigurationRuleA(
                    apply_server_side_encryption_by_default=by_default,
                    bucket_key_enabled=bool(config.kms_key_arn),
                )
            ],
        )
        self.policy_document = policy_document(self, "policy_document", self._statements(config))
        self.policy = S3BucketPolicy(
            self, "policy", bucket=bucket_id, policy=self.policy_document.json, depends_on=[public_access]
        )
        if config.access_logs_bucket is not None:
            S3BucketLoggingA(
                self,
                "logging",
                bucket=bucket_id,
                target_bucket=config.access_logs_bucket,
                target_prefix=f"{config.name}/",
                depends_on=[config.access_logs_policy] if config.access_logs_policy is not None else None,
            )
        S3BucketLifecycleConfiguration(
            self, "lifecycle", bucket=bucket_id, rule=self._lifecycle_rules(config), depends_on=[versioning]
        )
        S3BucketNotification(self, "notification", bucket=bucket_id, eventbridge=True)

    @property
    def name(self) -> str:
        """The bucket name."""
        return self.bucket.bucket

    @property
    def arn(self) -> str:
        """The bucket ARN."""
        return self.bucket.arn

    def _statements(self, config: BucketConfig) -> list[Statement]:
        arn, objects = self.bucket.arn, f"{self.bucket.arn}/*"
        statements = [
            Statement(
                sid="DenyInsecureTransport",
                effect="Deny",
                principals=(Principal(type="*", identifiers=("*",)),),
                actions=("s3:*",),
                resources=(arn, objects),
                conditions=(condition("Bool", "aws:SecureTransport", "false"),),
            )
        ]
        if config.log_sources:
            statements.append(
                Statement(
                    sid="ServerAccessLogDelivery",
                    principals=(service("logging.s3.amazonaws.com"),),
                    actions=("s3:PutObject",),
                    resources=(objects,),
                    conditions=(
                        condition("StringEquals", "aws:SourceAccount", config.names.account_id),
                        condition("ArnLike", "aws:SourceArn", *config.log_sources),
                    ),
                )
            )
        return statements

    @staticmethod
    def _lifecycle_rules(config: BucketConfig) -> list[S3BucketLifecycleConfigurationRule]:
        everything = [S3BucketLifecycleConfigurationRuleFilter(prefix="")]
        rules = [
            S3BucketLifecycleConfigurationRule(
                id="abort-incomplete-multipart-uploads",
                status="Enabled",
                filter=everything,
                abort_incomplete_multipart_upload=[
                    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(
                        days_after_initiation=config.abort_multipart_days
                    )
                ],
            ),
            S3BucketLifecycleConfigurationRule(
                id="expire-noncurrent-versions",
                status="Enabled",
                filter=everything,
                noncurrent_version_expiration=[
                    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(
                        noncurrent_days=config.noncurrent_version_days
                    )
                ],
            ),
        ]
        if config.expiration_days is not None:
            rules.append(
                S3BucketLifecycleConfigurationRule(
                    id="expire-objects",
                    status="Enabled",
                    filter=everything,
                    expiration=[S3BucketLifecycleConfigurationRuleExpiration(days=config.expiration_days)],
                )
            )
        return rules


@dataclass(frozen=True, kw_only=True)
class PipelineBucketsConfig:
    """The pipeline's buckets.

    Attributes:
        names: The environment's names.
        kms_key_arn: The pipeline key (data and artifact buckets).
        noncurrent_version_days: Retention of replaced versions in the data and artifact buckets.
        access_log_days: Retention of server access logs.
        abort_multipart_days: Days before incomplete multipart uploads are aborted.
    """

    names: TerraformNames
    kms_key_arn: str
    noncurrent_version_days: int
    access_log_days: int
    abort_multipart_days: int


class PipelineBuckets(Construct):
    """The data bucket (raw data, datasets, the data-source contract), the artifact bucket and their log bucket."""

    def __init__(self, scope: Construct, id_: str, *, config: PipelineBucketsConfig) -> None:
        super().__init__(scope, id_)
        names = config.names
        data_name, artifact_name = names.name(naming.data_bucket), names.name(naming.artifact_bucket)
        self.logs = SecureBucket(
            self,
            "logs",
            config=BucketConfig(
                names=names,
                name=names.name(naming.logs_bucket),
                kms_key_arn=None,
                access_logs_bucket=None,
                log_sources=(names.s3_arn(data_name), names.s3_arn(artifact_name)),
                noncurrent_version_days=30,
                abort_multipart_days=config.abort_multipart_days,
                expiration_days=config.access_log_days,
                skips={
                    "CKV_AWS_145": "Target of S3 server access logs, which S3 delivers only to buckets whose default "
                    "encryption is SSE-S3 (SSE-KMS destinations are not supported); the logs hold no data.",
                },
            ),
        )

        def private(name: str) -> BucketConfig:
            return BucketConfig(
                names=names,
                name=name,
                kms_key_arn=config.kms_key_arn,
                access_logs_bucket=self.logs.name,
                access_logs_policy=self.logs.policy,
                noncurrent_version_days=config.noncurrent_version_days,
                abort_multipart_days=config.abort_multipart_days,
            )

        self.data = SecureBucket(self, "data", config=private(data_name))
        self.artifacts = SecureBucket(self, "artifacts", config=private(artifact_name))
