"""``safedeploy destroy``: the AWS stacks (moto CloudFormation; Stubber for failed deletes), the base
infrastructure's ``terraform destroy`` (an injected runner), the local runtime and state, and the confirmation."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.stub import Stubber
from moto import mock_aws

from safedeploy import cli, naming
from safedeploy.aws import cleanup
from safedeploy.aws.clients import AwsClients, verify_account
from safedeploy.errors import ConfigError
from safedeploy.local import daemon
from safedeploy.locking import exclusive_lock
from safedeploy.runtime.paths import RuntimePaths
from safedeploy.spec import PipelineSpec

ACCOUNT = "123456789012"  # moto's account
TEMPLATE = json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}})
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _spec(tmp_path: Path, **fields: Any) -> PipelineSpec:
    return PipelineSpec(**{"account_id": ACCOUNT, "state_dir": tmp_path / "state", **fields})


def _session() -> boto3.Session:
    return boto3.Session(region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def aws() -> Iterator[AwsClients]:
    with mock_aws():
        yield AwsClients(_session())


class _Clock:
    """A fake monotonic clock that sleeping advances."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _create(aws: AwsClients, spec: PipelineSpec, kinds: Sequence[str] = naming.STACK_KINDS) -> dict[str, str]:
    return {
        kind: aws.cloudformation.create_stack(StackName=naming.stack_name(spec, kind), TemplateBody=TEMPLATE)["StackId"]
        for kind in kinds
    }


def _record_deletes(aws: AwsClients) -> list[str]:
    deleted: list[str] = []

    def record(params: dict[str, Any], **kwargs: Any) -> None:
        deleted.append(params["StackName"])

    aws.cloudformation.meta.events.register("provide-client-params.cloudformation.DeleteStack", record)
    return deleted


def _live_stacks(aws: AwsClients) -> set[str]:
    return {s["StackName"] for s in aws.cloudformation.describe_stacks()["Stacks"]}


# --- AWS stacks on moto ------------------------------------------------------------------------------------------


def test_destroy_deletes_the_stacks_in_order_and_a_rerun_finds_them_absent(tmp_path: Path, aws: AwsClients) -> None:
    spec = _spec(tmp_path)
    ids = _create(aws, spec)
    other = aws.cloudformation.create_stack(StackName="othermodel-deploy-prd", TemplateBody=TEMPLATE)["StackId"]
    deleted = _record_deletes(aws)
    seen: list[str] = []
    outcomes = cleanup.destroy_stacks(aws.cloudformation, spec, progress=lambda o: seen.append(o.kind))
    assert deleted == [ids[kind] for kind in naming.DESTROY_ORDER]  # by stack id, deploy-prd first
    assert [(o.kind, o.stack_name, o.result) for o in outcomes] == [
        ("deploy-prd", "customerchurn-deploy-prd", "deleted"),
        ("deploy-dev", "customerchurn-deploy-dev", "deleted"),
        ("training-job", "customerchurn-training-job", "deleted"),
        ("suggest-baseline", "customerchurn-suggest-baseline", "deleted"),
    ]
    assert seen == list(naming.DESTROY_ORDER)
    assert _live_stacks(aws) == {"othermodel-deploy-prd"}  # another model's stack is not touched
    assert aws.cloudformation.describe_stacks(StackName=other)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"

    again = cleanup.destroy_stacks(aws.cloudformation, spec)
    assert [o.result for o in again] == ["absent"] * 4
    assert deleted == [ids[kind] for kind in naming.DESTROY_ORDER]  # nothing deleted twice


def test_only_the_stacks_that_exist_are_deleted(tmp_path: Path, aws: AwsClients) -> None:
    spec = _spec(tmp_path, model_name="churn2")
    _create(aws, spec, ["training-job", "deploy-dev"])
    outcomes = cleanup.destroy_stacks(aws.cloudformation, spec)
    assert {o.kind: o.result for o in outcomes} == {
        "deploy-prd": "absent",
        "deploy-dev": "deleted",
        "training-job": "deleted",
        "suggest-baseline": "absent",
    }


def _fail_delete_of(aws: AwsClients, stack_id: str, times: int = 1) -> None:
    """Fault injection on moto: DeleteStack of ``stack_id`` is refused ``times`` times (the others go to moto)."""
    remaining = [times]

    def note(params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        context["refuse"] = params.get("StackName") == stack_id and remaining[0] > 0

    def refuse(context: dict[str, Any], **kwargs: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not context.get("refuse"):
            return None
        remaining[0] -= 1
        message = f"Stack [{stack_id}] cannot be deleted while TerminationProtection is enabled"
        parsed = {"Error": {"Code": "ValidationError", "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}
        return AWSResponse("https://cloudformation.us-east-1.amazonaws.com", 400, HTTPHeaders(), None), parsed

    aws.cloudformation.meta.events.register("provide-client-params.cloudformation.DeleteStack", note)
    aws.cloudformation.meta.events.register("before-call.cloudformation.DeleteStack", refuse)  # type: ignore[arg-type]


def test_a_refused_delete_is_reported_the_others_still_go_and_a_rerun_completes(
    tmp_path: Path, aws: AwsClients
) -> None:
    spec = _spec(tmp_path)
    ids = _create(aws, spec)
    _fail_delete_of(aws, ids["deploy-prd"])
    runs: list[Sequence[str]] = []
    tf_dir = tmp_path / "terraform" / "dev"
    tf_dir.mkdir(parents=True)
    (tf_dir / "cdk.tf.json").write_text("{}")

    def runner(argv: Sequence[str]) -> int:
        runs.append(list(argv))
        return 0

    first = cleanup.destroy_aws(aws.cloudformation, spec, terraform_dir=tf_dir, run=runner, terraform="tf")
    assert [(o.kind, o.result) for o in first.stacks] == [
        ("deploy-prd", "failed"),
        ("deploy-dev", "deleted"),
        ("training-job", "deleted"),
        ("suggest-baseline", "deleted"),
    ]
    assert "ValidationError: Stack [" in first.stacks[0].detail and "TerminationProtection" in first.stacks[0].detail
    assert first.base == cleanup.BaseInfraOutcome(
        "skipped", "kept while customerchurn-deploy-prd remains; run destroy again"
    )
    assert not first.ok and runs == []  # the base infrastructure waits for every stack
    assert _live_stacks(aws) == {"customerchurn-deploy-prd"}

    second = cleanup.destroy_aws(aws.cloudformation, spec, terraform_dir=tf_dir, run=runner, terraform="tf")
    assert [o.result for o in second.stacks] == ["deleted", "absent", "absent", "absent"]
    assert second.ok and second.base.result == "destroyed"
    assert runs == [
        ["tf", f"-chdir={tf_dir}", "init", "-input=false", "-reconfigure"],
        ["tf", f"-chdir={tf_dir}", "destroy", "-auto-approve", "-input=false"],
    ]
    assert _live_stacks(aws) == set()
    text = cleanup.format_aws_report(second)
    assert "  customerchurn-deploy-prd        deleted\n" in text
    assert "base infrastructure             destroyed" in text


# --- failed deletes (Stubber: moto deletes at once and never fails) ---------------------------------------------


def _stack(name: str, status: str, reason: str | None = None) -> dict[str, Any]:
    stack: dict[str, Any] = {
        "StackId": f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/{name}/uuid-{name}",
        "StackName": name,
        "CreationTime": NOW - timedelta(days=1),
        "StackStatus": status,
    }
    if reason:
        stack["StackStatusReason"] = reason
    return stack


def _sid(name: str) -> str:
    return str(_stack(name, "x")["StackId"])


def _describe(stub: Stubber, name: str, status: str | None, by_id: bool = False, reason: str | None = None) -> None:
    key = _sid(name) if by_id else name
    if status is None:
        stub.add_client_error(
            "describe_stacks", "ValidationError", f"Stack with id {key} does not exist", 400, {"StackName": key}
        )
    else:
        stub.add_response("describe_stacks", {"Stacks": [_stack(name, status, reason)]}, {"StackName": key})


def _event(name: str, logical: str, kind: str, status: str, reason: str = "") -> dict[str, Any]:
    event = {
        "StackId": _sid(name),
        "EventId": f"{logical}-{status}",
        "StackName": name,
        "LogicalResourceId": logical,
        "ResourceType": kind,
        "Timestamp": NOW,
        "ResourceStatus": status,
    }
    if reason:
        event["ResourceStatusReason"] = reason
    return event


STACK = "AWS::CloudFormation::Stack"


def test_failed_deletes_are_reported_with_their_reasons_and_the_others_still_attempted(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    cfn = AwsClients(_session()).cloudformation
    clock = _Clock()
    prd, dev, job, baseline = (naming.stack_name(spec, k) for k in naming.DESTROY_ORDER)
    with Stubber(cfn) as stub:
        # deploy-prd: deleted, then DELETE_FAILED: a versioned bucket still holds object versions
        _describe(stub, prd, "UPDATE_COMPLETE")
        stub.add_response("delete_stack", {}, {"StackName": _sid(prd)})
        _describe(stub, prd, "DELETE_IN_PROGRESS", by_id=True)
        _describe(
            stub, prd, "DELETE_FAILED", by_id=True, reason="The following resource(s) failed to delete: [Bucket]."
        )
        stub.add_response(
            "describe_stack_events",
            {"StackEvents": [
                _event(prd, prd, STACK, "DELETE_FAILED", "The following resource(s) failed to delete: [Bucket]."),
                _event(prd, "Bucket", "AWS::S3::Bucket", "DELETE_FAILED", "The bucket you tried to delete is not empty. You must delete all versions in the bucket."),
                _event(prd, "Endpoint", "AWS::SageMaker::Endpoint", "DELETE_COMPLETE"),
                _event(prd, prd, STACK, "DELETE_IN_PROGRESS", "User Initiated"),
                _event(prd, "Old", "AWS::S3::Bucket", "DELETE_FAILED", "from an earlier attempt: not reported"),
            ]},
            {"StackName": _sid(prd)},
        )  # fmt: skip
        # deploy-dev: CloudFormation refuses the delete
        _describe(stub, dev, "CREATE_COMPLETE")
        stub.add_client_error(
            "delete_stack",
            "ValidationError",
            "Stack cannot be deleted while TerminationProtection is enabled",
            400,
            {"StackName": _sid(dev)},
        )
        # training-job: already gone
        _describe(stub, job, None)
        # suggest-baseline: a delete already in progress (an earlier run timed out) completes
        _describe(stub, baseline, "DELETE_IN_PROGRESS")
        _describe(stub, baseline, "DELETE_IN_PROGRESS", by_id=True)
        _describe(stub, baseline, "DELETE_COMPLETE", by_id=True)
        outcomes = cleanup.destroy_stacks(cfn, spec, poll_s=5, sleep=clock.sleep, clock=clock)
        stub.assert_no_pending_responses()
    results = {o.kind: o for o in outcomes}
    assert [o.kind for o in outcomes] == list(naming.DESTROY_ORDER)
    assert results["deploy-prd"].result == "failed"
    assert results["deploy-prd"].detail == (
        "DELETE_FAILED: The following resource(s) failed to delete: [Bucket].; Bucket (AWS::S3::Bucket): The bucket "
        "you tried to delete is not empty. You must delete all versions in the bucket. [the bucket still holds "
        "objects or object versions: delete every version (versioned buckets keep them after a plain delete), "
        "then run destroy again]"
    )
    assert results["deploy-dev"].result == "failed"
    assert (
        results["deploy-dev"].detail
        == "ValidationError: Stack cannot be deleted while TerminationProtection is enabled"
    )
    assert (results["training-job"].result, results["training-job"].detail) == (
        "absent",
        "already deleted (or never created)",
    )
    assert results["suggest-baseline"].result == "deleted" and results["suggest-baseline"].seconds == 5
    assert clock.sleeps == [5, 5]


def test_a_delete_that_outlasts_the_timeout_is_failed_and_says_to_run_again(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    cfn = AwsClients(_session()).cloudformation
    clock = _Clock()
    name = naming.stack_name(spec, "deploy-prd")
    with Stubber(cfn) as stub:
        _describe(stub, name, "CREATE_COMPLETE")
        stub.add_response("delete_stack", {}, {"StackName": _sid(name)})
        for _ in range(4):
            _describe(stub, name, "DELETE_IN_PROGRESS", by_id=True)
        outcome = cleanup.delete_stack(cfn, "deploy-prd", name, timeout_s=30, poll_s=10, sleep=clock.sleep, clock=clock)
        stub.assert_no_pending_responses()
    assert outcome == cleanup.StackOutcome(
        "deploy-prd", name, "failed", "still DELETE_IN_PROGRESS after 30 s; run destroy again to keep waiting", 30.0
    )


def test_running_executions_are_stopped_before_the_stacks_go() -> None:
    clients = AwsClients(_session())
    clock = _Clock()
    listing = {"pipelineName": "customerchurn-dev", "maxResults": 20}

    def summaries(*statuses: tuple[str, str]) -> dict[str, Any]:
        return {"pipelineExecutionSummaries": [{"pipelineExecutionId": i, "status": s} for i, s in statuses]}

    with Stubber(clients.codepipeline) as stub:
        stub.add_response("list_pipeline_executions", summaries(("e2", "InProgress"), ("e1", "Succeeded")), listing)
        stub.add_response(
            "stop_pipeline_execution",
            {"pipelineExecutionId": "e2"},
            {
                "pipelineName": "customerchurn-dev",
                "pipelineExecutionId": "e2",
                "abandon": True,
                "reason": "safedeploy destroy",
            },
        )
        stub.add_response("list_pipeline_executions", summaries(("e2", "Stopping"), ("e1", "Succeeded")), listing)
        stub.add_response("list_pipeline_executions", summaries(("e2", "Stopped"), ("e1", "Succeeded")), listing)
        stopped = cleanup.stop_executions(
            clients.codepipeline, "customerchurn-dev", poll_s=2, sleep=clock.sleep, clock=clock
        )
        stub.add_client_error("list_pipeline_executions", "PipelineNotFoundException", "gone", 400, listing)
        assert cleanup.stop_executions(clients.codepipeline, "customerchurn-dev", sleep=clock.sleep, clock=clock) == []
        stub.assert_no_pending_responses()
    assert stopped == ["e2"] and clock.sleeps == [2, 2]


# --- terraform destroy --------------------------------------------------------------------------------------------


def test_terraform_destroy_uses_the_roots_backend_and_variables(tmp_path: Path) -> None:
    root = tmp_path / "terraform" / "prod"
    root.mkdir(parents=True)
    for name in ("cdk.tf.json", "backend.hcl", "terraform.tfvars.json"):
        (root / name).write_text("{}")
    runs: list[list[str]] = []

    def runner(argv: Sequence[str]) -> int:
        runs.append(list(argv))
        return 0

    outcome = cleanup.terraform_destroy(root, runner, "/usr/bin/terraform")
    assert outcome == cleanup.BaseInfraOutcome("destroyed", f"terraform destroy in {root} completed")
    assert runs == [
        ["/usr/bin/terraform", f"-chdir={root}", "init", "-input=false", "-reconfigure", "-backend-config=backend.hcl"],
        ["/usr/bin/terraform", f"-chdir={root}", "destroy", "-auto-approve", "-input=false", "-var-file=terraform.tfvars.json"],
    ]  # fmt: skip


def test_terraform_destroy_failures(tmp_path: Path) -> None:
    root = tmp_path / "tf"
    runs: list[list[str]] = []

    def failing(argv: Sequence[str]) -> int:
        runs.append(list(argv))
        return 1

    assert cleanup.terraform_destroy(root, failing, "tf").detail.startswith(f"no Terraform configuration in {root}")
    root.mkdir()
    (root / "main.tf").write_text("")
    assert cleanup.terraform_destroy(root, failing, None).detail.startswith("the terraform CLI is not installed")
    outcome = cleanup.terraform_destroy(root, failing, "tf")
    assert outcome == cleanup.BaseInfraOutcome("failed", f"terraform init in {root} exited 1 (its output is above)")
    assert len(runs) == 1  # no destroy after a failed init


def test_verify_account(tmp_path: Path, aws: AwsClients) -> None:
    assert verify_account(aws.sts, _spec(tmp_path)).startswith(f"arn:aws:sts::{ACCOUNT}:")
    with pytest.raises(ConfigError, match=r"account 123456789012 .*but the spec's account_id is 111111111111"):
        verify_account(aws.sts, _spec(tmp_path, account_id="111111111111"))
    with pytest.raises(ConfigError, match=r'names no AWS account .*account_id = "123456789012" .*ACCOUNT_ID=1234'):
        verify_account(aws.sts, PipelineSpec(state_dir=tmp_path))


# --- local --------------------------------------------------------------------------------------------------------


def _state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    for part in ("s3/bucket", "registry", "executions/customerchurn-dev", "locks"):
        (state / part).mkdir(parents=True)
    (state / "locks" / "customerchurn-dev.lock").write_text("")
    return state


def test_destroy_local_stops_the_runtime_and_removes_the_state(tmp_path: Path) -> None:
    state = _state(tmp_path)
    stopped: list[Path] = []

    def stop(root: Path) -> int | None:
        stopped.append(root)
        return 4242 if len(stopped) == 1 else None

    report = cleanup.destroy_local(_spec(tmp_path), stop_runtime=stop)
    assert not state.exists() and stopped == [state.resolve()]
    assert report.lines() == [
        "  stopped the local runtime (pid 4242): its endpoints and REST APIs",
        f"  removed {state.resolve()} (executions, locks, registry, s3)",
    ]
    again = cleanup.destroy_local(_spec(tmp_path), stop_runtime=stop)
    assert again.lines() == [f"  nothing to remove: no runtime running and no {state.resolve()}"]


def test_destroy_local_refuses_while_an_execution_runs(tmp_path: Path) -> None:
    state = _state(tmp_path)
    running = exclusive_lock(state / "locks" / "customerchurn-dev.lock", {"execution_id": "e1"})
    refused = pytest.raises(cleanup.DestroyRefusedError, match="an execution of customerchurn-dev is running")
    with running, refused:
        cleanup.destroy_local(_spec(tmp_path), stop_runtime=lambda root: pytest.fail("must not stop"))
    assert (state / "s3").is_dir()


@pytest.mark.parametrize("where", ["cwd", "repo"])
def test_destroy_local_refuses_what_is_not_a_state_directory(tmp_path: Path, where: str) -> None:
    target = tmp_path if where == "cwd" else tmp_path / "repo"
    if where == "repo":
        (target / ".git").mkdir(parents=True)
    with pytest.raises(cleanup.DestroyRefusedError, match=f"refusing to remove {target}"):
        cleanup.destroy_local(PipelineSpec(state_dir=target), stop_runtime=lambda root: None)
    assert target.is_dir()


@pytest.mark.slow
def test_destroy_local_stops_a_real_runtime(tmp_path: Path) -> None:
    state = tmp_path / "state"
    info = daemon.ensure_running(state, "us-east-1", "000000000000")
    try:
        report = cleanup.destroy_local(PipelineSpec(state_dir=state))
    finally:
        daemon.stop(state) if state.exists() else None
    assert report.runtime_pid == info.pid and "runtime" in report.removed
    assert not state.exists() and daemon.read_info(RuntimePaths(state)) is None


# --- the CLI ------------------------------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_destroy_without_a_terminal_or_yes_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _state(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("customerchurn-dev\n"))  # not a terminal
    for target in ("local", "aws"):
        assert cli.main(["destroy", "--target", target, "--set", f"state_dir={state}"]) == 2
        assert "pass --yes to destroy without asking" in capsys.readouterr().err
    assert (state / "s3").is_dir()


def test_cli_destroy_local_asks_for_the_pipeline_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _state(tmp_path)
    monkeypatch.setattr("sys.stdin", _Terminal("customerchurn\n"))
    assert cli.main(["destroy", "--set", f"state_dir={state}"]) == 2
    captured = capsys.readouterr()
    assert "Type the pipeline name (customerchurn-dev) to confirm" in captured.out
    assert "not confirmed ('customerchurn' is not 'customerchurn-dev'): nothing was destroyed" in captured.err
    assert (state / "s3").is_dir()

    monkeypatch.setattr("sys.stdin", _Terminal("customerchurn-dev\n"))
    assert cli.main(["destroy", "--set", f"state_dir={state}"]) == 0
    out = capsys.readouterr().out
    assert f"remove {state.resolve()}" in out and f"removed {state.resolve()} (executions, locks, registry, s3)" in out
    assert not state.exists()
    assert cli.main(["destroy", "--yes", "--set", f"state_dir={state}"]) == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_cli_destroy_aws(
    tmp_path: Path, aws: AwsClients, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(tmp_path)
    _create(aws, spec, ["deploy-dev", "training-job"])
    monkeypatch.setattr(cli, "aws_clients", lambda spec: aws)
    monkeypatch.setenv("SAFEDEPLOY_ACCOUNT_ID", ACCOUNT)
    common = ["--target", "aws"]

    assert cli.main(["destroy", *common, "--set", 'account_id="111111111111"', "--yes"]) == 2  # wrong account
    assert "but the spec's account_id is 111111111111" in capsys.readouterr().err
    assert len(_live_stacks(aws)) == 2

    monkeypatch.setattr("sys.stdin", _Terminal("customerchurn-dev\n"))
    assert cli.main(["destroy", *common, "--keep-base-infra"]) == 0
    out = capsys.readouterr().out
    assert f"destroy customerchurn-dev on AWS account {ACCOUNT} (us-east-1) as arn:aws:sts::{ACCOUNT}:" in out
    assert (
        "delete the stacks customerchurn-deploy-prd, customerchurn-deploy-dev, customerchurn-training-job, "
        "customerchurn-suggest-baseline (in this order), then keep the base infrastructure"
    ) in out
    lines = out.splitlines()[-5:]
    assert [line.split()[:2] for line in lines] == [
        ["customerchurn-deploy-prd", "absent"],
        ["customerchurn-deploy-dev", "deleted"],
        ["customerchurn-training-job", "deleted"],
        ["customerchurn-suggest-baseline", "absent"],
        ["base", "infrastructure"],
    ]
    assert lines[-1].split()[2:] == ["skipped", "kept", "(--keep-base-infra)"]
    assert _live_stacks(aws) == set()

    # Without --keep-base-infra, a missing Terraform root fails the base-infrastructure step (exit 1).
    assert cli.main(["destroy", *common, "--yes", "--terraform-dir", str(tmp_path / "nowhere")]) == 1
    captured = capsys.readouterr()
    assert f"failed   no Terraform configuration in {tmp_path / 'nowhere'}" in captured.out
    assert "some resources remain" in captured.err


def test_cli_destroy_aws_of_one_model_deletes_its_stacks_only(
    tmp_path: Path, aws: AwsClients, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(tmp_path)
    other = _spec(tmp_path, model_name="churnb")
    _create(aws, spec, ["deploy-dev", "training-job"])
    _create(aws, other, ["deploy-prd", "deploy-dev"])
    monkeypatch.setattr(cli, "aws_clients", lambda spec: aws)
    monkeypatch.setenv("SAFEDEPLOY_ACCOUNT_ID", ACCOUNT)
    monkeypatch.setattr("sys.stdin", _Terminal("churnb-dev\n"))  # asks for that model's pipeline name

    assert cli.main(["destroy", "--target", "aws", "--model", "churnb"]) == 0
    out = capsys.readouterr().out
    assert "delete the stacks churnb-deploy-prd, churnb-deploy-dev, churnb-training-job" in out
    assert "keep the base infrastructure (MODEL=churnb: its stacks only" in out
    assert out.splitlines()[-1].split()[2:] == [
        "skipped",
        "kept",
        "(MODEL=churnb:",
        "that",
        "model's",
        "stacks",
        "only)",
    ]
    assert _live_stacks(aws) == {"customerchurn-deploy-dev", "customerchurn-training-job"}
    assert cli.main(["destroy", "--target", "aws", "--model", "Not_A_Model", "--yes"]) == 2
    assert "'Not_A_Model' is not a model name" in capsys.readouterr().err


# --- What terraform cannot delete: versioned buckets' contents, the registry ---------------------------------------


def _versioned_bucket(aws: AwsClients, bucket: str, versions: int, markers: int) -> None:
    aws.s3.create_bucket(Bucket=bucket)
    aws.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for n in range(versions):
        aws.s3.put_object(Bucket=bucket, Key=f"k{n % 7}", Body=b"x")
    for n in range(markers):
        aws.s3.delete_object(Bucket=bucket, Key=f"k{n}")


def test_empty_bucket_deletes_every_version_and_marker_in_batches_of_1000(aws: AwsClients) -> None:
    _versioned_bucket(aws, "versioned", versions=1205, markers=3)
    sizes: list[int] = []
    real = aws.s3.delete_objects

    def counting(**kwargs: Any) -> Any:
        sizes.append(len(kwargs["Delete"]["Objects"]))
        return real(**kwargs)

    aws.s3.delete_objects = counting  # type: ignore[method-assign]
    done = cleanup.empty_bucket(aws.s3, "versioned")
    assert (done.result, done.detail) == ("deleted", "emptied: 1205 object versions and 3 delete markers deleted")
    assert sum(sizes) == 1208 and max(sizes) <= 1000 and len(sizes) >= 2
    assert aws.s3.list_object_versions(Bucket="versioned").get("Versions", []) == []
    again = cleanup.empty_bucket(aws.s3, "versioned")  # re-running finds nothing
    assert (again.result, again.detail) == ("absent", "already empty")
    assert cleanup.empty_bucket(aws.s3, "no-such-bucket").result == "absent"


def test_empty_bucket_reports_what_s3_refused_and_a_rerun_finishes(aws: AwsClients) -> None:
    _versioned_bucket(aws, "versioned", versions=4, markers=0)
    real = aws.s3.delete_objects
    calls = {"n": 0}

    def refusing(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:  # the first call: S3 refuses one of the four (a legal hold, say)
            first, *rest = kwargs["Delete"]["Objects"]
            real(**{**kwargs, "Delete": {**kwargs["Delete"], "Objects": rest}})
            return {"Errors": [{**first, "Code": "AccessDenied", "Message": "object is under legal hold"}]}
        return real(**kwargs)

    aws.s3.delete_objects = refusing  # type: ignore[method-assign]
    failed = cleanup.empty_bucket(aws.s3, "versioned")
    assert failed.result == "failed" and "1 objects not deleted" in failed.detail and "legal hold" in failed.detail
    rerun = cleanup.empty_bucket(aws.s3, "versioned")
    assert (rerun.result, rerun.detail) == ("deleted", "emptied: 1 object versions and 0 delete markers deleted")


def _sagemaker() -> Any:
    return boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")


def _package(version: int) -> str:
    return f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/customerchurn/{version}"


def _summary(version: int) -> dict[str, Any]:
    return {
        "ModelPackageArn": _package(version),
        "ModelPackageName": "customerchurn",
        "ModelPackageGroupName": "customerchurn",
        "ModelPackageVersion": version,
        "CreationTime": NOW,
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": "Approved",
    }


def test_delete_registry_deletes_the_versions_then_the_group_and_a_rerun_finishes() -> None:
    sagemaker = _sagemaker()
    group = {"ModelPackageGroupName": "customerchurn"}
    with Stubber(sagemaker) as stub:
        # First run: v2 refuses, so the group is kept.
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": [_summary(1)], "NextToken": "p2"}, group)
        stub.add_response(
            "list_model_packages", {"ModelPackageSummaryList": [_summary(2)]}, {**group, "NextToken": "p2"}
        )
        stub.add_response("delete_model_package", {}, {"ModelPackageName": _package(1)})
        stub.add_client_error("delete_model_package", "ConflictException", "in use by a pipeline", 400)
        first = cleanup.delete_registry(sagemaker, "customerchurn")
        assert [(o.kind, o.result) for o in first] == [
            ("model package", "deleted"),
            ("model package", "failed"),
            ("model package group", "failed"),
        ]
        assert "ConflictException: in use by a pipeline" in first[1].detail
        assert "kept while 1 of its versions remain" in first[2].detail
        # Second run: v2 goes, then the group.
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": [_summary(2)]}, group)
        stub.add_response("delete_model_package", {}, {"ModelPackageName": _package(2)})
        stub.add_response("delete_model_package_group", {}, group)
        second = cleanup.delete_registry(sagemaker, "customerchurn")
        assert [(o.name, o.result) for o in second] == [(_package(2), "deleted"), ("customerchurn", "deleted")]
        # Third run: nothing left.
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": []}, group)
        stub.add_client_error(
            "delete_model_package_group",
            "ValidationException",
            f"ModelPackageGroup arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package-group/customerchurn does not exist.",
            400,
        )
        third = cleanup.delete_registry(sagemaker, "customerchurn")
        assert [(o.kind, o.result, o.detail) for o in third] == [("model package group", "absent", "already deleted")]


def _recorder(commands: list[list[str]]) -> cleanup.Runner:
    def run(argv: Sequence[str]) -> int:
        commands.append(list(argv))
        return 0

    return run


def test_destroy_aws_empties_the_buckets_and_the_registry_before_terraform(tmp_path: Path, aws: AwsClients) -> None:
    spec = _spec(tmp_path)
    for bucket in cleanup.destroy_buckets(spec):
        _versioned_bucket(aws, bucket, versions=3, markers=1)
    root = tmp_path / "terraform"
    root.mkdir()
    (root / "cdk.tf.json").write_text("{}")
    commands: list[list[str]] = []
    sagemaker = _sagemaker()
    lines: list[str] = []
    with Stubber(sagemaker) as stub:
        group = {"ModelPackageGroupName": "customerchurn"}
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": [_summary(1)]}, group)
        stub.add_response("delete_model_package", {}, {"ModelPackageName": _package(1)})
        stub.add_response("delete_model_package_group", {}, group)
        report = cleanup.destroy_aws(
            aws.cloudformation,
            spec,
            terraform_dir=root,
            run=_recorder(commands),
            terraform="terraform",
            s3=aws.s3,
            sagemaker=sagemaker,
            resource_progress=lambda done: lines.append(cleanup.format_resource_line(done, 60)),
        )
    assert report.ok and report.base.result == "destroyed" and [c[2] for c in commands] == ["init", "destroy"]
    assert [(r.kind, r.result) for r in report.resources] == [
        ("bucket", "deleted"),
        ("bucket", "deleted"),
        ("bucket", "deleted"),
        ("model package", "deleted"),
        ("model package group", "deleted"),
    ]
    assert lines[0].split()[:3] == ["bucket", naming.data_bucket(spec), "deleted"]
    assert "emptied: 3 object versions and 1 delete markers deleted" in lines[0]
    assert "model package group customerchurn" in cleanup.format_aws_report(report)

    # A bucket that cannot be emptied keeps the base infrastructure (terraform is not run).
    aws.s3.put_object(Bucket=naming.logs_bucket(spec), Key="late-log", Body=b"x")
    real = aws.s3.delete_objects
    aws.s3.delete_objects = lambda **kw: {  # type: ignore[method-assign,assignment]
        "Errors": [{"Key": o["Key"], "Code": "AccessDenied", "Message": "no"} for o in kw["Delete"]["Objects"]]
    }
    with Stubber(sagemaker) as stub:
        stub.add_response(
            "list_model_packages", {"ModelPackageSummaryList": []}, {"ModelPackageGroupName": "customerchurn"}
        )
        stub.add_client_error(
            "delete_model_package_group", "ValidationException", "ModelPackageGroup x does not exist."
        )
        commands.clear()
        kept = cleanup.destroy_aws(
            aws.cloudformation,
            spec,
            terraform_dir=root,
            run=_recorder(commands),
            terraform="terraform",
            s3=aws.s3,
            sagemaker=sagemaker,
        )
    aws.s3.delete_objects = real  # type: ignore[method-assign]
    assert not kept.ok and commands == [] and kept.base.result == "skipped"
    assert naming.logs_bucket(spec) in kept.base.detail and "run destroy again" in kept.base.detail
    # Without a terraform CLI nothing is emptied at all.
    none = cleanup.destroy_aws(
        aws.cloudformation, spec, terraform_dir=tmp_path / "no-root", terraform="terraform", s3=aws.s3
    )
    assert none.resources == () and none.base.result == "failed"


def test_cli_destroy_aws_reports_each_bucket_and_registry_entry_and_a_rerun_finds_them_gone(
    tmp_path: Path, aws: AwsClients, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(tmp_path)
    for bucket in cleanup.destroy_buckets(spec):
        _versioned_bucket(aws, bucket, versions=2, markers=1)
    root = tmp_path / "terraform" / "dev"
    root.mkdir(parents=True)
    (root / "cdk.tf.json").write_text("{}")
    fake = tmp_path / "terraform-cli"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("TERRAFORM", str(fake))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "aws_clients", lambda spec: aws)
    argv = ["destroy", "--target", "aws", "--yes", "--set", f"account_id={ACCOUNT}", "--terraform-dir", str(root)]
    group = {"ModelPackageGroupName": "customerchurn"}
    with Stubber(aws.sagemaker) as stub:
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": [_summary(1), _summary(2)]}, group)
        stub.add_response("delete_model_package", {}, {"ModelPackageName": _package(1)})
        stub.add_response("delete_model_package", {}, {"ModelPackageName": _package(2)})
        stub.add_response("delete_model_package_group", {}, group)
        assert cli.main(argv) == 0
    out = capsys.readouterr().out
    rows = {line.split()[1]: line.split()[2] for line in out.splitlines() if line.startswith("  bucket ")}
    assert rows == dict.fromkeys(cleanup.destroy_buckets(spec), "deleted")
    assert f"model package {_package(2)}" in out and "model package group customerchurn" in out
    assert "base infrastructure" in out and "destroyed" in out.splitlines()[-1]

    with Stubber(aws.sagemaker) as stub:  # the re-run: everything already gone
        stub.add_response("list_model_packages", {"ModelPackageSummaryList": []}, group)
        stub.add_client_error(
            "delete_model_package_group", "ValidationException", "ModelPackageGroup x does not exist."
        )
        assert cli.main(argv) == 0
    out = capsys.readouterr().out
    rows = {line.split()[1]: line.split()[2] for line in out.splitlines() if line.startswith("  bucket ")}
    assert rows == dict.fromkeys(cleanup.destroy_buckets(spec), "absent")
    assert "model package group customerchurn" in out and "already deleted" in out
