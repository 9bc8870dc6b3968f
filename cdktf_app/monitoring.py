"""The pipeline's dashboard, the alarms on the production API, and the encrypted topic alarms notify.

The production stack (``deploy-prd``) creates the API (``naming.rest_api_name``), its Lambda function
(``naming.function_name(spec, "api")``), its endpoints and the drift alarm; the base infrastructure watches them by
name, so the dashboard and alarms exist before the first deployment and survive every redeployment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cdktf_cdktf_provider_aws.cloudwatch_dashboard import CloudwatchDashboard
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_policy import SnsTopicPolicy
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from constructs import Construct

from cdktf_app.names import TerraformNames
from cdktf_app.policy import Statement, condition, policy_document, service
from cdktf_app.variables import count_unless_empty
from safedeploy import constants as C
from safedeploy import naming

PERIOD_SECONDS = 300


@dataclass(frozen=True, kw_only=True)
class ApiAlarm:
    """One alarm on the production API.

    Attributes:
        purpose: ``naming.alarm_name`` purpose.
        description: What it means when it fires.
        namespace: Metric namespace.
        metric: Metric name.
        dimensions: Metric dimensions.
        threshold: Alarm when the statistic is at or above this.
        statistic: ``Sum``/``Average``/... (or use ``extended_statistic``).
        extended_statistic: A percentile such as ``p99``.
    """

    purpose: str
    description: str
    namespace: str
    metric: str
    dimensions: dict[str, str]
    threshold: float
    statistic: str | None = None
    extended_statistic: str | None = None


@dataclass(frozen=True, kw_only=True)
class MonitoringConfig:
    """The dashboard and alarms.

    Attributes:
        names: The environment's names.
        key_arn: Encrypts the alarm topic.
        alarm_email: Subscribed to the alarm topic (a Terraform expression; empty: none).
        max_error_rate: The API's 5XX share that alarms (the spec's ``production.max_error_rate``).
        max_latency_ms: The API's p99 latency that alarms.
        event_rules: EventBridge rule names whose triggers the dashboard shows.
    """

    names: TerraformNames
    key_arn: str
    alarm_email: str
    max_error_rate: float
    max_latency_ms: float
    event_rules: tuple[str, ...]


def api_alarms(names: TerraformNames, *, max_error_rate: float, max_latency_ms: float) -> list[ApiAlarm]:
    """The alarms on the production REST API and its Lambda function."""
    api = {"ApiName": names.name(naming.rest_api_name)}
    function = {"FunctionName": names.name(naming.function_name, "api")}
    return [
        ApiAlarm(
            purpose="gateway-5xx",
            description=f"More than {max_error_rate:.0%} of the production API's requests answer 5XX.",
            namespace="AWS/ApiGateway",
            metric="5XXError",
            dimensions=api,
            statistic="Average",  # 5XXError is 0/1 per request: its average is the error rate
            threshold=max_error_rate,
        ),
        ApiAlarm(
            purpose="gateway-latency",
            description=f"The production API's p99 latency is above {max_latency_ms:g} ms.",
            namespace="AWS/ApiGateway",
            metric="Latency",
            dimensions=api,
            extended_statistic="p99",
            threshold=max_latency_ms,
        ),
        ApiAlarm(
            purpose="lambda-errors",
            description="The production API's Lambda function raised errors.",
            namespace="AWS/Lambda",
            metric="Errors",
            dimensions=function,
            statistic="Sum",
            threshold=5,
        ),
        ApiAlarm(
            purpose="lambda-throttles",
            description="The production API's Lambda function was throttled.",
            namespace="AWS/Lambda",
            metric="Throttles",
            dimensions=function,
            statistic="Sum",
            threshold=1,
        ),
    ]


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
                alarm_name=names.name(naming.alarm_name, alarm.purpose),
                alarm_description=alarm.description,
                namespace=alarm.namespace,
                metric_name=alarm.metric,
                dimensions=alarm.dimensions,
                statistic=alarm.statistic,
                extended_statistic=alarm.extended_statistic,
                period=PERIOD_SECONDS,
                evaluation_periods=3,
                datapoints_to_alarm=2,
                threshold=alarm.threshold,
                comparison_operator="GreaterThanOrEqualToThreshold",
                treat_missing_data="notBreaching",
                alarm_actions=[self.topic.arn],
                ok_actions=[self.topic.arn],
            )
            for alarm in api_alarms(names, max_error_rate=config.max_error_rate, max_latency_ms=config.max_latency_ms)
        ]
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
