"""Synthetic traffic on AWS: the deploy-prd stack's canary and the deploy-dev stack's smoke test.

* **Synthetic canary** (``lambdas/canary/app.py``): a custom resource (``CanaryWarmUp``) runs it before the API
  function's alias moves (the deployment alarms treat missing data as breaching, so green needs evidence before
  CodeDeploy watches them), then an EventBridge schedule every minute; while green is not production yet it sends
  held-out rows to green and to blue and publishes the ``PredictionShift`` custom metric that green's
  prediction-shift alarm watches (and green's and blue's own endpoint metrics get the evidence the error-rate and
  latency alarms need). Its role (base infrastructure, ``canary-lambda``) may invoke only this model's production
  endpoints, put metrics only to :data:`~safedeploy.constants.CANARY_METRICS_NAMESPACE` (``cloudwatch:namespace``
  condition), read the production-endpoint parameter and the model archives.
* **Smoke test** (``lambdas/smoke_test/app.py``): a Lambda-backed custom resource, created and updated with every
  version the dev endpoint serves (it depends on the endpoint): the held-out rows of the version's
  ``pre-traffic-checks.json`` through ``InvokeEndpoint`` must equal the model's offline predictions within
  ``serving.smoke_test_tolerance``, else the resource fails, the stack rolls back to the version before, and the
  DeployDev stage fails before the approval.
"""

from __future__ import annotations

import math
from typing import Any

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.cloudformation.context import BuildContext
from safedeploy.cloudformation.functions import (
    CANARY_HANDLER,
    LAMBDA_MAX_TIMEOUT_SECONDS,
    SMOKE_TEST_HANDLER,
    lambda_function,
)
from safedeploy.cloudformation.template import MODEL_VERSION_PARAMETER, Json, Template, get_att, ref

CANARY_FUNCTION, CANARY_WARM_UP = "CanaryFunction", "CanaryWarmUp"
SMOKE_TEST_FUNCTION, SMOKE_TEST = "SmokeTestFunction", "SmokeTest"
MAX_WARM_UP_RUNS = 13
"""Canary runs one Lambda invocation holds (15 minutes)."""
CANARY_ROLE, SMOKE_TEST_ROLE = "canary-lambda", "smoke-test-lambda"
"""Base-infrastructure roles (``cdktf_app/roles.py``): the stacks create no roles."""
CANARY_SCHEDULE = "rate(1 minute)"
CANARY_SPREAD_SECONDS = 45
CANARY_TIMEOUT_SECONDS = 120
SYNTHETIC_HEADROOM = 3
"""Rows per alarm period, as a multiple of the alarms' minimum (the local feeder's headroom)."""
SMOKE_TEST_TIMEOUT_SECONDS = 300


def canary_rows_per_run(ctx: BuildContext) -> int:
    """Rows per run (one run a minute): the local feeder's headroom over the minimum per alarm period."""
    deployment = ctx.spec.alarms.deployment
    periods_per_minute = 60 / deployment.error_rate.period_seconds
    return max(1, math.ceil(SYNTHETIC_HEADROOM * deployment.min_requests * periods_per_minute))


def warm_up_runs(ctx: BuildContext) -> int:
    """Canary runs (one a minute) before the alias moves.

    The alarms' evaluation periods, plus one for the endpoint metrics' publishing delay.
    """
    longest = max(alarm.evaluation_periods * alarm.period_seconds for alarm in ctx.spec.alarms.deployment.all)
    return min(MAX_WARM_UP_RUNS, math.ceil(longest / 60) + 1)


def add_canary(template: Template, ctx: BuildContext, *, endpoint: Any, blue_endpoint: Json, kms_key: Json) -> str:
    """The synthetic canary function with its schedule, and its warm-up; return the warm-up's logical id.

    The API function depends on the warm-up: CodeDeploy starts (and watches the deployment alarms) only once the
    canary has fed green for the alarms' evaluation periods.
    """
    spec = ctx.spec
    runs = warm_up_runs(ctx)
    function = lambda_function(
        template,
        ctx,
        CANARY_FUNCTION,
        purpose="canary",
        handler=CANARY_HANDLER,
        role=CANARY_ROLE,
        timeout=min(LAMBDA_MAX_TIMEOUT_SECONDS, max(CANARY_TIMEOUT_SECONDS, 60 * runs + 60)),
        environment={
            "ENDPOINT_NAME": endpoint,
            "BLUE_ENDPOINT": blue_endpoint,
            "CHECKS_URI": ctx.model_data_url,  # its pre-traffic-checks.json: the held-out rows and their scores
            "PRODUCTION_PARAMETER": naming.production_endpoint_parameter(spec),
            "CANARY_NAMESPACE": C.CANARY_METRICS_NAMESPACE,
            "ROWS_PER_RUN": str(canary_rows_per_run(ctx)),
            "SPREAD_SECONDS": str(CANARY_SPREAD_SECONDS),
        },
        kms_key=kms_key,
        extra={
            "Events": {
                "EveryMinute": {
                    "Type": "Schedule",
                    "Properties": {
                        "Name": naming.function_name(spec, "canary"),
                        "Description": f"{spec.pipeline_name}: feed green held-out rows while it is not production",
                        "Schedule": CANARY_SCHEDULE,
                        "Enabled": True,
                    },
                }
            }
        },
    )
    return template.add(
        CANARY_WARM_UP,
        "Custom::CanaryWarmUp",
        {
            "ServiceToken": get_att(function, "Arn"),
            "EndpointName": endpoint,
            "WarmUpRuns": runs,
            "ModelVersion": ref(MODEL_VERSION_PARAMETER),  # each version warms its green up
        },
    )


def add_smoke_test(template: Template, ctx: BuildContext, *, endpoint: str, model_version: Json, kms_key: Json) -> str:
    """The smoke-test function and the custom resource that runs it against the dev endpoint; return its id."""
    spec = ctx.spec
    function = lambda_function(
        template,
        ctx,
        SMOKE_TEST_FUNCTION,
        purpose="smoke-test",
        handler=SMOKE_TEST_HANDLER,
        role=SMOKE_TEST_ROLE,
        timeout=SMOKE_TEST_TIMEOUT_SECONDS,
        environment={},
        kms_key=kms_key,
    )
    return template.add(
        SMOKE_TEST,
        "Custom::SmokeTest",
        {
            "ServiceToken": get_att(function, "Arn"),
            "EndpointName": get_att(endpoint, "EndpointName"),
            "ChecksUri": ctx.model_data_url,
            "Rows": spec.serving.smoke_test_rows,
            "Tolerance": spec.serving.smoke_test_tolerance,
            "ModelVersion": model_version,  # a new version: an update, so the test runs again
        },
    )
