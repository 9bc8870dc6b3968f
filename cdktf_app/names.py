"""AWS names and ARNs as Terraform expressions, produced by :mod:`safedeploy.naming` itself.

The account and region of a Terraform root are only known when it is planned, so names cannot be computed in
Python. Instead each name is computed by the :mod:`safedeploy.naming` function the local backend uses, for a spec
whose account id and region are placeholders, and the placeholders are then replaced by Terraform expressions
(``data.aws_caller_identity`` / ``data.aws_region``). A name therefore cannot drift from ``naming.py``: substituting a
concrete account and region into the synthesized expression gives exactly what ``naming.py`` returns for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Concatenate, ParamSpec

from cdktf_app.config import EnvironmentConfig
from safedeploy import naming
from safedeploy.spec import PipelineSpec
from safedeploy.store import S3Uri

ACCOUNT_PLACEHOLDER = "999999999999"
"""Stands for the account id while :mod:`safedeploy.naming` builds a name (a valid, recognisable account id)."""
REGION_PLACEHOLDER = "zz-zzzzzzzzz-9"
"""Stands for the region (valid for the spec's pattern, as long as the longest real regions)."""
PARTITION = "aws"
"""ARNs use the commercial partition, as :func:`safedeploy.naming.execution_role_arn` does."""

P = ParamSpec("P")

# The base infrastructure's roles, by their ``naming.role_name`` service key (``<model>-<env>-<key>``).
CODEPIPELINE = "codepipeline"
CODEBUILD = "codebuild"
CLOUDFORMATION = "cloudformation"
SAGEMAKER = "sagemaker"
"""The execution role of training, endpoints and Model Monitor (:func:`naming.execution_role_arn`)."""
MONITOR = "monitor"
"""The monitor's Processing jobs (baseline, monitoring): :func:`naming.monitor_role_arn`."""
SCHEDULER = "scheduler"
"""EventBridge Scheduler: starts the monitoring state machine of the deploy-prd stack."""
EVENTS = "events"
NOTEBOOK = "notebook"
STEPFUNCTIONS = "stepfunctions"
API_LAMBDA = "api-lambda"
HOOKS_LAMBDA = "hooks-lambda"
CANARY_LAMBDA = "canary-lambda"
SMOKE_TEST_LAMBDA = "smoke-test-lambda"
PROBE_LAMBDA = "probe-lambda"
"""The standing synthetic probe of the production REST API (``lambdas/probe/app.py``)."""
CODEDEPLOY = "codedeploy"
RETRAIN = "retrain"
"""The retraining build (CodeBuild): the retraining decision, the new data, the contract upload."""
RETRAINING = "retraining"
"""The retraining state machine (Step Functions): the debounce wait, then the retraining build."""
ROLE_SERVICES: tuple[str, ...] = (
    CODEPIPELINE,
    CODEBUILD,
    CLOUDFORMATION,
    SAGEMAKER,
    MONITOR,
    SCHEDULER,
    EVENTS,
    NOTEBOOK,
    STEPFUNCTIONS,
    API_LAMBDA,
    HOOKS_LAMBDA,
    CANARY_LAMBDA,
    SMOKE_TEST_LAMBDA,
    PROBE_LAMBDA,
    CODEDEPLOY,
    RETRAIN,
    RETRAINING,
)
"""Every role of the base infrastructure, by its ``naming.role_name`` service key."""

LOG_DELIVERY_ACTIONS = (
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
)
"""What a state machine with a LoggingConfiguration needs: CloudWatch Logs' vended-log delivery APIs support no
resource-level permissions (Resource must be "*"), so these read/configure-delivery actions are the whole grant."""


@dataclass(frozen=True, kw_only=True)
class TerraformNames:
    """:mod:`safedeploy.naming`'s names for one environment, with Terraform expressions for account and region.

    Attributes:
        spec: The environment's spec with the placeholder account and region.
        account_id: Terraform expression (a cdktf token) of the account id.
        region: Terraform expression (a cdktf token) of the region name.
    """

    spec: PipelineSpec
    account_id: str
    region: str

    @classmethod
    def for_config(cls, config: EnvironmentConfig, *, account_id: str, region: str) -> TerraformNames:
        """The names of ``config``'s environment in the account and region the given expressions evaluate to."""
        spec = config.spec(account_id=ACCOUNT_PLACEHOLDER, region=REGION_PLACEHOLDER)
        for placeholder in (ACCOUNT_PLACEHOLDER, REGION_PLACEHOLDER):
            if placeholder in spec.pipeline_name:
                raise ValueError(f"pipeline name {spec.pipeline_name!r} contains the placeholder {placeholder!r}")
        return cls(spec=spec, account_id=account_id, region=region)

    def resolve(self, text: str) -> str:
        """Replace the placeholders in ``text`` by the account and region expressions."""
        return text.replace(ACCOUNT_PLACEHOLDER, self.account_id).replace(REGION_PLACEHOLDER, self.region)

    def name(self, fn: Callable[Concatenate[PipelineSpec, P], str], /, *args: P.args, **kwargs: P.kwargs) -> str:
        """``fn(spec, *args)`` (a :mod:`safedeploy.naming` function) as a Terraform expression."""
        return self.resolve(fn(self.spec, *args, **kwargs))

    def uri(self, fn: Callable[Concatenate[PipelineSpec, P], S3Uri], /, *args: P.args, **kwargs: P.kwargs) -> S3Uri:
        """``fn(spec, *args)`` (an ``s3://`` location from :mod:`safedeploy.naming`) with Terraform expressions."""
        uri = fn(self.spec, *args, **kwargs)
        return S3Uri(self.resolve(uri.bucket), self.resolve(uri.key))

    @property
    def model(self) -> str:
        """The model name: the prefix of the per-model stacks and of everything they create."""
        return self.spec.model_name

    @property
    def environment(self) -> str:
        """The environment: ``dev`` or ``prod``."""
        return self.spec.environment

    @property
    def pipeline(self) -> str:
        """``<model>-<environment>``: the prefix of this environment's resources."""
        return self.spec.pipeline_name

    def arn(self, service: str, resource: str, *, regional: bool = True, in_account: bool = True) -> str:
        """An ARN of this account (and region) for ``service``: ``arn:aws:<service>:<region>:<account>:<resource>``."""
        region = self.region if regional else ""
        account = self.account_id if in_account else ""
        return f"arn:{PARTITION}:{service}:{region}:{account}:{resource}"

    def s3_arn(self, bucket: str, key: str | None = None) -> str:
        """The ARN of a bucket, or of ``key`` (a key or a ``prefix/*`` pattern) in it."""
        return f"arn:{PARTITION}:s3:::{bucket}" + (f"/{key}" if key is not None else "")

    def role_arn(self, service: str) -> str:
        """The ARN of the base infrastructure's role for ``service`` (:func:`safedeploy.naming.role_name`)."""
        return self.arn("iam", f"role/{self.name(naming.role_name, service)}", regional=False)
