"""Least privilege, asserted on what is deployed: the committed ``terraform/<env>/cdk.tf.json`` (kept equal to the
synthesis by ``tests/test_cdktf_app.py``) and the rendered per-model CloudFormation templates.

Each property came from a review of the policies (issue 14, point 7): service principals in the key policy are held
to this account, API Gateway grants to this model's API, bucket-level S3 actions to bucket ARNs and object-level
ones to object ARNs, the production notebook has no direct internet access, and a model whose code ships in its
archive runs network-isolated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdktf_app import config as cfg
from cdktf_app.cloudformation_grants import MODEL_TAG
from safedeploy import naming
from safedeploy.cloudformation.endpoints import network_isolation

REPO_ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = tuple(cfg.ENVIRONMENTS)
ACCOUNT_EXPR = "${data.aws_caller_identity.current.account_id}"
BUCKET_ACTIONS = {"s3:ListBucket", "s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:ListBucketVersions"}
OBJECT_ACTIONS = {"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"}


def _doc(env: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((REPO_ROOT / "terraform" / env / "cdk.tf.json").read_text(encoding="utf-8"))
    return doc


def _statements(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, document in doc["data"]["aws_iam_policy_document"].items():
        for statement in document["statement"]:
            yield f"{name}/{statement.get('sid')}", statement


def _conditions(statement: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    return {c["variable"]: (c["test"], c["values"]) for c in statement.get("condition", [])}


def _is_object_arn(arn: str) -> bool:
    """``arn:aws:s3:::<bucket>/<key>`` (Terraform expressions in the bucket name removed first)."""
    plain = re.sub(r"\$\{[^}]*\}", "X", arn)
    return "/" in plain.removeprefix("arn:aws:s3:::")


def _is_s3_arn(arn: str) -> bool:
    return arn.startswith("arn:aws:s3:::") or (arn.startswith("${aws_s3_bucket.") and arn.endswith((".arn}", "/*")))


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_key_policy_holds_cloudwatch_and_eventbridge_to_this_account(env: str) -> None:
    statements = _doc(env)["data"]["aws_iam_policy_document"]["kms_policy"]["statement"]
    services = {
        identifier: statement
        for statement in statements
        for principal in statement.get("principals", [])
        if principal["type"] == "Service"
        for identifier in principal["identifiers"]
    }
    for service, source_arn in (("cloudwatch.amazonaws.com", ":alarm:*"), ("events.amazonaws.com", ":rule/*")):
        statement = services[service]
        assert [p["identifiers"] for p in statement["principals"]] == [[service]], "one service per statement"
        conditions = _conditions(statement)
        assert conditions["aws:SourceAccount"] == ("StringEquals", [ACCOUNT_EXPR]), service
        test, arns = conditions["aws:SourceArn"]
        assert test == "ArnLike" and len(arns) == 1 and arns[0].endswith(source_arn) and ACCOUNT_EXPR in arns[0]
    logs = next(s for name, s in services.items() if name.startswith("logs."))
    # CloudWatch Logs is held by the encryption context: only this account's (and region's) log groups
    (test, [arn]) = _conditions(logs)["kms:EncryptionContext:aws:logs:arn"]
    assert test == "ArnLike" and ACCOUNT_EXPR in arn


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_api_gateway_grants_reach_only_this_models_api(env: str) -> None:
    model = cfg.ENVIRONMENTS[env].model_name
    found = 0
    for where, statement in _statements(_doc(env)):
        actions = [a for a in statement["actions"] if a.startswith("apigateway:")]
        if not actions:
            continue
        found += 1
        assert "apigateway:*" not in actions and "*" not in statement["resources"], where
        assert all(r.startswith("arn:aws:apigateway:") for r in statement["resources"]), where
        conditions = _conditions(statement)
        tags = {key: value for key, value in conditions.items() if key.endswith(f"Tag/{MODEL_TAG}")}
        assert tags, f"{where}: API Gateway actions without the {MODEL_TAG} tag condition"
        for key, (test, values) in tags.items():
            assert test == "StringEquals" and values == [model], where
            creates = key.startswith("aws:RequestTag/")
            # a new resource is POSTed to a collection with the tag; everything else acts on tagged resources
            assert creates == (
                actions == ["apigateway:POST"]
                and all(re.fullmatch(r".*::/(restapis|apikeys|usageplans)", r) for r in statement["resources"])
            ), where
    assert found >= 8


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_bucket_actions_on_bucket_arns_and_object_actions_on_object_arns(env: str) -> None:
    checked = 0
    for where, statement in _statements(_doc(env)):
        if statement.get("effect") == "Deny":
            continue
        s3 = [r for r in statement.get("resources", []) if _is_s3_arn(r)]
        actions = set(statement["actions"])
        if actions & BUCKET_ACTIONS:
            checked += 1
            assert not actions & OBJECT_ACTIONS, f"{where}: bucket and object actions in one statement"
            assert s3 and not any(_is_object_arn(r) for r in s3), f"{where}: {sorted(actions)} on {s3}"
        if actions & OBJECT_ACTIONS:
            assert s3 and all(_is_object_arn(r) for r in s3), f"{where}: {sorted(actions)} on {s3}"
    assert checked >= 6


def test_the_object_arn_check_reads_terraform_expressions() -> None:
    assert not _is_object_arn("arn:aws:s3:::customerchurn-dev-data-${data.aws_caller_identity.current.account_id}")
    assert _is_object_arn("arn:aws:s3:::customerchurn-dev-data-${data.aws_region.current.name}/customerchurn/*")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_production_notebook_has_no_direct_internet_access(env: str) -> None:
    doc = _doc(env)
    notebook = doc["resource"]["aws_sagemaker_notebook_instance"]["notebook_instance"]
    skips = {s["id"] for s in notebook.get("//", {}).get("checkov", {}).get("skip", [])}
    if cfg.ENVIRONMENTS[env].notebook_in_vpc:
        assert notebook["direct_internet_access"] == "Disabled"
        assert notebook["subnet_id"] == "${var.notebook_subnet_id}"
        assert notebook["security_groups"] == "${var.notebook_security_group_ids}"
        assert not skips & {"CKV_AWS_122", "CKV_AWS_306"}, "nothing to justify in VPC mode"
        for name in ("notebook_subnet_id", "notebook_security_group_ids"):
            variable = doc["variable"][name]
            assert variable["type"] in ("string", "list(string)") and variable["description"] and variable["validation"]
            assert "default" not in variable, f"{name}: the account's own network, never a default"
    else:
        assert notebook["direct_internet_access"] == "Enabled"
        assert "subnet_id" not in notebook
        assert skips == {"CKV_AWS_122", "CKV_AWS_306"}, "dev's direct access is justified inline"
    assert notebook["root_access"] == "Disabled"
    assert cfg.ENVIRONMENTS["prod"].notebook_in_vpc and not cfg.ENVIRONMENTS["dev"].notebook_in_vpc


@pytest.mark.parametrize(
    ("submit_directory", "isolated"),
    [
        ("s3://bucket/customerchurn/training-jobs/job/source/sourcedir.tar.gz", False),
        ("/opt/ml/model/code", True),
        ("/opt/ml/model", True),
        ("/opt/ml/modelx/code", False),
        ("file:///opt/ml/model/code", False),
    ],
)
def test_network_isolation_exactly_when_the_code_ships_in_the_model_archive(
    submit_directory: str, isolated: bool
) -> None:
    assert network_isolation(submit_directory) is isolated


def test_rendered_models_are_isolated_or_justify_why_not(tmp_path: Path) -> None:
    from tests.test_templates import render

    stacks = render(tmp_path)
    models = [
        resource
        for documents in stacks.values()
        for resource in documents.template["Resources"].values()
        if resource["Type"] == "AWS::SageMaker::Model"
    ]
    assert len(models) == 2  # dev and production
    for model in models:
        properties = model["Properties"]
        submit = properties["PrimaryContainer"]["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"]
        submit = submit if isinstance(submit, str) else json.dumps(submit)
        skips = {s["id"] for s in model.get("Metadata", {}).get("checkov", {}).get("skip", [])}
        if network_isolation(submit):
            assert properties["EnableNetworkIsolation"] is True and "CKV_AWS_370" not in skips
        else:  # today: the code is sourcedir.tar.gz in S3, downloaded by the container itself
            assert "EnableNetworkIsolation" not in properties and "CKV_AWS_370" in skips
            assert submit.startswith(("s3://", '{"Fn::Sub": "s3://'))


def test_model_tag_key_is_the_stacks_tag() -> None:
    assert MODEL_TAG == naming.MODEL_TAG_KEY == "safedeploy:model"


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("role", ["sagemaker", "notebook", "monitor", "hooks_lambda"])
def test_model_roles_reach_only_the_models_objects(env: str, role: str) -> None:
    """Every key these roles touch is under ``<model>/`` (safedeploy.naming): nothing else in the buckets."""
    model = cfg.ENVIRONMENTS[env].model_name
    document = _doc(env)["data"]["aws_iam_policy_document"][f"roles_{role}_permissions"]
    objects = [
        arn
        for statement in document["statement"]
        if set(statement["actions"]) & OBJECT_ACTIONS
        for arn in statement["resources"]
    ]
    assert objects
    for arn in objects:
        assert re.sub(r"\$\{[^}]*\}", "X", arn).split("/", 1)[1].startswith(f"{model}/"), arn
    if role == "sagemaker":
        writes = [s for s in document["statement"] if "s3:PutObject" in s["actions"]]
        assert [r for s in writes for r in s["resources"]] == [
            arn for arn in objects if "-artifacts-" in arn and arn.endswith(f"/{model}/*")
        ][:1], "SageMaker writes only the artifact bucket"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_step_functions_invokes_no_lambda_unless_a_state_machine_does(env: str, tmp_path: Path) -> None:
    from tests.test_templates import render

    definitions = [
        json.dumps(resource["Properties"])
        for documents in render(tmp_path).values()
        for resource in documents.template["Resources"].values()
        if resource["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    assert len(definitions) >= 2
    invokes_lambda = any("arn:aws:states:::lambda" in d or ":lambda:" in d for d in definitions)
    statements = _doc(env)["data"]["aws_iam_policy_document"]["roles_stepfunctions_permissions"]["statement"]
    granted = any("lambda:InvokeFunction" in s["actions"] for s in statements)
    assert granted == invokes_lambda


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_scalable_target_grants_are_held_to_sagemaker_variants(env: str) -> None:
    for where, statement in _statements(_doc(env)):
        if not any(a.startswith("application-autoscaling:") for a in statement["actions"]):
            continue
        conditions = _conditions(statement)
        assert conditions["application-autoscaling:service-namespace"] == ("StringEquals", ["sagemaker"]), where
        assert conditions["application-autoscaling:scalable-dimension"] == (
            "StringEquals",
            ["sagemaker:variant:DesiredInstanceCount"],
        ), where
