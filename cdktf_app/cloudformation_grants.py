"""What the CloudFormation role may do, as a table keyed by the resource types the per-model stacks emit.

CloudFormation creates, updates and deletes the per-model stacks' resources (``safedeploy/cloudformation/``) with
the ``<pipeline>-cloudformation`` role. Its inline policy is this table, one entry per resource type, plus the few
grants every stack needs whatever it holds (:meth:`CloudFormationGrants.stack_wide`: reading the templates and
Lambda code, the key, the registry version parameter). ``tests/test_cloudformation_grants.py`` renders every stack
variant, collects the resource types (``AWS::Serverless::Function`` expanded as SAM's transform expands it) and
checks the table has an entry for each and none for a type no stack emits: a new resource type in a template
fails that test until its grants are written here, and a grant outlives no resource type.

Every resource a stack creates is named ``<model>-...`` (or, for API Gateway, whose ids AWS chooses, tagged
``safedeploy:model = <model>``), which is what the grants are scoped to.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cdktf_app.names import (
    API_LAMBDA,
    CANARY_LAMBDA,
    CODEDEPLOY,
    HOOKS_LAMBDA,
    LOG_DELIVERY_ACTIONS,
    PROBE_LAMBDA,
    SAGEMAKER,
    SCHEDULER,
    SMOKE_TEST_LAMBDA,
    STEPFUNCTIONS,
    TerraformNames,
)
from safedeploy import naming

MODEL_TAG = naming.MODEL_TAG_KEY
"""The tag every per-model stack resource carries (a stack tag CloudFormation propagates, and explicit on the API
Gateway resources): API Gateway's grants are conditioned on it, its resource ids being AWS's choice."""

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
MODEL_MONITOR_TYPES = frozenset({"AWS::SageMaker::MonitoringSchedule", "AWS::SageMaker::DataQualityJobDefinition"})
"""Emitted only with ``monitoring.use_model_monitor``: their grants exist only then."""

_TAGS = {"sagemaker": ("AddTags", "DeleteTags", "ListTags")}


@dataclass(frozen=True, kw_only=True)
class Grant:
    """One statement of the role's policy: ``actions`` on ``resources``, under ``conditions`` (test, key, values)."""

    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()


def serverless_function_types(properties: Mapping[str, Any]) -> tuple[str, ...]:
    """The resource types SAM's transform turns one ``AWS::Serverless::Function`` into (with our properties).

    The function; with ``AutoPublishAlias`` a version and an alias; with ``DeploymentPreference`` a CodeDeploy
    application (one per template) and deployment group; for a ``Schedule`` event (the synthetic canary) an
    EventBridge rule and its invoke permission; no role (``Role`` is always given), no other event sources (the REST
    API is plain ``AWS::ApiGateway::*`` with its own ``AWS::Lambda::Permission``).
    """
    if "Role" not in properties:
        raise ValueError("an AWS::Serverless::Function without Role would make SAM create an IAM role")
    types = ["AWS::Lambda::Function"]
    for name, event in (properties.get("Events") or {}).items():
        if event.get("Type") != "Schedule":
            raise ValueError(f"event {name} of an AWS::Serverless::Function is not a Schedule: no grants for it yet")
        types += ["AWS::Events::Rule", "AWS::Lambda::Permission"]  # the rule, and its permission to invoke
    if "AutoPublishAlias" in properties:
        types += ["AWS::Lambda::Version", "AWS::Lambda::Alias"]
    if "DeploymentPreference" in properties:
        types += ["AWS::CodeDeploy::Application", "AWS::CodeDeploy::DeploymentGroup"]
    return tuple(types)


def created_types(template: Mapping[str, Any]) -> Iterator[str]:
    """The resource types CloudFormation creates for ``template`` (after the SAM transform)."""
    for resource in template.get("Resources", {}).values():
        if resource["Type"] == SERVERLESS_FUNCTION:
            yield from serverless_function_types(resource.get("Properties", {}))
        else:
            yield resource["Type"]


class CloudFormationGrants:
    """The CloudFormation role's grants for one environment."""

    def __init__(self, names: TerraformNames, *, key_arn: str, artifacts_arn: str) -> None:
        self.names = names
        self.key_arn = key_arn
        self.artifacts_arn = artifacts_arn
        self.prefix = f"{names.model}-*"

    # --- ARNs ----------------------------------------------------------------------------------------------------

    def _sagemaker(self, *kinds: str) -> tuple[str, ...]:
        return tuple(self.names.arn("sagemaker", f"{kind}/{self.prefix}") for kind in kinds)

    def _functions(self) -> tuple[str, ...]:
        return (
            self.names.arn("lambda", f"function:{self.prefix}"),
            self.names.arn("lambda", f"function:{self.prefix}:*"),
        )

    def _function(self, purpose: str) -> str:
        return self.names.arn("lambda", f"function:{self.names.name(naming.function_name, purpose)}")

    def _apigateway(self, *paths: str) -> tuple[str, ...]:
        return tuple(self.names.arn("apigateway", path, in_account=False) for path in paths)

    def _pass(self, sid: str, services: tuple[str, ...], to_service: str) -> Grant:
        return Grant(
            sid=sid,
            actions=("iam:PassRole",),
            resources=tuple(self.names.role_arn(service) for service in services),
            conditions=(("StringEquals", "iam:PassedToService", (to_service,)),),
        )

    def _api(self, sid: str, verbs: tuple[str, ...], *paths: str, create: tuple[str, ...] = ()) -> tuple[Grant, ...]:
        """API Gateway ``verbs`` on ``paths`` of resources tagged (or, children, inheriting) ``safedeploy:model``.

        ``create``: the collections where a new resource may be ``POST``ed, only with that tag in the request.
        """
        tagged = ("StringEquals", f"aws:ResourceTag/{MODEL_TAG}", (self.names.model,))
        grants = [
            Grant(
                sid=sid,
                actions=tuple(f"apigateway:{v}" for v in verbs),
                resources=self._apigateway(*paths),
                conditions=(tagged,),
            )
        ]
        if create:
            requested = ("StringEquals", f"aws:RequestTag/{MODEL_TAG}", (self.names.model,))
            grants.append(
                Grant(
                    sid=f"{sid}Create",
                    actions=("apigateway:POST",),
                    resources=self._apigateway(*create),
                    conditions=(requested,),
                )
            )
        return tuple(grants)

    @property
    def _sagemaker_variants(self) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
        """Scalable-target ids are AWS's (``scalable-target/<id>``): held to SageMaker variants' instance counts."""
        return (
            ("StringEquals", "application-autoscaling:service-namespace", ("sagemaker",)),
            ("StringEquals", "application-autoscaling:scalable-dimension", ("sagemaker:variant:DesiredInstanceCount",)),
        )

    # --- The table -------------------------------------------------------------------------------------------------

    def by_type(self, *, use_model_monitor: bool) -> dict[str, tuple[Grant, ...]]:
        """Resource type -> the grants CloudFormation needs to create, update and delete resources of that type."""
        names, prefix = self.names, self.prefix
        sm_tags = tuple(f"sagemaker:{a}" for a in _TAGS["sagemaker"])
        table: dict[str, tuple[Grant, ...]] = {
            "AWS::SageMaker::Model": (
                Grant(
                    sid="SageMakerModel",
                    actions=("sagemaker:CreateModel", "sagemaker:DeleteModel", "sagemaker:DescribeModel", *sm_tags),
                    resources=self._sagemaker("model"),
                ),
                self._pass("PassSageMakerRoleToModels", (SAGEMAKER,), "sagemaker.amazonaws.com"),
            ),
            "AWS::SageMaker::EndpointConfig": (
                Grant(
                    sid="SageMakerEndpointConfig",
                    actions=(
                        "sagemaker:CreateEndpointConfig",
                        "sagemaker:DeleteEndpointConfig",
                        "sagemaker:DescribeEndpointConfig",
                        *sm_tags,
                    ),
                    resources=self._sagemaker("endpoint-config"),
                ),
            ),
            "AWS::SageMaker::Endpoint": (
                Grant(
                    sid="SageMakerEndpoint",
                    actions=(
                        "sagemaker:CreateEndpoint",
                        "sagemaker:UpdateEndpoint",
                        "sagemaker:DeleteEndpoint",
                        "sagemaker:DescribeEndpoint",
                        "sagemaker:UpdateEndpointWeightsAndCapacities",
                        *sm_tags,
                    ),
                    # Create/UpdateEndpoint authorize on the endpoint and on the config it is given
                    resources=self._sagemaker("endpoint", "endpoint-config"),
                ),
            ),
            "AWS::Scheduler::Schedule": (
                Grant(
                    sid="MonitoringSchedules",
                    actions=(
                        "scheduler:CreateSchedule",
                        "scheduler:UpdateSchedule",
                        "scheduler:DeleteSchedule",
                        "scheduler:GetSchedule",
                    ),
                    resources=(names.arn("scheduler", f"schedule/default/{prefix}"),),
                ),
                self._pass("PassSchedulerRole", (SCHEDULER,), "scheduler.amazonaws.com"),
            ),
            "AWS::StepFunctions::StateMachine": (
                Grant(
                    sid="StateMachines",
                    actions=(
                        "states:CreateStateMachine",
                        "states:UpdateStateMachine",
                        "states:DeleteStateMachine",
                        "states:DescribeStateMachine",
                        "states:TagResource",
                        "states:UntagResource",
                        "states:ListTagsForResource",
                    ),
                    resources=(names.arn("states", f"stateMachine:{prefix}"),),
                ),
                # no resource-level permissions exist for these (see LOG_DELIVERY_ACTIONS)
                Grant(sid="StateMachineLogDelivery", actions=LOG_DELIVERY_ACTIONS, resources=("*",)),
                self._pass("PassStepFunctionsRole", (STEPFUNCTIONS,), "states.amazonaws.com"),
            ),
            "AWS::Logs::LogGroup": (
                Grant(
                    sid="LogGroups",
                    actions=(
                        "logs:CreateLogGroup",
                        "logs:DeleteLogGroup",
                        "logs:PutRetentionPolicy",
                        "logs:DeleteRetentionPolicy",
                        "logs:AssociateKmsKey",
                        "logs:DisassociateKmsKey",
                        "logs:TagResource",
                        "logs:UntagResource",
                        "logs:ListTagsForResource",
                    ),
                    resources=(
                        names.arn("logs", f"log-group:/aws/lambda/{prefix}"),
                        names.arn("logs", f"log-group:/aws/vendedlogs/states/{prefix}"),
                        names.arn("logs", f"log-group:/aws/apigateway/{prefix}"),
                    ),
                ),
                Grant(
                    sid="DescribeLogGroups",
                    actions=("logs:DescribeLogGroups",),
                    resources=(names.arn("logs", "log-group:*"),),
                ),
            ),
            "AWS::Lambda::Function": (
                Grant(
                    sid="LambdaFunctions",
                    actions=(
                        "lambda:CreateFunction",
                        "lambda:DeleteFunction",
                        "lambda:GetFunction",
                        "lambda:GetFunctionConfiguration",
                        "lambda:UpdateFunctionCode",
                        "lambda:UpdateFunctionConfiguration",
                        "lambda:PutFunctionConcurrency",
                        "lambda:DeleteFunctionConcurrency",
                        "lambda:TagResource",
                        "lambda:UntagResource",
                        "lambda:ListTags",
                    ),
                    resources=self._functions(),
                ),
                self._pass(
                    "PassLambdaRoles",
                    (API_LAMBDA, HOOKS_LAMBDA, CANARY_LAMBDA, SMOKE_TEST_LAMBDA, PROBE_LAMBDA),
                    "lambda.amazonaws.com",
                ),
            ),
            "AWS::Lambda::Version": (
                Grant(
                    sid="LambdaVersions",
                    actions=("lambda:PublishVersion", "lambda:ListVersionsByFunction"),
                    resources=self._functions(),
                ),
            ),
            "AWS::Lambda::Alias": (
                Grant(
                    sid="LambdaAliases",
                    actions=("lambda:CreateAlias", "lambda:UpdateAlias", "lambda:DeleteAlias", "lambda:GetAlias"),
                    resources=self._functions(),
                ),
            ),
            "AWS::Lambda::Permission": (
                Grant(
                    sid="LambdaPermissions",
                    actions=("lambda:AddPermission", "lambda:RemovePermission", "lambda:GetPolicy"),
                    resources=self._functions(),
                ),
            ),
            "AWS::ApiGateway::RestApi": self._api(
                "RestApi",
                ("GET", "PUT", "PATCH", "DELETE", "UpdateRestApiPolicy"),
                "/restapis/*",
                "/tags/*",
                create=("/restapis",),
            ),
            "AWS::ApiGateway::Resource": self._api(
                "RestApiResources",
                ("GET", "POST", "PATCH", "DELETE"),
                "/restapis/*/resources",
                "/restapis/*/resources/*",
            ),
            "AWS::ApiGateway::Method": self._api(
                "RestApiMethods", ("GET", "PUT", "PATCH", "DELETE"), "/restapis/*/resources/*/methods/*"
            ),
            "AWS::ApiGateway::Deployment": self._api(
                "RestApiDeployments",
                ("GET", "POST", "PATCH", "DELETE"),
                "/restapis/*/deployments",
                "/restapis/*/deployments/*",
            ),
            "AWS::ApiGateway::Stage": self._api(
                "RestApiStages", ("GET", "POST", "PATCH", "DELETE"), "/restapis/*/stages", "/restapis/*/stages/*"
            ),
            "AWS::ApiGateway::ApiKey": self._api(
                "ApiKeys", ("GET", "PATCH", "DELETE"), "/apikeys/*", create=("/apikeys",)
            ),
            "AWS::ApiGateway::UsagePlan": self._api(
                "UsagePlans", ("GET", "PATCH", "DELETE"), "/usageplans/*", create=("/usageplans",)
            ),
            "AWS::ApiGateway::UsagePlanKey": self._api(
                "UsagePlanKeys", ("GET", "POST", "DELETE"), "/usageplans/*/keys", "/usageplans/*/keys/*"
            ),
            "AWS::CodeDeploy::Application": (
                Grant(
                    sid="CodeDeployApplications",
                    actions=(
                        "codedeploy:CreateApplication",
                        "codedeploy:DeleteApplication",
                        "codedeploy:GetApplication",
                        "codedeploy:RegisterApplicationRevision",
                        "codedeploy:GetApplicationRevision",
                        "codedeploy:TagResource",
                        "codedeploy:UntagResource",
                        "codedeploy:ListTagsForResource",
                    ),
                    resources=(names.arn("codedeploy", f"application:{prefix}"),),
                ),
            ),
            "AWS::CodeDeploy::DeploymentGroup": (
                Grant(
                    sid="CodeDeployDeploymentGroups",
                    actions=(
                        "codedeploy:CreateDeploymentGroup",
                        "codedeploy:UpdateDeploymentGroup",
                        "codedeploy:DeleteDeploymentGroup",
                        "codedeploy:GetDeploymentGroup",
                        "codedeploy:CreateDeployment",
                        "codedeploy:GetDeployment",
                        "codedeploy:StopDeployment",
                        "codedeploy:TagResource",
                        "codedeploy:UntagResource",
                        "codedeploy:ListTagsForResource",
                    ),
                    resources=(names.arn("codedeploy", f"deploymentgroup:{prefix}/*"),),
                ),
                Grant(
                    sid="CodeDeployPredefinedConfigs",
                    actions=("codedeploy:GetDeploymentConfig",),
                    resources=(
                        names.arn("codedeploy", "deploymentconfig:CodeDeployDefault.*"),
                        names.arn("codedeploy", f"deploymentconfig:{prefix}"),
                    ),
                ),
                self._pass("PassCodeDeployRole", (CODEDEPLOY,), "codedeploy.amazonaws.com"),
            ),
            "AWS::CodeDeploy::DeploymentConfig": (
                Grant(
                    sid="CodeDeployCustomConfigs",
                    actions=(
                        "codedeploy:CreateDeploymentConfig",
                        "codedeploy:DeleteDeploymentConfig",
                        "codedeploy:GetDeploymentConfig",
                    ),
                    resources=(names.arn("codedeploy", f"deploymentconfig:{prefix}"),),
                ),
            ),
            "AWS::ApplicationAutoScaling::ScalableTarget": (
                Grant(
                    sid="EndpointScalableTargets",
                    actions=(
                        "application-autoscaling:RegisterScalableTarget",
                        "application-autoscaling:DeregisterScalableTarget",
                        "application-autoscaling:TagResource",
                        "application-autoscaling:UntagResource",
                        "application-autoscaling:ListTagsForResource",
                    ),
                    resources=(names.arn("application-autoscaling", "scalable-target/*"),),
                    conditions=self._sagemaker_variants,
                ),
                Grant(
                    sid="AutoScalingServiceLinkedRole",
                    actions=("iam:CreateServiceLinkedRole",),
                    resources=(
                        names.arn(
                            "iam",
                            "role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
                            "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
                            regional=False,
                        ),
                    ),
                    conditions=(
                        ("StringEquals", "iam:AWSServiceName", ("sagemaker.application-autoscaling.amazonaws.com",)),
                    ),
                ),
            ),
            "AWS::ApplicationAutoScaling::ScalingPolicy": (
                Grant(
                    sid="EndpointScalingPolicies",
                    actions=("application-autoscaling:PutScalingPolicy", "application-autoscaling:DeleteScalingPolicy"),
                    resources=(names.arn("application-autoscaling", "scalable-target/*"),),
                    conditions=self._sagemaker_variants,
                ),
                Grant(
                    sid="TargetTrackingAlarms",  # Application Auto Scaling creates them as the caller
                    actions=("cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms"),
                    resources=(names.arn("cloudwatch", f"alarm:TargetTracking-endpoint/{prefix}"),),
                ),
            ),
            "AWS::CloudWatch::Alarm": (
                Grant(
                    sid="MetricAlarms",
                    actions=(
                        "cloudwatch:PutMetricAlarm",
                        "cloudwatch:DeleteAlarms",
                        "cloudwatch:DescribeAlarms",
                        "cloudwatch:TagResource",
                        "cloudwatch:UntagResource",
                        "cloudwatch:ListTagsForResource",
                    ),
                    resources=(names.arn("cloudwatch", f"alarm:{prefix}"),),
                ),
            ),
            "AWS::Events::Rule": (
                Grant(
                    sid="CanarySchedule",  # the synthetic canary's schedule (SAM's Schedule event)
                    actions=(
                        "events:PutRule",
                        "events:DeleteRule",
                        "events:DescribeRule",
                        "events:EnableRule",
                        "events:DisableRule",
                        "events:PutTargets",
                        "events:RemoveTargets",
                        "events:TagResource",
                        "events:UntagResource",
                        "events:ListTagsForResource",
                    ),
                    resources=(names.arn("events", f"rule/{prefix}"),),
                ),
            ),
            "Custom::SmokeTest": (
                Grant(
                    sid="RunSmokeTest",  # deploy-dev's custom resource: CloudFormation invokes the function
                    actions=("lambda:InvokeFunction",),
                    resources=(self._function("smoke-test"),),
                ),
            ),
            "Custom::CanaryWarmUp": (
                Grant(
                    sid="RunCanaryWarmUp",  # deploy-prd's custom resource
                    actions=("lambda:InvokeFunction",),
                    resources=(self._function("canary"),),
                ),
            ),
            "AWS::CloudWatch::CompositeAlarm": (
                Grant(
                    sid="CompositeAlarms",
                    actions=(
                        "cloudwatch:PutCompositeAlarm",
                        "cloudwatch:DeleteAlarms",
                        "cloudwatch:DescribeAlarms",
                        "cloudwatch:TagResource",
                        "cloudwatch:UntagResource",
                        "cloudwatch:ListTagsForResource",
                    ),
                    resources=(names.arn("cloudwatch", f"alarm:{prefix}"),),
                ),
            ),
        }
        if use_model_monitor:
            table["AWS::SageMaker::MonitoringSchedule"] = (
                Grant(
                    sid="ModelMonitorSchedules",
                    actions=(
                        "sagemaker:CreateMonitoringSchedule",
                        "sagemaker:UpdateMonitoringSchedule",
                        "sagemaker:DeleteMonitoringSchedule",
                        "sagemaker:DescribeMonitoringSchedule",
                        "sagemaker:StartMonitoringSchedule",
                        "sagemaker:StopMonitoringSchedule",
                        *sm_tags,
                    ),
                    resources=self._sagemaker("monitoring-schedule"),
                ),
            )
            table["AWS::SageMaker::DataQualityJobDefinition"] = (
                Grant(
                    sid="ModelMonitorJobDefinitions",
                    actions=(
                        "sagemaker:CreateDataQualityJobDefinition",
                        "sagemaker:DeleteDataQualityJobDefinition",
                        "sagemaker:DescribeDataQualityJobDefinition",
                        *sm_tags,
                    ),
                    resources=self._sagemaker("data-quality-job-definition"),
                ),
                self._pass("PassSageMakerRoleToJobDefinitions", (SAGEMAKER,), "sagemaker.amazonaws.com"),
            )
        return table

    def stack_wide(self) -> tuple[Grant, ...]:
        """What every stack needs whatever resources it holds: its inputs, not its resources."""
        names = self.names
        group = names.name(naming.model_package_group)
        pipeline = names.name(naming.codepipeline_name)
        return (
            Grant(
                sid="ReadTemplatesAndCode",  # templates, the Lambda bundle (CreateFunction reads it as the caller)
                actions=("s3:GetObject", "s3:GetObjectVersion"),
                resources=(f"{self.artifacts_arn}/*",),
            ),
            Grant(
                sid="ReadTemplatesAndCodeList",
                actions=("s3:ListBucket", "s3:GetBucketLocation"),
                resources=(self.artifacts_arn,),
            ),
            Grant(
                sid="ReadModelRegistry",  # the group is base infrastructure (cdktf_app/registry.py)
                actions=("sagemaker:DescribeModelPackage", "sagemaker:DescribeModelPackageGroup"),
                resources=(
                    names.arn("sagemaker", f"model-package-group/{group}"),
                    names.arn("sagemaker", f"model-package/{group}/*"),
                ),
            ),
            Grant(
                sid="ReadModelVersionParameters",  # the deploy stacks' ModelVersion parameter (training publishes it)
                actions=("ssm:GetParameters", "ssm:GetParameter"),
                resources=(names.arn("ssm", f"parameter/safedeploy/{pipeline}/executions/*"),),
            ),
            Grant(
                sid="ReadProductionEndpoint",  # deploy-prd's BlueEndpoint parameter (the post-traffic hook writes it)
                actions=("ssm:GetParameters", "ssm:GetParameter"),
                resources=(names.arn("ssm", f"parameter{names.name(naming.production_endpoint_parameter)}"),),
            ),
            Grant(
                sid="UsePipelineKey",  # encrypted log groups, capture, schedules, state machines
                actions=("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"),
                resources=(self.key_arn,),
            ),
            Grant(
                sid="GrantPipelineKeyToServices",
                actions=("kms:CreateGrant",),
                resources=(self.key_arn,),
                conditions=(("Bool", "kms:GrantIsForAWSResource", ("true",)),),
            ),
        )

    def statements(self, *, use_model_monitor: bool) -> tuple[Grant, ...]:
        """Every grant of the role, table first (in the table's order), then the stack-wide ones."""
        table = self.by_type(use_model_monitor=use_model_monitor)
        return (*(grant for grants in table.values() for grant in grants), *self.stack_wide())
