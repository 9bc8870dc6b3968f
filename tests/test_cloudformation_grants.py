"""The CloudFormation role's grants are a table keyed by resource type: every type a per-model stack creates has an
entry, no entry outlives its type, and the synthesized role holds exactly the table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cdktf_app import config as cfg
from cdktf_app.cloudformation_grants import (
    MODEL_MONITOR_TYPES,
    CloudFormationGrants,
    created_types,
    serverless_function_types,
)
from cdktf_app.names import ACCOUNT_PLACEHOLDER, REGION_PLACEHOLDER, TerraformNames
from tests.test_templates import render

REPO_ROOT = Path(__file__).resolve().parents[1]
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "custom-codedeploy": {"production.strategy": "Custom", "production.custom_steps": [[20, 120], [100, 0]]},
    "linear-codedeploy": {"production.strategy": "Linear10PercentEvery1Minute"},
    "guardrails": {"production.strategy": "CANARY"},
    "all-at-once": {"production.strategy": "AllAtOnce"},
    "model-monitor": {"monitoring.use_model_monitor": True},
}
"""Spec variants that change which resource types the stacks emit."""


def _grants(use_model_monitor: bool) -> dict[str, Any]:
    names = TerraformNames.for_config(cfg.ENVIRONMENTS["dev"], account_id=ACCOUNT_PLACEHOLDER, region="us-east-1")
    table = CloudFormationGrants(names, key_arn="arn:aws:kms:key", artifacts_arn="arn:aws:s3:::artifacts")
    return table.by_type(use_model_monitor=use_model_monitor)


def _emitted(tmp_path: Path, overrides: dict[str, Any]) -> set[str]:
    stacks = render(tmp_path, **overrides)
    assert list(stacks) == ["training-job", "suggest-baseline", "deploy-dev", "deploy-prd"]
    return {kind for documents in stacks.values() for kind in created_types(documents.template)}


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    return {name: _emitted(tmp_path_factory.mktemp(name), overrides) for name, overrides in VARIANTS.items()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_resource_type_the_stacks_create_is_granted(emitted: dict[str, set[str]], variant: str) -> None:
    use_model_monitor = bool(VARIANTS[variant].get("monitoring.use_model_monitor"))
    table = _grants(use_model_monitor)
    missing = emitted[variant] - set(table)
    assert not missing, f"resource types with no grants in cdktf_app/cloudformation_grants.py: {sorted(missing)}"
    assert (emitted[variant] >= MODEL_MONITOR_TYPES) == use_model_monitor


def test_no_grant_for_a_type_no_stack_creates(emitted: dict[str, set[str]]) -> None:
    every = set().union(*emitted.values())
    unused = set(_grants(use_model_monitor=True)) - every
    assert not unused, f"grants for resource types no stack variant creates: {sorted(unused)}"
    # and without Model Monitor, its types have no grants at all
    assert not set(_grants(use_model_monitor=False)) & MODEL_MONITOR_TYPES


def test_serverless_functions_count_as_what_sams_transform_creates() -> None:
    assert serverless_function_types({"Role": "r", "AutoPublishAlias": "live", "DeploymentPreference": {}}) == (
        "AWS::Lambda::Function",
        "AWS::Lambda::Version",
        "AWS::Lambda::Alias",
        "AWS::CodeDeploy::Application",
        "AWS::CodeDeploy::DeploymentGroup",
    )
    assert serverless_function_types({"Role": "r"}) == ("AWS::Lambda::Function",)
    with pytest.raises(ValueError, match="IAM role"):
        serverless_function_types({})
    assert serverless_function_types({"Role": "r", "Events": {"EveryMinute": {"Type": "Schedule"}}}) == (
        "AWS::Lambda::Function",
        "AWS::Events::Rule",
        "AWS::Lambda::Permission",
    )
    with pytest.raises(ValueError, match=r"event Api .* is not a Schedule"):
        serverless_function_types({"Role": "r", "Events": {"Api": {"Type": "Api"}}})


def _role_statements(env: str) -> Iterator[dict[str, Any]]:
    doc = json.loads((REPO_ROOT / "terraform" / env / "cdk.tf.json").read_text(encoding="utf-8"))
    yield from doc["data"]["aws_iam_policy_document"]["roles_cloudformation_permissions"]["statement"]


@pytest.mark.parametrize("env", tuple(cfg.ENVIRONMENTS))
def test_the_synthesized_role_is_exactly_the_table(env: str) -> None:
    config = cfg.ENVIRONMENTS[env]
    names = TerraformNames.for_config(config, account_id=ACCOUNT_PLACEHOLDER, region=REGION_PLACEHOLDER)
    grants = CloudFormationGrants(names, key_arn="k", artifacts_arn="a")
    expected = {
        g.sid: sorted(g.actions)
        for g in grants.statements(use_model_monitor=config.spec().monitoring.use_model_monitor)
    }
    actual = {s["sid"]: sorted(s["actions"]) for s in _role_statements(env)}
    assert actual == expected
    for statement in _role_statements(env):
        actions = statement["actions"]
        assert not any(a == "*" or a.endswith(":*") for a in actions), statement["sid"]
