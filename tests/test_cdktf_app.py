"""The CDKTF base infrastructure (cdktf_app/) and its synthesized Terraform (terraform/<env>/).

Importing cdktf and the prebuilt AWS bindings takes most of a minute, so the stacks are synthesized once for this
module (the ``synth`` fixture) and every cdktf test lives here. The cdktf import happens inside the fixture: other
test modules never pay for it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml  # type: ignore[import-untyped]  # pyyaml comes with cfn-lint

from cdktf_app import config as cfg
from cdktf_app import names as R
from cdktf_app import scan
from cdktf_app.checks import COMMENT_KEY
from cdktf_app.config import EMAIL_PATTERN, REGION_PATTERN, SCHEDULE_PATTERN
from cdktf_app.names import ACCOUNT_PLACEHOLDER, REGION_PLACEHOLDER
from cdktf_app.retraining import ALARM_VARIABLE, SINCE_VARIABLE, TRIGGER_VARIABLE, debounce_seconds
from safedeploy import constants as C
from safedeploy import naming
from safedeploy.aws.cleanup import find_terraform
from safedeploy.cloudformation.reuse import pipeline_variables
from safedeploy.infra.policy import PolicyToolMissingError, checkov_executable
from safedeploy.infra.terraform_cli import find_provider_mirror
from tests.snapshots import Snapshot

if TYPE_CHECKING:
    from cdktf_app.stack import BaseInfrastructureStack

REPO_ROOT = Path(__file__).resolve().parents[1]
TERRAFORM_DIR = REPO_ROOT / "terraform"
ENVIRONMENTS = tuple(cfg.ENVIRONMENTS)
ACCOUNT = "123456789012"
REGION = "eu-west-1"
ACCOUNT_EXPR = "${data.aws_caller_identity.current.account_id}"
REGION_EXPR = "${data.aws_region.current.name}"
GENERATED = ("cdk.tf.json", "versions.tf")
HAND_WRITTEN = ("terraform.tfvars.json", "backend.hcl")
STAGES = ["Source", "Build", "Train", "DeployDev", "ApproveDeployment", "DeployPrd"]
STAR_ONLY_ACTIONS = {
    "cloudwatch:PutMetricData",
    "cloudwatch:GetMetricData",
    "ecr:GetAuthorizationToken",
    *R.LOG_DELIVERY_ACTIONS,
}
"""APIs that support no resource but "*" (each such statement is justified in cdktf_app/roles.py)."""


@dataclass(frozen=True)
class Synth:
    """Everything the tests read, synthesized once."""

    stacks: dict[str, BaseInfrastructureStack]
    testing: dict[str, str]
    """``Testing.synth`` of each stack (cdktf's matcher input: no metadata)."""
    rendered: dict[str, dict[str, str]]
    """What ``python -m cdktf_app synth`` writes: ``{env: {file: text}}``."""

    def doc(self, env: str) -> Any:
        return json.loads(self.rendered[env]["cdk.tf.json"])


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from cdktf import App, Testing

    from cdktf_app.app import build_stacks, synthesize

    app = App(outdir=str(tmp_path_factory.mktemp("cdktf-out")), stack_traces=False)
    stacks = build_stacks(app)
    return Synth(
        stacks=stacks,
        testing={env: Testing.synth(stack) for env, stack in stacks.items()},
        rendered=synthesize(),
    )


def resources(doc: Any, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = doc["resource"].get(kind, {})
    return found


def ref(kind: str, name: str, attribute: str) -> str:
    return "${" + f"{kind}.{name}.{attribute}" + "}"


def resolve(doc: Any, value: str, account: str = ACCOUNT, region: str = REGION) -> str:
    """A Terraform string with the account and region substituted and references to resource arguments followed."""
    value = value.replace(ACCOUNT_EXPR, account).replace(REGION_EXPR, region)

    def follow(match: re.Match[str]) -> str:
        kind, name, attribute = match.groups()
        target = doc["resource"].get(kind, {}).get(name, {}).get(attribute)
        return resolve(doc, target, account, region) if isinstance(target, str) else match.group(0)

    return re.sub(r"\$\{(aws_[a-z0-9_]+)\.([a-z0-9_]+)\.([a-z_]+)\}", follow, value)


def pipeline(doc: Any) -> Any:
    (only,) = resources(doc, "aws_codepipeline").values()
    return only


def actions(doc: Any, stage: str) -> list[Any]:
    (found,) = [s for s in pipeline(doc)["stage"] if s["name"] == stage]
    listed: list[Any] = found["action"]
    return listed


# --- Configuration ---------------------------------------------------------------------------------------------


def test_environments_are_consistent_with_the_pipeline_spec() -> None:
    assert set(ENVIRONMENTS) == {"dev", "prod"}
    for env, config in cfg.ENVIRONMENTS.items():
        spec = config.spec(account_id=ACCOUNT, region=REGION)
        assert (spec.model_name, spec.environment, spec.region, spec.account_id) == (
            C.DEFAULT_MODEL_NAME,
            env,
            REGION,
            ACCOUNT,
        )
        assert config.pipeline_name == f"{C.DEFAULT_MODEL_NAME}-{env}"
        assert config.default_tags["environment"] == env and config.default_tags["managed-by"] == "cdktf"
    assert cfg.ENVIRONMENTS["dev"].retrain_schedule is None  # off by default in dev
    assert cfg.ENVIRONMENTS["prod"].retrain_schedule is not None


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"environment": "Prod!"}, "environment"),
        ({"model_name": "x" * 16}, "model_name"),
        ({"retrain_schedule": "every monday"}, "retrain_schedule"),
        ({"log_retention_days": 30}, "log_retention_days"),
        ({"log_retention_days": 366}, "log_retention_days"),
        ({"kms_deletion_window_days": 3}, "kms_deletion_window_days"),
    ],
)
def test_invalid_environment_settings_are_refused(overrides: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = {"environment": "dev", **overrides}
    with pytest.raises(ValueError, match=message):
        cfg.EnvironmentConfig(**settings)


def test_names_refuse_a_model_name_containing_a_placeholder() -> None:
    from cdktf_app.names import TerraformNames

    config = cfg.EnvironmentConfig(model_name="m999999999999", environment="dev")
    with pytest.raises(ValueError, match="placeholder"):
        TerraformNames.for_config(config, account_id="A", region="R")
    assert len(REGION_PLACEHOLDER) >= len("ap-southeast-1") and ACCOUNT_PLACEHOLDER.isdigit()


# --- cdktf Testing matchers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_kms_key_rotates_and_has_its_alias(synth: Synth, env: str) -> None:
    from cdktf import Testing

    out = synth.testing[env]
    assert Testing.to_have_resource_with_properties(out, "aws_kms_key", {"enable_key_rotation": True})
    assert not Testing.to_have_resource_with_properties(out, "aws_kms_key", {"enable_key_rotation": False})
    assert Testing.to_have_resource_with_properties(
        out,
        "aws_kms_alias",
        {"name": f"alias/{C.DEFAULT_MODEL_NAME}-{env}", "target_key_id": "${aws_kms_key.kms_key.key_id}"},
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_buckets_are_encrypted_versioned_and_private(synth: Synth, env: str) -> None:
    from cdktf import Testing

    out = synth.testing[env]
    key = ref("aws_kms_key", "kms_key", "arn")
    for bucket in ("data", "artifacts", "logs"):
        bucket_id = ref("aws_s3_bucket", f"buckets_{bucket}_bucket", "id")
        encryption = (
            {"sse_algorithm": "AES256"}  # the access-log target: S3 delivers server access logs only to SSE-S3
            if bucket == "logs"
            else {"sse_algorithm": "aws:kms", "kms_master_key_id": key}
        )
        assert Testing.to_have_resource_with_properties(
            out,
            "aws_s3_bucket_server_side_encryption_configuration",
            {"bucket": bucket_id, "rule": [{"apply_server_side_encryption_by_default": encryption}]},
        ), bucket
        assert Testing.to_have_resource_with_properties(
            out, "aws_s3_bucket_versioning", {"bucket": bucket_id, "versioning_configuration": {"status": "Enabled"}}
        ), bucket
        assert Testing.to_have_resource_with_properties(
            out,
            "aws_s3_bucket_public_access_block",
            {
                "bucket": bucket_id,
                "block_public_acls": True,
                "block_public_policy": True,
                "ignore_public_acls": True,
                "restrict_public_buckets": True,
            },
        ), bucket
        assert Testing.to_have_resource_with_properties(
            out,
            "aws_s3_bucket_ownership_controls",
            {"bucket": bucket_id, "rule": {"object_ownership": "BucketOwnerEnforced"}},
        ), bucket
        assert Testing.to_have_resource_with_properties(
            out, "aws_s3_bucket_notification", {"bucket": bucket_id, "eventbridge": True}
        ), bucket


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_provider_is_constrained_and_tagged(synth: Synth, env: str) -> None:
    from cdktf import Testing

    out = synth.testing[env]
    assert Testing.to_have_provider_with_properties(
        out,
        "aws",
        {
            "region": "${var.aws_region}",
            "default_tags": [
                {
                    "tags": {
                        "model": C.DEFAULT_MODEL_NAME,
                        "environment": env,
                        "managed-by": "cdktf",
                        "project": "safedeploy",
                    }
                }
            ],
        },
    )
    terraform = synth.doc(env)["terraform"]
    assert terraform["required_providers"]["aws"] == {"source": "hashicorp/aws", "version": ">= 5.100, < 7"}
    assert terraform["backend"] == {"s3": {}}  # partial: values from backend.hcl at init
    assert 'required_version = ">= 1.10"' in synth.rendered[env]["versions.tf"]


@pytest.mark.skipif(
    find_terraform() is None, reason="the terraform CLI is not installed (not on PATH, $TERRAFORM unset)"
)
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_synthesized_configuration_is_valid_terraform(synth: Synth, env: str, tmp_path: Path) -> None:
    """``Testing.to_be_valid_terraform``: ``terraform init`` + ``validate`` on the synthesized root."""
    from cdktf import Testing

    # The matcher runs a plain `terraform init`, which would configure the partial S3 backend: validation needs no
    # state, so the copy drops it. Providers come from the offline mirror when there is one (implied local mirror
    # directory terraform.d/plugins), else from the registry.
    work = tmp_path / "stacks" / env
    work.mkdir(parents=True)
    document = synth.doc(env)
    del document["terraform"]["backend"]
    (work / "cdk.tf.json").write_text(json.dumps(document), encoding="utf-8")
    (work / "versions.tf").write_text(synth.rendered[env]["versions.tf"], encoding="utf-8")
    mirror = find_provider_mirror()
    if mirror is not None:
        (work / "terraform.d").mkdir()
        (work / "terraform.d" / "plugins").symlink_to(mirror)
    (tmp_path / "manifest.json").write_text(
        json.dumps({"version": "stubbed", "stacks": {env: {"name": env, "workingDirectory": f"stacks/{env}"}}}),
        encoding="utf-8",
    )
    assert Testing.to_be_valid_terraform(str(tmp_path))
    if env != "dev":
        return
    document["resource"]["aws_kms_key"]["kms_key"]["enable_key_rotation"] = "not-a-bool"  # the matcher can fail
    (work / "cdk.tf.json").write_text(json.dumps(document), encoding="utf-8")
    assert not Testing.to_be_valid_terraform(str(tmp_path))


# --- Buckets ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_bucket_has_a_tls_only_policy_logging_and_lifecycle(synth: Synth, env: str) -> None:
    doc = synth.doc(env)
    documents = doc["data"]["aws_iam_policy_document"]
    policies = resources(doc, "aws_s3_bucket_policy").values()
    logging = {v["bucket"]: v for v in resources(doc, "aws_s3_bucket_logging").values()}
    lifecycles = {v["bucket"]: v for v in resources(doc, "aws_s3_bucket_lifecycle_configuration").values()}
    buckets = resources(doc, "aws_s3_bucket")
    assert set(buckets) == {"buckets_data_bucket", "buckets_artifacts_bucket", "buckets_logs_bucket"}
    for name in buckets:
        bucket_id, arn = ref("aws_s3_bucket", name, "id"), ref("aws_s3_bucket", name, "arn")
        (policy,) = [p for p in policies if p["bucket"] == bucket_id]
        document = documents[re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", policy["policy"])[1]]  # type: ignore[index]
        deny = [s for s in document["statement"] if s["effect"] == "Deny"]
        assert deny == [
            {
                "sid": "DenyInsecureTransport",
                "effect": "Deny",
                "principals": [{"type": "*", "identifiers": ["*"]}],
                "actions": ["s3:*"],
                "resources": [arn, f"{arn}/*"],
                "condition": [{"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}],
            }
        ], name
        rules = {rule["id"]: rule for rule in lifecycles[bucket_id]["rule"]}
        assert (
            rules["abort-incomplete-multipart-uploads"]["abort_incomplete_multipart_upload"][0]["days_after_initiation"]
            > 0
        )
        assert rules["expire-noncurrent-versions"]["noncurrent_version_expiration"][0]["noncurrent_days"] > 0
        if name == "buckets_logs_bucket":
            assert bucket_id not in logging  # the log target itself
            assert rules["expire-objects"]["expiration"][0]["days"] == cfg.ENVIRONMENTS[env].access_log_days
        else:
            assert logging[bucket_id]["target_bucket"] == ref("aws_s3_bucket", "buckets_logs_bucket", "bucket")
    (delivery,) = [s for s in documents["buckets_logs_policy_document"]["statement"] if s["effect"] == "Allow"]
    assert delivery["principals"] == [{"type": "Service", "identifiers": ["logging.s3.amazonaws.com"]}]
    assert {c["variable"] for c in delivery["condition"]} == {"aws:SourceAccount", "aws:SourceArn"}


# --- IAM -------------------------------------------------------------------------------------------------------


def policy_violations(name: str, document: Any, *, key_policy: bool) -> list[str]:
    """What is wrong with one policy document's Allow statements (see the module's rules)."""
    problems = []
    for statement in document.get("statement", []):
        if statement.get("effect", "Allow") != "Allow":
            continue
        sid, acts, res = statement.get("sid", "?"), statement.get("actions", []), statement.get("resources", [])
        if statement.get("not_actions") or statement.get("not_resources"):
            problems.append(f"{name}/{sid}: NotAction/NotResource")
        if "*" in acts:
            problems.append(f"{name}/{sid}: Action *")
        principals = [i for p in statement.get("principals", []) for i in p["identifiers"]]
        if "*" in principals:
            problems.append(f"{name}/{sid}: Allow to principal *")
        for action in (a for a in acts if a.endswith(":*")):
            root_admin = key_policy and action == "kms:*" and principals == [f"arn:aws:iam::{ACCOUNT_EXPR}:root"]
            if not root_admin:
                problems.append(f"{name}/{sid}: {action}")
        if "*" in res and not key_policy:
            writes = set(acts) - STAR_ONLY_ACTIONS
            if writes:
                problems.append(f"{name}/{sid}: Resource * for {sorted(writes)}")
            if "cloudwatch:PutMetricData" in acts and not statement.get("condition"):
                problems.append(f"{name}/{sid}: PutMetricData without a namespace condition")
        if key_policy and res != ["*"]:
            problems.append(f"{name}/{sid}: a key policy's resource is the key ('*')")
    return problems


def test_policy_walker_flags_wildcards() -> None:
    bad = {
        "statement": [
            {"sid": "A", "actions": ["*"], "resources": ["arn:aws:s3:::b"]},
            {"sid": "B", "effect": "Allow", "actions": ["s3:*"], "resources": ["*"]},
            {"sid": "C", "actions": ["s3:PutObject"], "resources": ["*"]},
            {"sid": "D", "actions": ["cloudwatch:PutMetricData"], "resources": ["*"]},
            {
                "sid": "E",
                "actions": ["kms:*"],
                "resources": ["*"],
                "principals": [{"type": "AWS", "identifiers": ["*"]}],
            },
            {"sid": "F", "effect": "Deny", "actions": ["*"], "resources": ["*"]},
        ]
    }
    problems = policy_violations("bad", bad, key_policy=False)
    assert {p.split(":")[0] for p in problems} == {"bad/A", "bad/B", "bad/C", "bad/D", "bad/E"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_policy_allows_everything(synth: Synth, env: str) -> None:
    doc = synth.doc(env)
    documents = doc["data"]["aws_iam_policy_document"]
    (key,) = resources(doc, "aws_kms_key").values()
    key_document = key["policy"].split(".")[2]
    problems = [
        problem
        for name, document in documents.items()
        for problem in policy_violations(name, document, key_policy=name == key_document)
    ]
    assert problems == []
    # Every role policy is one of these documents (nothing inline, nothing managed).
    for name, policy in resources(doc, "aws_iam_role_policy").items():
        assert re.fullmatch(r"\$\{data\.aws_iam_policy_document\.\w+\.json\}", policy["policy"]), name
    assert "aws_iam_role_policy_attachment" not in doc["resource"]
    # The key policy: kms:* for the account root only; the services get narrow actions.
    (root,) = [s for s in documents[key_document]["statement"] if "kms:*" in s["actions"]]
    assert root["principals"] == [{"type": "AWS", "identifiers": [f"arn:aws:iam::{ACCOUNT_EXPR}:root"]}]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_one_role_per_service_trusting_only_that_service(synth: Synth, env: str) -> None:
    doc = synth.doc(env)
    documents = doc["data"]["aws_iam_policy_document"]
    roles = resources(doc, "aws_iam_role")
    assert set(roles) == {f"roles_{service.replace('-', '_')}_role" for service in R.ROLE_SERVICES}
    for name, role in roles.items():
        trust = documents[role["assume_role_policy"].split(".")[2]]
        (statement,) = trust["statement"]
        assert statement["actions"] == ["sts:AssumeRole"] and "resources" not in statement
        (principal,) = statement["principals"]
        assert principal["type"] == "Service" and len(principal["identifiers"]) == 1, name


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_pass_role_names_exactly_the_roles_and_services(synth: Synth, env: str) -> None:
    doc = synth.doc(env)
    spec = cfg.ENVIRONMENTS[env].spec(account_id=ACCOUNT, region=REGION)
    passes = {
        name: [s for s in document["statement"] if "iam:PassRole" in s["actions"]]
        for name, document in doc["data"]["aws_iam_policy_document"].items()
    }
    cloudformation = {
        statement["condition"][0]["values"][0]: sorted(resolve(doc, r) for r in statement["resources"])
        for statement in passes["roles_cloudformation_permissions"]
    }
    arn = f"arn:aws:iam::{ACCOUNT}:role/"
    assert cloudformation == {
        "sagemaker.amazonaws.com": [naming.execution_role_arn(spec)],
        "states.amazonaws.com": [arn + naming.role_name(spec, R.STEPFUNCTIONS)],
        "scheduler.amazonaws.com": [arn + naming.role_name(spec, R.SCHEDULER)],
        "lambda.amazonaws.com": sorted(
            arn + naming.role_name(spec, s)
            for s in (R.API_LAMBDA, R.HOOKS_LAMBDA, R.CANARY_LAMBDA, R.SMOKE_TEST_LAMBDA, R.PROBE_LAMBDA)
        ),
        "codedeploy.amazonaws.com": [arn + naming.role_name(spec, R.CODEDEPLOY)],
    }
    # Step Functions passes the job roles: training's, and the monitor's Processing jobs' (naming.monitor_role_arn).
    (jobs_pass,) = passes["roles_stepfunctions_permissions"]
    assert sorted(resolve(doc, r) for r in jobs_pass["resources"]) == sorted(
        [naming.execution_role_arn(spec), naming.monitor_role_arn(spec)]
    )
    (pipeline_pass,) = passes["roles_codepipeline_permissions"]
    assert [resolve(doc, r) for r in pipeline_pass["resources"]] == [arn + naming.role_name(spec, R.CLOUDFORMATION)]
    for statements in passes.values():
        for statement in statements:
            assert statement["condition"][0]["variable"] == "iam:PassedToService"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_monitor_and_scheduler_roles_hold_only_what_monitoring_uses(synth: Synth, env: str) -> None:
    """The monitor's Processing jobs read code, datasets, baselines and capture, write reports and baselines,
    publish to the monitor's namespace only; the schedule only starts the monitoring state machine."""
    doc = synth.doc(env)
    spec = cfg.ENVIRONMENTS[env].spec(account_id=ACCOUNT, region=REGION)
    documents = doc["data"]["aws_iam_policy_document"]
    monitor = {s["sid"]: s for s in documents["roles_monitor_permissions"]["statement"]}
    artifacts, data = naming.artifact_bucket(spec), naming.data_bucket(spec)
    model = spec.model_name
    assert sorted(resolve(doc, r) for r in monitor["ReadMonitorInputsList"]["resources"]) == sorted(
        [f"arn:aws:s3:::{artifacts}", f"arn:aws:s3:::{data}"]
    )
    assert sorted(resolve(doc, r) for r in monitor["ReadMonitorInputs"]["resources"]) == sorted(
        [
            f"arn:aws:s3:::{artifacts}/{model}/monitor-code/*",
            f"arn:aws:s3:::{artifacts}/{model}/baseline-jobs/*",
            f"arn:aws:s3:::{artifacts}/{model}/datacapture/*",
            f"arn:aws:s3:::{data}/{model}/datasets/*",
            f"arn:aws:s3:::{artifacts}/{model}/training-jobs/*",  # the output baseline job scores model.tar.gz
            f"arn:aws:s3:::{data}/{model}/ground-truth/*",  # the model-quality job's labels
        ]
    )
    assert sorted(resolve(doc, r) for r in monitor["WriteReportsAndBaselines"]["resources"]) == [
        f"arn:aws:s3:::{artifacts}/{model}/baseline-jobs/*",
        f"arn:aws:s3:::{artifacts}/{model}/merged-ground-truth/*",  # captured records joined with their labels
        f"arn:aws:s3:::{artifacts}/{model}/monitoring-reports/*",
    ]
    metrics = monitor["PublishMonitorMetrics"]
    assert metrics["actions"] == ["cloudwatch:PutMetricData"]
    assert metrics["condition"] == [
        {
            "test": "StringEquals",
            "variable": "cloudwatch:namespace",
            "values": ["/aws/sagemaker/Endpoints/data-metric", "aws/sagemaker/Endpoints/model-metrics"],
        }
    ]
    assert [r.rsplit("/", 1)[-1] for r in monitor["PullFrameworkImage"]["resources"]] == ["sagemaker-xgboost"]
    actions = {a for statement in monitor.values() for a in statement["actions"]}
    assert not {a for a in actions if a.startswith(("sagemaker:", "iam:", "states:"))}
    scheduler = documents["roles_scheduler_permissions"]["statement"]
    start = scheduler[0]
    assert (start["actions"], [resolve(doc, r) for r in start["resources"]]) == (
        ["states:StartExecution"],
        [
            f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{naming.state_machine_name(spec, kind)}"
            for kind in ("monitoring", "model-quality")
        ],
    )
    assert {a for s in scheduler for a in s["actions"]} == {"states:StartExecution", "kms:Decrypt", "kms:DescribeKey"}
    # Model Monitor's grants and image only for accounts that use it (monitoring.use_model_monitor).
    text = json.dumps(doc)
    assert "CreateMonitoringSchedule" not in text and "sagemaker-model-monitor-analyzer" not in text
    cloudformation = {s["sid"]: s for s in documents["roles_cloudformation_permissions"]["statement"]}
    assert [resolve(doc, r) for r in cloudformation["MonitoringSchedules"]["resources"]] == [
        f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/{model}-*"
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_training_state_machine_runs_the_baseline_jobs_and_reads_only_their_digests(synth: Synth, env: str) -> None:
    """Step Functions starts and watches the baseline Processing jobs as the monitor role, and may read only the
    jobs' ``digests.json`` (registered as the baselines' ContentDigest), nothing else of the artifacts."""
    doc = synth.doc(env)
    spec = cfg.ENVIRONMENTS[env].spec(account_id=ACCOUNT, region=REGION)
    statements = {
        s["sid"]: s for s in doc["data"]["aws_iam_policy_document"]["roles_stepfunctions_permissions"]["statement"]
    }
    artifacts, model = naming.artifact_bucket(spec), spec.model_name
    jobs = statements["TrainingAndProcessingJobs"]
    assert {"sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob"} <= set(jobs["actions"])
    assert f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/{model}-*" in [
        resolve(doc, r) for r in jobs["resources"]
    ]
    passed = [resolve(doc, r) for r in statements["PassSageMakerRoles"]["resources"]]
    assert naming.monitor_role_arn(spec) in passed
    digests = statements["ReadBaselineDigests"]
    assert digests["actions"] == ["s3:GetObject"]
    assert [resolve(doc, r) for r in digests["resources"]] == [
        f"arn:aws:s3:::{artifacts}/{model}/baseline-jobs/*/digests.json"
    ]
    reads = [
        resolve(doc, r)
        for s in statements.values()
        if any(a.startswith("s3:GetObject") for a in s["actions"])
        for r in s["resources"]
    ]
    assert reads == [
        f"arn:aws:s3:::{artifacts}/{model}/baseline-jobs/*/digests.json",
        f"arn:aws:s3:::{artifacts}/{model}/baseline-jobs/*/quality/constraints.json",  # the AUC threshold
    ]
    listing = statements["ListCapture"]
    assert [resolve(doc, r) for r in listing["resources"]] == [f"arn:aws:s3:::{artifacts}"]
    # The model-quality state machine lists the label folders of the data bucket, and nothing else of it.
    labels = statements["ListGroundTruth"]
    assert labels["actions"] == ["s3:ListBucket"]
    assert [resolve(doc, r) for r in labels["resources"]] == [f"arn:aws:s3:::{naming.data_bucket(spec)}"]
    assert labels["condition"] == [
        {"test": "StringLike", "variable": "s3:prefix", "values": [f"{model}/ground-truth/*"]}
    ]
    assert all("*" not in a for s in statements.values() for a in s["actions"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_reuse_variant_needs_no_grant_the_training_state_machine_lacks(
    synth: Synth, env: str, tmp_path: Path
) -> None:
    """Identical inputs: the reuse variant's tasks read and publish only what the role already allows."""
    from tests.test_templates import render_reuse

    doc = synth.doc(env)
    spec = cfg.ENVIRONMENTS[env].spec(account_id=ACCOUNT, region=REGION)
    statements = doc["data"]["aws_iam_policy_document"]["roles_stepfunctions_permissions"]["statement"]

    def granted(action: str, arn: str) -> bool:
        return any(
            action in s["actions"] and any(fnmatch.fnmatchcase(arn, resolve(doc, r)) for r in s["resources"])
            for s in statements
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAFEDEPLOY_ACCOUNT_ID", ACCOUNT)
        patch.setenv("SAFEDEPLOY_REGION", REGION)
        patch.setenv("SAFEDEPLOY_ENVIRONMENT", env)
        stacks = render_reuse(tmp_path)
    states = stacks["training-job"].template["Resources"]["StateMachine"]["Properties"]["Definition"]["States"]
    calls = [(state["Resource"], state["Arguments"]) for state in states.values() if state["Type"] == "Task"]
    assert len(calls) == 3
    for resource, arguments in calls:
        if resource.endswith("s3:getObject"):
            assert granted("s3:GetObject", f"arn:aws:s3:::{arguments['Bucket']}/{arguments['Key']}"), arguments
        else:
            assert resource.endswith("ssm:putParameter")
            name = arguments["Name"]
            assert name.startswith(f"/safedeploy/{spec.pipeline_name}/executions/")
            assert granted("ssm:PutParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}"), name
    # and the check can fail: the reused version's model archive is not the state machine's to read
    model = states["ReuseModelVersion"]["Output"]["ModelDataUrl"].removeprefix("s3://")
    assert not granted("s3:GetObject", f"arn:aws:s3:::{model}")


# --- Names -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_names_are_those_of_safedeploy_naming(synth: Synth, env: str) -> None:
    """Substituting an account and region into the synthesized expressions gives naming.py's names for them."""
    doc = synth.doc(env)
    spec = cfg.ENVIRONMENTS[env].spec(account_id=ACCOUNT, region=REGION)

    def name(kind: str, resource: str, attribute: str) -> str:
        return resolve(doc, resources(doc, kind)[resource][attribute])

    assert name("aws_s3_bucket", "buckets_data_bucket", "bucket") == naming.data_bucket(spec)
    assert name("aws_s3_bucket", "buckets_artifacts_bucket", "bucket") == naming.artifact_bucket(spec)
    assert name("aws_s3_bucket", "buckets_logs_bucket", "bucket") == naming.logs_bucket(spec)
    assert name("aws_kms_alias", "kms_alias", "name") == naming.kms_alias(spec)
    assert name("aws_codecommit_repository", "source_repository", "repository_name") == naming.codecommit_repository(
        spec
    )
    assert name("aws_codebuild_project", "build_project", "name") == naming.codebuild_project(spec)
    assert name("aws_codepipeline", "pipeline_codepipeline", "name") == naming.codepipeline_name(spec)
    assert name("aws_sns_topic", "pipeline_approval_topic", "name") == naming.approval_topic(spec)
    assert name("aws_sns_topic", "monitoring_topic", "name") == naming.alarm_topic(spec)
    assert name("aws_sagemaker_notebook_instance", "notebook_instance", "name") == naming.notebook_instance_name(spec)
    assert name("aws_cloudwatch_dashboard", "monitoring_dashboard", "dashboard_name") == naming.dashboard_name(spec)
    for service in R.ROLE_SERVICES:
        assert name("aws_iam_role", f"roles_{service.replace('-', '_')}_role", "name") == naming.role_name(
            spec, service
        )
    for resource_name, alarm in resources(doc, "aws_cloudwatch_metric_alarm").items():
        purpose = resource_name.removeprefix("monitoring_").replace("_", "-")
        assert resolve(doc, alarm["alarm_name"]) == naming.alarm_name(spec, purpose)
        # Not the names the deploy-prd stack gives its own alarms.
        assert resolve(doc, alarm["alarm_name"]) not in (
            naming.alarm_name(spec, p) for p in ("drift", "api-5xx", "api-latency")
        )
        dimensions = {k: resolve(doc, v) for k, v in alarm["dimensions"].items()}
        assert dimensions in (
            {"ApiName": naming.rest_api_name(spec)},
            {"FunctionName": naming.function_name(spec, "api")},
        )
    for resource_name, rule in resources(doc, "aws_cloudwatch_event_rule").items():
        assert resolve(doc, rule["name"]) == naming.event_rule_name(
            spec, resource_name.removeprefix("events_").replace("_", "-")
        )
    # The pipeline's view of the same names.
    source = {a["name"]: a["configuration"] for a in actions(doc, "Source")}["DataSource"]
    data_source = naming.data_source_uri(spec)
    assert (resolve(doc, source["S3Bucket"]), source["S3ObjectKey"]) == (data_source.bucket, data_source.key)
    assert resolve(doc, pipeline(doc)["artifact_store"][0]["location"]) == naming.artifact_bucket(spec)
    stacks = {
        a["configuration"]["StackName"] for s in STAGES for a in actions(doc, s) if a["provider"] == "CloudFormation"
    }
    assert stacks == {naming.stack_name(spec, kind) for kind in naming.STACK_KINDS}
    state_machines = {
        resolve(doc, a["configuration"]["StateMachineArn"])
        for a in actions(doc, "Train")
        if a["provider"] == "StepFunctions"
    }
    assert state_machines == {
        f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{naming.state_machine_name(spec, kind)}"
        for kind in ("training-job", "suggest-baseline")
    }
    # EventBridge patterns name the data-source object and the retraining alarms of the deploy-prd stack.
    patterns = {
        k: json.loads(resolve(doc, v["event_pattern"]))
        for k, v in resources(doc, "aws_cloudwatch_event_rule").items()
        if "event_pattern" in v
    }
    upload = patterns["events_data_upload"]["detail"]
    assert (upload["bucket"]["name"], upload["object"]["key"]) == ([data_source.bucket], [data_source.key])
    assert patterns["events_drift_retrain"]["detail"] == {
        "alarmName": [naming.alarm_name(spec, "drift"), naming.alarm_name(spec, "model-quality")],
        "state": {"value": ["ALARM"]},
    }
    # CodeBuild hands model/run.py the spec's identity.
    environment = {
        v["name"]: resolve(doc, v["value"])
        for v in resources(doc, "aws_codebuild_project")["build_project"]["environment"]["environment_variable"]
    }
    assert environment == {
        "SAFEDEPLOY_MODEL_NAME": spec.model_name,
        "SAFEDEPLOY_ENVIRONMENT": spec.environment,
        "SAFEDEPLOY_REGION": spec.region,
        "SAFEDEPLOY_ACCOUNT_ID": spec.account_id,
        "PIPELINE_NAME": naming.codepipeline_name(spec),
    }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_names_follow_the_account_and_region(synth: Synth, env: str) -> None:
    """Names are expressions of the account and region, not values baked in at synth time."""
    doc = synth.doc(env)
    expression = resources(doc, "aws_s3_bucket")["buckets_data_bucket"]["bucket"]
    assert ACCOUNT_EXPR in expression and REGION_EXPR in expression
    for account, region in ((ACCOUNT, REGION), ("210987654321", "ap-southeast-2")):
        spec = cfg.ENVIRONMENTS[env].spec(account_id=account, region=region)
        assert resolve(doc, expression, account, region) == naming.data_bucket(spec)
    assert ACCOUNT_PLACEHOLDER not in synth.rendered[env]["cdk.tf.json"]
    assert REGION_PLACEHOLDER not in synth.rendered[env]["cdk.tf.json"]


# --- Pipeline --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_pipeline_stages_run_in_order_with_parallel_training(synth: Synth, env: str) -> None:
    doc = synth.doc(env)
    spec = cfg.ENVIRONMENTS[env].spec()
    codepipeline = pipeline(doc)
    assert [stage["name"] for stage in codepipeline["stage"]] == STAGES
    assert codepipeline["artifact_store"][0]["encryption_key"] == {
        "id": ref("aws_kms_key", "kms_key", "arn"),
        "type": "KMS",
    }
    source = {a["provider"]: a for a in actions(doc, "Source")}
    assert source["CodeCommit"]["output_artifacts"] == ["SourceOutput"]
    assert source["S3"]["output_artifacts"] == ["DataSourceOutput"]
    assert {a["configuration"]["PollForSourceChanges"] for a in source.values()} == {"false"}
    (build,) = actions(doc, "Build")
    assert (build["provider"], build["input_artifacts"], build["output_artifacts"]) == (
        "CodeBuild",
        ["SourceOutput", "DataSourceOutput"],
        ["BuildOutput"],
    )
    train = actions(doc, "Train")
    deploy_stacks = [a for a in train if a["provider"] == "CloudFormation"]
    state_machines = [a for a in train if a["provider"] == "StepFunctions"]
    assert len(deploy_stacks) == 2 and len(state_machines) == 2 and len(train) == 4
    assert {a["run_order"] for a in deploy_stacks} == {1}  # side by side
    assert {a["run_order"] for a in state_machines} == {2}  # side by side, after both stacks
    assert {a["category"] for a in state_machines} == {"Invoke"}
    kinds = {
        "Train": ["training-job", "suggest-baseline"],
        "DeployDev": ["deploy-dev"],
        "DeployPrd": ["deploy-prd"],
    }
    for stage, expected in kinds.items():
        stacks = [a for a in actions(doc, stage) if a["provider"] == "CloudFormation"]
        assert [a["configuration"]["StackName"] for a in stacks] == [naming.stack_name(spec, k) for k in expected]
        for action, kind in zip(stacks, expected, strict=True):
            assert action["configuration"] == {
                "ActionMode": "CREATE_UPDATE",
                "StackName": naming.stack_name(spec, kind),
                "TemplatePath": f"BuildOutput::{kind}.template.json",
                "TemplateConfiguration": f"BuildOutput::{kind}.config.json",
                "Capabilities": "CAPABILITY_IAM,CAPABILITY_AUTO_EXPAND",
                "RoleArn": ref("aws_iam_role", "roles_cloudformation_role", "arn"),
            }
            assert action["input_artifacts"] == ["BuildOutput"]
    (dev_stack,) = actions(doc, "DeployDev")
    assert dev_stack["category"] == "Deploy"
    (approval,) = actions(doc, C.STAGE_APPROVAL)  # a stage of its own, after DeployDev: it can be skipped
    assert approval["name"] == C.STAGE_APPROVAL and approval["provider"] == "Manual"
    assert approval["configuration"]["NotificationArn"] == ref("aws_sns_topic", "pipeline_approval_topic", "arn")
    topic = resources(doc, "aws_sns_topic")["pipeline_approval_topic"]
    assert topic["kms_master_key_id"] == ref("aws_kms_key", "kms_key", "arn")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_approval_and_deploy_prd_are_skipped_for_the_version_production_serves(synth: Synth, env: str) -> None:
    """Duplicate versions: the Build action exports VERSION_SERVES_PRODUCTION; the two stages' entry condition."""
    doc = synth.doc(env)
    (build,) = actions(doc, "Build")
    assert build["namespace"] == "BuildVariables"
    buildspec = yaml.safe_load((Path(__file__).parents[1] / "model" / "buildspec.yml").read_text("utf-8"))
    exported = buildspec["env"]["exported-variables"]
    assert exported == list(pipeline_variables(None))  # what run.py writes, the buildspec sources
    assert ". build/pipeline-variables.env" in buildspec["phases"]["build"]["commands"]
    stages = {stage["name"]: stage for stage in pipeline(doc)["stage"]}
    expected = {
        "result": "SKIP",
        "rule": [
            {
                "name": "VersionNotYetInProduction",
                "rule_type_id": {"category": "Rule", "owner": "AWS", "provider": "VariableCheck", "version": "1"},
                "configuration": {
                    "Variable": "#{BuildVariables.VERSION_SERVES_PRODUCTION}",
                    "Operator": "NE",
                    "Value": "true",
                },
            }
        ],
    }
    for name in (C.STAGE_APPROVAL, C.STAGE_DEPLOY_PRD):
        assert stages[name]["before_entry"] == {"condition": expected}
    # the stages before them always run: DeployDev still smoke-tests a reused version, as locally
    assert all("before_entry" not in stages[name] for name in ("Source", "Build", "Train", C.STAGE_DEPLOY_DEV))
    assert pipeline_variables(None)["VERSION_SERVES_PRODUCTION"] == "false"
    # the build's registry look-up: list and describe only this model's versions
    statements = {
        s["sid"]: s for s in doc["data"]["aws_iam_policy_document"]["roles_codebuild_permissions"]["statement"]
    }
    listing = statements["ListModelVersions"]
    assert listing["actions"] == ["sagemaker:ListModelPackages"]
    assert listing["resources"] == statements["DescribeTrainedModels"]["resources"][-2:]  # this model's group only
    spec = cfg.ENVIRONMENTS[env].spec(account_id=ACCOUNT, region=REGION)
    group = naming.model_package_group(spec)
    assert [resolve(doc, r) for r in listing["resources"]] == [
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/{group}",
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/{group}/*",
    ]
    assert [a for s in statements.values() for a in s["actions"] if a.startswith("sagemaker:")] == [
        "sagemaker:DescribeTrainingJob",
        "sagemaker:DescribeModelPackage",
        "sagemaker:DescribeModelPackageGroup",
        "sagemaker:ListModelPackages",
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_build_runs_the_buildspec_encrypted_and_logged(synth: Synth, env: str) -> None:
    doc = synth.doc(env)
    project = resources(doc, "aws_codebuild_project")["build_project"]
    assert project["source"] == {"type": "CODEPIPELINE", "buildspec": "model/buildspec.yml"}
    assert project["encryption_key"] == ref("aws_kms_key", "kms_key", "arn")
    assert project["environment"]["privileged_mode"] is False
    assert project["logs_config"]["cloudwatch_logs"]["group_name"] == ref(
        "aws_cloudwatch_log_group", "build_logs", "name"
    )
    group = resources(doc, "aws_cloudwatch_log_group")["build_logs"]
    assert group["retention_in_days"] == "${var.log_retention_days}"
    assert group["kms_key_id"] == ref("aws_kms_key", "kms_key", "arn")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_triggers_start_the_pipeline_and_retraining(synth: Synth, env: str) -> None:
    """Data and code start the pipeline; the alarms and the schedule start retraining, never the pipeline itself
    (which would re-run the data it already has)."""
    doc = synth.doc(env)
    rules = resources(doc, "aws_cloudwatch_event_rule")
    targets = resources(doc, "aws_cloudwatch_event_target")
    pipeline_arn = ref("aws_codepipeline", "pipeline_codepipeline", "arn")
    retraining_arn = ref("aws_sfn_state_machine", "retraining_state_machine", "arn")
    events_role = ref("aws_iam_role", "roles_events_role", "arn")
    for purpose, arn in (
        ("data_upload", pipeline_arn),
        ("code_push", pipeline_arn),
        ("drift_retrain", retraining_arn),
        ("retrain_schedule", retraining_arn),
    ):
        target = targets[f"events_{purpose}_target"]
        assert (target["arn"], target["role_arn"]) == (arn, events_role), purpose
    schedule = rules["events_retrain_schedule"]
    count = "${(length(var.retrain_schedule) < 1) ? 0 : 1}"  # no rule unless a schedule is set
    assert schedule["count"] == count and targets["events_retrain_schedule_target"]["count"] == count
    assert schedule["schedule_expression"] == "${var.retrain_schedule}"
    assert doc["variable"]["retrain_schedule"]["default"] == (cfg.ENVIRONMENTS[env].retrain_schedule or "")
    upload = json.loads(rules["events_data_upload"]["event_pattern"])
    assert (upload["source"], upload["detail-type"]) == (["aws.s3"], ["Object Created"])
    events_policy = doc["data"]["aws_iam_policy_document"]["roles_events_permissions"]["statement"]
    spec = cfg.ENVIRONMENTS[env].spec(account_id=ACCOUNT, region=REGION)
    assert [(s["actions"], [resolve(doc, r) for r in s["resources"]]) for s in events_policy] == [
        (
            ["codepipeline:StartPipelineExecution"],
            [f"arn:aws:codepipeline:{REGION}:{ACCOUNT}:{naming.codepipeline_name(spec)}"],
        ),
        (
            ["states:StartExecution"],
            [f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{naming.state_machine_name(spec, 'retraining')}"],
        ),
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_an_alarm_event_becomes_the_retraining_input_with_its_trigger(synth: Synth, env: str) -> None:
    """The input transformer turns CloudWatch's state change into the trigger the execution records, and waits
    the debounce; the schedule's input waits nothing and names the schedule."""
    doc = synth.doc(env)
    spec = cfg.ENVIRONMENTS[env].spec(account_id=ACCOUNT, region=REGION)
    targets = resources(doc, "aws_cloudwatch_event_target")
    alarm = targets["events_drift_retrain_target"]["input_transformer"]
    assert alarm["input_paths"] == {"alarm": "$.detail.alarmName", "since": "$.detail.state.timestamp"}
    # What EventBridge does with the template: quoted placeholders take the raw text, bare ones a JSON string.
    name, since = naming.alarm_name(spec, "model-quality"), "2026-12-03T10:00:00.000+0000"
    template = alarm["input_template"]
    rendered = template.replace('"alarm <alarm>', f'"alarm {name}').replace("since <since>", f"since {since}")
    rendered = rendered.replace("<alarm>", json.dumps(name)).replace("<since>", json.dumps(since))
    expected_wait = debounce_seconds(spec.monitoring.alarm_evaluation_periods, spec.monitoring.schedule_expression)
    assert json.loads(rendered) == {
        "trigger": f"alarm {name} in ALARM since {since}",
        "alarm": name,
        "since": since,
        "waitSeconds": expected_wait,
    }
    assert expected_wait >= 3600  # at least one monitoring period: an alarm that recovers meanwhile is left alone
    scheduled = json.loads(
        targets["events_retrain_schedule_target"]["input_transformer"]["input_template"].replace("<time>", "T")
    )
    assert scheduled == {"trigger": "schedule ${var.retrain_schedule} at T", "alarm": "", "since": "", "waitSeconds": 0}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_retraining_state_machine_debounces_then_runs_the_retraining_build(synth: Synth, env: str) -> None:
    doc = synth.doc(env)
    spec = cfg.ENVIRONMENTS[env].spec(account_id=ACCOUNT, region=REGION)
    machine = resources(doc, "aws_sfn_state_machine")["retraining_state_machine"]
    assert resolve(doc, machine["name"]) == naming.state_machine_name(spec, "retraining")
    assert machine["role_arn"] == ref("aws_iam_role", "roles_retraining_role", "arn")
    assert machine["tracing_configuration"]["enabled"] is True
    assert machine["logging_configuration"]["level"] == "ALL"
    assert machine["encryption_configuration"]["kms_key_id"] == ref("aws_kms_key", "kms_key", "arn")
    definition = json.loads(resolve(doc, machine["definition"]))
    assert definition["StartAt"] == "Debounce"
    wait, build = definition["States"]["Debounce"], definition["States"]["Retrain"]
    assert (wait["Type"], wait["Next"]) == ("Wait", "Retrain")
    assert build["Resource"] == "arn:aws:states:::codebuild:startBuild.sync" and build["End"] is True
    assert build["Arguments"]["ProjectName"] == naming.retraining_project(spec)
    assert {v["Name"] for v in build["Arguments"]["EnvironmentVariablesOverride"]} == {
        TRIGGER_VARIABLE,
        ALARM_VARIABLE,
        SINCE_VARIABLE,
    }
    project = resources(doc, "aws_codebuild_project")["retraining_project"]
    assert resolve(doc, project["name"]) == naming.retraining_project(spec)
    assert project["concurrent_build_limit"] == 1  # at most one retraining build at a time
    source = project["source"]
    assert (source["type"], source["buildspec"]) == ("CODECOMMIT", "model/retrain-buildspec.yml")
    assert project["source_version"] == f"refs/heads/{cfg.ENVIRONMENTS[env].source_branch}"
    assert project["service_role"] == ref("aws_iam_role", "roles_retrain_role", "arn")
    assert project["encryption_key"] == ref("aws_kms_key", "kms_key", "arn")
    buildspec = (Path(__file__).parents[1] / "model" / "retrain-buildspec.yml").read_text("utf-8")
    assert "safedeploy retraining check --target aws" in buildspec and "${SAFEDEPLOY_RETRAIN_TRIGGER}" in buildspec


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_retraining_roles_hold_only_what_retraining_uses(synth: Synth, env: str) -> None:
    """The build reads the data and the labelled capture and writes only under the model's data prefix; it may
    not start the pipeline (its contract upload does); the state machine may only run that one build."""
    doc = synth.doc(env)
    spec = cfg.ENVIRONMENTS[env].spec(account_id=ACCOUNT, region=REGION)
    policies = doc["data"]["aws_iam_policy_document"]
    build = {s["sid"]: s for s in policies["roles_retrain_permissions"]["statement"]}
    granted = {action for s in build.values() for action in s["actions"]}
    assert not {"codepipeline:StartPipelineExecution", "states:StartExecution", "sagemaker:CreateTrainingJob"} & granted
    data, artifacts = naming.data_bucket(spec), naming.artifact_bucket(spec)
    assert [resolve(doc, r) for r in build["WriteData"]["resources"]] == [f"arn:aws:s3:::{data}/{spec.model_name}/*"]
    merged = naming.merged_ground_truth_uri(spec)
    assert [resolve(doc, r) for r in build["ReadLabelledCapture"]["resources"]] == [
        f"arn:aws:s3:::{artifacts}/{merged.key}/*"
    ]
    assert [resolve(doc, r) for r in build["Cooldown"]["resources"]] == [
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{naming.retraining_parameter(spec)}"
    ]
    machine = {s["sid"]: s for s in policies["roles_retraining_permissions"]["statement"]}
    assert [resolve(doc, r) for r in machine["RunRetrainingBuild"]["resources"]] == [
        f"arn:aws:codebuild:{REGION}:{ACCOUNT}:project/{naming.retraining_project(spec)}"
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_notebook_is_locked_down_and_clones_the_repository(synth: Synth, env: str) -> None:
    from cdktf import Testing

    assert Testing.to_have_resource_with_properties(
        synth.testing[env],
        "aws_sagemaker_notebook_instance",
        {
            "root_access": "Disabled",
            "kms_key_id": ref("aws_kms_key", "kms_key", "arn"),
            "instance_type": "${var.notebook_instance_type}",
            "instance_metadata_service_configuration": {"minimum_instance_metadata_service_version": "2"},
            "lifecycle_config_name": ref(
                "aws_sagemaker_notebook_instance_lifecycle_configuration", "notebook_lifecycle", "name"
            ),
        },
    )
    lifecycle = resources(synth.doc(env), "aws_sagemaker_notebook_instance_lifecycle_configuration")[
        "notebook_lifecycle"
    ]
    assert "git clone ${aws_codecommit_repository.source_repository.clone_url_http}" in lifecycle["on_start"]
    assert "pip install" in lifecycle["on_start"] and lifecycle["on_start"].startswith("${base64encode(")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_monitoring_watches_the_production_api(synth: Synth, env: str) -> None:
    doc = synth.doc(env)
    spec = cfg.ENVIRONMENTS[env].spec(account_id=ACCOUNT, region=REGION)
    topic = ref("aws_sns_topic", "monitoring_topic", "arn")
    alarms = resources(doc, "aws_cloudwatch_metric_alarm")
    assert {k.removeprefix("monitoring_") for k in alarms} == {
        "gateway_5xx",
        "gateway_latency",
        "lambda_errors",
        "lambda_throttles",
    }
    for alarm in alarms.values():
        assert alarm["alarm_actions"] == [topic] and alarm["ok_actions"] == [topic]
    assert alarms["monitoring_gateway_5xx"]["threshold"] == spec.alarms.standing.gateway_5xx.threshold
    body = json.loads(
        resolve(doc, resources(doc, "aws_cloudwatch_dashboard")["monitoring_dashboard"]["dashboard_body"])
    )
    text = json.dumps(body)
    for metric in ("Invocations", "Errors", "Duration", "5XXError", "Latency"):
        assert f'"{metric}"' in text, metric
    assert naming.function_name(spec, "api") in text and naming.rest_api_name(spec) in text
    assert {w["properties"]["region"] for w in body["widgets"] if w["type"] == "metric"} == {REGION}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_canary_and_smoke_test_roles_hold_only_what_they_use(synth: Synth, env: str) -> None:
    """The canary invokes this model's production endpoints and publishes to its own namespace only; the smoke
    test invokes the dev endpoint only; the production-endpoint parameter exists before the first stack."""
    doc = synth.doc(env)
    spec = cfg.ENVIRONMENTS[env].spec(account_id=ACCOUNT, region=REGION)
    policies = doc["data"]["aws_iam_policy_document"]

    def statements(role: str) -> dict[str, Any]:
        return {s["sid"]: s for s in policies[f"roles_{role}_permissions"]["statement"]}

    canary = statements("canary_lambda")
    invoke = canary["InvokeProductionEndpoints"]
    assert invoke["actions"] == ["sagemaker:InvokeEndpoint"]
    assert [resolve(doc, r) for r in invoke["resources"]] == [
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{spec.model_name}-prd-*"
    ]
    publish = canary["PublishPredictionShift"]
    assert publish["actions"] == ["cloudwatch:PutMetricData"]
    assert [(c["variable"], c["values"]) for c in publish["condition"]] == [
        ("cloudwatch:namespace", [C.CANARY_METRICS_NAMESPACE])
    ]
    parameter = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{naming.production_endpoint_parameter(spec)}"
    assert [resolve(doc, r) for r in canary["ReadProductionEndpoint"]["resources"]] == [parameter]
    smoke = statements("smoke_test_lambda")["InvokeDevEndpoint"]
    assert [resolve(doc, r) for r in smoke["resources"]] == [
        f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{naming.endpoint_name(spec, C.DEV_STAGE)}"
    ]
    hooks = statements("hooks_lambda")["RecordProductionEndpoint"]
    assert hooks["actions"] == ["ssm:PutParameter"] and [resolve(doc, r) for r in hooks["resources"]] == [parameter]
    pointer = resources(doc, "aws_ssm_parameter")["monitoring_production_endpoint"]
    assert resolve(doc, pointer["name"]) == naming.production_endpoint_parameter(spec)
    assert pointer["value"] == "none" and pointer["lifecycle"]["ignore_changes"] == ["value"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_probe_role_publishes_synthetics_metrics_and_reads_only_its_models_key(synth: Synth, env: str) -> None:
    """The standing probe calls the API over HTTPS (no endpoint access), puts metrics to CloudWatchSynthetics only,
    reads the model archives' known rows and GetApiKey only of keys tagged with its model."""
    doc = synth.doc(env)
    spec = cfg.ENVIRONMENTS[env].spec(account_id=ACCOUNT, region=REGION)
    statements = {
        s["sid"]: s for s in doc["data"]["aws_iam_policy_document"]["roles_probe_lambda_permissions"]["statement"]
    }
    assert set(statements) == {"FunctionLogs", "PublishSuccessPercent", "ReadKnownRows", "ReadApiKey", "UsePipelineKey"}
    assert not any(a.startswith("sagemaker:") for s in statements.values() for a in s["actions"])
    publish = statements["PublishSuccessPercent"]
    assert publish["actions"] == ["cloudwatch:PutMetricData"]
    assert [(c["variable"], c["values"]) for c in publish["condition"]] == [
        ("cloudwatch:namespace", [C.SYNTHETICS_NAMESPACE])
    ]
    key = statements["ReadApiKey"]
    assert key["actions"] == ["apigateway:GET"]
    assert [resolve(doc, r) for r in key["resources"]] == [f"arn:aws:apigateway:{REGION}::/apikeys/*"]
    assert [(c["variable"], c["values"]) for c in key["condition"]] == [
        (f"aws:ResourceTag/{naming.MODEL_TAG_KEY}", [spec.model_name])
    ]
    assert statements["ReadKnownRows"]["actions"] == ["s3:GetObject"]


# --- Variables, outputs, hand-written files ---------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_variables_and_outputs_are_typed_and_described(synth: Synth, env: str) -> None:
    doc = synth.doc(env)
    vpc_notebook = {"notebook_subnet_id", "notebook_security_group_ids"}
    assert set(doc["variable"]) == {
        "aws_region",
        "notebook_instance_type",
        "approval_email",
        "alarm_email",
        "retrain_schedule",
        "log_retention_days",
    } | (vpc_notebook if cfg.ENVIRONMENTS[env].notebook_in_vpc else set())
    for name, variable in doc["variable"].items():
        assert variable["type"] in ("string", "number", "list(string)"), name
        assert variable["description"].strip() and variable["validation"], name
        # the VPC-mode notebook's network has no sensible default: it is the account's own subnet and groups
        assert ("default" in variable) == (name not in vpc_notebook), name
    assert doc["variable"]["notebook_instance_type"]["default"] == cfg.ENVIRONMENTS[env].notebook_instance_type
    for name, output in doc["output"].items():
        assert output["description"].strip(), name
    assert {
        "data_bucket",
        "artifact_bucket",
        "kms_key_arn",
        "pipeline_name",
        "repository_clone_url_http",
        "notebook_instance_name",
    } <= set(doc["output"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_hand_written_files_match_the_variables(synth: Synth, env: str) -> None:
    variables = synth.doc(env)["variable"]
    tfvars = json.loads((TERRAFORM_DIR / env / "terraform.tfvars.json").read_text(encoding="utf-8"))
    assert set(tfvars) <= set(variables)
    for name, value in tfvars.items():
        kind = variables[name]["type"]
        if kind == "list(string)":
            assert isinstance(value, list) and all(isinstance(item, str) for item in value), name
        else:
            assert isinstance(value, str if kind == "string" else int), name
    assert re.match(REGION_PATTERN, tfvars["aws_region"])
    for name in ("approval_email", "alarm_email"):
        assert tfvars[name] == "" or re.match(EMAIL_PATTERN, tfvars[name])
    assert tfvars["retrain_schedule"] == "" or re.match(SCHEDULE_PATTERN, tfvars["retrain_schedule"])
    assert tfvars["log_retention_days"] in cfg.LOG_RETENTION_DAYS
    backend = (TERRAFORM_DIR / env / "backend.hcl").read_text(encoding="utf-8")
    settings = dict(re.findall(r"^(\w+)\s*=\s*(\S+)", backend, flags=re.M))
    assert set(settings) == {"bucket", "key", "region", "encrypt", "use_lockfile"}
    assert settings["encrypt"] == settings["use_lockfile"] == "true"
    assert f"{C.DEFAULT_MODEL_NAME}-{env}" in settings["key"]


# --- Synthesized files: snapshot, determinism, --check ---------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("file", GENERATED)
def test_committed_output_is_a_fresh_synth(synth: Synth, snapshot: Snapshot, env: str, file: str) -> None:
    snapshot.assert_match(synth.rendered[env][file], TERRAFORM_DIR / env / file)


def test_synthesis_is_deterministic_and_machine_independent(synth: Synth) -> None:
    from cdktf_app.app import synthesize

    assert synthesize() == synth.rendered
    for env, texts in synth.rendered.items():
        text = texts["cdk.tf.json"]
        for leak in (
            str(REPO_ROOT),
            os.path.realpath(os.sep + "tmp"),
            "cdktf.out",
            '"metadata"',
            '"uniqueId"',
            "TfToken",
        ):
            assert leak not in text, (env, leak)
        assert (
            text.endswith("}\n")
            and text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )
        # Only checkov suppressions survive in "//" comments.
        comments = re.findall(r'"//": \{\n\s+"(\w+)"', text)
        assert comments and set(comments) == {"checkov"}


def test_synth_check_names_the_stale_file(synth: Synth, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cdktf_app.__main__ import main
    from cdktf_app.app import write

    assert main(["synth", "--out", str(tmp_path)]) == 0
    assert write(tmp_path, synth.rendered) == []  # the CLI wrote exactly the fresh synth
    assert main(["synth", "--check", "--out", str(tmp_path)]) == 0
    stale = tmp_path / "prod" / "cdk.tf.json"
    stale.write_text(stale.read_text(encoding="utf-8").replace('"prod"', '"production"', 1), encoding="utf-8")
    capsys.readouterr()
    assert main(["synth", "--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"stale: {stale}" in err and "dev/cdk.tf.json" not in err
    (tmp_path / "dev" / "versions.tf").unlink()
    assert main(["synth", "--check", "--out", str(tmp_path), "--env", "dev"]) == 1
    assert "dev/versions.tf" in capsys.readouterr().err


# --- checkov ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkov_results(synth: Synth, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[scan.ScanResult]]:
    try:
        checkov_executable()
    except PolicyToolMissingError as exc:
        pytest.fail(f"{exc} (`make test` provisions .tools/checkov before running the tests)")
    root = tmp_path_factory.mktemp("checkov")
    from cdktf_app.app import write

    write(root, synth.rendered)
    yield scan.scan_roots([root / env for env in ENVIRONMENTS])


def test_checkov_finds_nothing_unjustified(checkov_results: list[scan.ScanResult]) -> None:
    for result in checkov_results:
        assert result.parsing_errors == (), result.summary()
        assert result.passed > 100, result.summary()
        assert result.failed == (), result.summary()
        assert result.unused == (), result.summary()
        assert result.ok
        for finding in result.skipped:
            assert len(finding.justification) > 20, finding


def test_every_inline_suppression_is_justified(synth: Synth) -> None:
    for env in ENVIRONMENTS:
        skips = scan.inline_skips(synth.doc(env))
        assert skips, env
        for address, checks in skips.items():
            for check, comment in checks.items():
                assert re.fullmatch(r"CKV2?_AWS_\d+", check) and len(comment) > 20, (address, check)


def test_suppressions_apply_only_where_written_and_with_a_reason() -> None:
    document = {
        "resource": {
            "aws_s3_bucket": {
                "a": {COMMENT_KEY: {"checkov": {"skip": [{"id": "CKV_AWS_144", "comment": "single region"}]}}},
                "b": {COMMENT_KEY: {"checkov": {"skip": [{"id": "CKV_AWS_18", "comment": " "}]}}},
                "c": {COMMENT_KEY: {"checkov": {"skip": [{"id": "CKV_AWS_21", "comment": "stale"}]}}},
            }
        },
        "data": {"aws_iam_policy_document": {"p": {}}},
    }
    report = {
        "results": {
            "failed_checks": [
                {"check_id": "CKV_AWS_144", "check_name": "replication", "resource": "aws_s3_bucket.a"},
                {"check_id": "CKV_AWS_144", "check_name": "replication", "resource": "aws_s3_bucket.b"},
                {"check_id": "CKV_AWS_18", "check_name": "logging", "resource": "resource.b"},
                {"check_id": "CKV_AWS_111", "check_name": "write", "resource": "data.p"},
            ]
        },
        "summary": {"passed": 5},
    }
    result = scan.evaluate(Path("root"), report, document)
    assert [(f.check_id, f.address[2]) for f in result.skipped] == [("CKV_AWS_144", "a")]
    assert [(f.check_id, f.address[2]) for f in result.failed] == [
        ("CKV_AWS_144", "b"),
        ("CKV_AWS_18", "b"),
        ("CKV_AWS_111", "p"),
    ]
    # An unjustified suppression suppresses nothing: it is reported with the stale one.
    assert result.unused == (
        (("resource", "aws_s3_bucket", "b"), "CKV_AWS_18"),
        (("resource", "aws_s3_bucket", "c"), "CKV_AWS_21"),
    )
    assert not result.ok
    with pytest.raises(scan.ScanError, match="matches 0"):
        scan.locate("aws_s3_bucket.missing", document)


def test_missing_checkov_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(PolicyToolMissingError, match="make test"):
        scan.scan_root(_root_with_document(tmp_path), checkov=tmp_path / "checkov")


def _root_with_document(tmp_path: Path) -> Path:
    (tmp_path / "cdk.tf.json").write_text('{"resource": {}}')
    return tmp_path


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_model_registry_group_is_base_infrastructure(synth: Synth, env: str) -> None:
    """The group outlives the per-model stacks: the training-job stack registers into it, never creates it."""
    doc = synth.doc(env)
    (group,) = resources(doc, "aws_sagemaker_model_package_group").values()
    assert group["model_package_group_name"] == "customerchurn"
    documents = doc["data"]["aws_iam_policy_document"]
    granted = {a for d in documents.values() for s in d.get("statement", []) for a in s.get("actions", [])}
    assert "sagemaker:CreateModelPackageGroup" not in granted and "sagemaker:DeleteModelPackageGroup" not in granted


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_environment_claims_its_account_and_region(synth: Synth, env: str) -> None:
    """Per-model stacks and the registry group are named by model: the claim's precondition refuses a second
    environment of the model in the same account and region at plan time."""
    doc = synth.doc(env)
    claim = resources(doc, "aws_ssm_parameter")["registry_claim"]
    assert claim["name"] == f"/safedeploy/customerchurn/environments/{env}" and claim["value"] == env
    assert claim["type"] == "SecureString" and claim["key_id"] == ref("aws_kms_key", "kms_key", "arn")
    (claims,) = doc["data"]["aws_ssm_parameters_by_path"].values()
    assert claims["path"] == "/safedeploy/customerchurn/environments"
    (precondition,) = claim["lifecycle"]["precondition"]
    names = "data.aws_ssm_parameters_by_path.registry_claims.names"
    expected = "${(length(setsubtract(" + names + ', ["' + claim["name"] + '"])) < 1)}'
    assert precondition["condition"] == expected
    assert f"the {env} environment needs its own account or region" in precondition["error_message"]
    assert '${join(", ", setsubtract(' + names in precondition["error_message"]  # names the claims found
