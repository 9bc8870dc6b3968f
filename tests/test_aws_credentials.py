"""``--target aws`` without usable credentials: a line naming the problem and how to configure, the stage and the
next command, exit 2.

Real processes (``safedeploy run``, ``make deploy``) run with no credentials anywhere (no keys in the environment,
``/dev/null`` as the shared credentials and config files, the instance metadata service off so nothing waits on it);
refused and expired credentials come from a stubbed STS.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.stub import Stubber

from safedeploy import cli
from safedeploy.aws.clients import AwsClients, connect, credentials_problem
from safedeploy.errors import ConfigError
from safedeploy.spec import PipelineSpec
from tests.conftest import REPO_ROOT

ACCOUNT = "123456789012"
CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
)


def _no_credentials(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES and not k.startswith("SAFEDEPLOY_")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_CONFIG_FILE="/dev/null",
        AWS_EC2_METADATA_DISABLED="true",
        **extra,
    )
    return env


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in _no_credentials().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)


def _spec() -> PipelineSpec:
    return PipelineSpec(account_id=ACCOUNT)


def _error(code: str, message: str = "denied") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "GetCallerIdentity")


@pytest.mark.parametrize(
    ("exc", "named"),
    [
        (NoCredentialsError(), "no AWS credentials found"),
        (PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"), "incomplete"),
        (ProfileNotFound(profile="nope"), "AWS profile"),
        (NoRegionError(), "no AWS region"),
        (EndpointConnectionError(endpoint_url="https://sts.amazonaws.com"), "cannot reach AWS"),
        (_error("InvalidClientTokenId", "The security token included in the request is invalid."), "refused"),
        (_error("SignatureDoesNotMatch"), "refused"),
        (_error("ExpiredToken", "The security token included in the request is expired"), "expired"),
    ],
)
def test_each_credentials_problem_is_one_line_saying_how_to_configure(exc: Exception, named: str) -> None:
    line = credentials_problem(exc, _spec())
    assert line is not None and "\n" not in line and named in line
    assert "AWS_PROFILE" in line and f"account {ACCOUNT} in us-east-1" in line
    local = credentials_problem(exc, PipelineSpec())
    assert local is not None and "set account_id in pipeline.toml" in local


def test_other_errors_are_not_credentials_problems() -> None:
    assert credentials_problem(_error("ThrottlingException")) is None
    assert credentials_problem(ValueError("x")) is None


@pytest.mark.parametrize("code", ["InvalidClientTokenId", "ExpiredToken", "SignatureDoesNotMatch"])
def test_connect_turns_refused_credentials_into_one_config_error(code: str) -> None:
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="AKIAX", aws_secret_access_key="wrong")
    clients = AwsClients(session)
    with Stubber(clients.sts) as stub:
        stub.add_client_error("get_caller_identity", code, "no", 403)
        with pytest.raises(ConfigError) as raised:
            connect(_spec(), clients)
    assert code in str(raised.value) and "\n" not in str(raised.value)


def test_connect_refuses_another_accounts_credentials() -> None:
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="AKIAX", aws_secret_access_key="s")
    clients = AwsClients(session)
    with Stubber(clients.sts) as stub:
        arn = "arn:aws:iam::999999999999:user/eve"
        stub.add_response("get_caller_identity", {"Account": "999999999999", "Arn": arn, "UserId": "AIDA"})
        with pytest.raises(ConfigError, match="the credentials are for account 999999999999") as raised:
            connect(_spec(), clients)
    assert "\n" not in str(raised.value) and "AWS_PROFILE" in str(raised.value)


def _cause_stage_next(lines: list[str]) -> str:
    """The CLI's failure: one line naming the problem, the stage (none yet) and the next command; return the first."""
    assert len(lines) == 3, lines
    assert lines[1] == "  stage: before the pipeline started"
    assert lines[2].startswith("  next:  aws sts get-caller-identity  # after configuring as said above")
    return lines[0]


@pytest.mark.usefixtures("no_credentials")
@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--target", "aws"],
        ["status", "--target", "aws", "--all"],
        ["approve", "--target", "aws", "--comment", "ok"],
        ["reject", "--target", "aws", "--comment", "no"],
        ["destroy", "--target", "aws", "--yes", "--keep-base-infra"],
        ["run", "--target", "aws", "--data", "x.csv"],
    ],
)
def test_every_aws_command_without_credentials_names_the_problem_and_exits_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*argv, "--set", f"account_id={ACCOUNT}"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert _cause_stage_next(lines).startswith("error: no AWS credentials found: "), captured.err
    assert "Traceback" not in captured.out


@pytest.mark.usefixtures("no_credentials")
def test_an_unknown_profile_is_named(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    assert cli.main(["status", "--target", "aws", "--set", f"account_id={ACCOUNT}"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert "the AWS profile 'no-such-profile' (AWS_PROFILE)" in _cause_stage_next(lines)


def test_safedeploy_run_without_credentials_names_the_problem_and_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "safedeploy"), "run", "--target", "aws", "--data", "x"],
        env=_no_credentials(SAFEDEPLOY_ACCOUNT_ID=ACCOUNT),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert _cause_stage_next(lines).startswith("error: no AWS credentials found: ")
    assert f"account {ACCOUNT} in us-east-1" in lines[0]


def test_make_deploy_target_aws_without_credentials_names_the_problem_and_exits_2(tmp_path: Path) -> None:
    """Make adds its own ``make: *** [...] Error 2`` after a failed recipe; besides it, safedeploy's failure."""
    stamp = REPO_ROOT / ".venv" / ".synced"
    if not stamp.is_file():
        pytest.skip("the virtualenv was not set up by make (no .venv/.synced)")
    env = _no_credentials(SAFEDEPLOY_ACCOUNT_ID=ACCOUNT)
    for inherited in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS"):  # run as a person would, not as `make test`'s child
        env.pop(inherited, None)
    done = subprocess.run(
        ["make", "-s", "--no-print-directory", "deploy", "TARGET=aws", f"DATA={tmp_path / 'x.csv'}"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    ours = [line for line in done.stderr.splitlines() if not line.startswith("make: *** ")]
    assert _cause_stage_next(ours).startswith("error: no AWS credentials found: "), done.stderr
