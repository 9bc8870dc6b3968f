"""Typed boto3 clients built from one injected ``boto3.Session``, each on first use (never at import).

:class:`AwsClients` is the single place the AWS side gets clients from, so a test (or a caller with a
profile, a role session, another region) decides the session once. :func:`verify_account` guards commands
that delete things against running with another account's credentials.

:func:`connect` is what every ``--target aws`` command starts with: the session, then STS ``GetCallerIdentity`` and the
account check, so that missing, broken or foreign credentials end the command with one line naming the problem and
how to configure (:func:`credentials_problem`), never a traceback.
"""

from __future__ import annotations

import logging
import os
from functools import cached_property
from typing import TYPE_CHECKING

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

from safedeploy import __version__
from safedeploy import constants as C
from safedeploy.errors import AwsCredentialsError

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_codedeploy import CodeDeployClient
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient

    from safedeploy.spec import PipelineSpec

DEFAULT_CONFIG = Config(retries={"max_attempts": 8, "mode": "standard"}, user_agent_extra=f"safedeploy/{__version__}")
"""Standard retries (throttling, transient 5XX) and a user agent naming the tool in CloudTrail."""


def session_for(spec: PipelineSpec) -> boto3.Session:
    """A session in the spec's region, with boto3's default credential chain (``AWS_PROFILE``, SSO, role...)."""
    import boto3

    quiet = logging.getLogger("botocore.credentials")
    if quiet.level == logging.NOTSET and not logging.getLogger().isEnabledFor(logging.DEBUG):
        quiet.setLevel(logging.WARNING)  # "Found credentials in ..." is not news; -v shows it
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
    def ssm(self) -> SSMClient:
        """SSM Parameter Store (the retraining record, the production endpoint)."""
        return self.session.client("ssm", config=self.config)

    @cached_property
    def sts(self) -> STSClient:
        """STS (who the credentials belong to)."""
        return self.session.client("sts", config=self.config)

    @cached_property
    def caller_arn(self) -> str:
        """Who the credentials belong to (STS ``GetCallerIdentity``), e.g. to record as an approver."""
        return self.sts.get_caller_identity()["Arn"]


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
        raise AwsCredentialsError(
            f"the spec names no AWS account (account_id is the local default {C.LOCAL_ACCOUNT_ID}): to act on "
            f'account {account} ({arn}), set account_id = "{account}" in pipeline.toml or '
            f"{C.ENV_PREFIX}ACCOUNT_ID={account}"
        )
    if account != spec.account_id:
        raise AwsCredentialsError(
            f"the credentials are for account {account} ({arn}), but the spec's account_id is {spec.account_id}: "
            "switch credentials (AWS_PROFILE) or fix account_id"
        )
    return arn


REFUSED_CREDENTIALS = frozenset(
    (
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "AuthFailure",
        "AccessDenied",
        "InvalidAccessKeyId",
    )
)
EXPIRED_CREDENTIALS = frozenset(("ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"))


def _how_to_configure(spec: PipelineSpec | None) -> str:
    if spec is None:
        target = "the spec's account_id and region"
    elif spec.account_id == C.LOCAL_ACCOUNT_ID:
        target = f"your account in {spec.region}, and set account_id in pipeline.toml or {C.ENV_PREFIX}ACCOUNT_ID"
    else:
        target = f"account {spec.account_id} in {spec.region} (the spec's account_id and region)"
    return (
        "configure credentials with `aws configure --profile NAME` (or `aws sso login --profile NAME`) and "
        f"AWS_PROFILE=NAME, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, for {target}"
    )


def credentials_problem(exc: Exception, spec: PipelineSpec | None = None) -> str | None:
    """One line naming what is wrong with the AWS credentials (or region) and how to configure, or ``None``.

    ``None`` when ``exc`` is not about credentials (the caller reports it as any other AWS error).
    """
    how = _how_to_configure(spec)
    if isinstance(exc, ProfileNotFound):
        profile = os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE") or "?"
        return f"the AWS profile {profile!r} (AWS_PROFILE) is not in ~/.aws/config or ~/.aws/credentials: {how}"
    if isinstance(exc, PartialCredentialsError):
        return f"the AWS credentials are incomplete ({exc}): {how}"
    if isinstance(exc, NoCredentialsError):
        return f"no AWS credentials found: {how}"
    if isinstance(exc, NoRegionError):
        return f"no AWS region: set region in pipeline.toml (or {C.ENV_PREFIX}REGION, AWS_REGION); {how}"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach AWS ({exc}): check the network and the spec's region; {how}"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message", "")
        if code in EXPIRED_CREDENTIALS:
            return f"the AWS credentials have expired ({code}: {message}): refresh them; {how}"
        if code in REFUSED_CREDENTIALS:
            return f"AWS refused the credentials ({code}: {message}): {how}"
    return None


def aws_error_line(exc: BotoCoreError | ClientError) -> str:
    """Any botocore error as one line: the credentials problem if it is one, else the error itself."""
    problem = credentials_problem(exc)
    if problem is not None:
        return problem
    return " ".join(str(exc).split())


def connect(spec: PipelineSpec, clients: AwsClients | None = None) -> AwsClients:
    """The clients of a ``--target aws`` command, once the credentials are known to be the spec's account's.

    Raises:
        ConfigError: one line naming the problem (no or partial credentials, unknown profile, no region, credentials
            refused or expired, another account's, or the spec naming no account) and how to configure.
    """
    try:
        clients = clients or AwsClients(session_for(spec))
        verify_account(clients.sts, spec)
    except (BotoCoreError, ClientError) as exc:
        problem = credentials_problem(exc, spec)
        if problem is None:
            raise AwsCredentialsError(
                f"checking the AWS credentials failed: {aws_error_line(exc)}; {_how_to_configure(spec)}"
            ) from None
        raise AwsCredentialsError(problem) from None
    return clients
