"""The per-model CloudFormation stacks: snapshots, strategy variations, cfn-lint, checkov, and the proof that
they come from the same request builders the local backend executes."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import boto3
import pytest
from botocore.exceptions import StubAssertionError
from botocore.stub import Stubber

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.cloudformation import monitoring as cf_monitoring
from safedeploy.cloudformation import quality_gate
from safedeploy.cloudformation.context import BuildContext, ReusedVersion, resolve_images
from safedeploy.cloudformation.contract import ContractError, read_contract, write_example_contract
from safedeploy.cloudformation.functions import HANDLERS
from safedeploy.cloudformation.lambda_bundle import build_lambda_bundle
from safedeploy.cloudformation.stacks import StackDocuments, render_stacks
from safedeploy.cloudformation.template import parameterize, token
from safedeploy.cloudformation.traffic_shifting import codedeploy_routing
from safedeploy.deployment import ModelSource, deploy
from safedeploy.errors import ConfigError, GateFailedError
from safedeploy.infra.policy import DEFAULT_CHECKOV, PolicyToolMissingError, run_cfn_lint, run_checkov
from safedeploy.monitoring.baseline import quality_baseline, version_baseline
from safedeploy.monitoring.drift_alarms import drift_alarm_rules
from safedeploy.monitoring.monitor import Monitor
from safedeploy.monitoring.schedule import parse_schedule
from safedeploy.registry import MetricsSource
from safedeploy.sagemaker_requests import processing as monitoring_requests
from safedeploy.sagemaker_requests.serving import deployment_names, green_endpoint_name
from safedeploy.sagemaker_requests.training import source_archive_uri, training_job_request
from safedeploy.spec import PipelineSpec, load_spec
from safedeploy.traffic import build_schedule
from safedeploy.training.gate import check_gate
from safedeploy.training.production import Production
from tests.conftest import LOADED_MACHINE_PRE_TRAFFIC_BUDGET, REPO_ROOT
from tests.snapshots import Snapshot

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots" / "templates"
CHECKOV = DEFAULT_CHECKOV
ACCOUNT = "123456789012"
EXECUTION_ID = "3f2c1d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
STARTED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
KMS_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CODE_REVISION = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
LAMBDA_SHA256 = "ab" * 32
ANALYZER_SHA256 = "cd" * 32
DATASET_ID = "0123456789abcdef"
VERSION = 7
KINDS = naming.STACK_KINDS


def fixture_spec(**overrides: Any) -> PipelineSpec:
    """The fixed spec the snapshots are rendered from (a real account id, defaults otherwise)."""
    return load_spec(overrides={"account_id": ACCOUNT, **overrides})


def write_contract(directory: Path, spec: PipelineSpec) -> Path:
    """The unpacked data-source contract the Data stage would write for ``spec`` (fixed dataset id)."""
    return write_example_contract(directory, spec, dataset_id=DATASET_ID, data_sha256="c0ffee" + "0" * 58)


def build_context(tmp_path: Path, spec: PipelineSpec) -> BuildContext:
    contract = read_contract(write_contract(tmp_path / "contract", spec), spec)
    return BuildContext(
        spec=spec,
        execution_id=EXECUTION_ID,
        started=STARTED,
        contract=contract,
        images=resolve_images(spec),
        code_revision=CODE_REVISION,
        lambda_code=naming.lambda_code_uri(spec, LAMBDA_SHA256),
        analyzer_code=naming.analyzer_code_prefix(spec, ANALYZER_SHA256),
    )


@pytest.fixture(autouse=True)
def _default_pre_traffic_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stacks as a user's spec renders them: without the test session's relaxed pre-traffic budget."""
    monkeypatch.delenv(LOADED_MACHINE_PRE_TRAFFIC_BUDGET[0], raising=False)


def render(tmp_path: Path, **overrides: Any) -> dict[str, StackDocuments]:
    return render_stacks(build_context(tmp_path, fixture_spec(**overrides)), KMS_ARN)


REUSED_EXECUTION = "0badc0de-1111-2222-3333-444455556666"


def reused_version(spec: PipelineSpec, *, serves_production: bool = False) -> ReusedVersion:
    """v3, registered by an earlier execution with this build's training inputs."""
    job = naming.training_job_name(spec, REUSED_EXECUTION, STARTED)
    return ReusedVersion(
        version=3,
        model_package_arn=f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/{naming.model_package_group(spec)}/3",
        training_job_name=job,
        execution_id=REUSED_EXECUTION,
        model_data_url=str(naming.training_output_prefix(spec).join(job, "output", C.MODEL_ARCHIVE)),
        inputs_sha256="ab" * 32,
        serves_production=serves_production,
    )


def render_reuse(tmp_path: Path, **overrides: Any) -> dict[str, StackDocuments]:
    """The stacks of a build that reuses :func:`reused_version` (identical training inputs)."""
    spec = fixture_spec(**overrides)
    return render_stacks(replace(build_context(tmp_path, spec), reused=reused_version(spec)), KMS_ARN)


@pytest.fixture
def stacks(tmp_path: Path) -> dict[str, StackDocuments]:
    return render(tmp_path)


def resolve(value: Any, parameters: dict[str, str], *, strict: bool = True) -> Any:
    """Substitute template parameters (``Ref``, ``Fn::Sub`` of ``${Name}``); ``strict``: refuse other intrinsics."""
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in parameters:
            return parameters[value["Ref"]]
        if (
            set(value) == {"Fn::Sub"}
            and isinstance(value["Fn::Sub"], str)
            and (strict or "${Model" in value["Fn::Sub"])
        ):
            text = re.sub(r"\$\{(\w+)\}", lambda m: parameters[m[1]], value["Fn::Sub"])
            assert "${" not in text, text
            return text
        intrinsic = any(key.startswith("Fn::") or key == "Ref" for key in value)
        if intrinsic and not strict:
            return value
        assert not intrinsic, f"unresolvable {value}"
        return {key: resolve(item, parameters, strict=strict) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, parameters, strict=strict) for item in value]
    return value


PARAMETERS = {"KmsKeyArn": KMS_ARN, "ModelVersion": str(VERSION)}


def properties(stack: StackDocuments, logical_id: str, *, strict: bool = False) -> dict[str, Any]:
    """A resource's properties with the template parameters substituted."""
    resolved: dict[str, Any] = resolve(stack.template["Resources"][logical_id]["Properties"], PARAMETERS, strict=strict)
    return resolved


# --- Snapshots --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_templates_and_configurations_match_their_snapshots(
    kind: str, stacks: dict[str, StackDocuments], snapshot: Snapshot
) -> None:
    snapshot.assert_json(stacks[kind].template, SNAPSHOTS / f"{kind}.template.json")
    snapshot.assert_json(stacks[kind].configuration, SNAPSHOTS / f"{kind}.config.json")


@pytest.mark.parametrize(
    ("variant", "overrides"),
    [
        ("guardrails-canary", {"production.strategy": "CANARY"}),
        ("custom", {"production.strategy": "Custom", "production.custom_steps": [[20, 120], [100, 0]]}),
    ],
)
def test_production_variants_match_their_snapshots(
    variant: str, overrides: dict[str, Any], tmp_path: Path, snapshot: Snapshot
) -> None:
    snapshot.assert_json(render(tmp_path, **overrides)["deploy-prd"].template, SNAPSHOTS / f"deploy-prd.{variant}.json")


def test_the_reuse_variant_matches_its_snapshot(tmp_path: Path, snapshot: Snapshot) -> None:
    snapshot.assert_json(render_reuse(tmp_path)["training-job"].template, SNAPSHOTS / "training-job.reuse.json")


def test_the_reuse_variant_trains_registers_and_baselines_nothing_and_publishes_the_reused_version(
    tmp_path: Path, jsonata: Callable[[str, dict[str, Any]], Any]
) -> None:
    """Identical inputs: the state machine's only tasks publish v3 (and its AUC threshold) for this execution."""
    spec = fixture_spec()
    reused = reused_version(spec)
    stacks = render_reuse(tmp_path)
    definition = _definition(stacks)
    states = definition["States"]
    assert definition["StartAt"] == "ReuseModelVersion"
    tasks = {name: state["Resource"] for name, state in states.items() if state["Type"] == "Task"}
    assert tasks == {
        "ReadQualityConstraints": "arn:aws:states:::aws-sdk:s3:getObject",
        "PublishModelVersion": "arn:aws:states:::aws-sdk:ssm:putParameter",
        "PublishAucThreshold": "arn:aws:states:::aws-sdk:ssm:putParameter",
    }
    # the AUC threshold of v3's own quality baseline (its execution's prefix, which the role may read)
    quality = f"customerchurn/baseline-jobs/{REUSED_EXECUTION}/quality/constraints.json"
    assert states["ReadQualityConstraints"]["Arguments"]["Key"] == quality
    # walk it: Pass -> read -> publish, with the constraints.json Step Functions would read
    data = states["ReuseModelVersion"]["Output"]
    assert data["Summary"] == "identical inputs to v3: reusing v3, no new version"
    body = json.dumps({"binary_classification_constraints": {"auc": {"threshold": 0.87}}})
    data = jsonata(states["ReadQualityConstraints"]["Output"], {"input": data, "result": {"Body": body}})
    version = states["PublishModelVersion"]["Arguments"]
    assert version["Name"] == naming.model_version_parameter(spec, EXECUTION_ID)
    assert jsonata(version["Value"], {"input": data}) == "3"
    threshold = states["PublishAucThreshold"]["Arguments"]
    assert threshold["Name"] == naming.auc_threshold_parameter(spec, EXECUTION_ID)
    assert jsonata(threshold["Value"], {"input": data}) == "0.87"
    outputs = {name: output["Value"] for name, output in stacks["training-job"].template["Outputs"].items()}
    assert outputs["ReusedModelVersion"] == "3" and outputs["ModelDataUrl"] == reused.model_data_url
    assert outputs["TrainingJobName"] == reused.training_job_name
    # the deploy stacks serve v3's archives and monitor against its baselines, not this execution's
    prd = json.dumps(stacks["deploy-prd"].template)
    assert reused.model_data_url in prd and reused.model_data_url in json.dumps(stacks["deploy-dev"].template)
    assert f"baseline-jobs/{REUSED_EXECUTION}/quality/constraints.json" in prd
    assert f"baseline-jobs/{EXECUTION_ID}" not in prd
    assert str(source_archive_uri(naming.training_output_prefix(spec), reused.training_job_name)) in prd
    suggest = {name: output["Value"] for name, output in stacks["suggest-baseline"].template["Outputs"].items()}
    assert (
        suggest["BaselineJobName"] == "none"
        and f"baseline-jobs/{REUSED_EXECUTION}/data/" in suggest["BaselineStatistics"]
    )


def test_the_reuse_variant_without_model_quality_publishes_only_the_version(tmp_path: Path) -> None:
    states = _definition(render_reuse(tmp_path, **{"monitoring.model_quality.enabled": False}))["States"]
    assert set(states) == {"ReuseModelVersion", "PublishModelVersion"}
    assert states["ReuseModelVersion"]["Next"] == "PublishModelVersion" and states["PublishModelVersion"]["End"]


def test_the_registration_records_the_production_version_it_was_compared_with(tmp_path: Path) -> None:
    """What a later build's reuse relies on (``ComparedWithProductionVersion``, :mod:`...cloudformation.reuse`)."""
    spec = fixture_spec()
    ctx = replace(build_context(tmp_path, spec), production=Production(2, "s3://b/v2/model.tar.gz", ""))
    register = _definition(render_stacks(ctx, KMS_ARN))["States"]["RegisterModel"]["Arguments"]
    assert '"ComparedWithProductionVersion": "2"' in register["CustomerMetadataProperties"]
    alone = _definition(render_stacks(build_context(tmp_path, spec), KMS_ARN))["States"]["RegisterModel"]
    assert "ComparedWithProductionVersion" not in alone["Arguments"]["CustomerMetadataProperties"]


def test_configuration_gives_every_parameter_and_tags_the_execution(stacks: dict[str, StackDocuments]) -> None:
    for stack in stacks.values():
        config = stack.configuration
        assert set(config) == {"Parameters", "Tags"}
        assert set(config["Parameters"]) == set(stack.template.get("Parameters", {}))
        assert config["Parameters"]["KmsKeyArn"] == KMS_ARN
        assert config["Tags"]["safedeploy:pipeline-execution"] == EXECUTION_ID
    spec = fixture_spec()
    for kind in ("deploy-dev", "deploy-prd"):
        assert stacks[kind].configuration["Parameters"]["ModelVersion"] == naming.model_version_parameter(
            spec, EXECUTION_ID
        )
        assert stacks[kind].template["Parameters"]["ModelVersion"]["Type"] == "AWS::SSM::Parameter::Value<String>"


def test_images_are_the_pinned_framework_version_never_latest(stacks: dict[str, StackDocuments]) -> None:
    text = json.dumps({kind: stack.template for kind, stack in stacks.items()})
    assert "latest" not in text
    images = resolve_images(fixture_spec())
    assert images.training.endswith(f":{C.XGBOOST_FRAMEWORK_VERSION}") and images.serving == images.training
    assert "sagemaker-xgboost" in images.training and "model-monitor" in images.model_monitor
    with pytest.raises(ConfigError, match="not 'latest'"):
        resolve_images(fixture_spec(**{"training.framework_version": "latest"}))


# --- The same requests the local backend executes ----------------------------------------------------------


def test_training_state_machine_runs_exactly_the_local_training_request(
    tmp_path: Path, stacks: dict[str, StackDocuments]
) -> None:
    """TrainModel's arguments are ``training_job_request`` for the same inputs, as the local Train stage builds it."""
    spec = fixture_spec()
    contract = read_contract(write_contract(tmp_path / "again", spec), spec)
    definition = stacks["training-job"].template["Resources"]["StateMachine"]["Properties"]["Definition"]
    task = definition["States"]["TrainModel"]
    assert task["Resource"] == "arn:aws:states:::sagemaker:createTrainingJob.sync"
    expected = training_job_request(
        spec,
        job_name=naming.training_job_name(spec, EXECUTION_ID, STARTED),
        input_data=contract.input_data,
        hyperparameters=contract.hyperparameters,
        output_prefix=naming.training_output_prefix(spec),
        image_uri=resolve_images(spec).training,
        kms_key_id=KMS_ARN,
    )
    assert resolve(task["Arguments"], PARAMETERS) == expected
    # Without the key (the local backend has no KMS) the request is the local one, key for key.
    local = training_job_request(
        spec,
        job_name=expected["TrainingJobName"],
        input_data=contract.input_data,
        hyperparameters=contract.hyperparameters,
        output_prefix=naming.training_output_prefix(spec),
        image_uri=resolve_images(spec).training,
    )
    without_kms = resolve(task["Arguments"], PARAMETERS)
    del without_kms["OutputDataConfig"]["KmsKeyId"], without_kms["ResourceConfig"]["VolumeKmsKeyId"]
    assert without_kms == local


def _stub_deploy(client: Any, stack: StackDocuments, *, endpoint_extra: bool = False) -> Stubber:
    """Stub the calls ``deploy()`` makes, expecting exactly the template's (resolved) properties."""
    stubber = Stubber(client)
    endpoint = stack.template["Resources"]["Endpoint"]["Properties"]
    endpoint = {key: resolve(value, PARAMETERS) for key, value in endpoint.items() if key != "DeploymentConfig"}
    stubber.add_response(
        "create_model",
        {"ModelArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model/m"},
        expected_params=properties(stack, "Model", strict=True),
    )
    stubber.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint-config/c"},
        expected_params=properties(stack, "EndpointConfig", strict=True),
    )
    stubber.add_client_error(  # not there yet: deploy() creates it
        "describe_endpoint", service_error_code="ValidationException", service_message="Could not find endpoint"
    )
    expected_endpoint = {key: endpoint[key] for key in ("EndpointName", "EndpointConfigName")}
    assert endpoint == expected_endpoint  # and, with guardrails, the DeploymentConfig deploy() has no part in
    if not endpoint_extra:
        assert "DeploymentConfig" not in stack.template["Resources"]["Endpoint"]["Properties"]
    stubber.add_response(
        "create_endpoint",
        {"EndpointArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/e"},
        expected_params=expected_endpoint,
    )
    stubber.add_response(
        "describe_endpoint",
        {
            "EndpointName": endpoint["EndpointName"],
            "EndpointArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/e",
            "EndpointConfigName": endpoint["EndpointConfigName"],
            "EndpointStatus": "InService",
            "CreationTime": STARTED,
            "LastModifiedTime": STARTED,
        },
    )
    return stubber


@pytest.fixture
def sagemaker() -> Any:
    return boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")


def _source(stack_ctx: BuildContext) -> ModelSource:
    return ModelSource(
        model_data_url=stack_ctx.model_data_url,
        source_dir_uri=str(stack_ctx.source_archive),
        image=stack_ctx.images.serving,
        version=VERSION,
    )


def test_deploy_dev_template_is_what_the_local_deploy_sends(tmp_path: Path, sagemaker: Any) -> None:
    """``deploy()`` (the local DeployDev stage's call) sends CreateModel/CreateEndpointConfig/CreateEndpoint
    requests equal to the deploy-dev resources' properties; botocore validates them against SageMaker's API."""
    ctx = build_context(tmp_path, fixture_spec())
    stack = render_stacks(ctx, KMS_ARN)["deploy-dev"]
    with _stub_deploy(sagemaker, stack) as stubber:
        deployed = deploy(sagemaker, ctx.spec, _source(ctx), stage="dev", execution_id=EXECUTION_ID, kms_key_id=KMS_ARN)
        stubber.assert_no_pending_responses()
    assert deployed.endpoint_name == "customerchurn-dev"
    assert deployed.model_name == f"customerchurn-dev-v{VERSION}-{EXECUTION_ID[:8]}"


def test_the_comparison_catches_a_template_that_drifted_from_the_request(tmp_path: Path, sagemaker: Any) -> None:
    ctx = build_context(tmp_path, fixture_spec())
    stack = render_stacks(ctx, KMS_ARN)["deploy-dev"]
    capture = stack.template["Resources"]["EndpointConfig"]["Properties"]["DataCaptureConfig"]
    capture["InitialSamplingPercentage"] = 50  # the template says 50 %, deploy() sends the spec's 100 %
    with _stub_deploy(sagemaker, stack), pytest.raises(StubAssertionError, match="InitialSamplingPercentage"):
        deploy(sagemaker, ctx.spec, _source(ctx), stage="dev", execution_id=EXECUTION_ID, kms_key_id=KMS_ARN)


def test_deploy_prd_templates_are_what_the_local_production_deploy_sends(tmp_path: Path, sagemaker: Any) -> None:
    """Production: CodeDeploy's green endpoint per version (as ``LocalProdHost.start_green`` deploys it), and the
    guardrails' stable endpoint."""
    ctx = build_context(tmp_path / "codedeploy", fixture_spec())
    production = ctx.spec.production
    stack = render_stacks(ctx, KMS_ARN)["deploy-prd"]
    green = naming.green_endpoint_name(ctx.spec, VERSION, EXECUTION_ID)
    with _stub_deploy(sagemaker, stack) as stubber:
        deploy(
            sagemaker, ctx.spec, _source(ctx), stage="prd", execution_id=EXECUTION_ID, endpoint_name=green,
            instance_count=production.instance_count, instance_type=production.instance_type, kms_key_id=KMS_ARN,
        )  # fmt: skip
        stubber.assert_no_pending_responses()

    ctx = build_context(tmp_path / "guardrails", fixture_spec(**{"production.strategy": "LINEAR"}))
    stack = render_stacks(ctx, KMS_ARN)["deploy-prd"]
    with _stub_deploy(sagemaker, stack, endpoint_extra=True) as stubber:
        deploy(
            sagemaker, ctx.spec, _source(ctx), stage="prd", execution_id=EXECUTION_ID,
            instance_count=production.instance_count, instance_type=production.instance_type, kms_key_id=KMS_ARN,
        )  # fmt: skip
        stubber.assert_no_pending_responses()


def test_names_with_a_version_token_are_the_naming_functions_names() -> None:
    spec = fixture_spec()
    names = deployment_names(spec, stage="dev", version=VERSION, execution_id=EXECUTION_ID)
    assert names.model == f"customerchurn-dev-{naming.deployment_suffix(VERSION, EXECUTION_ID)}"
    assert names.endpoint_config == f"customerchurn-dev-{naming.deployment_suffix(VERSION, EXECUTION_ID)}"
    assert green_endpoint_name(spec, VERSION, EXECUTION_ID) == naming.green_endpoint_name(spec, VERSION, EXECUTION_ID)
    templated = deployment_names(spec, stage="dev", version=token("ModelVersion"), execution_id=EXECUTION_ID)
    assert parameterize(templated.model) == {"Fn::Sub": "customerchurn-dev-v${ModelVersion}-3f2c1d4e"}
    assert templated.model.replace("${ModelVersion}", str(VERSION)) == names.model  # the two forms agree
    green = green_endpoint_name(spec, token("ModelVersion"), EXECUTION_ID).replace("${ModelVersion}", str(VERSION))
    assert green == naming.green_endpoint_name(spec, VERSION, EXECUTION_ID)
    assert parameterize(token("KmsKeyArn")) == {"Ref": "KmsKeyArn"}
    assert parameterize("no tokens ${AWS::Region}") == "no tokens ${AWS::Region}"


# --- Production strategies ---------------------------------------------------------------------------------


def _resources(stack: StackDocuments, resource_type: str) -> dict[str, Any]:
    return {k: v for k, v in stack.template["Resources"].items() if v["Type"] == resource_type}


def test_codedeploy_strategy_shifts_the_api_alias_with_alarms_and_hooks(stacks: dict[str, StackDocuments]) -> None:
    prd = stacks["deploy-prd"]
    function = prd.template["Resources"]["ApiFunction"]["Properties"]
    preference = function["DeploymentPreference"]
    assert function["AutoPublishAlias"] == "live"
    assert preference["Type"] == "Canary10Percent5Minutes"
    assert preference["Alarms"] == [{"Ref": "ErrorRateAlarm"}, {"Ref": "LatencyAlarm"}, {"Ref": "PredictionShiftAlarm"}]
    assert preference["Hooks"] == {"PreTraffic": {"Ref": "PreTrafficHook"}, "PostTraffic": {"Ref": "PostTrafficHook"}}
    assert preference["Role"] == f"arn:aws:iam::{ACCOUNT}:role/customerchurn-dev-codedeploy"
    assert not _resources(prd, "AWS::CodeDeploy::DeploymentConfig")
    assert "DeploymentConfig" not in prd.template["Resources"]["Endpoint"]["Properties"]
    endpoint = properties(prd, "Endpoint")["EndpointName"]
    assert endpoint == f"customerchurn-prd-v{VERSION}-{EXECUTION_ID[:8]}"  # green: one endpoint per version
    errors = properties(prd, "ErrorRateAlarm")
    assert errors["AlarmName"] == "customerchurn-dev-green-error-rate"
    assert errors["Threshold"] == 0.02 and errors["EvaluationPeriods"] == 2 and errors["DatapointsToAlarm"] == 1
    assert errors["TreatMissingData"] == "breaching"  # no traffic never means "shift to 100 %"
    assert errors["Metrics"][-1]["Expression"] == "IF(invocations >= 10, errors / invocations)"
    hooks = {
        k: v["Properties"]
        for k, v in _resources(prd, "AWS::Serverless::Function").items()
        if k not in ("ApiFunction", "CanaryFunction", "ProbeFunction")
    }
    assert {h["FunctionName"] for h in hooks.values()} == {
        "customerchurn-dev-pre-traffic-hook",
        "customerchurn-dev-post-traffic-hook",
    }
    post = hooks["PostTrafficHook"]["Environment"]["Variables"]
    assert post["MIN_REQUESTS"] == "10" and post["DEPLOYMENT_STARTED"] == STARTED.isoformat()
    # CodeDeploy has no bake at 100 %: the post-traffic hook waits it out, with time left for its checks
    assert post["BAKE_SECONDS"] == "300" and hooks["PostTrafficHook"]["Timeout"] == 360
    assert hooks["PreTrafficHook"]["Environment"]["Variables"]["CHECKS_URI"].endswith("/output/model.tar.gz")
    assert set(hooks["PreTrafficHook"]["Environment"]["Variables"]) == {
        "ENDPOINT_NAME",
        "CHECKS_URI",
        "LATENCY_BUDGET_MS",
    }
    assert hooks["PreTrafficHook"]["Environment"]["Variables"]["LATENCY_BUDGET_MS"] == "500"  # the spec's default


def test_the_pre_traffic_budget_is_the_specs(tmp_path: Path) -> None:
    """One setting, rendered into the stack's hook as the local controller passes it to the same handler."""
    prd = render(tmp_path, **{"production.pre_traffic_latency_budget_ms": 750})["deploy-prd"]
    assert properties(prd, "PreTrafficHook")["Environment"]["Variables"]["LATENCY_BUDGET_MS"] == "750"


def test_a_bake_longer_than_a_lambda_can_wait_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"bake_seconds=900.*at most 840 s.*guardrails mode"):
        render(tmp_path, **{"production.bake_seconds": 900})
    guardrails = render(tmp_path / "g", **{"production.strategy": "LINEAR", "production.bake_seconds": 900})
    endpoint = properties(guardrails["deploy-prd"], "Endpoint")
    assert endpoint["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] == 900


@pytest.mark.parametrize(
    ("strategy", "routing"),
    [
        (
            "CANARY",
            {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 15}, "WaitIntervalInSeconds": 240},
        ),
        (
            "LINEAR",
            {
                "Type": "LINEAR",
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                "WaitIntervalInSeconds": 240,
            },
        ),
        ("ALL_AT_ONCE", {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}),
    ],
)
def test_guardrails_modes_configure_the_endpoint_and_no_codedeploy(
    strategy: str, routing: dict[str, Any], tmp_path: Path
) -> None:
    prd = render(
        tmp_path,
        **{
            "production.strategy": strategy,
            "production.canary_percent": 15,
            "production.linear_step_percent": 25,
            "production.wait_interval_seconds": 240,
            "production.bake_seconds": 600,
        },
    )["deploy-prd"]
    endpoint = prd.template["Resources"]["Endpoint"]["Properties"]
    config = endpoint["DeploymentConfig"]
    policy = config["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == routing
    assert policy["TerminationWaitInSeconds"] == 600
    assert 600 <= policy["MaximumExecutionTimeoutInSeconds"] <= 14_400
    assert config["AutoRollbackConfiguration"] == {
        "Alarms": [{"AlarmName": {"Ref": "ErrorRateAlarm"}}, {"AlarmName": {"Ref": "LatencyAlarm"}}]
    }
    assert endpoint["EndpointName"] == "customerchurn-prd"  # one stable endpoint; SageMaker shifts its capacity
    function = prd.template["Resources"]["ApiFunction"]["Properties"]
    assert "DeploymentPreference" not in function
    assert not _resources(prd, "AWS::CodeDeploy::DeploymentConfig")
    assert set(_resources(prd, "AWS::Serverless::Function")) == {"ApiFunction", "ProbeFunction"}  # no canary
    # The alarms watch the new fleet only (its endpoint config), by literal names: no cycle with the endpoint.
    dimensions = properties(prd, "ErrorRateAlarm")["Metrics"][0]["MetricStat"]["Metric"]["Dimensions"]
    assert {"Name": "EndpointConfigName", "Value": f"customerchurn-prd-v{VERSION}-{EXECUTION_ID[:8]}"} in dimensions


def test_custom_and_non_predefined_strategies_get_a_codedeploy_config(tmp_path: Path) -> None:
    custom = render(
        tmp_path / "a", **{"production.strategy": "Custom", "production.custom_steps": [[20, 120], [100, 0]]}
    )["deploy-prd"]
    config = custom.template["Resources"]["DeploymentConfig"]
    assert config["Type"] == "AWS::CodeDeploy::DeploymentConfig"
    assert config["Properties"] == {
        "ComputePlatform": "Lambda",
        "TrafficRoutingConfig": {
            "Type": "TimeBasedCanary",
            "TimeBasedCanary": {"CanaryPercentage": 20, "CanaryInterval": 2},
        },
    }
    preference = custom.template["Resources"]["ApiFunction"]["Properties"]["DeploymentPreference"]
    assert preference["Type"] == {"Ref": "DeploymentConfig"}

    linear = render(tmp_path / "b", **{"production.strategy": "Linear25PercentEvery3Minutes"})["deploy-prd"]
    routing = linear.template["Resources"]["DeploymentConfig"]["Properties"]["TrafficRoutingConfig"]
    assert routing == {"Type": "TimeBasedLinear", "TimeBasedLinear": {"LinearPercentage": 25, "LinearInterval": 3}}


def test_schedules_codedeploy_cannot_run_are_refused_naming_why(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="one canary step or equal linear steps"):
        render(
            tmp_path / "a",
            **{"production.strategy": "Custom", "production.custom_steps": [[10, 60], [50, 120], [100, 0]]},
        )
    with pytest.raises(ConfigError, match="whole minutes"):
        codedeploy_routing(build_schedule("Custom", bake_seconds=0, custom_steps=((10, 90.0), (100, 0.0))))
    with pytest.raises(ConfigError, match="bake_seconds"):
        codedeploy_routing(build_schedule("Custom", bake_seconds=0, custom_steps=((10, 60.0), (100, 60.0))))
    with pytest.raises(ConfigError, match="at most 3600"):
        render(tmp_path / "b", **{"production.strategy": "CANARY", "production.bake_seconds": 7200})
    with pytest.raises(ConfigError, match="multiple of 60"):
        render(tmp_path / "c", **{"alarms.deployment.error_rate.period_seconds": 90})
    thirty = {
        f"alarms.deployment.{alarm}.period_seconds": 30 for alarm in ("error_rate", "latency", "prediction_shift")
    }
    with pytest.raises(ConfigError, match="whole minutes"):
        render(tmp_path / "d", **thirty)
    assert codedeploy_routing(build_schedule("AllAtOnce", bake_seconds=0)) == {"Type": "AllAtOnce"}


def test_production_monitoring_autoscaling_and_api(stacks: dict[str, StackDocuments]) -> None:
    prd = stacks["deploy-prd"]
    # The monitor's Processing job on an EventBridge Scheduler schedule, not Model Monitor.
    assert not _resources(prd, "AWS::SageMaker::MonitoringSchedule")
    assert not _resources(prd, "AWS::SageMaker::DataQualityJobDefinition")
    assert "model-monitor" not in json.dumps({kind: stack.template for kind, stack in stacks.items()})
    schedule = properties(prd, "MonitoringSchedule")
    assert prd.template["Resources"]["MonitoringSchedule"]["Type"] == "AWS::Scheduler::Schedule"
    assert schedule["Name"] == "customerchurn-dev-data-quality"
    assert schedule["ScheduleExpression"] == "cron(0 * * * ? *)" and schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"} and schedule["KmsKeyArn"] == KMS_ARN
    assert schedule["Target"]["Arn"] == {"Ref": "MonitoringStateMachine"}
    assert schedule["Target"]["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/customerchurn-dev-scheduler"
    assert json.loads(schedule["Target"]["Input"]) == {
        "ScheduledTime": "<aws.scheduler.scheduled-time>",
        "InvocationId": "<aws.scheduler.execution-id>",
    }
    machine = properties(prd, "MonitoringStateMachine")
    assert machine["StateMachineName"] == naming.state_machine_name(fixture_spec(), "monitoring")
    assert machine["RoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/customerchurn-dev-stepfunctions"
    target = prd.template["Resources"]["ScalableTarget"]["Properties"]
    assert "RoleARN" not in target  # the service-linked role
    assert target["ResourceId"] == {"Fn::Sub": "endpoint/${Endpoint.EndpointName}/variant/AllTraffic"}
    policy = properties(prd, "ScalingPolicy")["TargetTrackingScalingPolicyConfiguration"]
    assert policy["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    api = properties(prd, "RestApi")
    assert api["Name"] == "customerchurn-dev-api"
    assert prd.template["Resources"]["PostMethod"]["Properties"]["ApiKeyRequired"] is True
    assert prd.template["Resources"]["UsagePlan"]["Properties"]["Throttle"]["RateLimit"] > 0
    uri = json.dumps(prd.template["Resources"]["PostMethod"]["Properties"]["Integration"]["Uri"])
    assert '"Ref": "ApiFunction.Alias"' in uri  # the alias CodeDeploy shifts, not $LATEST
    code = prd.template["Resources"]["ApiFunction"]["Properties"]["CodeUri"]
    assert code == {
        "Bucket": f"customerchurn-dev-artifacts-{ACCOUNT}-us-east-1",
        "Key": f"customerchurn/lambda/{LAMBDA_SHA256}.zip",
    }


def test_every_template_encrypts_with_the_pipeline_key(stacks: dict[str, StackDocuments]) -> None:
    for kind, stack in stacks.items():
        for logical_id, resource in stack.template["Resources"].items():
            if resource["Type"] == "AWS::Logs::LogGroup":
                assert resource["Properties"]["KmsKeyId"] == {"Ref": "KmsKeyArn"}, (kind, logical_id)
    for kind in ("deploy-dev", "deploy-prd"):
        config = properties(stacks[kind], "EndpointConfig")
        assert config["KmsKeyId"] == KMS_ARN and config["DataCaptureConfig"]["KmsKeyId"] == KMS_ARN


# --- The quality gate and registration in Step Functions ---------------------------------------------------


def _definition(stacks: dict[str, StackDocuments]) -> dict[str, Any]:
    definition: dict[str, Any] = stacks["training-job"].template["Resources"]["StateMachine"]["Properties"][
        "Definition"
    ]
    return definition


def test_gate_states_follow_the_spec_conditions(tmp_path: Path) -> None:
    conditions = [
        {"metric": "test:auc", "op": ">=", "threshold": 0.8},
        {"metric": "validation:log_loss", "op": "<=", "threshold": 0.45},
    ]
    definition = _definition(render(tmp_path, **{"gate.conditions": conditions}))
    assert definition["QueryLanguage"] == "JSONata"
    states = definition["States"]
    assert states["TrainModel"]["Next"] == quality_gate.CHECK_REPORTED
    assert states["Gate1"]["Choices"][0] == {
        "Condition": '{% $lookup($states.input.Metrics, "test:auc") >= 0.8 %}',
        "Next": "Gate2",
    }
    assert states["Gate2"]["Choices"][0]["Next"] == "SuggestBaselines"
    assert states["SuggestBaselines"]["Next"] == "ReadDataDigests"
    assert states["ReadDataDigests"]["Next"] == "ReadOutputDigests"
    assert states["ReadOutputDigests"]["Next"] == "ReadQualityDigests"
    assert states["ReadQualityDigests"]["Next"] == "ReadQualityConstraints"
    assert states["ReadQualityConstraints"]["Next"] == "RegisterModel"
    assert states["Gate2"]["Comment"] == "Quality gate: validation:log_loss <= 0.45"
    assert states["Gate1Failed"]["Type"] == states["Gate2Failed"]["Type"] == "Fail"
    register = states["RegisterModel"]
    assert register["Resource"] == "arn:aws:states:::aws-sdk:sagemaker:createModelPackage"
    assert register["Arguments"]["ModelApprovalStatus"] == "PendingManualApproval"
    assert register["Arguments"]["ModelPackageGroupName"] == "customerchurn"
    assert register["Next"] == "PublishModelVersion"
    publish = states["PublishModelVersion"]["Arguments"]
    assert publish["Name"] == naming.model_version_parameter(fixture_spec(), EXECUTION_ID)
    assert states["PublishModelVersion"]["Next"] == "PublishAucThreshold"
    threshold = states["PublishAucThreshold"]
    assert threshold["Arguments"]["Name"] == naming.auc_threshold_parameter(fixture_spec(), EXECUTION_ID)
    assert threshold["End"] is True


def test_gate_refuses_a_metric_the_job_does_not_report(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not report train:auc"):
        render(tmp_path, **{"gate.conditions": [{"metric": "train:auc", "op": ">=", "threshold": 0.5}]})


@pytest.fixture
def jsonata() -> Callable[[str, dict[str, Any]], Any]:
    module = pytest.importorskip(
        "jsonata", reason="jsonata-python is not in the dev group: the gate's JSONata is only checked structurally"
    )

    def evaluate(expression: str, states: dict[str, Any]) -> Any:
        assert expression.startswith("{%") and expression.endswith("%}"), expression
        compiled = module.Jsonata(expression[2:-2].strip())
        compiled.register_lambda("parse", json.loads)  # Step Functions' own $parse (JSON text -> value)
        return compiled.evaluate(None, {"states": states})

    return evaluate


def _run_gate(definition: dict[str, Any], described_job: dict[str, Any], evaluate: Any) -> tuple[str, Any]:
    """Walk the definition from the training task's output to Register or a Fail state (Choice semantics)."""
    states = definition["States"]
    data = evaluate(states["TrainModel"]["Output"], {"result": described_job, "input": {}})
    name = states["TrainModel"]["Next"]
    while states[name]["Type"] == "Choice":
        state = states[name]
        name = next(
            (c["Next"] for c in state["Choices"] if evaluate(c["Condition"], {"input": data}) is True), state["Default"]
        )
    if states[name]["Type"] == "Fail":
        return name, evaluate(states[name]["Cause"], {"input": data})
    return name, data


def _described(**metrics: float) -> dict[str, Any]:
    return {
        "TrainingJobName": "job",
        "ModelArtifacts": {"S3ModelArtifacts": "s3://b/job/output/model.tar.gz"},
        "FinalMetricDataList": [
            {"MetricName": k, "Value": v, "Timestamp": "2025-01-02T03:04:05Z"} for k, v in metrics.items()
        ],
    }


def _digests(statistics: str, constraints: str) -> dict[str, Any]:
    """A sample ``getObject`` result of a baseline job's ``digests.json`` (Step Functions' SDK integration)."""
    body = json.dumps(
        {"statistics.json": f"sha256:{statistics * 64}", "constraints.json": f"sha256:{constraints * 64}"}
    )
    return {"Body": body, "ContentType": "application/json", "ContentLength": len(body)}


def _through_baselines(
    definition: dict[str, Any], data: dict[str, Any], evaluate: Callable[[str, dict[str, Any]], Any]
) -> dict[str, Any]:
    """SuggestBaselines (every job succeeds), then the Read* states with sample results (AUC threshold 0.87)."""
    states = definition["States"]
    jobs = ["customerchurn-baseline-data-x", "customerchurn-baseline-output-x", "customerchurn-baseline-quality-x"]
    data = evaluate(states["SuggestBaselines"]["Output"], {"input": data, "result": jobs})
    data = evaluate(states["ReadDataDigests"]["Output"], {"input": data, "result": _digests("1", "2")})
    data = evaluate(states["ReadOutputDigests"]["Output"], {"input": data, "result": _digests("3", "4")})
    if "ReadQualityDigests" not in states:
        return data
    data = evaluate(states["ReadQualityDigests"]["Output"], {"input": data, "result": _digests("5", "6")})
    constraints = {
        "version": 0.0,
        "binary_classification_constraints": {"auc": {"threshold": 0.87, "comparison_operator": "LessThanThreshold"}},
    }
    result: dict[str, Any] = evaluate(
        states["ReadQualityConstraints"]["Output"], {"input": data, "result": {"Body": json.dumps(constraints)}}
    )
    return result


def _local_gate_message(stacks_spec: PipelineSpec, metrics: dict[str, float]) -> str:
    with pytest.raises(GateFailedError) as failure:
        check_gate(stacks_spec.gate, metrics)
    return str(failure.value)


def test_gate_decides_and_words_its_failures_as_the_local_gate(
    stacks: dict[str, StackDocuments], jsonata: Callable[[str, dict[str, Any]], Any]
) -> None:
    definition, spec = _definition(stacks), fixture_spec()
    state, data = _run_gate(definition, _described(**{"test:auc": 0.93, "validation:auc": 0.95}), jsonata)
    assert state == "SuggestBaselines"  # the baseline jobs, then registration
    assert data["Metrics"] == {"test:auc": 0.93, "validation:auc": 0.95}

    state, cause = _run_gate(definition, _described(**{"test:auc": 0.8512}), jsonata)
    assert state == "Gate1Failed"
    assert cause == _local_gate_message(spec, {"test:auc": 0.8512})

    state, cause = _run_gate(definition, _described(**{"validation:auc": 0.99}), jsonata)
    assert state == quality_gate.NOT_REPORTED
    assert cause == _local_gate_message(spec, {"validation:auc": 0.99})
    no_metrics = {"TrainingJobName": "job", "ModelArtifacts": {"S3ModelArtifacts": "s3://b/k"}}
    state, cause = _run_gate(definition, no_metrics, jsonata)
    assert cause == _local_gate_message(spec, {})

    register = definition["States"]["RegisterModel"]
    data = _through_baselines(definition, data, jsonata)
    arguments = jsonata(register["Arguments"]["CustomerMetadataProperties"], {"input": data})
    assert arguments["metric:test:auc"] == "0.93" and arguments["PipelineExecutionId"] == EXECUTION_ID
    assert arguments["OutputStatisticsSha256"] == "sha256:" + "3" * 64
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/customerchurn/12"
    output = jsonata(register["Output"], {"input": data, "result": {"ModelPackageArn": arn}})
    assert output["ModelPackageVersion"] == "12"


def test_the_step_functions_gate_admits_metrics_exactly_at_their_thresholds(
    tmp_path: Path, jsonata: Callable[[str, dict[str, Any]], Any]
) -> None:
    conditions = [
        {"metric": "test:auc", "op": ">=", "threshold": 0.9},
        {"metric": "validation:log_loss", "op": "<=", "threshold": 0.4},
    ]
    definition = _definition(render(tmp_path, **{"gate.conditions": conditions}))
    state, _ = _run_gate(definition, _described(**{"test:auc": 0.9, "validation:log_loss": 0.4}), jsonata)
    assert state == "SuggestBaselines"
    state, _ = _run_gate(definition, _described(**{"test:auc": 0.8999999, "validation:log_loss": 0.4}), jsonata)
    assert state == "Gate1Failed"
    state, _ = _run_gate(definition, _described(**{"test:auc": 0.9, "validation:log_loss": 0.4000001}), jsonata)
    assert state == "Gate2Failed"


# --- Data-quality monitoring on AWS: the monitor's Processing jobs ---------------------------------------------


def _machine(stack: StackDocuments, logical_id: str) -> dict[str, Any]:
    definition: dict[str, Any] = resolve(
        stack.template["Resources"][logical_id]["Properties"]["Definition"], PARAMETERS, strict=True
    )
    return definition


def _evaluate_all(value: Any, states: dict[str, Any], evaluate: Callable[[str, dict[str, Any]], Any]) -> Any:
    """Evaluate every JSONata string of a state's ``Arguments`` as Step Functions does (JSON in, JSON out)."""
    if isinstance(value, str) and value.startswith("{%"):
        return json.loads(json.dumps(evaluate(value, json.loads(json.dumps(states)))))
    if isinstance(value, dict):
        return {key: _evaluate_all(item, states, evaluate) for key, item in value.items()}
    if isinstance(value, list):
        return [_evaluate_all(item, states, evaluate) for item in value]
    return value


def test_baseline_jobs_are_the_local_baseline_requests_under_the_executions_prefix(
    tmp_path: Path, stacks: dict[str, StackDocuments]
) -> None:
    """One spec, two backends: the training state machine's two baseline jobs are the local Baseline stage's
    builders' requests, after the gate and before registration; the suggest-baseline stack runs no job."""
    ctx = build_context(tmp_path, fixture_spec())
    states = _machine(stacks["training-job"], "StateMachine")["States"]
    parallel = states["SuggestBaselines"]
    assert parallel["Type"] == "Parallel"
    tasks = [branch["States"][branch["StartAt"]] for branch in parallel["Branches"]]
    assert {t["Resource"] for t in tasks} == {"arn:aws:states:::sagemaker:createProcessingJob.sync"}
    prefix = naming.execution_baseline_prefix(ctx.spec, EXECUTION_ID)
    code = naming.analyzer_code_prefix(ctx.spec, ANALYZER_SHA256)
    image = resolve_images(ctx.spec).training  # the pinned framework image, not Model Monitor's
    assert tasks[0]["Arguments"] == monitoring_requests.baseline_job_request(
        ctx.spec,
        job_name=naming.baseline_job_name(ctx.spec, EXECUTION_ID, STARTED, "data"),
        dataset=ctx.contract.uri("BaselineUri"),
        output=prefix.join("data"),
        code=code,
        image_uri=image,
        kms_key_id=KMS_ARN,
    )
    assert tasks[1]["Arguments"] == monitoring_requests.output_baseline_job_request(
        ctx.spec,
        job_name=naming.baseline_job_name(ctx.spec, EXECUTION_ID, STARTED, "output"),
        dataset=ctx.contract.uri("ValidationUri"),
        model_archive=ctx.model_data_url,
        output=prefix.join("output"),
        code=code,
        image_uri=image,
        kms_key_id=KMS_ARN,
    )
    assert tasks[2]["Arguments"] == monitoring_requests.model_quality_baseline_job_request(
        ctx.spec,
        job_name=naming.baseline_job_name(ctx.spec, EXECUTION_ID, STARTED, "quality"),
        dataset=ctx.contract.uri("ValidationUri"),
        model_archive=ctx.model_data_url,
        output=prefix.join("quality"),
        code=code,
        image_uri=image,
        evaluation_time=STARTED,
        kms_key_id=KMS_ARN,
    )
    assert {t["Arguments"]["RoleArn"] for t in tasks} == {naming.monitor_role_arn(ctx.spec)}
    assert len({t["Arguments"]["ProcessingJobName"] for t in tasks}) == 3
    assert states["ReadQualityConstraints"]["Arguments"] == {
        "Bucket": prefix.bucket,
        "Key": prefix.join("quality", "constraints.json").key,
    }
    for state, folder in (
        ("ReadDataDigests", "data"),
        ("ReadOutputDigests", "output"),
        ("ReadQualityDigests", "quality"),
    ):
        assert states[state]["Resource"] == "arn:aws:states:::aws-sdk:s3:getObject"
        assert states[state]["Arguments"] == {
            "Bucket": prefix.bucket,
            "Key": prefix.join(folder, "digests.json").key,
        }
    # The suggest-baseline stack stays (the Train stage runs it) but runs no job: nothing is baselined twice.
    machine = _machine(stacks["suggest-baseline"], "StateMachine")
    assert [state["Type"] for state in machine["States"].values()] == ["Pass"]
    outputs = stacks["suggest-baseline"].template["Outputs"]
    assert outputs["BaselineStatistics"]["Value"] == str(prefix.join("data", "statistics.json"))
    for stack in ("suggest-baseline", "training-job"):
        assert "customerchurn/baseline/" not in json.dumps(stacks[stack].template)  # never a fixed key


def test_the_version_is_registered_with_both_baselines_and_their_digests(
    tmp_path: Path, stacks: dict[str, StackDocuments], jsonata: Callable[[str, dict[str, Any]], Any]
) -> None:
    """createModelPackage's baselines: the URIs production monitors, the ContentDigest each job reported."""
    ctx = build_context(tmp_path, fixture_spec())
    definition = _definition(stacks)
    register = definition["States"]["RegisterModel"]["Arguments"]
    described = _described(**{"test:auc": 0.93})
    data = _through_baselines(definition, _run_gate(definition, described, jsonata)[1], jsonata)
    prefix = f"s3://customerchurn-dev-artifacts-{ACCOUNT}-us-east-1/customerchurn/baseline-jobs/{EXECUTION_ID}"
    baselines = _evaluate_all(register["DriftCheckBaselines"], {"input": data}, jsonata)
    assert baselines == {
        "ModelDataQuality": {
            "Statistics": {
                "ContentType": "application/json",
                "S3Uri": f"{prefix}/data/statistics.json",
                "ContentDigest": "sha256:" + "1" * 64,
            },
            "Constraints": {
                "ContentType": "application/json",
                "S3Uri": f"{prefix}/data/constraints.json",
                "ContentDigest": "sha256:" + "2" * 64,
            },
        },
        "ModelQuality": {
            "Statistics": {
                "ContentType": "application/json",
                "S3Uri": f"{prefix}/quality/statistics.json",
                "ContentDigest": "sha256:" + "5" * 64,
            },
            "Constraints": {
                "ContentType": "application/json",
                "S3Uri": f"{prefix}/quality/constraints.json",
                "ContentDigest": "sha256:" + "6" * 64,
            },
        },
    }
    for source in baselines["ModelDataQuality"].values():
        assert re.fullmatch(r"[Ss][Hh][Aa]256:[0-9a-fA-F]{64}", source["ContentDigest"])
    metadata = jsonata(register["CustomerMetadataProperties"], {"input": data})
    assert {k: v for k, v in metadata.items() if k.startswith("Output")} == {
        "OutputStatisticsUri": f"{prefix}/output/statistics.json",
        "OutputStatisticsSha256": "sha256:" + "3" * 64,
        "OutputConstraintsUri": f"{prefix}/output/constraints.json",
        "OutputConstraintsSha256": "sha256:" + "4" * 64,
    }
    # What the registry then holds is what the local backend's version_baseline reads (both baselines, sha256).
    package = SimpleNamespace(
        DriftCheckBaselines={
            kind: {k: MetricsSource(**v) for k, v in baselines[kind].items()}
            for kind in ("ModelDataQuality", "ModelQuality")
        },
        CustomerMetadataProperties=metadata,
    )
    quality = quality_baseline(package)
    assert quality is not None and quality.constraints == f"{prefix}/quality/constraints.json"
    assert quality.sha256 == {"statistics": "5" * 64, "constraints": "6" * 64}
    files = version_baseline(package)
    assert files is not None and files.output_statistics == f"{prefix}/output/statistics.json"
    assert files.sha256 == {
        "statistics": "1" * 64,
        "constraints": "2" * 64,
        "output_statistics": "3" * 64,
        "output_constraints": "4" * 64,
    }
    # The deploy-prd stack of this execution serves this execution's version: it monitors against those files,
    # the model's scores included.
    inputs = _machine(stacks["deploy-prd"], "MonitoringStateMachine")["States"]["Analyze"]["Arguments"][
        "ProcessingInputs"
    ]
    for folder in ("data", "output"):
        for name in ("statistics.json", "constraints.json"):
            assert f"{prefix}/{folder}/{name}" in inputs
    assert ctx.contract.uri("FeatureSchemaUri") in inputs
    outputs = stacks["deploy-prd"].template["Outputs"]
    assert outputs["BaselineStatistics"]["Value"] == f"{prefix}/data/statistics.json"
    assert outputs["BaselineOutputStatistics"]["Value"] == f"{prefix}/output/statistics.json"


@pytest.mark.parametrize(
    ("expression", "scheduled", "window", "granularity"),
    [
        ("cron(0 * ? * * *)", "2025-01-02T08:00:00Z", ("2025-01-02T07:00:00Z", "2025-01-02T08:00:00Z"), "hour"),
        ("cron(0 0 ? * * *)", "2025-01-02T00:00:00Z", ("2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z"), "day"),
        # 5 hour folders, the code and 5 baseline files (features and scores) would need 11 inputs: whole days
        ("cron(0 1/4 ? * * *)", "2025-01-02T01:00:00Z", ("2025-01-01T21:00:00Z", "2025-01-02T01:00:00Z"), "day"),
        ("cron(0 2/6 ? * * *)", "2025-01-02T08:00:00Z", ("2025-01-02T02:00:00Z", "2025-01-02T08:00:00Z"), "day"),
    ],
)
def test_monitoring_state_machine_runs_the_local_monitoring_request(
    expression: str,
    scheduled: str,
    window: tuple[str, str],
    granularity: str,
    tmp_path: Path,
    jsonata: Callable[[str, dict[str, Any]], Any],
) -> None:
    """The window, job name, report and capture folders for a fixed scheduled time, and the Analyze request equal
    to ``monitoring_job_request`` (the local monitor's builder) for the same names; empty folders are skipped."""

    def run(expression: Any, states_: dict[str, Any]) -> Any:
        return _evaluate_all(expression, states_, jsonata)

    spec = fixture_spec(**{"monitoring.schedule_expression": expression})
    ctx = build_context(tmp_path, spec)
    stack = render_stacks(ctx, KMS_ARN)["deploy-prd"]
    states = _machine(stack, "MonitoringStateMachine")["States"]
    invocation = {"ScheduledTime": scheduled, "InvocationId": "d32c-5kdd_cf5bb8c3"}
    data = run(states["Window"]["Output"], {"input": invocation, "context": {}})
    start, end = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in window)
    assert (data["Start"], data["End"], data["ScheduledTime"]) == (*window, window[1])
    job_name = naming.monitoring_job_name(spec, "monitor", end, "d32c5kddcf5bb8c3")
    assert data["JobName"] == job_name and len(job_name) <= 63
    endpoint = naming.green_endpoint_name(spec, VERSION, EXECUTION_ID)
    schedule_name = naming.monitoring_schedule_name(spec)
    report = naming.monitoring_reports_prefix(spec).join(endpoint, schedule_name, f"{end:%Y/%m/%d/%H}", job_name)
    assert data["Report"] == str(report)
    # The hour folders the local monitor stages for the window (or, when they would not fit in the job's 10
    # inputs, the days holding them).
    local = Monitor._capture_prefixes(
        cast(Any, None),
        cast(
            Any,
            SimpleNamespace(CaptureUri=str(naming.capture_uri(spec)), EndpointName=endpoint, VariantName="AllTraffic"),
        ),
        start,
        end,
    )
    root = naming.capture_uri(spec).join(endpoint, "AllTraffic")
    hours = [p.key.removeprefix(root.key + "/") for p in local]
    folders = hours if granularity == "hour" else sorted({h.rsplit("/", 1)[0] for h in hours})
    assert data["Folders"] == folders

    # FindCapture: one listObjectsV2 per folder; the first folder (if there are several) is empty and skipped.
    kept = folders[1:] if len(folders) > 1 else folders
    listing = states["FindCapture"]["ItemProcessor"]["States"]["ListCaptureFolder"]
    assert listing["Resource"] == "arn:aws:states:::aws-sdk:s3:listObjectsV2"
    results = []
    for number, folder in enumerate(run(states["FindCapture"]["Items"], {"input": data})):
        arguments = run(listing["Arguments"], {"input": folder})
        assert arguments == {"Bucket": root.bucket, "Prefix": f"{root.key}/{folder}/", "MaxKeys": 1}
        empty = number == 0 and len(folders) > 1
        results.append(run(listing["Output"], {"input": folder, "result": {"KeyCount": 0 if empty else 3}}))
    found = run(states["FindCapture"]["Output"], {"input": data, "result": results})
    assert found["Found"] == kept
    choice = states["AnyCapture"]["Choices"][0]
    arguments = run(states["Analyze"]["Arguments"], {"input": found})
    expected = monitoring_requests.monitoring_job_request(
        spec,
        job_name=job_name,
        schedule_name=schedule_name,
        endpoint=endpoint,
        capture_prefixes=[root.join(f) for f in kept],
        start=start,
        end=end,
        baseline=ctx.baseline,
        output=report,
        code=naming.analyzer_code_prefix(spec, ANALYZER_SHA256),
        image_uri=resolve_images(spec).training,
        kms_key_id=KMS_ARN,
        publish_to_cloudwatch=True,
    )
    assert arguments == expected
    assert len(arguments["ProcessingInputs"]) <= monitoring_requests.MAX_PROCESSING_INPUTS
    assert arguments["Environment"]["metrics_publisher"] == "cloudwatch"
    assert arguments["Environment"]["publish_cloudwatch_metrics"] == "Enabled"
    assert run(choice["Condition"], {"input": found}) is True
    # No capture at all: no job; the execution ends InsufficientData (no metric: the alarms see missing data).
    empty = run(
        states["FindCapture"]["Output"], {"input": data, "result": [{"Folder": f, "Found": False} for f in folders]}
    )
    assert run(choice["Condition"], {"input": empty}) is False
    assert states["AnyCapture"]["Default"] == "NoCapture"
    assert run(states["NoCapture"]["Output"], {"input": empty})["MonitoringExecutionStatus"] == "InsufficientData"
    # A hand-started execution (no scheduled time) analyses the last full period before it.
    later = end.replace(minute=17) + (end - start) / 2 if granularity == "hour" else end.replace(minute=17)
    manual = run(
        states["Window"]["Output"],
        {"input": {}, "context": {"Execution": {"StartTime": later.isoformat(), "Name": "manual-run-1"}}},
    )
    assert manual["End"] <= later.strftime("%Y-%m-%dT%H:%M:%SZ") and manual["JobName"].endswith("-manualru")


def test_scheduler_expressions_are_sagemakers_cron_in_eventbridge_syntax() -> None:
    forms = {
        "cron(0 * ? * * *)": "cron(0 * * * ? *)",
        "cron(0 5 ? * * *)": "cron(0 5 * * ? *)",
        "cron(0 2/6 ? * * *)": "cron(0 2/6 * * ? *)",
        "cron(0 */3 ? * * *)": "cron(0 0/3 * * ? *)",
    }
    for sagemaker_form, scheduler_form in forms.items():
        assert cf_monitoring.scheduler_expression(parse_schedule(sagemaker_form)) == scheduler_form


def test_drift_alarms_are_the_local_rules(tmp_path: Path) -> None:
    overrides = {
        "monitoring.drift_alarms": {"CustServ Calls": 0.2, "Day Mins": 0.15},
        "monitoring.schedule_expression": "cron(0 1/2 ? * * *)",
        "monitoring.alarm_evaluation_periods": 3,
        "monitoring.alarm_datapoints_to_alarm": 2,
    }
    spec = fixture_spec(**overrides)
    prd = render(tmp_path, **overrides)["deploy-prd"]
    endpoint = {"Fn::GetAtt": ["Endpoint", "EndpointName"]}
    alarms = [v["Properties"] for k, v in prd.template["Resources"].items() if re.fullmatch(r"DriftAlarm\d+", k)]
    rules = drift_alarm_rules(spec)
    assert [
        {
            "AlarmName": a["AlarmName"],
            "MetricName": a["MetricName"],
            "Threshold": a["Threshold"],
            "ComparisonOperator": a["ComparisonOperator"],
            "Period": a["Period"],
            "EvaluationPeriods": a["EvaluationPeriods"],
            "DatapointsToAlarm": a["DatapointsToAlarm"],
            "TreatMissingData": a["TreatMissingData"],
        }
        for a in alarms
    ] == [
        {
            "AlarmName": r.rule.name,
            "MetricName": r.metric,
            "Threshold": r.rule.threshold,
            "ComparisonOperator": r.rule.comparison,
            "Period": int(r.rule.period_seconds),
            "EvaluationPeriods": r.rule.evaluation_periods,
            "DatapointsToAlarm": r.rule.datapoints_to_alarm,
            "TreatMissingData": r.rule.treat_missing_data,
        }
        for r in rules
    ]
    assert [a["Period"] for a in alarms] == [7200, 7200]
    for alarm in alarms:
        assert alarm["Namespace"] == "/aws/sagemaker/Endpoints/data-metric"
        assert alarm["Dimensions"] == [
            {"Name": "Endpoint", "Value": endpoint},
            {"Name": "MonitoringSchedule", "Value": naming.monitoring_schedule_name(spec)},
        ]
    combined = prd.template["Resources"]["DriftAlarm"]
    assert combined["Type"] == "AWS::CloudWatch::CompositeAlarm"
    assert combined["Properties"]["AlarmName"] == naming.drift_alarm_name(spec) == naming.alarm_name(spec, "drift")
    assert combined["Properties"]["AlarmRule"] == " OR ".join(f'ALARM("{r.rule.name}")' for r in rules)
    assert combined["DependsOn"] == ["DriftAlarm1", "DriftAlarm2"]


def test_model_monitor_switch_keeps_model_monitor_for_accounts_that_have_it(tmp_path: Path) -> None:
    stacks = render(tmp_path, **{"monitoring.use_model_monitor": True})
    prd = stacks["deploy-prd"]
    assert prd.template["Resources"]["MonitoringSchedule"]["Type"] == "AWS::SageMaker::MonitoringSchedule"
    # Model quality has no Model Monitor form here: its own schedule and job run either way.
    assert set(_resources(prd, "AWS::Scheduler::Schedule")) == {"ModelQualitySchedule"}
    assert "MonitoringStateMachine" not in prd.template["Resources"]
    job = properties(prd, "DataQualityJobDefinition")
    prefix = f"s3://customerchurn-dev-artifacts-{ACCOUNT}-us-east-1/customerchurn/baseline-jobs/{EXECUTION_ID}"
    data = f"{prefix}/model-monitor"  # Model Monitor's own baseline, beside the registered (digested) one
    assert job["DataQualityBaselineConfig"]["ConstraintsResource"]["S3Uri"] == f"{data}/constraints.json"
    assert job["DataQualityJobOutputConfig"]["KmsKeyId"] == KMS_ARN
    assert "model-monitor" in job["DataQualityAppSpecification"]["ImageUri"]
    baseline = _machine(stacks["suggest-baseline"], "StateMachine")["States"]["SuggestBaseline"]["Arguments"]
    assert "model-monitor" in baseline["AppSpecification"]["ImageUri"]
    assert baseline["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == data
    # Our two baseline jobs still run in the training state machine: the registry carries their digests.
    training = _machine(stacks["training-job"], "StateMachine")["States"]["SuggestBaselines"]["Branches"]
    outputs = [b["States"][b["StartAt"]]["Arguments"]["ProcessingOutputConfig"]["Outputs"][0] for b in training]
    assert [o["S3Output"]["S3Uri"] for o in outputs] == [f"{prefix}/data", f"{prefix}/output", f"{prefix}/quality"]
    assert prd.template["Resources"]["DriftAlarm"]["Type"] == "AWS::CloudWatch::CompositeAlarm"  # the same alarms


# --- Lint and policy checks ---------------------------------------------------------------------------------

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "canary": {"production.strategy": "CANARY"},
    "linear": {"production.strategy": "LINEAR"},
    "all-at-once": {"production.strategy": "ALL_AT_ONCE"},
    "custom": {"production.strategy": "Custom", "production.custom_steps": [[20, 120], [100, 0]]},
    "open-api": {"serving.api_key_required": False, "production.strategy": "Linear10PercentEvery1Minute"},
    "model-monitor": {"monitoring.use_model_monitor": True},
    "six-hourly": {"monitoring.schedule_expression": "cron(0 2/6 ? * * *)"},
}


@pytest.fixture(scope="module")
def all_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every template of every variant, one file each."""
    root = tmp_path_factory.mktemp("templates")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # no pipeline.toml of the checkout
        for name in list(os.environ):
            if name.startswith("SAFEDEPLOY_"):
                patch.delenv(name)
        for variant, overrides in VARIANTS.items():
            for kind, stack in render(root / variant, **overrides).items():
                if variant == "default" or kind == "deploy-prd":
                    (root / f"{variant}.{kind}.json").write_text(json.dumps(stack.template, indent=2))
        reuse = render_reuse(root / "reuse")["training-job"].template  # identical inputs: the reuse variant
        (root / "reuse.training-job.json").write_text(json.dumps(reuse, indent=2))
        yield root


def test_cfn_lint_finds_no_errors_or_warnings(all_templates: Path) -> None:
    files = sorted(all_templates.glob("*.json"))
    assert len(files) == 4 + len(VARIANTS) - 1 + 1  # and the training stack's reuse variant
    report = run_cfn_lint(files)
    assert not report.errors, "\n".join(report.errors)
    assert not report.warnings, "\n".join(report.warnings)


def test_cfn_lint_catches_a_broken_template(stacks: dict[str, StackDocuments], tmp_path: Path) -> None:
    """The lint gate can fail: cfn-lint validates the state machine definition too."""
    template = json.loads(json.dumps(stacks["training-job"].template))
    template["Resources"]["StateMachine"]["Properties"]["Definition"]["States"]["Gate1"]["Type"] = "Choise"
    broken = tmp_path / "broken.template.json"
    broken.write_text(json.dumps(template, indent=2))
    assert any(error.startswith("E3601") for error in run_cfn_lint([broken]).errors)


def test_checkov_passes_every_template_with_justified_skips(all_templates: Path) -> None:
    try:
        report = run_checkov(all_templates, "cloudformation", CHECKOV)
    except PolicyToolMissingError as exc:
        pytest.fail(str(exc))  # `make test` installs it: a missing checkov must not pass silently
    assert not report.parsing_errors, report.parsing_errors
    assert report.resources > 50 and report.passed > 0
    assert not report.failed, "\n".join(map(str, report.failed))
    assert not report.unjustified_skips, "\n".join(map(str, report.unjustified_skips))
    assert report.ok
    assert all(len(skip.detail) > 40 for skip in report.skipped)
    assert "CKV_AWS_59" in {s.check_id for s in report.skipped if "open-api" in s.file}
    assert "CKV_AWS_370" in {s.check_id for s in report.skipped}


def test_every_checkov_skip_in_the_templates_has_a_reason(stacks: dict[str, StackDocuments]) -> None:
    skips = [
        skip
        for stack in stacks.values()
        for resource in stack.template["Resources"].values()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert {s["id"] for s in skips} == {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_120", "CKV_AWS_370"}
    assert all(s["comment"].strip() for s in skips)


# --- Lambda code, contract ----------------------------------------------------------------------------------


def test_function_handlers_exist() -> None:
    for handler in HANDLERS:
        module, _, attribute = handler.rpartition(".")
        assert callable(getattr(importlib.import_module(module), attribute)), handler


def test_lambda_bundle_is_the_lambdas_and_what_they_import_reproducibly() -> None:
    bundle = build_lambda_bundle(REPO_ROOT)
    assert {"lambdas/api/app.py", "lambdas/hooks/common.py", "lambdas/hooks/pre_traffic.py"} <= set(bundle.files)
    assert {"safedeploy/__init__.py", "safedeploy/store.py", "safedeploy/errors.py"} <= set(bundle.files)
    assert not any(
        f.startswith(
            ("tests/", "model/", "safedeploy/runtime/", "safedeploy/local/", "safedeploy/instance/", "safedeploy/http/")
        )
        for f in bundle.files
    )
    assert "aws_lambda_powertools" in bundle.third_party and "boto3" not in bundle.third_party
    assert build_lambda_bundle(REPO_ROOT).sha256 == bundle.sha256


def test_lambda_bundle_follows_imports(tmp_path: Path) -> None:
    (tmp_path / "lambdas" / "fn").mkdir(parents=True)
    (tmp_path / "safedeploy" / "pkg").mkdir(parents=True)
    (tmp_path / "lambdas" / "fn" / "app.py").write_text(
        "from typing import TYPE_CHECKING\nfrom safedeploy.pkg import mod\nimport requests\n"
        "if TYPE_CHECKING:\n    import mypy_boto3_s3\n"
    )
    (tmp_path / "safedeploy" / "__init__.py").write_text("")
    (tmp_path / "safedeploy" / "pkg" / "__init__.py").write_text("")
    (tmp_path / "safedeploy" / "pkg" / "mod.py").write_text("from . import other\n")
    (tmp_path / "safedeploy" / "pkg" / "other.py").write_text("import json\n")
    (tmp_path / "safedeploy" / "unused.py").write_text("")
    bundle = build_lambda_bundle(tmp_path)
    assert bundle.files == (
        "lambdas/fn/app.py",
        "safedeploy/__init__.py",
        "safedeploy/pkg/__init__.py",
        "safedeploy/pkg/mod.py",
        "safedeploy/pkg/other.py",
    )
    assert bundle.third_party == ("requests",)


def test_contract_problems_name_the_file_and_key(tmp_path: Path) -> None:
    spec = fixture_spec()
    with pytest.raises(ContractError, match="no such file or directory"):
        read_contract(tmp_path / "absent", spec)
    directory = write_contract(tmp_path / "c", spec)
    (directory / "hyperparameters.json").unlink()
    with pytest.raises(ContractError, match=r"missing hyperparameters\.json"):
        read_contract(directory, spec)
    directory = write_contract(tmp_path / "d", spec)
    (directory / "inputData.json").write_text("{not json")
    with pytest.raises(ContractError, match=r"inputData\.json: not valid JSON"):
        read_contract(directory, spec)
    directory = write_contract(tmp_path / "e", spec)
    document = json.loads((directory / "inputData.json").read_text())
    del document["BaselineUri"]
    document["TestUri"] = "s3://someone-elses-bucket/test/"
    (directory / "inputData.json").write_text(json.dumps(document))
    with pytest.raises(
        ContractError,
        match=r"TestUri s3://someone-elses-bucket/test/ is not in this pipeline.s data bucket .*; BaselineUri is missing",
    ):
        read_contract(directory, spec)
    directory = write_contract(tmp_path / "f", spec)
    (directory / "hyperparameters.json").write_text(json.dumps({"max_depth": 6}))
    with pytest.raises(ContractError, match="not strings: max_depth"):
        read_contract(directory, spec)
    archive = tmp_path / "data-source.zip"
    shutil.make_archive(str(archive.with_suffix("")), "zip", write_contract(tmp_path / "g", spec))
    assert read_contract(archive, spec).uri("BaselineUri").endswith("baseline/baseline.csv")
    (tmp_path / "bad.zip").write_text("not a zip")
    with pytest.raises(ContractError, match="not a zip archive"):
        read_contract(tmp_path / "bad.zip", spec)
