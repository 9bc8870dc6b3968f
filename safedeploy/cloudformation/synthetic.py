"""Synthetic traffic on AWS: the deploy-prd stack's canary and the deploy-dev stack's smoke test.

* **Synthetic canary** (``lambdas/canary/app.py``): a custom resource (``CanaryWarmUp``) runs it before the API
  function's alias moves (the deployment alarms treat missing data as breaching, so green needs evidence before
  CodeDeploy watches them), then an EventBridge schedule every minute; while green is not production yet it sends
  held-out rows to green and to blue and publishes the ``PredictionShift`` custom metric that green's
  prediction-shift alarm watches (and green's and blue's own endpoint metrics get the evidence the error-rate and
  latency alarms need). Its role (base infrastructure, ``canary-lambda``) may invoke only this model's production
  endpoints, put metrics only to :data:`~safedeploy.constants.CANARY_METRICS_NAMESPACE` (``cloudwatch:namespace``
  condition), read the production-endpoint parameter and the model archives.
* **Standing probe** (``lambdas/probe/app.py``, :func:`add_probe`): CloudWatch Synthetics' canary done as a
  scheduled Lambda (``monitoring.synthetic_canary``): every ``schedule_expression`` it sends the served version's
  known rows (its ``pre-traffic-checks.json``) through the production REST API with the API key and the synthetic
  header and publishes ``CloudWatchSynthetics`` ``SuccessPercent``/``Duration`` (``CanaryName``); the alarm is the
  spec's ``AlarmSpec`` rendered by :func:`safedeploy.alarm_catalog.cloudwatch_properties`, as locally. It lives in
  the deploy-prd stack because everything it probes is this stack's: the REST API's URL and key, the version's
  rows; each version replaces it. Its role (base infrastructure, ``probe-lambda``) may put metrics only to
  ``CloudWatchSynthetics``, read the model archives and read (``GetApiKey``) only API keys tagged with this model.
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
from safedeploy.alarm_catalog import aws_alarm_name, cloudwatch_properties
from safedeploy.cloudformation.context import BuildContext
from safedeploy.cloudformation.functions import (
    CANARY_HANDLER,
    LAMBDA_MAX_TIMEOUT_SECONDS,
    PROBE_HANDLER,
    SMOKE_TEST_HANDLER,
    lambda_function,
)
from safedeploy.cloudformation.rest_api import API_KEY, REST_API, STAGE_NAME
from safedeploy.cloudformation.template import MODEL_VERSION_PARAMETER, Json, Template, get_att, ref, sub

CANARY_FUNCTION, CANARY_WARM_UP = "CanaryFunction", "CanaryWarmUp"
SMOKE_TEST_FUNCTION, SMOKE_TEST = "SmokeTestFunction", "SmokeTest"
MAX_WARM_UP_RUNS = 13
"""Canary runs one Lambda invocation holds (15 minutes)."""
CANARY_ROLE, SMOKE_TEST_ROLE, PROBE_ROLE = "canary-lambda", "smoke-test-lambda", "probe-lambda"
"""Base-infrastructure roles (``cdktf_app/roles.py``): the stacks create no roles."""
CANARY_SCHEDULE = "rate(1 minute)"
CANARY_SPREAD_SECONDS = 45
CANARY_TIMEOUT_SECONDS = 120
SYNTHETIC_HEADROOM = 3
"""Rows per alarm period, as a multiple of the alarms' minimum (the local feeder's headroom)."""
SMOKE_TEST_TIMEOUT_SECONDS = 300
PROBE_FUNCTION, PROBE_ALARM = "ProbeFunction", "ProbeAlarm"


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


def probe_api_url(ctx: BuildContext) -> Json:
    """The production REST API's route, as a client calls it."""
    return sub(
        f"https://${{{REST_API}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{STAGE_NAME}/"
        f"{ctx.spec.model_name}/{C.API_ROUTE_SUFFIX}"
    )


def probe_alarm_properties(ctx: BuildContext) -> dict[str, Any]:
    """The probe's ``AWS::CloudWatch::Alarm``: the spec's AlarmSpec on ``CanaryName``, notifying the alarm topic."""
    spec = ctx.spec
    alarm = spec.monitoring.synthetic_canary.alarm
    properties = cloudwatch_properties(
        aws_alarm_name(spec, alarm),
        alarm,
        {C.SYNTHETICS_CANARY_DIMENSION: naming.probe_canary_name(spec)},
    )
    topic = sub(f"arn:${{AWS::Partition}}:sns:${{AWS::Region}}:${{AWS::AccountId}}:{naming.alarm_topic(spec)}")
    return {**properties, "AlarmActions": [topic], "OKActions": [topic]}


def add_probe(template: Template, ctx: BuildContext, *, kms_key: Json) -> str:
    """The standing probe's function, its EventBridge schedule and its alarm; return the alarm's logical id.

    Call after the REST API is in the template (the function reads its URL and key id).
    """
    spec = ctx.spec
    probe = spec.monitoring.synthetic_canary
    canary = naming.probe_canary_name(spec)
    lambda_function(
        template,
        ctx,
        PROBE_FUNCTION,
        purpose="probe",
        handler=PROBE_HANDLER,
        role=PROBE_ROLE,
        timeout=min(LAMBDA_MAX_TIMEOUT_SECONDS, probe.timeout_seconds * probe.rows + 60),
        environment={
            "API_URL": probe_api_url(ctx),
            "API_KEY_ID": ref(API_KEY) if spec.serving.api_key_required else "",
            "CHECKS_URI": ctx.model_data_url,  # its pre-traffic-checks.json: the known rows and their scores
            "CANARY_NAME": canary,
            "METRICS_NAMESPACE": probe.alarm.metric.namespace,
            "ROWS": str(probe.rows),
            "TOLERANCE": repr(probe.tolerance),
            "LATENCY_BUDGET_MS": repr(probe.latency_budget_ms),
            "TIMEOUT_SECONDS": str(probe.timeout_seconds),
        },
        kms_key=kms_key,
        extra={
            "Events": {
                "Probe": {
                    "Type": "Schedule",
                    "Properties": {
                        "Name": naming.function_name(spec, "probe"),
                        "Description": f"{spec.pipeline_name}: probe the production REST API with known rows",
                        "Schedule": probe.schedule_expression,
                        "Enabled": True,
                    },
                }
            }
        },
    )
    return template.add(PROBE_ALARM, "AWS::CloudWatch::Alarm", probe_alarm_properties(ctx))
