"""The production REST API: ``POST /<model>/api`` (API Gateway REST, Lambda proxy) on the ``live`` alias.

The same route the local gateway serves; an API key and a usage plan (throttle) guard it, the stage traces
and writes access logs to a KMS-encrypted group. Requests reach the alias, so CodeDeploy's traffic shifting
between the function's versions (each bound to an endpoint) is what shifts the API's traffic.
"""

from __future__ import annotations

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.cloudformation.context import BuildContext
from safedeploy.cloudformation.state_machine import LOG_RETENTION_DAYS
from safedeploy.cloudformation.template import Json, Template, checkov_skips, get_att, log_group, ref, sub

STAGE_NAME = C.PRD_STAGE
THROTTLE_RATE_PER_SECOND = 50
THROTTLE_BURST = 100
REST_API, STAGE, API_KEY = "RestApi", "ApiStage", "ApiKey"
_ACCESS_LOG_FORMAT = (
    '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","time":"$context.requestTime",'
    '"method":"$context.httpMethod","path":"$context.resourcePath","status":"$context.status",'
    '"latencyMs":"$context.responseLatency","integrationStatus":"$context.integrationStatus",'
    '"apiKeyId":"$context.identity.apiKeyId"}'
)


def _alias_invocation_uri(function_id: str) -> Json:
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                ref("AWS::Partition"),
                ":apigateway:",
                ref("AWS::Region"),
                ":lambda:path/2015-03-31/functions/",
                ref(f"{function_id}.Alias"),
                "/invocations",
            ],
        ]
    }


def add_rest_api(template: Template, ctx: BuildContext, function_id: str, kms_key: Json) -> str:
    """Add the REST API in front of ``function_id``'s alias; return the stage's logical id."""
    spec = ctx.spec
    key_required = spec.serving.api_key_required
    # Explicit, not only the stack's tags: the CloudFormation role may create and change API Gateway resources only
    # with this tag (their ids are AWS's choice; resources, methods, deployments and stages inherit the API's tag,
    # usage plan keys the plan's).
    model_tags = [{"Key": naming.MODEL_TAG_KEY, "Value": spec.model_name}]
    api = template.add(
        REST_API,
        "AWS::ApiGateway::RestApi",
        {
            "Name": naming.rest_api_name(spec),
            "Description": f"{spec.model_name} predictions (production, blue/green behind the alias)",
            "EndpointConfiguration": {"Types": ["REGIONAL"]},
            "Tags": model_tags,
        },
    )
    model = template.add(
        "ModelResource",
        "AWS::ApiGateway::Resource",
        {"RestApiId": ref(api), "ParentId": get_att(api, "RootResourceId"), "PathPart": spec.model_name},
    )
    route = template.add(
        "ApiResource",
        "AWS::ApiGateway::Resource",
        {"RestApiId": ref(api), "ParentId": ref(model), "PathPart": C.API_ROUTE_SUFFIX},
    )
    open_api = () if key_required else (("CKV_AWS_59", "serving.api_key_required is false in the spec"),)
    method = template.add(
        "PostMethod",
        "AWS::ApiGateway::Method",
        {
            "RestApiId": ref(api),
            "ResourceId": ref(route),
            "HttpMethod": "POST",
            "AuthorizationType": "NONE",
            "ApiKeyRequired": key_required,
            "Integration": {
                "Type": "AWS_PROXY",
                "IntegrationHttpMethod": "POST",
                "Uri": _alias_invocation_uri(function_id),
            },
        },
        metadata=checkov_skips(*open_api) if open_api else None,
    )
    template.add(
        "ApiInvokePermission",
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": ref(f"{function_id}.Alias"),
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": sub(
                "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                f"${{{api}}}/*/POST/{spec.model_name}/{C.API_ROUTE_SUFFIX}"
            ),
        },
    )
    deployment = template.add(
        "ApiDeployment",
        "AWS::ApiGateway::Deployment",
        {"RestApiId": ref(api), "Description": f"{spec.pipeline_name} REST API"},
        depends_on=[method],
    )
    logs = log_group(
        template, "ApiAccessLogs", f"/aws/apigateway/{naming.rest_api_name(spec)}", kms_key, LOG_RETENTION_DAYS
    )
    stage = template.add(
        STAGE,
        "AWS::ApiGateway::Stage",
        {
            "RestApiId": ref(api),
            "DeploymentId": ref(deployment),
            "StageName": STAGE_NAME,
            "TracingEnabled": True,
            "AccessLogSetting": {"DestinationArn": get_att(logs, "Arn"), "Format": _ACCESS_LOG_FORMAT},
            "MethodSettings": [
                {
                    "ResourcePath": "/*",
                    "HttpMethod": "*",
                    "MetricsEnabled": True,
                    "LoggingLevel": "ERROR",
                    "DataTraceEnabled": False,
                    "ThrottlingRateLimit": THROTTLE_RATE_PER_SECOND,
                    "ThrottlingBurstLimit": THROTTLE_BURST,
                }
            ],
        },
        metadata=checkov_skips(
            (
                "CKV_AWS_120",
                "No caching: every POST is a distinct prediction request; a cache would answer one "
                "client's rows with another's scores.",
            ),
        ),
    )
    key = template.add(
        API_KEY,
        "AWS::ApiGateway::ApiKey",
        {
            "Name": f"{spec.pipeline_name}-api-key",
            "Enabled": True,
            "Description": f"Clients of {api}",
            "Tags": model_tags,
        },
        depends_on=[stage],
    )
    plan = template.add(
        "UsagePlan",
        "AWS::ApiGateway::UsagePlan",
        {
            "UsagePlanName": f"{spec.pipeline_name}-api",
            "ApiStages": [{"ApiId": ref(api), "Stage": ref(stage)}],
            "Throttle": {"RateLimit": THROTTLE_RATE_PER_SECOND, "BurstLimit": THROTTLE_BURST},
            "Tags": model_tags,
        },
    )
    template.add(
        "UsagePlanKey",
        "AWS::ApiGateway::UsagePlanKey",
        {"KeyId": ref(key), "KeyType": "API_KEY", "UsagePlanId": ref(plan)},
    )
    template.output(
        "ApiUrl",
        sub(
            f"https://${{{api}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{STAGE_NAME}/"
            f"{spec.model_name}/{C.API_ROUTE_SUFFIX}"
        ),
        "POST rows here (x-api-key header)",
    )
    template.output("ApiKeyId", ref(key), "The API key's id (aws apigateway get-api-key --include-value)")
    return stage
