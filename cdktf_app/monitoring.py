"""The pipeline's dashboard, the standing alarms on the production API, and the encrypted topic alarms notify.

The standing alarms are the alarm catalog's (``spec.alarms.standing``), rendered with
:func:`safedeploy.alarm_catalog.cloudwatch_properties` as the deploy-prd stack renders its deployment alarms. The
SSM parameter ``naming.production_endpoint_parameter`` (``none`` until the first deployment's post-traffic hook
records green) lives here too: the deploy-prd stack reads it as blue, so it must exist before the first stack.

The production stack (``deploy-prd``) creates the API (``naming.rest_api_name``), its Lambda function
(``naming.function_name(spec, "api")``), its endpoints and the drift alarm; the base infrastructure watches them by
name, so the dashboard and alarms exist before the first deployment and survive every redeployment.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.cloudwatch_dashboard import CloudwatchDashboard
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_policy import SnsTopicPolicy
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter
from constructs import Construct

from cdktf_app.checks import skip_checks
from cdktf_app.names import TerraformNames
from cdktf_app.policy import Statement, condition, policy_document, service
from cdktf_app.variables import count_unless_empty
from safedeploy import constants as C
from safedeploy import naming
from safedeploy.alarm_catalog import cloudwatch_properties
from safedeploy.spec import AlarmSpec, StandingAlarmsSpec

NO_PRODUCTION_ENDPOINT = "none"
"""The production-endpoint parameter before the first deployment (the canary's and the stack's "no blue")."""

PERIOD_SECONDS = C.STANDING_ALARM_PERIOD_SECONDS
"""The dashboard's period (the standing alarms' own periods are the catalog's)."""


@dataclass(frozen=True, kw_only=True)
class ApiAlarm:
    """One standing alarm of the catalog (``spec.alarms.standing``), its dimensions bound to this environment.

    Attributes:
        alarm: The catalog's definition.
        dimensions: Its metric's dimensions, by the catalog's names.
    """

    alarm: AlarmSpec
    dimensions: dict[str, str]

    @property
    def purpose(self) -> str:
        """``naming.alarm_name`` purpose (and the Terraform resource's name)."""
        return self.alarm.name


@dataclass(frozen=True, kw_only=True)
class MonitoringConfig:
    """The dashboard and alarms.

    Attributes:
        names: The environment's names.
        key_arn: Encrypts the alarm topic.
        alarm_email: Subscribed to the alarm topic (a Terraform expression; empty: none).
        standing: The catalog's standing alarms (``spec.alarms.standing``).
        event_rules: EventBridge rule names whose triggers the dashboard shows.
    """

    names: TerraformNames
    key_arn: str
    alarm_email: str
    standing: StandingAlarmsSpec
    event_rules: tuple[str, ...]


def api_alarms(names: TerraformNames, standing: StandingAlarmsSpec) -> list[ApiAlarm]:
    """The standing alarms on the production REST API and its Lambda function, with this environment's names."""
    values = {"ApiName": names.name(naming.rest_api_name), "FunctionName": names.name(naming.function_name, "api")}
    return [
        ApiAlarm(alarm=alarm, dimensions={name: values[name] for name in alarm.metric.dimensions})
        for alarm in standing.all
    ]


def alarm_arguments(names: TerraformNames, alarm: ApiAlarm) -> dict[str, Any]:
    """``aws_cloudwatch_metric_alarm``'s arguments: the catalog's CloudWatch properties, snake-cased."""
    properties = cloudwatch_properties(names.name(naming.alarm_name, alarm.purpose), alarm.alarm, alarm.dimensions)
    properties["Dimensions"] = {d["Name"]: d["Value"] for d in properties["Dimensions"]}
    return {_SNAKE.sub("_", key).lower(): value for key, value in properties.items()}


_SNAKE = re.compile(r"(?<=[a-z])(?=[A-Z])")


class Monitoring(Construct):
    """Alarm topic (KMS, publishable by CloudWatch and EventBridge of this account), alarms and dashboard."""

    def __init__(self, scope: Construct, id_: str, *, config: MonitoringConfig) -> None:
        super().__init__(scope, id_)
        names = config.names
        self.topic = SnsTopic(
            self,
            "topic",
            name=names.name(naming.alarm_topic),
            display_name=f"{names.pipeline} alarms",
            kms_master_key_id=config.key_arn,
        )
        topic_policy = policy_document(
            self,
            "topic_policy",
            [
                Statement(
                    sid="AlarmsAndEventsOfThisAccount",
                    principals=(service("cloudwatch.amazonaws.com", "events.amazonaws.com"),),
                    actions=("sns:Publish",),
                    resources=(self.topic.arn,),
                    conditions=(condition("StringEquals", "aws:SourceAccount", names.account_id),),
                )
            ],
        )
        SnsTopicPolicy(self, "topic_access", arn=self.topic.arn, policy=topic_policy.json)
        SnsTopicSubscription(
            self,
            "email",
            count=count_unless_empty(config.alarm_email),
            topic_arn=self.topic.arn,
            protocol="email",
            endpoint=config.alarm_email,
        )
        self.alarms = [
            CloudwatchMetricAlarm(
                self,
                alarm.purpose.replace("-", "_"),
                **alarm_arguments(names, alarm),
                alarm_actions=[self.topic.arn],
                ok_actions=[self.topic.arn],
            )
            for alarm in api_alarms(names, config.standing)
        ]
        self.production_endpoint = SsmParameter(
            self,
            "production_endpoint",
            name=names.name(naming.production_endpoint_parameter),
            type="String",
            value=NO_PRODUCTION_ENDPOINT,
            description=f"The endpoint {names.model}'s production serves (the post-traffic hook records it; the "
            "deploy-prd stack reads it as blue)",
            lifecycle=TerraformResourceLifecycle(ignore_changes=["value"]),
        )
        skip_checks(
            self.production_endpoint,
            {
                "CKV2_AWS_34": "A plain String on purpose: it holds an endpoint name, no secret, and the deploy-prd "
                "stack reads it as an AWS::SSM::Parameter::Value<String> parameter, a type CloudFormation cannot "
                "resolve from a SecureString.",
            },
        )
        self.dashboard = CloudwatchDashboard(
            self,
            "dashboard",
            dashboard_name=names.name(naming.dashboard_name),
            dashboard_body=json.dumps(dashboard_body(config, [a.arn for a in self.alarms]), sort_keys=True),
        )


def dashboard_body(config: MonitoringConfig, alarm_arns: list[str]) -> dict[str, Any]:
    """The dashboard: API Gateway, the API function, the endpoints, the pipeline's triggers and state machines."""
    names = config.names
    region = names.region
    api = names.name(naming.rest_api_name)
    function = names.name(naming.function_name, "api")
    state_machines = [
        names.arn("states", f"stateMachine:{names.name(naming.state_machine_name, kind)}")
        for kind in ("training-job", "suggest-baseline")
    ]

    def metrics(title: str, rows: list[list[Any]], x: int, y: int, *, stat: str = "Sum") -> dict[str, Any]:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {"title": title, "region": region, "stat": stat, "period": PERIOD_SECONDS, "metrics": rows},
        }

    def endpoints(metric: str, stat: str) -> list[Any]:
        query = (
            f'SEARCH(\'{{{C.METRICS_NAMESPACE},EndpointName,VariantName}} MetricName="{metric}" '
            f"EndpointName=\"{names.model}-{C.PRD_STAGE}\"', '{stat}', {PERIOD_SECONDS})"
        )
        return [{"expression": query, "label": metric, "id": metric.lower()}]

    return {
        "widgets": [
            metrics(
                f"API {api}: requests and errors",
                [
                    ["AWS/ApiGateway", "Count", "ApiName", api],
                    ["AWS/ApiGateway", "5XXError", "ApiName", api],
                    ["AWS/ApiGateway", "4XXError", "ApiName", api],
                ],
                0,
                0,
            ),
            metrics(
                f"API {api}: latency p99 (ms)",
                [
                    ["AWS/ApiGateway", "Latency", "ApiName", api],
                    ["AWS/ApiGateway", "IntegrationLatency", "ApiName", api],
                ],
                12,
                0,
                stat="p99",
            ),
            metrics(
                f"Lambda {function}: invocations and errors",
                [
                    ["AWS/Lambda", "Invocations", "FunctionName", function],
                    ["AWS/Lambda", "Errors", "FunctionName", function],
                    ["AWS/Lambda", "Throttles", "FunctionName", function],
                ],
                0,
                6,
            ),
            metrics(
                f"Lambda {function}: duration p99 (ms)",
                [["AWS/Lambda", "Duration", "FunctionName", function]],
                12,
                6,
                stat="p99",
            ),
            metrics(
                f"Production endpoints ({names.model}-{C.PRD_STAGE}*): invocations",
                [endpoints("Invocations", "Sum"), endpoints("Invocation5XXErrors", "Sum")],
                0,
                12,
            ),
            metrics(
                f"Production endpoints ({names.model}-{C.PRD_STAGE}*): model latency p99 (us)",
                [endpoints("ModelLatency", "p99")],
                12,
                12,
                stat="p99",
            ),
            metrics(
                f"Pipeline {names.pipeline}: triggers",
                [["AWS/Events", "TriggeredRules", "RuleName", rule] for rule in config.event_rules],
                0,
                18,
            ),
            metrics(
                f"Pipeline {names.pipeline}: training and baseline runs",
                [
                    row
                    for arn in state_machines
                    for row in (
                        ["AWS/States", "ExecutionsSucceeded", "StateMachineArn", arn],
                        ["AWS/States", "ExecutionsFailed", "StateMachineArn", arn],
                    )
                ],
                12,
                18,
            ),
            {
                "type": "alarm",
                "x": 0,
                "y": 24,
                "width": 24,
                "height": 3,
                "properties": {"title": "Alarms", "alarms": alarm_arns},
            },
        ]
    }
