"""The synthesized Terraform against the terraform CLI: validate, and `make plan` against a moto server.

Those two need the terraform CLI and a provider mirror (this machine image has both; a user's fresh machine
usually has neither) and skip with the reason otherwise. The plan summary, overrides and CLI discovery are
tested everywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from safedeploy.infra.plan import MOTO_SERVICES, apply_saved_plan, moto_overrides, moto_server, plan_environment
from safedeploy.infra.plan_summary import PlanSummary
from safedeploy.infra.terraform_cli import (
    MIRROR_ENV,
    Terraform,
    TerraformFailedError,
    TerraformUnavailableError,
    find_provider_mirror,
    find_terraform,
    terraform_env,
    working_copy,
    write_cli_config,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = ("dev", "prod")


def _cli_or_skip() -> Path:
    try:
        binary = find_terraform()
    except TerraformUnavailableError as exc:
        pytest.skip(f"no terraform CLI on this machine: {exc}")
    if find_provider_mirror() is None:
        pytest.skip(
            f"no hashicorp/aws provider mirror (set ${MIRROR_ENV} or use /opt/tf-plugins); offline init cannot "
            "install the provider"
        )
    return binary


def test_plan_summary_counts_actions_by_type() -> None:
    plan = {
        "format_version": "1.2",
        "resource_changes": [
            {"mode": "managed", "type": "aws_s3_bucket", "change": {"actions": ["create"]}},
            {"mode": "managed", "type": "aws_s3_bucket", "change": {"actions": ["create"]}},
            {"mode": "managed", "type": "aws_kms_key", "change": {"actions": ["update"]}},
            {"mode": "managed", "type": "aws_iam_role", "change": {"actions": ["delete", "create"]}},
            {"mode": "managed", "type": "aws_sns_topic", "change": {"actions": ["delete"]}},
            {"mode": "managed", "type": "aws_sns_topic", "change": {"actions": ["no-op"]}},
            {"mode": "data", "type": "aws_caller_identity", "change": {"actions": ["read"]}},
        ],
    }
    summary = PlanSummary.from_plan_json(plan)
    assert summary.totals == {"create": 2, "update": 1, "replace": 1, "delete": 1}
    assert summary.by_type == {
        "aws_iam_role": {"replace": 1},
        "aws_kms_key": {"update": 1},
        "aws_s3_bucket": {"create": 2},
        "aws_sns_topic": {"delete": 1},
    }
    assert summary.headline() == "Plan: 2 to add, 1 to change, 1 to destroy (1 to replace)"
    table = summary.markdown("dev")
    assert "| aws_s3_bucket | 2 | 0 | 0 | 0 |" in table
    assert summary.as_dict()["totals"] == {"add": 2, "change": 1, "replace": 1, "destroy": 1}


def test_plan_summary_rejects_what_is_not_a_plan() -> None:
    with pytest.raises(ValueError, match="not a terraform JSON plan"):
        PlanSummary.from_plan_json({"resources": []})


def test_moto_overrides_point_every_service_at_the_server_with_local_state() -> None:
    files = moto_overrides("http://127.0.0.1:5555")
    provider = files["zz_provider_override.tf.json"]["provider"]["aws"][0]  # type: ignore[index]
    assert provider["endpoints"][0] == {s: "http://127.0.0.1:5555" for s in MOTO_SERVICES}
    assert provider["skip_credentials_validation"] is True
    assert files["zz_backend_override.tf.json"] == {"terraform": {"backend": {"local": {"path": "terraform.tfstate"}}}}


def test_cli_config_installs_hashicorp_providers_from_the_mirror(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "registry.terraform.io" / "hashicorp" / "aws" / "5.100.0").mkdir(parents=True)
    os.environ[MIRROR_ENV] = str(mirror)
    try:
        assert find_provider_mirror() == mirror
    finally:
        del os.environ[MIRROR_ENV]
    text = write_cli_config(tmp_path / "rc", mirror).read_text()
    assert f'path    = "{mirror}"' in text and "direct" in text and "exclude" in text


def test_working_copy_leaves_the_reviewed_directory_untouched(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "cdk.tf.json").write_text("{}")
    (src / ".terraform").mkdir()
    dest = working_copy(src, tmp_path / "work", {"zz_override.tf.json": {"a": 1}})
    assert sorted(p.name for p in dest.iterdir()) == ["cdk.tf.json", "zz_override.tf.json"]
    working_copy(src, dest)  # a later run without overrides drops them
    assert sorted(p.name for p in dest.iterdir()) == ["cdk.tf.json"]
    assert sorted(p.name for p in src.iterdir()) == [".terraform", "cdk.tf.json"]


def test_plan_without_a_terraform_cli_says_so_and_still_succeeds(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(Path(sys.executable).parent), "TERRAFORM": ""}
    done = subprocess.run(
        [sys.executable, "scripts/plan.py", "--env", "dev", "--no-synth"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "terraform CLI is not installed" in done.stdout
    assert "synthesized terraform/dev/cdk.tf.json" in done.stdout


def test_plan_of_an_unknown_environment_is_a_clear_error() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/plan.py", "--env", "staging", "--no-synth"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "no synthesized environment 'staging'" in done.stderr and "dev" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_terraform_validate_passes(env: str, tmp_path: Path) -> None:
    binary = _cli_or_skip()
    source = REPO_ROOT / "terraform" / env
    assert (source / "cdk.tf.json").is_file(), f"{source} has no synthesized configuration: run `make synth`"
    workdir = working_copy(source, tmp_path / env)
    tf = Terraform(binary, workdir, terraform_env(workdir, find_provider_mirror()))
    tf.run("init", "-backend=false", "-input=false", "-no-color")
    result = json.loads(tf.run("validate", "-json", "-no-color"))
    assert result["valid"] is True, result["diagnostics"]
    assert result["error_count"] == 0


@pytest.mark.slow
def test_make_plan_against_moto_produces_a_saved_plan(tmp_path: Path) -> None:
    _cli_or_skip()
    result = plan_environment(REPO_ROOT / "terraform" / "dev", tmp_path / "dev", against="moto")
    assert result.plan_file.is_file() and result.plan_file.stat().st_size > 0
    assert result.against.startswith("moto")
    totals = result.summary.totals
    assert totals["create"] > 20 and totals["update"] == totals["delete"] == totals["replace"] == 0
    for rtype in ("aws_kms_key", "aws_s3_bucket", "aws_codepipeline", "aws_codebuild_project", "aws_iam_role"):
        assert result.summary.by_type.get(rtype, {}).get("create", 0) >= 1, rtype
    plan = json.loads((result.workdir / "plan.json").read_text())
    buckets = [
        rc["change"]["after"].get("bucket")
        for rc in plan["resource_changes"]
        if rc["type"] == "aws_s3_bucket" and rc["mode"] == "managed"
    ]
    # moto's account and region flow into the namespaced names, as a real account's would
    assert "customerchurn-dev-data-123456789012-us-east-1" in buckets
    assert not any(p.name.startswith(".terraform") for p in (REPO_ROOT / "terraform" / "dev").iterdir())
    # a plan against moto describes no account: `make apply` refuses it
    assert json.loads((result.workdir / "plan-summary.json").read_text())["against"] == "moto"
    with pytest.raises(ValueError, match="made against moto, not an AWS account"):
        apply_saved_plan(result.workdir)


@pytest.mark.slow
def test_a_second_environment_in_the_same_account_and_region_fails_at_plan(tmp_path: Path) -> None:
    """prod's per-model stacks would be dev's (both ``customerchurn-training-job``...): dev's claim stops prod's plan."""
    import boto3

    binary = _cli_or_skip()
    with moto_server() as endpoint:
        ssm = boto3.client(
            "ssm", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )  # fmt: skip
        ssm.put_parameter(Name="/safedeploy/customerchurn/environments/prod", Value="prod", Type="String")
        workdir = working_copy(REPO_ROOT / "terraform" / "prod", tmp_path / "prod", moto_overrides(endpoint))
        tf = Terraform(
            binary, workdir, {**terraform_env(workdir, find_provider_mirror()), "AWS_EC2_METADATA_DISABLED": "true"}
        )
        tf.run("init", "-input=false", "-no-color")
        plan = ("plan", "-input=false", "-no-color", "-var-file=terraform.tfvars.json", "-out=tfplan")
        tf.run(*plan)  # its own claim (a re-plan of prod) is no obstacle
        ssm.put_parameter(Name="/safedeploy/customerchurn/environments/dev", Value="dev", Type="String")
        with pytest.raises(TerraformFailedError) as failed:
            tf.run(*plan)
    message = " ".join(str(failed.value).split())
    assert "another environment of customerchurn already lives in this account and region" in message
    assert "(SSM /safedeploy/customerchurn/environments/dev)" in message
    assert "the prod environment needs its own account or region" in message


def test_apply_needs_a_saved_plan(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no saved plan.*make plan"):
        apply_saved_plan(tmp_path)
