"""Typed boto3 clients built from one injected ``boto3.Session``, each on first use (never at import).

:class:`AwsClients` is the single place the AWS side gets clients from, so a test (or a caller with a
profile, a role session, another region) decides the session once. :func:`verify_account` guards commands
that delete things against running with another account's credentials.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from botocore.config import Config

from safedeploy import __version__
from safedeploy import constants as C
from safedeploy.errors import ConfigError

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_codedeploy import CodeDeployClient
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient
    from mypy_boto3_sts import STSClient

    from safedeploy.spec import PipelineSpec

DEFAULT_CONFIG = Config(retries={"max_attempts": 8, "mode": "standard"}, user_agent_extra=f"safedeploy/{__version__}")
"""Standard retries (throttling, transient 5XX) and a user agent naming the tool in CloudTrail."""


def session_for(spec: PipelineSpec) -> boto3.Session:
    """A session in the spec's region, with boto3's default credential chain (``AWS_PROFILE``, SSO, role...)."""
    import boto3

    return boto3.Session(region_name=spec.region)


class AwsClients:
    """The clients the AWS side uses, all from one session and config; each is built once, when first asked for."""

    def __init__(self, session: boto3.Session, config: Config | None = None) -> None:
        self.session = session
        self.config = config or DEFAULT_CONFIG

    @property
    def region(self) -> str | None:
        """The session's region."""
        return self.session.region_name

    @cached_property
    def cloudformation(self) -> CloudFormationClient:
        """CloudFormation (the per-model stacks)."""
        return self.session.client("cloudformation", config=self.config)

    @cached_property
    def codepipeline(self) -> CodePipelineClient:
        """CodePipeline (execution state, manual approval)."""
        return self.session.client("codepipeline", config=self.config)

    @cached_property
    def codedeploy(self) -> CodeDeployClient:
        """CodeDeploy (lifecycle hook verdicts)."""
        return self.session.client("codedeploy", config=self.config)

    @cached_property
    def s3(self) -> S3Client:
        """S3 (artifacts, data capture)."""
        return self.session.client("s3", config=self.config)

    @cached_property
    def cloudwatch(self) -> CloudWatchClient:
        """CloudWatch (endpoint variant metrics)."""
        return self.session.client("cloudwatch", config=self.config)

    @cached_property
    def sagemaker(self) -> SageMakerClient:
        """SageMaker control plane."""
        return self.session.client("sagemaker", config=self.config)

    @cached_property
    def sagemaker_runtime(self) -> SageMakerRuntimeClient:
        """SageMaker Runtime (``InvokeEndpoint``)."""
        return self.session.client("sagemaker-runtime", config=self.config)

    @cached_property
    def sts(self) -> STSClient:
        """STS (who the credentials belong to)."""
        return self.session.client("sts", config=self.config)


def verify_account(sts: STSClient, spec: PipelineSpec) -> str:
    """Check the credentials belong to the spec's account; return the caller's ARN.

    Stack names carry the model name only (as the seed's do), so the account is what keeps a command from
    acting on a same-named pipeline elsewhere.

    Raises:
        ConfigError: the spec names no real account (the local default), or the credentials are another account's.
    """
    identity = sts.get_caller_identity()
    account, arn = identity["Account"], identity["Arn"]
    if spec.account_id == C.LOCAL_ACCOUNT_ID:
        raise ConfigError(
            f"the spec names no AWS account (account_id is the local default {C.LOCAL_ACCOUNT_ID}): to act on "
            f'account {account} ({arn}), set account_id = "{account}" in pipeline.toml or '
            f"{C.ENV_PREFIX}ACCOUNT_ID={account}"
        )
    if account != spec.account_id:
        raise ConfigError(
            f"the credentials are for account {account} ({arn}), but the spec's account_id is {spec.account_id}: "
            "switch credentials (AWS_PROFILE) or fix account_id"
        )
    return arn
