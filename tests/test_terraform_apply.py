"""``terraform apply`` of ``terraform/dev`` against a moto server, then ``terraform destroy``: executed, not only planned.

One moto server for the module. moto cannot create a few resource types (``safedeploy.infra.moto_gaps.MOTO_GAPS``,
each with what moto does wrong): the apply targets everything else, those and what references them are left out, and
their requests, as the provider would send them with the values the partial apply made known, go through botocore's
``Stubber``, which validates them against the service's API model. After ``destroy`` the moto server holds none of
what was created. Skips (no terraform CLI, no provider mirror) name their reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from safedeploy.infra.moto_gaps import MOTO_GAPS, dependencies, split_targets
from safedeploy.infra.plan import moto_overrides, moto_server
from safedeploy.infra.terraform_cli import Terraform, find_provider_mirror, terraform_env, working_copy
from tests.test_stacks_moto import minimal_response
from tests.test_terraform import REPO_ROOT, _cli_or_skip

pytestmark = pytest.mark.slow
REGION = "us-east-1"
PREFIX = "customerchurn-dev"
APPLY_TIMEOUT_S = 420


@dataclass
class Applied:
    """The applied environment: its terraform, moto endpoint and what was (not) created."""

    tf: Terraform
    endpoint: str
    targets: list[str]
    left_out: dict[str, str]
    state: list[str]
    remaining: dict[str, dict[str, Any]]
    """Address -> planned values of what is still to create after the targeted apply (the left-out resources)."""
    drift: dict[str, set[str]]
    """Address -> attributes a second plan would change: what moto does not store (see MOTO_DRIFT)."""

    def client(self, service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


MOTO_DRIFT = {
    "aws_kms_key": {"rotation_period_in_days"},  # moto keeps no rotation period: reads back 0
    "aws_s3_bucket_notification": {"eventbridge"},  # moto drops EventBridgeConfiguration: reads back false
    # the role policies name the key: a pending change to the key defers their documents to apply time
    "aws_iam_role_policy": {"policy"},
}
"""What moto does not store, so a plan after the apply would change it again (a real account stores all of it)."""


def _changed(change: dict[str, Any]) -> set[str]:
    before, after = change.get("before") or {}, change.get("after") or {}
    unknown = change.get("after_unknown") or {}
    return {
        k for k in {*before, *after} if k != "tags_all" and (before.get(k) != after.get(k) or unknown.get(k) is True)
    }


def _managed(addresses: list[str]) -> list[str]:
    return sorted(a.split("[", 1)[0] for a in addresses if not a.startswith("data."))


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Applied]:
    binary = _cli_or_skip()
    with moto_server() as endpoint:
        overrides = moto_overrides(endpoint)
        provider = overrides["zz_provider_override.tf.json"]["provider"]["aws"][0]  # type: ignore[index]
        provider["max_retries"] = 2  # moto's 500s for what it lacks are final: no minutes of retries
        workdir = working_copy(REPO_ROOT / "terraform" / "dev", tmp_path_factory.mktemp("apply") / "dev", overrides)
        tf = Terraform(
            binary, workdir, {**terraform_env(workdir, find_provider_mirror()), "AWS_EC2_METADATA_DISABLED": "true"}
        )
        tf.run("init", "-input=false", "-no-color")
        variables = "-var-file=terraform.tfvars.json"
        tf.run("plan", "-input=false", "-no-color", variables, "-out=tfplan")
        plan = json.loads(tf.run("show", "-json", "-no-color", "tfplan"))
        targets, left_out = split_targets(plan)
        tf.run(
            "apply", "-input=false", "-no-color", "-auto-approve", "-parallelism=16", variables,
            *(f"-target={address}" for address in targets), timeout_s=APPLY_TIMEOUT_S,
        )  # fmt: skip
        state = _managed(tf.run("state", "list", "-no-color").split())
        tf.run("plan", "-input=false", "-no-color", variables, "-out=rest")
        rest = json.loads(tf.run("show", "-json", "-no-color", "rest"))
        remaining = {
            change["address"].split("[", 1)[0]: change["change"]["after"]
            for change in rest["resource_changes"]
            if change["mode"] == "managed" and change["change"]["actions"] == ["create"]
        }
        drift = {
            change["address"]: _changed(change["change"])
            for change in rest["resource_changes"]
            if change["mode"] == "managed" and change["change"]["actions"] == ["update"]
        }
        result = Applied(tf, endpoint, targets, left_out, state, remaining, drift)
        try:
            yield result
        finally:
            if _managed(tf.run("state", "list", "-no-color").split()):  # a test failed before destroying
                tf.run("destroy", "-input=false", "-no-color", "-auto-approve", variables, timeout_s=APPLY_TIMEOUT_S)


def test_every_gap_is_a_type_the_configuration_has_and_dependents_are_left_out_too() -> None:
    plan = {
        "configuration": {
            "root_module": {
                "resources": [
                    {"address": "aws_codebuild_project.p", "mode": "managed", "expressions": {}},
                    {
                        "address": "aws_codepipeline.c",
                        "mode": "managed",
                        "expressions": {
                            "stage": [
                                {
                                    "action": [
                                        {
                                            "configuration": {
                                                "references": [
                                                    "aws_codebuild_project.p.name",
                                                    "aws_codebuild_project.p",
                                                ]
                                            }
                                        }
                                    ]
                                }
                            ]
                        },
                    },
                    {
                        "address": "aws_s3_bucket.b",
                        "mode": "managed",
                        "expressions": {"bucket": {"references": ["var.x"]}},
                    },
                    {"address": "aws_sns_topic.t", "mode": "managed", "depends_on": ["aws_codepipeline.c"]},
                    {"address": "data.aws_region.current", "mode": "data"},
                ]
            }
        }
    }
    assert dependencies(plan)["aws_codepipeline.c"] == {"aws_codebuild_project.p"}
    targets, left_out = split_targets(plan, {"aws_codebuild_project": "why"})
    assert targets == ["aws_s3_bucket.b"]
    assert left_out == {
        "aws_codebuild_project.p": "why",
        "aws_codepipeline.c": "references aws_codebuild_project.p, which moto cannot create",
        "aws_sns_topic.t": "references aws_codepipeline.c, which moto cannot create",
    }
    with pytest.raises(ValueError, match="no longer has"):
        split_targets(plan, {"aws_nothing": "stale"})


def test_apply_creates_everything_moto_implements(applied: Applied) -> None:
    assert applied.state == sorted(applied.targets)
    assert set(applied.remaining) == set(applied.left_out), "exactly the left-out resources remain to create"
    kinds = {address.split(".")[0] for address in applied.state}
    assert len(applied.state) >= 60 and len(kinds) >= 18
    for address, attributes in applied.drift.items():
        assert attributes <= MOTO_DRIFT.get(address.split(".")[0], set()), f"{address} drifts: {sorted(attributes)}"
    assert any(a.startswith("aws_kms_key.") for a in applied.drift), (
        "moto stores rotation periods now: update MOTO_DRIFT"
    )
    assert {a.split(".")[0] for a in applied.left_out} >= set(MOTO_GAPS)
    s3, iam, kms = applied.client("s3"), applied.client("iam"), applied.client("kms")
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {f"{PREFIX}-{kind}-123456789012-{REGION}" for kind in ("data", "artifacts", "logs")} <= buckets
    data = f"{PREFIX}-data-123456789012-{REGION}"
    assert s3.get_bucket_versioning(Bucket=data)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=data)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert s3.get_public_access_block(Bucket=data)["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    roles = {r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(PREFIX)}
    synthesized = json.loads((REPO_ROOT / "terraform" / "dev" / "cdk.tf.json").read_text(encoding="utf-8"))
    expected = {f"aws_iam_role.{name}" for name in synthesized["resource"]["aws_iam_role"]} - set(applied.left_out)
    assert len(roles) == len(expected) >= 12
    policy = iam.get_role_policy(RoleName=f"{PREFIX}-cloudformation", PolicyName="cloudformation-permissions")
    sids = {s["Sid"] for s in policy["PolicyDocument"]["Statement"]}
    assert {"SageMakerModel", "RestApiCreate", "StateMachines"} <= sids
    keys = [k for k in kms.list_aliases()["Aliases"] if k["AliasName"].startswith(f"alias/{PREFIX}")]
    assert len(keys) == 1
    key = kms.describe_key(KeyId=keys[0]["TargetKeyId"])["KeyMetadata"]
    assert key["KeyState"] == "Enabled" and kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"]
    topics = [t["TopicArn"] for t in applied.client("sns").list_topics()["Topics"]]
    assert len([t for t in topics if f":{PREFIX}-" in t]) == 2
    alarms = applied.client("cloudwatch").describe_alarms(AlarmNamePrefix=PREFIX)["MetricAlarms"]
    assert alarms and all(a["AlarmActions"] for a in alarms)
    parameter = applied.client("ssm").get_parameter(
        Name="/safedeploy/customerchurn/environments/dev", WithDecryption=True
    )
    assert parameter["Parameter"]["Value"] == "dev"


# --- What moto cannot create: the provider's requests, validated against botocore's API models ---------------------

PLACEHOLDER_ARN = "arn:aws:iam::123456789012:role/placeholder"


def _one(values: list[dict[str, Any]] | None) -> dict[str, Any]:
    return values[0] if values else {}


def _tags(after: dict[str, Any], *, key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in (after.get("tags_all") or after.get("tags") or {}).items()]


def _repository(after: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    params = {"repositoryName": after["repository_name"], "repositoryDescription": after["description"]}
    if after.get("kms_key_id"):
        params["kmsKeyId"] = after["kms_key_id"]
    return "codecommit", "create_repository", {**params, "tags": dict(after.get("tags_all") or {})}


def _approval_template(after: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return (
        "codecommit",
        "create_approval_rule_template",
        {
            "approvalRuleTemplateName": after["name"],
            "approvalRuleTemplateContent": after["content"],
            "approvalRuleTemplateDescription": after.get("description") or "",
        },
    )


def _approval_association(after: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return (
        "codecommit",
        "associate_approval_rule_template_with_repository",
        {
            "approvalRuleTemplateName": after.get("approval_rule_template_name") or "placeholder",
            "repositoryName": after.get("repository_name") or "placeholder",
        },
    )


def _build_project(after: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    source, artifacts, env = _one(after["source"]), _one(after["artifacts"]), _one(after["environment"])
    logs = _one(_one(after.get("logs_config")).get("cloudwatch_logs"))
    return (
        "codebuild",
        "create_project",
        {
            "name": after["name"],
            "description": after["description"],
            "source": {
                "type": source["type"],
                "buildspec": source["buildspec"],
                **({"location": source["location"]} if source.get("location") else {}),
                **({"gitCloneDepth": int(source["git_clone_depth"])} if source.get("git_clone_depth") else {}),
            },
            **({"sourceVersion": after["source_version"]} if after.get("source_version") else {}),
            **(
                {"concurrentBuildLimit": int(after["concurrent_build_limit"])}
                if after.get("concurrent_build_limit")
                else {}
            ),
            "artifacts": {"type": artifacts["type"]},
            "environment": {
                "type": env["type"],
                "image": env["image"],
                "computeType": env["compute_type"],
                "imagePullCredentialsType": env["image_pull_credentials_type"],
                "privilegedMode": env["privileged_mode"],
                "environmentVariables": [
                    {"name": v["name"], "value": v["value"], "type": v["type"]}
                    for v in env.get("environment_variable", [])
                ],
            },
            "serviceRole": after["service_role"],
            "timeoutInMinutes": int(after["build_timeout"]),
            "encryptionKey": after["encryption_key"],
            "logsConfig": {"cloudWatchLogs": {"status": logs["status"], "groupName": logs["group_name"]}},
            "tags": _tags(after, key="key", value="value"),
        },
    )


def _pipeline(after: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    store = _one(after["artifact_store"])
    key = _one(store.get("encryption_key"))
    stages = [
        {
            "name": stage["name"],
            "actions": [
                {
                    "name": action["name"],
                    "actionTypeId": {k: action[k] for k in ("category", "owner", "provider", "version")},
                    "runOrder": int(action["run_order"]),
                    "configuration": action.get("configuration") or {},
                    "inputArtifacts": [{"name": n} for n in action.get("input_artifacts") or []],
                    "outputArtifacts": [{"name": n} for n in action.get("output_artifacts") or []],
                    **({"namespace": action["namespace"]} if action.get("namespace") else {}),
                }
                for action in stage["action"]
            ],
        }
        for stage in after["stage"]
    ]
    pipeline = {
        "name": after["name"],
        "roleArn": after["role_arn"],
        "artifactStore": {
            "type": store["type"],
            "location": store["location"],
            **({"encryptionKey": {"id": key["id"], "type": key["type"]}} if key else {}),
        },
        "stages": stages,
        "pipelineType": after["pipeline_type"],
        "variables": [
            {"name": v["name"], "defaultValue": v["default_value"], "description": v["description"]}
            for v in after.get("variable") or []
        ],
    }
    return "codepipeline", "create_pipeline", {"pipeline": pipeline, "tags": _tags(after, key="key", value="value")}


def _package_group(after: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return (
        "sagemaker",
        "create_model_package_group",
        {
            "ModelPackageGroupName": after["model_package_group_name"],
            "ModelPackageGroupDescription": after["model_package_group_description"],
            "Tags": _tags(after),
        },
    )


def _bucket_logging(after: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return (
        "s3",
        "put_bucket_logging",
        {
            "Bucket": after["bucket"],
            "BucketLoggingStatus": {
                "LoggingEnabled": {"TargetBucket": after["target_bucket"], "TargetPrefix": after["target_prefix"]}
            },
        },
    )


def _lifecycle(after: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return (
        "sagemaker",
        "create_notebook_instance_lifecycle_config",
        {
            "NotebookInstanceLifecycleConfigName": after["name"],
            "OnCreate": [{"Content": after.get("on_create") or "IyE="}],
            "OnStart": [{"Content": after.get("on_start") or "IyE="}],
        },
    )


def _notebook(after: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    metadata = _one(after.get("instance_metadata_service_configuration"))
    return (
        "sagemaker",
        "create_notebook_instance",
        {
            "NotebookInstanceName": after["name"],
            "InstanceType": after["instance_type"],
            "RoleArn": after["role_arn"],
            "KmsKeyId": after["kms_key_id"],
            "LifecycleConfigName": after.get("lifecycle_config_name") or after["name"],
            "DirectInternetAccess": after["direct_internet_access"],
            "VolumeSizeInGB": int(after["volume_size"]),
            "RootAccess": after["root_access"],
            "PlatformIdentifier": after["platform_identifier"],
            "InstanceMetadataServiceConfiguration": {
                "MinimumInstanceMetadataServiceVersion": metadata["minimum_instance_metadata_service_version"]
            },
            "Tags": _tags(after),
        },
    )


def _event_rule(after: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    state = after.get("state") or ("ENABLED" if after.get("is_enabled", True) else "DISABLED")
    params: dict[str, Any] = {"Name": after["name"], "State": state, "Description": after["description"]}
    if after.get("event_pattern"):
        params["EventPattern"] = after["event_pattern"]
    if after.get("schedule_expression"):
        params["ScheduleExpression"] = after["schedule_expression"]
    return "events", "put_rule", {**params, "Tags": _tags(after)}


def _event_target(after: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    target: dict[str, Any] = {"Id": after["target_id"], "Arn": after.get("arn") or PLACEHOLDER_ARN}
    if after.get("role_arn"):
        target["RoleArn"] = after["role_arn"]
    transformer = _one(after.get("input_transformer"))
    if transformer:
        target["InputTransformer"] = {
            "InputPathsMap": transformer.get("input_paths") or {},
            "InputTemplate": transformer["input_template"],
        }
    return "events", "put_targets", {"Rule": after["rule"], "Targets": [target]}


def _state_machine(after: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    logging_configuration = _one(after["logging_configuration"])
    encryption = _one(after["encryption_configuration"])
    return (
        "stepfunctions",
        "create_state_machine",
        {
            "name": after["name"],
            "definition": after["definition"],
            "roleArn": after["role_arn"],
            "type": after["type"],
            "loggingConfiguration": {
                "level": logging_configuration["level"],
                "includeExecutionData": logging_configuration["include_execution_data"],
                "destinations": [
                    {"cloudWatchLogsLogGroup": {"logGroupArn": logging_configuration.get("log_destination") or "x"}}
                ],
            },
            "tracingConfiguration": {"enabled": _one(after["tracing_configuration"])["enabled"]},
            "encryptionConfiguration": {
                "type": encryption["type"],
                "kmsKeyId": encryption["kms_key_id"],
                "kmsDataKeyReusePeriodSeconds": int(encryption["kms_data_key_reuse_period_seconds"]),
            },
            "tags": _tags(after, key="key", value="value"),
        },
    )


REQUESTS: dict[str, Callable[[dict[str, Any]], tuple[str, str, dict[str, Any]]]] = {
    "aws_codecommit_repository": _repository,
    "aws_codecommit_approval_rule_template": _approval_template,
    "aws_codecommit_approval_rule_template_association": _approval_association,
    "aws_codebuild_project": _build_project,
    "aws_codepipeline": _pipeline,
    "aws_sagemaker_model_package_group": _package_group,
    "aws_s3_bucket_logging": _bucket_logging,
    "aws_sagemaker_notebook_instance_lifecycle_configuration": _lifecycle,
    "aws_sagemaker_notebook_instance": _notebook,
    "aws_cloudwatch_event_rule": _event_rule,
    "aws_cloudwatch_event_target": _event_target,
    "aws_sfn_state_machine": _state_machine,
}
"""Resource type -> the create request the AWS provider sends, from the planned values (known once the rest is
applied; a value that names another left-out resource, still unknown, gets a placeholder in its builder)."""


def test_what_moto_cannot_create_is_requested_in_the_apis_own_shapes(applied: Applied) -> None:
    checked: list[str] = []
    for address, after in sorted(applied.remaining.items()):
        kind = address.split(".")[0]
        assert kind in REQUESTS, f"{address} is left out ({applied.left_out[address]}) and has no Stubber check"
        service, operation, params = REQUESTS[kind](after)
        client = applied.client(service)
        with Stubber(client) as stub:
            # botocore validates params against the API model first, the response against its output shape
            stub.add_response(operation, minimal_response(client, operation), params)
            getattr(client, operation)(**params)
            stub.assert_no_pending_responses()
        checked.append(kind)
    assert set(checked) >= set(MOTO_GAPS)
    # the registry group cannot be destroyed in moto: its delete request, too
    sagemaker = applied.client("sagemaker")
    with Stubber(sagemaker) as stub:
        stub.add_response("delete_model_package_group", {}, {"ModelPackageGroupName": "customerchurn"})
        sagemaker.delete_model_package_group(ModelPackageGroupName="customerchurn")


def test_destroy_removes_everything(applied: Applied) -> None:
    applied.tf.run(
        "destroy", "-input=false", "-no-color", "-auto-approve", "-parallelism=16", "-var-file=terraform.tfvars.json",
        timeout_s=APPLY_TIMEOUT_S,
    )  # fmt: skip
    assert _managed(applied.tf.run("state", "list", "-no-color").split()) == []
    s3, iam, kms = applied.client("s3"), applied.client("iam"), applied.client("kms")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(PREFIX)] == []
    assert [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(PREFIX)] == []
    assert [a for a in kms.list_aliases()["Aliases"] if a["AliasName"].startswith(f"alias/{PREFIX}")] == []
    states = {kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"] for k in kms.list_keys()["Keys"]}
    assert states <= {"PendingDeletion"}, "a KMS key is only ever scheduled for deletion (the 30-day window)"
    assert [t for t in applied.client("sns").list_topics()["Topics"] if re.search(f":{PREFIX}-", t["TopicArn"])] == []
    assert applied.client("cloudwatch").describe_alarms(AlarmNamePrefix=PREFIX)["MetricAlarms"] == []
    assert applied.client("cloudwatch").list_dashboards(DashboardNamePrefix=PREFIX)["DashboardEntries"] == []
    assert applied.client("events").list_rules(NamePrefix=PREFIX)["Rules"] == []
    assert (
        applied.client("logs").describe_log_groups(logGroupNamePrefix="/aws/codebuild/customerchurn")["logGroups"] == []
    )
    assert applied.client("ssm").get_parameters_by_path(Path="/safedeploy", Recursive=True)["Parameters"] == []


def test_the_gaps_are_documented() -> None:
    readme = (REPO_ROOT / "terraform" / "README.md").read_text(encoding="utf-8")
    for kind in MOTO_GAPS:
        assert f"`{kind}`" in readme, f"terraform/README.md does not name the moto gap {kind}"
    assert Path(__file__).name in readme
