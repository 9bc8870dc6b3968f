"""``make plan``: plan a synthesized environment, against AWS when credentials exist, else against moto.

The synthesized root (``terraform/<env>/``) is copied to ``build/terraform/<env>/`` and planned there, so the
reviewed directory never gets ``.terraform`` state. Against moto the copy gets two override files: a local
backend, and the provider pointed at the moto server with fake credentials. The saved plan (``tfplan``), its
JSON (``plan.json``) and a summary by resource type (``plan-summary.md``) are written beside it.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from safedeploy.atomic import atomic_write_bytes, atomic_write_text
from safedeploy.infra.plan_summary import PlanSummary
from safedeploy.infra.terraform_cli import Terraform, find_provider_mirror, find_terraform, terraform_env, working_copy

MOTO_SERVICES = (
    "apigateway",
    "cloudwatch",
    "codebuild",
    "codecommit",
    "codepipeline",
    "events",
    "iam",
    "kms",
    "lambda",
    "logs",
    "s3",
    "sagemaker",
    "sfn",
    "sns",
    "sqs",
    "ssm",
    "sts",
)
"""Provider endpoints redirected to the moto server (every service the base infrastructure uses)."""
TEST_REGION = "us-east-1"


@dataclass(frozen=True)
class PlanResult:
    """Where a plan was written and what it does."""

    workdir: Path
    plan_file: Path
    summary: PlanSummary
    against: str


def moto_overrides(endpoint: str, region: str = TEST_REGION) -> dict[str, object]:
    """Override files that plan against a moto server: local state, provider at ``endpoint``, fake keys."""
    provider = {
        "region": region,
        "access_key": "testing",
        "secret_key": "testing",  # moto's fake credentials
        "skip_credentials_validation": True,
        "skip_metadata_api_check": True,
        "skip_region_validation": True,
        "s3_use_path_style": True,
        "endpoints": [{service: endpoint for service in MOTO_SERVICES}],
    }
    return {
        "zz_backend_override.tf.json": {"terraform": {"backend": {"local": {"path": "terraform.tfstate"}}}},
        "zz_provider_override.tf.json": {"provider": {"aws": [provider]}},
    }


@contextmanager
def moto_server() -> Iterator[str]:
    """An empty moto server on 127.0.0.1 (a free port) for the duration of the block; yields its URL.

    moto's in-process server keeps its state in the process's global backends, shared by every server the process
    starts: the state is reset when the block starts and when it ends, so no block sees another's resources.
    """
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    _serve_state_machine_validation()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        _reset_moto(url)
        yield url
        _reset_moto(url)
    finally:
        server.stop()


def _serve_state_machine_validation() -> None:
    """Answer Step Functions' ``ValidateStateMachineDefinition``, which moto 5.2's server leaves unimplemented.

    The AWS provider (5.x) validates every ``aws_sfn_state_machine`` definition with it while planning and retries a
    500 for minutes. moto ships the static analyser behind AWS's answer (its ``parser`` package, from LocalStack, whose
    provider module needs LocalStack itself); this routes the action to that analyser, answering in the API's shape
    (``result`` OK or FAIL, ``diagnostics``), so a broken definition still fails the plan with the analyser's message.
    """
    from moto.stepfunctions.parser.asl.static_analyser.express_static_analyser import ExpressStaticAnalyser
    from moto.stepfunctions.parser.asl.static_analyser.static_analyser import StaticAnalyser
    from moto.stepfunctions.responses import StepFunctionResponse

    if hasattr(StepFunctionResponse, "validate_state_machine_definition"):
        return

    def validate_state_machine_definition(self: StepFunctionResponse) -> str:
        express = self._get_param("type") == "EXPRESS"
        analyser = ExpressStaticAnalyser() if express else StaticAnalyser()
        try:
            analyser.analyse(self._get_param("definition"))
        except Exception as exc:
            diagnostic = {"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED", "message": repr(exc)}
            return json.dumps({"result": "FAIL", "diagnostics": [diagnostic], "truncated": False})
        return json.dumps({"result": "OK", "diagnostics": [], "truncated": False})

    StepFunctionResponse.validate_state_machine_definition = validate_state_machine_definition  # type: ignore[attr-defined]


def _reset_moto(url: str) -> None:
    """Empty every moto backend of this process (moto's ``/moto-api/reset``)."""
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST", data=b"")  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own loopback server
        response.read()


def has_aws_credentials() -> bool:
    """Whether boto3's default chain finds credentials (environment, profile, SSO, instance role)."""
    import boto3

    return boto3.Session().get_credentials() is not None


def _plan(tf: Terraform, source: Path, backend_config: Path | None, against: str) -> tuple[Path, PlanSummary]:
    init = ["init", "-input=false", "-no-color", "-reconfigure"]
    if backend_config is not None:
        init.append(f"-backend-config={backend_config}")
    tf.run(*init)
    args = ["plan", "-input=false", "-no-color", "-out=tfplan"]
    tfvars = source / "terraform.tfvars.json"
    if tfvars.is_file():
        args.append(f"-var-file={tfvars.name}")
    tf.run(*args)
    shown = tf.run("show", "-json", "-no-color", "tfplan")
    atomic_write_bytes(tf.workdir / "plan.json", shown.encode("utf-8"))
    summary = PlanSummary.from_plan_json(json.loads(shown))
    record = {**summary.as_dict(), "against": against}
    atomic_write_text(tf.workdir / "plan-summary.json", json.dumps(record, indent=2) + "\n")
    return tf.workdir / "tfplan", summary


def plan_environment(source: Path, build_dir: Path, *, against: str = "auto") -> PlanResult:
    """Plan the root configuration ``source`` (``terraform/<env>``) in ``build_dir``.

    Args:
        source: The synthesized root (``cdk.tf.json``, ``terraform.tfvars.json``, ``backend.hcl``).
        build_dir: Working copy; ``.terraform`` is kept there between runs.
        against: ``aws`` (the real backend from ``backend.hcl``), ``moto``, or ``auto`` (aws if credentials exist).

    Raises:
        TerraformUnavailableError: no terraform CLI.
        TerraformFailedError: init or plan failed (the message carries terraform's output).
    """
    if not (source / "cdk.tf.json").is_file():
        raise FileNotFoundError(f"{source}/cdk.tf.json does not exist: run `make synth` first")
    binary = find_terraform()
    target = ("aws" if has_aws_credentials() else "moto") if against == "auto" else against
    if target not in ("aws", "moto"):
        raise ValueError(f"against must be aws, moto or auto, not {against!r}")
    mirror = find_provider_mirror()
    if target == "aws":
        workdir = working_copy(source, build_dir)
        tf = Terraform(binary, workdir, terraform_env(workdir, mirror))
        backend = source / "backend.hcl"
        plan_file, summary = _plan(tf, source, backend.resolve() if backend.is_file() else None, "aws")
        return PlanResult(workdir, plan_file, summary, "aws")
    with moto_server() as endpoint:
        workdir = working_copy(source, build_dir, moto_overrides(endpoint))
        tf = Terraform(binary, workdir, {**terraform_env(workdir, mirror), "AWS_EC2_METADATA_DISABLED": "true"})
        (workdir / "terraform.tfstate").unlink(missing_ok=True)  # each moto server starts empty
        plan_file, summary = _plan(tf, source, None, "moto")
    return PlanResult(workdir, plan_file, summary, f"moto ({endpoint})")


def apply_saved_plan(workdir: Path) -> str:
    """``terraform apply`` the plan ``make plan`` saved in ``workdir``: exactly what was reviewed, nothing else.

    Raises:
        ValueError: there is no saved plan, or it was planned against moto (not an account).
        TerraformUnavailableError, TerraformFailedError: as for planning.
    """
    record_file = workdir / "plan-summary.json"
    if not (workdir / "tfplan").is_file() or not record_file.is_file():
        raise ValueError(f"no saved plan in {workdir}: run `make plan` first and review it")
    record = json.loads(record_file.read_text(encoding="utf-8"))
    if record.get("against") != "aws":
        raise ValueError(
            f"the plan in {workdir} was made against {record.get('against')}, not an AWS account: with credentials "
            "for the target account, run `make plan` again, review it, then apply"
        )
    tf = Terraform(find_terraform(), workdir, terraform_env(workdir, find_provider_mirror()))
    return tf.run("apply", "-input=false", "-no-color", "tfplan", timeout_s=3600)
