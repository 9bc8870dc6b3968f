"""``safedeploy destroy``: remove everything a pipeline created, on AWS or locally, and say what happened to each part.

AWS: the per-model CloudFormation stacks are deleted one at a time in :data:`safedeploy.naming.DESTROY_ORDER` (what
serves traffic first, what it was built from last), each waited for and reported ``deleted``, ``absent`` (already
gone) or ``failed`` with CloudFormation's reason (the stack's status reason and the resources that would not delete).
A failure does not stop the others being attempted, and a re-run picks up where the last one stopped (a
``DELETE_FAILED`` stack is deleted again, a deleted one is ``absent``). Only once every stack is gone is the base
infrastructure destroyed, with ``terraform destroy`` of ``terraform/<env>`` through an injected command runner.

Local: the local runtime (endpoints, REST APIs) is stopped and the state directory (artifact store, registry,
executions, ledger) removed, refusing while an execution is running or if the directory is not a state directory.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import ClientError

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.aws import codepipeline as cp
from safedeploy.errors import SafeDeployError
from safedeploy.infra import terraform_cli
from safedeploy.locking import LockHeldError, exclusive_lock
from safedeploy.runtime.paths import RuntimePaths

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import StackTypeDef
    from mypy_boto3_codepipeline import CodePipelineClient

    from safedeploy.spec import PipelineSpec

StackResult = Literal["deleted", "absent", "failed"]
Runner = Callable[[Sequence[str]], int]
"""Runs a command (argv) to completion, its output going to the user; returns the exit status."""
DEFAULT_STACK_TIMEOUT_S = C.STACK_DELETE_TIMEOUT_S
DEFAULT_POLL_S = 10.0
STOP_TIMEOUT_S = 300.0
MAX_EVENT_PAGES = 5


class DestroyRefusedError(SafeDeployError):
    """Destroying now would be unsafe (an execution runs, the directory is not a state directory...)."""


@dataclass(frozen=True)
class StackOutcome:
    """What happened to one stack."""

    kind: str
    stack_name: str
    result: StackResult
    detail: str
    seconds: float = 0.0


@dataclass(frozen=True)
class BaseInfraOutcome:
    """What happened to the base infrastructure (``terraform destroy``)."""

    result: Literal["destroyed", "skipped", "failed"]
    detail: str


@dataclass(frozen=True)
class AwsDestroyReport:
    """The outcome of destroying a pipeline on AWS."""

    stacks: tuple[StackOutcome, ...]
    base: BaseInfraOutcome
    stopped: tuple[str, ...] = ()
    """Pipeline executions stopped first, so that none recreates a stack meanwhile."""

    @property
    def ok(self) -> bool:
        """Every stack is gone and the base infrastructure was destroyed or deliberately kept."""
        return all(s.result != "failed" for s in self.stacks) and self.base.result != "failed"


def _error(exc: ClientError) -> tuple[str, str]:
    error = exc.response.get("Error", {})
    return error.get("Code", "Unknown"), error.get("Message", str(exc))


def _describe(cfn: CloudFormationClient, stack: str) -> StackTypeDef | None:
    """The stack, or ``None`` if CloudFormation knows no such (live) stack."""
    try:
        stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        code, message = _error(exc)
        if code == "ValidationError" and "does not exist" in message:
            return None
        raise
    return stacks[0] if stacks else None


def _bucket_hint(resource_type: str, reason: str) -> str:
    if resource_type == "AWS::S3::Bucket" and ("not empty" in reason or "BucketNotEmpty" in reason):
        return (
            " [the bucket still holds objects or object versions: delete every version (versioned buckets keep "
            "them after a plain delete), then run destroy again]"
        )
    return ""


def failure_reasons(cfn: CloudFormationClient, stack_id: str, stack_name: str) -> list[str]:
    """Why the latest delete of a stack failed: each resource that would not delete, with CloudFormation's reason.

    Reads the stack's events newest first, back to the start of that delete (the stack's own
    ``DELETE_IN_PROGRESS``).
    """
    reasons: list[str] = []
    token: str | None = None
    for _ in range(MAX_EVENT_PAGES):
        page = (
            cfn.describe_stack_events(StackName=stack_id, NextToken=token)
            if token
            else cfn.describe_stack_events(StackName=stack_id)
        )
        for event in page.get("StackEvents", []):
            logical, status = event.get("LogicalResourceId", ""), event.get("ResourceStatus", "")
            is_stack = event.get("ResourceType") == "AWS::CloudFormation::Stack" and logical == stack_name
            if is_stack and status == "DELETE_IN_PROGRESS":
                return reasons
            if status == "DELETE_FAILED" and not is_stack:
                kind, reason = event.get("ResourceType", "?"), event.get("ResourceStatusReason", "no reason given")
                reasons.append(f"{logical} ({kind}): {reason}{_bucket_hint(kind, reason)}")
        token = page.get("NextToken")
        if not token:
            break
    return reasons


def _failed_detail(cfn: CloudFormationClient, stack: StackTypeDef, stack_name: str) -> str:
    detail = f"DELETE_FAILED: {stack.get('StackStatusReason') or 'no status reason'}"
    try:
        reasons = failure_reasons(cfn, stack["StackId"], stack_name)
    except ClientError as exc:
        reasons = ["(its events could not be read: {}: {})".format(*_error(exc))]
    return "; ".join([detail, *reasons])


def delete_stack(
    cfn: CloudFormationClient,
    kind: str,
    stack_name: str,
    *,
    timeout_s: float = DEFAULT_STACK_TIMEOUT_S,
    poll_s: float = DEFAULT_POLL_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> StackOutcome:
    """Delete one stack and wait until it is gone (or the delete fails, or ``timeout_s`` passes); never raises."""
    started = clock()

    def outcome(result: StackResult, detail: str) -> StackOutcome:
        return StackOutcome(kind, stack_name, result, detail, round(clock() - started, 1))

    try:
        stack = _describe(cfn, stack_name)
        if stack is None or stack["StackStatus"] == "DELETE_COMPLETE":
            return outcome("absent", "already deleted (or never created)")
        stack_id = stack["StackId"]
        if stack["StackStatus"] != "DELETE_IN_PROGRESS":
            cfn.delete_stack(StackName=stack_id)
        while True:
            current = _describe(cfn, stack_id)  # by id: a deleted stack is still described, as DELETE_COMPLETE
            status = current["StackStatus"] if current else "DELETE_COMPLETE"
            if status == "DELETE_COMPLETE":
                return outcome("deleted", "")
            if current is not None and status == "DELETE_FAILED":
                return outcome("failed", _failed_detail(cfn, current, stack_name))
            if status != "DELETE_IN_PROGRESS":
                reason = (current.get("StackStatusReason") if current else None) or "no status reason"
                return outcome("failed", f"the delete did not start: the stack is {status} ({reason})")
            if clock() - started >= timeout_s:
                return outcome(
                    "failed",
                    f"still DELETE_IN_PROGRESS after {timeout_s:.0f} s; run destroy again to keep waiting",
                )
            sleep(poll_s)
    except ClientError as exc:
        code, message = _error(exc)
        return outcome("failed", f"{code}: {message}")


def destroy_stacks(
    cfn: CloudFormationClient,
    spec: PipelineSpec,
    *,
    order: Sequence[str] = naming.DESTROY_ORDER,
    timeout_s: float = DEFAULT_STACK_TIMEOUT_S,
    poll_s: float = DEFAULT_POLL_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[StackOutcome], None] | None = None,
) -> list[StackOutcome]:
    """Delete the pipeline's per-model stacks in ``order``, attempting every one whatever happens to the others."""
    outcomes = []
    for kind in order:
        done = delete_stack(
            cfn, kind, naming.stack_name(spec, kind), timeout_s=timeout_s, poll_s=poll_s, sleep=sleep, clock=clock
        )
        if progress is not None:
            progress(done)
        outcomes.append(done)
    return outcomes


def run_command(argv: Sequence[str]) -> int:
    """The default :data:`Runner`: run ``argv`` with the terminal's output; return its exit status."""
    return subprocess.run(list(argv), check=False).returncode


def find_terraform() -> str | None:
    """The terraform CLI (:func:`safedeploy.infra.terraform_cli.find_terraform`), or None when it is not installed."""
    try:
        return str(terraform_cli.find_terraform())
    except terraform_cli.TerraformUnavailableError:
        return None


def terraform_destroy(directory: Path, run: Runner, terraform: str | None) -> BaseInfraOutcome:
    """``terraform init`` then ``terraform destroy -auto-approve`` in ``directory`` (the caller asked to confirm).

    Uses the directory's ``backend.hcl`` (state backend) and ``terraform.tfvars.json`` when present.
    """
    if not directory.is_dir() or not (any(directory.glob("*.tf")) or any(directory.glob("*.tf.json"))):
        return BaseInfraOutcome(
            "failed",
            f"no Terraform configuration in {directory}: synthesize it (cdktf_app) or pass --terraform-dir; "
            "--keep-base-infra skips this step",
        )
    if terraform is None:
        return BaseInfraOutcome(
            "failed",
            "the terraform CLI is not installed (not on PATH, $TERRAFORM unset): install terraform >= 1.5 "
            "and run destroy again",
        )
    chdir = f"-chdir={directory}"
    init = [terraform, chdir, "init", "-input=false", "-reconfigure"]
    if (directory / "backend.hcl").is_file():
        init.append("-backend-config=backend.hcl")
    destroy = [terraform, chdir, "destroy", "-auto-approve", "-input=false"]
    if (directory / "terraform.tfvars.json").is_file():
        destroy.append("-var-file=terraform.tfvars.json")
    for step, argv in (("init", init), ("destroy", destroy)):
        code = run(argv)
        if code != 0:
            return BaseInfraOutcome("failed", f"terraform {step} in {directory} exited {code} (its output is above)")
    return BaseInfraOutcome("destroyed", f"terraform destroy in {directory} completed")


def stop_executions(
    client: CodePipelineClient,
    pipeline_name: str,
    *,
    timeout_s: float = STOP_TIMEOUT_S,
    poll_s: float = DEFAULT_POLL_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[str]:
    """Stop the pipeline's running executions (abandoning their actions) and wait until they have stopped.

    An execution waiting at the manual approval is running too: left alone, an approval would deploy again what is
    being deleted. Returns the ids stopped; a pipeline that does not exist (any more) has nothing to stop.

    Raises:
        DestroyRefusedError: an execution is still stopping after ``timeout_s``.
        PipelineQueryError: CodePipeline refused.
    """
    try:
        running = cp.running_executions(client, pipeline_name)
    except cp.PipelineNotFoundError:
        return []
    for execution in running:
        if execution.status == "InProgress":
            cp.stop_execution(client, pipeline_name, execution.execution_id, "safedeploy destroy")
    waiting = {e.execution_id for e in running}
    started = clock()
    while waiting:
        if clock() - started >= timeout_s:
            raise DestroyRefusedError(
                f"{pipeline_name} execution(s) {', '.join(sorted(waiting))} still stopping after {timeout_s:.0f} s; "
                "run destroy again"
            )
        sleep(poll_s)
        try:
            waiting &= {e.execution_id for e in cp.running_executions(client, pipeline_name)}
        except cp.PipelineNotFoundError:
            waiting = set()
    return [e.execution_id for e in running]


def destroy_aws(
    cfn: CloudFormationClient,
    spec: PipelineSpec,
    *,
    terraform_dir: Path | None,
    codepipeline: CodePipelineClient | None = None,
    run: Runner = run_command,
    terraform: str | None = None,
    timeout_s: float = DEFAULT_STACK_TIMEOUT_S,
    poll_s: float = DEFAULT_POLL_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[StackOutcome], None] | None = None,
) -> AwsDestroyReport:
    """Stop running executions, delete the stacks, then (only if all are gone) the base infrastructure.

    ``codepipeline=None`` leaves executions alone; ``terraform_dir=None`` keeps the base infrastructure.
    """
    stopped: tuple[str, ...] = ()
    if codepipeline is not None:
        stopped = tuple(
            stop_executions(codepipeline, naming.codepipeline_name(spec), poll_s=poll_s, sleep=sleep, clock=clock)
        )
    stacks = tuple(
        destroy_stacks(cfn, spec, timeout_s=timeout_s, poll_s=poll_s, sleep=sleep, clock=clock, progress=progress)
    )
    failed = [s.stack_name for s in stacks if s.result == "failed"]
    if failed:
        base = BaseInfraOutcome(
            "skipped", f"kept while {', '.join(failed)} remain{'s' if len(failed) == 1 else ''}; run destroy again"
        )
    elif terraform_dir is None:
        base = BaseInfraOutcome("skipped", "kept (--keep-base-infra)")
    else:
        base = terraform_destroy(terraform_dir, run, terraform if terraform is not None else find_terraform())
    return AwsDestroyReport(stacks, base, stopped)


def format_stack_line(outcome: StackOutcome, width: int) -> str:
    """``  <stack>  <result>  <detail> (<seconds>)``."""
    took = f"({outcome.seconds:.0f} s)" if outcome.seconds >= 1 else ""
    detail = " ".join(part for part in (outcome.detail, took) if part)
    return f"  {outcome.stack_name:<{width + 2}}{outcome.result:<9}{detail}".rstrip()


def format_base_line(base: BaseInfraOutcome, width: int) -> str:
    """The base infrastructure's line, aligned with :func:`format_stack_line`."""
    return f"  {'base infrastructure':<{width + 2}}{base.result:<9}{base.detail}"


def format_aws_report(report: AwsDestroyReport) -> str:
    """One line per stack, then the base infrastructure."""
    width = max((len(s.stack_name) for s in report.stacks), default=0)
    return "\n".join([*(format_stack_line(s, width) for s in report.stacks), format_base_line(report.base, width)])


# --- Local --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalDestroyReport:
    """The outcome of destroying a pipeline's local resources."""

    state_dir: Path
    runtime_pid: int | None
    removed: tuple[str, ...]

    def lines(self) -> list[str]:
        """What was stopped and removed."""
        out = []
        if self.runtime_pid is not None:
            out.append(f"  stopped the local runtime (pid {self.runtime_pid}): its endpoints and REST APIs")
        if self.removed:
            out.append(f"  removed {self.state_dir} ({', '.join(self.removed)})")
        return out or [f"  nothing to remove: no runtime running and no {self.state_dir}"]


def _check_removable(root: Path) -> None:
    cwd = Path.cwd().resolve()
    if root in (Path(root.anchor), Path.home().resolve()) or cwd.is_relative_to(root):
        raise DestroyRefusedError(f"refusing to remove {root}: state_dir must be a directory of its own")
    for marker in (".git", "pyproject.toml"):
        if (root / marker).exists():
            raise DestroyRefusedError(f"refusing to remove {root}: it holds {marker}, so it is not a state directory")


def _check_unlocked(lock: Path, what: str) -> None:
    try:
        with exclusive_lock(lock):
            pass
    except LockHeldError as exc:
        holder = f"pid {exc.holder['pid']}" if "pid" in exc.holder else "another process"
        raise DestroyRefusedError(f"{what} ({holder} holds {lock}); nothing was removed") from None


def destroy_local(spec: PipelineSpec, stop_runtime: Callable[[Path], int | None] | None = None) -> LocalDestroyReport:
    """Stop the local runtime and remove the state directory; a second call finds nothing to do.

    Args:
        spec: Whose ``state_dir`` goes (every pipeline sharing that directory loses its local state).
        stop_runtime: Stops the runtime serving a state directory and returns its pid (default: the daemon's).

    Raises:
        DestroyRefusedError: an execution is running, the runtime does not answer but still runs, or ``state_dir``
            is not a state directory.
    """
    if stop_runtime is None:
        from safedeploy.local import daemon

        stop_runtime = daemon.stop
    root = spec.state_dir.resolve()
    _check_removable(root)
    if not root.exists():
        return LocalDestroyReport(root, None, ())
    for lock in sorted((root / "locks").glob("*.lock")):
        _check_unlocked(lock, f"an execution of {lock.stem} is running: wait for it to finish or stop it first")
    pid = stop_runtime(root)
    runtime_lock = RuntimePaths(root).lock
    if runtime_lock.exists():
        _check_unlocked(runtime_lock, "a local runtime still runs but does not answer: stop that process first")
    removed = tuple(sorted(p.name for p in root.iterdir()))
    shutil.rmtree(root)
    return LocalDestroyReport(root, pid, removed)
