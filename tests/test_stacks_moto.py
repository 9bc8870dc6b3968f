"""The four per-model stacks executed in moto's CloudFormation, deleted in the documented order by ``destroy``'s own
code; what moto's CloudFormation cannot create is checked with botocore's ``Stubber`` instead.

What moto (5.2) lacks, found by running the rendered templates (documented in docs/architecture.md):

* ``AWS::SageMaker::Model`` / ``EndpointConfig`` / ``Endpoint``: moto's CloudFormation ignores ``ModelName``,
  ``EndpointConfigName`` and ``EndpointName`` and names them ``<stack>-<logical id>-<random>``, so the endpoint config
  (which names its model, as the request the local backend sends does) fails with "Could not find model". The
  module gives moto AWS's documented behaviour (the name properties are honoured) for its own in-process server.
* The SAM transform (``AWS::Serverless-2016-10-31``): moto ignores ``Transform``, does not know
  ``AWS::Serverless::Function`` and cannot resolve ``<Function>.Alias`` or ``GetAtt <Function>``: ``deploy-prd``
  fails to create (a template error naming the function; an HTTP 500 in earlier templates, after which moto kept a
  half-created stack that ``destroy`` deleted first); the resources moto lacks are stubbed below. ``deploy-dev``'s one SAM function (the smoke test, run by its
  ``Custom::SmokeTest``) is set aside with what refers to it (:func:`_without_sam`), so the rest of deploy-dev runs in
  moto; the smoke test itself is exercised in ``tests/test_synthetic_lambdas.py``.
* Silently skipped types (``moto.cloudformation.parsing.resource_class_from_type`` is ``None``):
  :data:`MOTO_UNSUPPORTED_TYPES`. Each has a Stubber check of its request (:data:`REQUESTS`), or is in
  :data:`SCHEMA_ONLY` with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from safedeploy import naming
from safedeploy.aws.cleanup import destroy_stacks
from safedeploy.cloudformation.stacks import StackDocuments
from safedeploy.infra.plan import moto_server
from safedeploy.spec import PipelineSpec
from tests.test_templates import ACCOUNT, fixture_spec, render

REGION = "us-east-1"
IN_MOTO = ("training-job", "suggest-baseline", "deploy-dev")
"""The stacks moto's CloudFormation creates; ``deploy-prd`` needs the SAM transform, which moto does not run."""
MOTO_UNSUPPORTED_TYPES = frozenset(
    {
        "AWS::Serverless::Function",
        "AWS::Scheduler::Schedule",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::CompositeAlarm",
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::ApiGateway::ApiKey",
        "AWS::ApiGateway::Stage",
        "AWS::ApiGateway::UsagePlan",
        "AWS::ApiGateway::UsagePlanKey",
        "AWS::SageMaker::MonitoringSchedule",
        "AWS::SageMaker::DataQualityJobDefinition",
        "AWS::CodeDeploy::DeploymentConfig",
    }
)
SCHEMA_ONLY = {
    "AWS::Serverless::Function": "a SAM macro, not an API: its function, version, alias and CodeDeploy resources are "
    "AWS's transform's output; cfn-lint validates it against SAM's schema (make lint)",
}


@dataclass
class Moto:
    endpoint: str

    def client(self, service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    from moto.sagemaker import models

    honoured: dict[type, str] = {
        models.Model: "ModelName",
        models.FakeEndpointConfig: "EndpointConfigName",
        models.FakeEndpoint: "EndpointName",
    }
    saved = {cls: cls.__dict__["cloudformation_name_type"] for cls in honoured}
    for cls, prop in honoured.items():
        setattr(cls, "cloudformation_name_type", staticmethod(lambda prop=prop: prop))  # noqa: B010
    try:
        with moto_server() as endpoint:
            yield Moto(endpoint)
    finally:
        for cls, original in saved.items():
            setattr(cls, "cloudformation_name_type", original)  # noqa: B010


@pytest.fixture(scope="module")
def spec() -> PipelineSpec:
    return fixture_spec()


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, StackDocuments]:
    return render(tmp_path_factory.mktemp("stacks"))


def _without_sam(template: dict[str, Any]) -> dict[str, Any]:
    """``template`` without its SAM functions and everything that refers to them (``Ref``, ``GetAtt``, ``DependsOn``)."""
    resources = dict(template["Resources"])
    gone = {name for name, body in resources.items() if body["Type"] == "AWS::Serverless::Function"}
    while True:
        refers = {
            name
            for name, body in resources.items()
            if name not in gone and any(f'"{g}"' in json.dumps(body) or f'"{g}.' in json.dumps(body) for g in gone)
        }
        if not refers:
            break
        gone |= refers
    outputs = {
        name: body
        for name, body in template.get("Outputs", {}).items()
        if not any(f'"{g}"' in json.dumps(body) or f'"{g}.' in json.dumps(body) for g in gone)
    }
    kept = {k: v for k, v in template.items() if k not in ("Transform", "Resources", "Outputs")}
    return {**kept, "Resources": {n: b for n, b in resources.items() if n not in gone}, "Outputs": outputs}


def _create(cfn: Any, spec: PipelineSpec, documents: StackDocuments, *, set_aside_sam: bool = False) -> dict[str, Any]:
    config = documents.configuration
    template = _without_sam(documents.template) if set_aside_sam else documents.template
    response = cfn.create_stack(
        StackName=naming.stack_name(spec, documents.kind),
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in config["Parameters"].items()],
        Tags=[{"Key": k, "Value": v} for k, v in config["Tags"].items()],
        Capabilities=["CAPABILITY_AUTO_EXPAND"],
    )
    stack: dict[str, Any] = cfn.describe_stacks(StackName=response["StackId"])["Stacks"][0]
    return stack


def test_stacks_are_created_and_deleted_in_the_documented_order(
    moto: Moto, spec: PipelineSpec, stacks: dict[str, StackDocuments]
) -> None:
    cfn, ssm = moto.client("cloudformation"), moto.client("ssm")
    sagemaker, sfn, logs = moto.client("sagemaker"), moto.client("stepfunctions"), moto.client("logs")
    version_parameter = stacks["deploy-dev"].configuration["Parameters"]["ModelVersion"]
    ssm.put_parameter(Name=version_parameter, Value="7", Type="String")  # what the training state machine publishes
    threshold_parameter = stacks["deploy-prd"].configuration["Parameters"]["AucThreshold"]
    ssm.put_parameter(Name=threshold_parameter, Value="0.87", Type="String")  # and the version's AUC threshold
    # the base infrastructure's production-endpoint parameter (Terraform creates it as "none")
    ssm.put_parameter(Name=naming.production_endpoint_parameter(spec), Value="none", Type="String")
    for kind in IN_MOTO:
        stack = _create(cfn, spec, stacks[kind], set_aside_sam=kind == "deploy-dev")
        assert stack["StackStatus"] == "CREATE_COMPLETE", (kind, stack.get("StackStatusReason"))
    with pytest.raises(Exception, match=r"500|Internal|references undefined resource \w+Function"):
        _create(cfn, spec, stacks["deploy-prd"])  # the SAM transform: not in moto
    prd_name = naming.stack_name(spec, "deploy-prd")
    kept = any(summary["StackName"] == prd_name for summary in cfn.list_stacks()["StackSummaries"])
    machines = {m["name"] for m in sfn.list_state_machines()["stateMachines"]}
    assert {naming.state_machine_name(spec, k) for k in ("training-job", "suggest-baseline")} <= machines
    dev = stacks["deploy-dev"].template["Resources"]
    endpoint = sagemaker.describe_endpoint(EndpointName=_literal(dev["Endpoint"]["Properties"]["EndpointName"]))
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["PrimaryContainer"]["ModelDataUrl"].startswith("s3://")
    assert config["DataCaptureConfig"]["KmsKeyId"] == stacks["deploy-dev"].configuration["Parameters"]["KmsKeyArn"]
    groups = {g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]}
    assert any(g.startswith("/aws/vendedlogs/states/") for g in groups)

    deleted: list[str] = []
    cfn.meta.events.register(
        "provide-client-params.cloudformation.DeleteStack", lambda params, **_: deleted.append(params["StackName"])
    )
    outcomes = destroy_stacks(cfn, spec, timeout_s=60, poll_s=0.05)
    assert [(o.kind, o.result) for o in outcomes] == [
        # moto keeps a half-created stack after a 500 (destroy removes it too), none after a template error
        ("deploy-prd", "deleted" if kept else "absent"),
        ("deploy-dev", "deleted"),
        ("training-job", "deleted"),
        ("suggest-baseline", "deleted"),
    ]
    assert list(naming.DESTROY_ORDER) == [o.kind for o in outcomes]
    assert len(deleted) == (4 if kept else 3) and all(":stack/" in d or d.startswith("arn:") for d in deleted)
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert sagemaker.list_models()["Models"] == []
    assert sfn.list_state_machines()["stateMachines"] == []
    assert not {g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]} & groups
    # a second destroy finds every stack gone
    assert {o.result for o in destroy_stacks(cfn, spec, timeout_s=10, poll_s=0.05)} == {"absent"}


def _literal(value: Any) -> str:
    resolved = _resolve(value, {"ModelVersion": "7"}, {})
    assert isinstance(resolved, str)
    return resolved


# --- What moto's CloudFormation does not create: each resource's request, validated against the API model ----------

PSEUDO = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "stack",
}


def _physical(logical: str, attribute: str | None = None) -> str:
    """What a logical id (or its attribute) stands for: an ARN-shaped placeholder."""
    return f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:placeholder/{logical}" + (f"/{attribute}" if attribute else "")


def _resolve(value: Any, parameters: dict[str, str], resources: dict[str, Any]) -> Any:
    """The template's intrinsic functions evaluated (parameters, pseudo parameters, placeholders for resources)."""
    if isinstance(value, list):
        return [_resolve(v, parameters, resources) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        name = value["Ref"]
        return parameters.get(name) or PSEUDO.get(name) or _physical(name)
    if set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        logical, attribute = target if isinstance(target, list) else target.split(".", 1)
        return _physical(logical, attribute)
    if set(value) == {"Fn::Join"}:
        separator, items = value["Fn::Join"]
        return separator.join(str(_resolve(i, parameters, resources)) for i in items)
    if set(value) == {"Fn::Sub"}:
        text, variables = (value["Fn::Sub"], {}) if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"]

        def one(match: re.Match[str]) -> str:
            name = match[1]
            if name in variables:
                return str(_resolve(variables[name], parameters, resources))
            if name in parameters or name in PSEUDO:
                return parameters.get(name) or PSEUDO[name]
            return _physical(*name.split(".", 1))

        return re.sub(r"\$\{([^}!]+)\}", one, text)
    assert not any(k.startswith("Fn::") for k in value), f"unhandled intrinsic {value}"
    return {k: _resolve(v, parameters, resources) for k, v in value.items()}


Request = Callable[[dict[str, Any], dict[str, Any]], tuple[str, str, dict[str, Any]]]


def _scaling_policy(p: dict[str, Any], resources: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    target_id = p.pop("ScalingTargetId", None)
    if target_id is not None:  # CloudFormation's reference to the scalable target: the API names it instead
        target = next(r["Properties"] for r in resources.values() if r["Type"].endswith("::ScalableTarget"))
        p |= {k: target[k] for k in ("ResourceId", "ScalableDimension", "ServiceNamespace")}
    return "application-autoscaling", "put_scaling_policy", p


def _tags_map(tags: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


REQUESTS: dict[str, Request] = {
    "AWS::Scheduler::Schedule": lambda p, _: ("scheduler", "create_schedule", p),
    # CloudFormation converts a String parameter's value (the AUC threshold from SSM) to the property's Double
    "AWS::CloudWatch::Alarm": lambda p, _: (
        "cloudwatch",
        "put_metric_alarm",
        {**p, "Threshold": float(p["Threshold"])},
    ),
    "AWS::CloudWatch::CompositeAlarm": lambda p, _: ("cloudwatch", "put_composite_alarm", p),
    "AWS::ApplicationAutoScaling::ScalableTarget": lambda p, _: (
        "application-autoscaling",
        "register_scalable_target",
        p,
    ),
    "AWS::ApplicationAutoScaling::ScalingPolicy": _scaling_policy,
    "AWS::ApiGateway::ApiKey": lambda p, _: (
        "apigateway",
        "create_api_key",
        {"name": p["Name"], "description": p["Description"], "enabled": p["Enabled"], "tags": _tags_map(p.get("Tags"))},
    ),
    "AWS::ApiGateway::UsagePlan": lambda p, _: (
        "apigateway",
        "create_usage_plan",
        {
            "name": p["UsagePlanName"],
            "apiStages": [{"apiId": s["ApiId"], "stage": s["Stage"]} for s in p["ApiStages"]],
            "throttle": {"rateLimit": p["Throttle"]["RateLimit"], "burstLimit": p["Throttle"]["BurstLimit"]},
            "tags": _tags_map(p.get("Tags")),
        },
    ),
    "AWS::ApiGateway::UsagePlanKey": lambda p, _: (
        "apigateway",
        "create_usage_plan_key",
        {"usagePlanId": p["UsagePlanId"], "keyId": p["KeyId"], "keyType": p["KeyType"]},
    ),
    "AWS::ApiGateway::Stage": lambda p, _: (
        "apigateway",
        "create_stage",
        {
            "restApiId": p["RestApiId"],
            "stageName": p["StageName"],
            "deploymentId": p["DeploymentId"],
            "tracingEnabled": p["TracingEnabled"],
        },
    ),
    "AWS::SageMaker::MonitoringSchedule": lambda p, _: (
        "sagemaker",
        "create_monitoring_schedule",
        {k: v for k, v in p.items() if k != "EndpointName"},  # CloudFormation's own property (the endpoint it watches)
    ),
    "AWS::SageMaker::DataQualityJobDefinition": lambda p, _: (
        "sagemaker",
        "create_data_quality_job_definition",
        {"JobDefinitionName": "customerchurn-deploy-prd-DataQualityJobDefinition-ABCDEF", **p},  # CFN's name
    ),
    "AWS::CodeDeploy::DeploymentConfig": lambda p, _: (
        "codedeploy",
        "create_deployment_config",
        # no name in the template: CloudFormation names it <stack>-<logical id>-<random> (within <model>-*)
        {"deploymentConfigName": "customerchurn-deploy-prd-DeploymentConfig-ABCDEF", **_camel(p)},
    ),
}
"""CloudFormation resource type -> the API request its handler sends (CloudFormation's property names are the API's,
or mapped here)."""


def minimal_response(client: Any, operation: str) -> dict[str, Any]:
    """A response with only the output shape's required members (placeholder values of their types)."""
    model = client.meta.service_model.operation_model(client.meta.method_to_api_mapping[operation])

    def value(shape: Any) -> Any:
        if shape.type_name == "structure":
            return {name: value(shape.members[name]) for name in shape.required_members}
        if shape.type_name == "list":
            return []
        if shape.type_name == "map":
            return {}
        if shape.type_name in ("integer", "long"):
            return 1
        if shape.type_name in ("double", "float"):
            return 1.0
        if shape.type_name == "boolean":
            return True
        if shape.type_name == "timestamp":
            return datetime(2025, 1, 1, tzinfo=UTC)
        return f"arn:aws:placeholder:{REGION}:{ACCOUNT}:x"

    return value(model.output_shape) if model.output_shape is not None else {}


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {k[0].lower() + k[1:]: _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "custom-codedeploy": {"production.strategy": "Custom", "production.custom_steps": [[20, 120], [100, 0]]},
    "model-monitor": {"monitoring.use_model_monitor": True},
}


def test_the_unsupported_types_are_exactly_what_moto_lacks() -> None:
    from moto.cloudformation.parsing import resource_class_from_type

    for kind in MOTO_UNSUPPORTED_TYPES:
        assert resource_class_from_type(kind) is None, f"moto's CloudFormation supports {kind} now: create it there"
    assert set(REQUESTS) | set(SCHEMA_ONLY) == MOTO_UNSUPPORTED_TYPES
    assert not set(REQUESTS) & set(SCHEMA_ONLY)


@pytest.mark.parametrize("variant", VARIANTS)
def test_what_moto_cannot_create_is_requested_in_the_apis_own_shapes(tmp_path: Path, moto: Moto, variant: str) -> None:
    from moto.cloudformation.parsing import resource_class_from_type

    stacks = render(tmp_path, **VARIANTS[variant])
    checked: set[str] = set()
    for documents in stacks.values():
        parameters = {
            "KmsKeyArn": documents.configuration["Parameters"]["KmsKeyArn"],
            "ModelVersion": "7",
            "AucThreshold": "0.87",  # what the training state machine publishes from the quality baseline
        }
        resources = documents.template["Resources"]
        resolved = {logical: _resolve(r, parameters, resources) for logical, r in resources.items()}
        for logical, resource in resolved.items():
            kind = resource["Type"]
            if resource_class_from_type(kind) is not None:
                continue  # moto creates it (deploy-dev's, and deploy-prd's once SAM's part is set aside)
            assert kind in MOTO_UNSUPPORTED_TYPES, f"{kind} ({logical}): moto lacks it; add a Stubber request"
            if kind in SCHEMA_ONLY:
                continue
            service, operation, params = REQUESTS[kind](dict(resource["Properties"]), resolved)
            client = moto.client(service)
            with Stubber(client) as stub:
                # botocore validates params against the API model first, the response against its output shape
                stub.add_response(operation, minimal_response(client, operation), params)
                getattr(client, operation)(**params)
            checked.add(kind)
    assert checked, variant
    if variant == "model-monitor":
        assert {"AWS::SageMaker::MonitoringSchedule", "AWS::SageMaker::DataQualityJobDefinition"} <= checked
