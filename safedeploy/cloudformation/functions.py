"""The production stack's Lambda functions (SAM): the REST API handler and the CodeDeploy lifecycle hooks.

All three run from one content-addressed bundle (``lambdas/`` and the ``safedeploy`` modules they import,
see :mod:`safedeploy.cloudformation.lambda_bundle`), with the base infrastructure's roles, environment
variables encrypted with the pipeline's KMS key, and a KMS-encrypted log group each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.cloudformation.context import BuildContext
from safedeploy.cloudformation.state_machine import LOG_RETENTION_DAYS, role_arn
from safedeploy.cloudformation.template import Json, Template, checkov_skips, log_group
from safedeploy.errors import ConfigError

API_HANDLER = "lambdas.api.app.lambda_handler"
PRE_TRAFFIC_HANDLER = "lambdas.hooks.pre_traffic.handler"
POST_TRAFFIC_HANDLER = "lambdas.hooks.post_traffic.handler"
CANARY_HANDLER = "lambdas.canary.app.handler"
SMOKE_TEST_HANDLER = "lambdas.smoke_test.app.handler"
PROBE_HANDLER = "lambdas.probe.app.handler"
HANDLERS = (API_HANDLER, PRE_TRAFFIC_HANDLER, POST_TRAFFIC_HANDLER, CANARY_HANDLER, SMOKE_TEST_HANDLER, PROBE_HANDLER)
"""``module.attribute`` entry points of the functions (each a callable the module defines at import)."""
API_FUNCTION, PRE_TRAFFIC_FUNCTION, POST_TRAFFIC_FUNCTION = "ApiFunction", "PreTrafficHook", "PostTrafficHook"
API_TIMEOUT_SECONDS = 29
"""API Gateway's integration timeout."""
HOOK_TIMEOUT_SECONDS = 300
LAMBDA_MAX_TIMEOUT_SECONDS = 900
MAX_BAKE_SECONDS = 840
"""The longest bake the post-traffic hook can wait out and still check within Lambda's 15 minutes."""

LAMBDA_SKIPS = (
    (
        "CKV_AWS_115",
        "No reserved concurrency: the usage plan throttles the API, and reserving concurrency fails in "
        "accounts at the default concurrency quota.",
    ),
    (
        "CKV_AWS_116",
        "No DLQ: the API is invoked synchronously by API Gateway and each hook reports its verdict to "
        "CodeDeploy exactly once (a failed hook times the deployment out and rolls it back).",
    ),
    (
        "CKV_AWS_117",
        "No VPC: the functions only call AWS APIs (SageMaker, S3, CloudWatch, CodeDeploy) with IAM "
        "authorisation; the base infrastructure has no VPC.",
    ),
)


def lambda_function(
    template: Template,
    ctx: BuildContext,
    logical_id: str,
    *,
    purpose: str,
    handler: str,
    role: str,
    timeout: int,
    environment: Mapping[str, Any],
    kms_key: Json,
    extra: Mapping[str, Any] | None = None,
    depends_on: Sequence[str] = (),
) -> str:
    """A SAM function from the content-addressed bundle, with a base-infrastructure ``role`` and its log group."""
    name = naming.function_name(ctx.spec, purpose)
    logs = log_group(template, f"{logical_id}Logs", f"/aws/lambda/{name}", kms_key, LOG_RETENTION_DAYS)
    return template.add(
        logical_id,
        "AWS::Serverless::Function",
        {
            "FunctionName": name,
            "Description": f"{ctx.spec.pipeline_name}: {purpose}",
            "Handler": handler,
            "Runtime": C.LAMBDA_RUNTIME,
            "CodeUri": {"Bucket": ctx.lambda_code.bucket, "Key": ctx.lambda_code.key},
            "Role": role_arn(ctx.spec, role),
            "MemorySize": 512,
            "Timeout": timeout,
            "Tracing": "Active",
            "KmsKeyArn": kms_key,
            "Environment": {"Variables": dict(environment)},
            **(extra or {}),
        },
        depends_on=[logs, *depends_on],
        metadata=checkov_skips(*LAMBDA_SKIPS),
    )


def add_api_function(
    template: Template,
    ctx: BuildContext,
    *,
    endpoint: Any,
    model_version: Json,
    kms_key: Json,
    deployment_preference: Json | None,
    depends_on: Sequence[str] = (),
) -> str:
    """The REST API's handler, published as alias ``live`` (which CodeDeploy shifts when it has a preference).

    ``depends_on``: what must exist before the alias moves (the synthetic canary, feeding green beforehand).
    """
    extra: dict[str, Any] = {"AutoPublishAlias": C.LAMBDA_ALIAS}
    if deployment_preference is not None:
        extra["DeploymentPreference"] = deployment_preference
    return lambda_function(
        template,
        ctx,
        API_FUNCTION,
        purpose="api",
        handler=API_HANDLER,
        role="api-lambda",
        timeout=API_TIMEOUT_SECONDS,
        environment={"ENDPOINT_NAME": endpoint, "MODEL_VERSION": model_version},
        kms_key=kms_key,
        extra=extra,
        depends_on=depends_on,
    )


def post_traffic_timeout(bake_seconds: float) -> int:
    """The post-traffic hook's Lambda timeout: the bake plus time for the checks; refuse a bake that cannot fit."""
    if bake_seconds > MAX_BAKE_SECONDS:
        raise ConfigError(
            f"production.bake_seconds={bake_seconds:g}: with CodeDeploy the post-traffic hook bakes inside a Lambda, "
            f"which allows at most {MAX_BAKE_SECONDS} s; use a guardrails mode (CANARY, LINEAR, ALL_AT_ONCE) for longer"
        )
    return min(LAMBDA_MAX_TIMEOUT_SECONDS, max(HOOK_TIMEOUT_SECONDS, math.ceil(bake_seconds) + 60))


def add_hook_functions(template: Template, ctx: BuildContext, *, endpoint: Any, kms_key: Json) -> tuple[str, str]:
    """The pre- and post-traffic hooks (CodeDeploy ``BeforeAllowTraffic``/``AfterAllowTraffic``) for green."""
    spec = ctx.spec
    checks = ctx.model_data_url  # its pre-traffic-checks.json: known rows and scores, written by the training job
    budget = f"{spec.production.pre_traffic_latency_budget_ms:g}"
    pre = lambda_function(
        template,
        ctx,
        PRE_TRAFFIC_FUNCTION,
        purpose="pre-traffic-hook",
        handler=PRE_TRAFFIC_HANDLER,
        role="hooks-lambda",
        timeout=HOOK_TIMEOUT_SECONDS,
        environment={"ENDPOINT_NAME": endpoint, "CHECKS_URI": str(checks), "LATENCY_BUDGET_MS": budget},
        kms_key=kms_key,
    )
    post = lambda_function(
        template,
        ctx,
        POST_TRAFFIC_FUNCTION,
        purpose="post-traffic-hook",
        handler=POST_TRAFFIC_HANDLER,
        role="hooks-lambda",
        timeout=post_traffic_timeout(spec.production.bake_seconds),
        environment={
            "ENDPOINT_NAME": endpoint,
            "VARIANT_NAME": C.DEFAULT_VARIANT,
            "CAPTURE_URI": str(naming.capture_uri(spec)),
            # Green's endpoint is new in this deployment, so its capture since the build is this deployment's.
            "DEPLOYMENT_STARTED": ctx.started.isoformat(),
            "MAX_ERROR_RATE": str(spec.alarms.deployment.error_rate.threshold),
            "MIN_REQUESTS": str(spec.alarms.deployment.min_requests),
            # CodeDeploy has no bake at 100 %: the hook waits it out, then checks (a failure rolls back).
            "BAKE_SECONDS": f"{spec.production.bake_seconds:g}",
            # Once its checks pass, green is recorded as production: the next deployment's blue.
            "PRODUCTION_PARAMETER": naming.production_endpoint_parameter(spec),
        },
        kms_key=kms_key,
    )
    return pre, post
