"""``safedeploy destroy``: remove everything a pipeline created, on AWS or locally, and say what happened to each part.

AWS: the per-model CloudFormation stacks are deleted one at a time in :data:`safedeploy.naming.DESTROY_ORDER` (what
serves traffic first, what it was built from last), each waited for and reported ``deleted``, ``absent`` (already
gone) or ``failed`` with CloudFormation's reason (the stack's status reason and the resources that would not delete).
A failure does not stop the others being attempted, and a re-run picks up where the last one stopped (a
``DELETE_FAILED`` stack is deleted again, a deleted one is ``absent``). Only once every stack is gone is the base
infrastructure destroyed: first what Terraform cannot delete by itself (the buckets are versioned and not
``force_destroy``, and a model package group with versions cannot be deleted), each reported ``deleted``, ``absent``
or ``failed`` with the reason: every object version and delete marker of the data, artifact and logs buckets (in
batches of 1000, ``DeleteObjects``' limit), then every model package of the registry and the group; then
``terraform destroy`` of ``terraform/<env>`` through an injected command runner. A re-run finishes what a failure left.

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
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef
    from mypy_boto3_sagemaker import SageMakerClient

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
class ResourceOutcome:
    """What happened to one resource Terraform cannot delete by itself (a bucket's contents, a registry entry)."""

    kind: str
    """``bucket``, ``model package`` or ``model package group``."""
    name: str
    result: StackResult
    detail: str


@dataclass(frozen=True)
class AwsDestroyReport:
    """The outcome of destroying a pipeline on AWS."""

    stacks: tuple[StackOutcome, ...]
    base: BaseInfraOutcome
    stopped: tuple[str, ...] = ()
    """Pipeline executions stopped first, so that none recreates a stack meanwhile."""
    resources: tuple[ResourceOutcome, ...] = ()
    """The buckets emptied and the registry deleted before ``terraform destroy``."""

    @property
    def ok(self) -> bool:
        """Every stack and resource is gone and the base infrastructure was destroyed or deliberately kept."""
        return (
            all(s.result != "failed" for s in self.stacks)
            and all(r.result != "failed" for r in self.resources)
            and self.base.result != "failed"
        )


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


def terraform_problem(directory: Path, terraform: str | None) -> str | None:
    """Why ``terraform destroy`` cannot run in ``directory`` (no configuration, no CLI), or ``None``."""
    if not directory.is_dir() or not (any(directory.glob("*.tf")) or any(directory.glob("*.tf.json"))):
        return (
            f"no Terraform configuration in {directory}: synthesize it (cdktf_app) or pass --terraform-dir; "
            "--keep-base-infra skips this step"
        )
    if terraform is None:
        return (
            "the terraform CLI is not installed (not on PATH, $TERRAFORM unset): install terraform >= 1.5 "
            "and run destroy again"
        )
    return None


def terraform_destroy(directory: Path, run: Runner, terraform: str | None) -> BaseInfraOutcome:
    """``terraform init`` then ``terraform destroy -auto-approve`` in ``directory`` (the caller asked to confirm).

    Uses the directory's ``backend.hcl`` (state backend) and ``terraform.tfvars.json`` when present.
    """
    problem = terraform_problem(directory, terraform)
    if problem is not None or terraform is None:
        return BaseInfraOutcome("failed", problem or "no terraform CLI")
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


DELETE_BATCH = 1000
"""``DeleteObjects`` takes at most 1000 keys a call."""
MISSING_BUCKET_CODES = frozenset(("NoSuchBucket", "404", "NotFound"))


def destroy_buckets(spec: PipelineSpec) -> tuple[str, ...]:
    """The base infrastructure's buckets ``destroy`` empties: data and artifacts, then the logs they write to."""
    return (naming.data_bucket(spec), naming.artifact_bucket(spec), naming.logs_bucket(spec))


def empty_bucket(s3: S3Client, bucket: str) -> ResourceOutcome:
    """Delete every object version and delete marker of ``bucket`` (versioned or not), 1000 a call; never raises.

    ``deleted`` with the counts, ``absent`` if the bucket does not exist or was already empty, ``failed`` with the
    first keys S3 refused and why (a re-run deletes what is left).
    """
    versions = markers = 0
    refused: list[str] = []
    kept: set[tuple[str, str]] = set()
    try:
        # Always the first page again: what was deleted is gone from it (paging on past deleted keys is not
        # reliable everywhere), and what S3 refused is skipped; a page of nothing but refusals ends it.
        while True:
            page = s3.list_object_versions(Bucket=bucket, MaxKeys=DELETE_BATCH)
            entries = [(v["Key"], v.get("VersionId", "null"), False) for v in page.get("Versions", [])]
            entries += [(m["Key"], m.get("VersionId", "null"), True) for m in page.get("DeleteMarkers", [])]
            entries = [e for e in entries if (e[0], e[1]) not in kept]
            if not entries:
                break
            before = versions + markers
            for start in range(0, len(entries), DELETE_BATCH):
                chunk = entries[start : start + DELETE_BATCH]
                objects: list[ObjectIdentifierTypeDef] = [{"Key": key, "VersionId": vid} for key, vid, _ in chunk]
                reply = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
                errors = reply.get("Errors", [])
                refused += [f"{e.get('Key')} ({e.get('Code')}: {e.get('Message')})" for e in errors]
                failed = {(e.get("Key", ""), e.get("VersionId")) for e in errors}
                not_done = {(key, vid) for key, vid, _ in chunk if {(key, vid), (key, None)} & failed}
                kept |= not_done
                done = [is_marker for key, vid, is_marker in chunk if (key, vid) not in not_done]
                markers += sum(done)
                versions += len(done) - sum(done)
            if versions + markers == before:  # nothing went this round: S3 refuses the rest
                break
    except ClientError as exc:
        code, message = _error(exc)
        if code in MISSING_BUCKET_CODES:
            return ResourceOutcome("bucket", bucket, "absent", "already deleted (or never created)")
        return ResourceOutcome("bucket", bucket, "failed", f"{code}: {message}; run destroy again")
    if refused:
        shown = "; ".join(refused[:3]) + (f"; and {len(refused) - 3} more" if len(refused) > 3 else "")
        return ResourceOutcome("bucket", bucket, "failed", f"{len(refused)} objects not deleted: {shown}")
    if versions == markers == 0:
        return ResourceOutcome("bucket", bucket, "absent", "already empty")
    return ResourceOutcome(
        "bucket", bucket, "deleted", f"emptied: {versions} object versions and {markers} delete markers deleted"
    )


def _registry_missing(exc: ClientError) -> bool:
    code, message = _error(exc)
    return code in ("ValidationException", "ResourceNotFound") and (
        "does not exist" in message or "not found" in message.lower()
    )


def delete_registry(sagemaker: SageMakerClient, group: str) -> list[ResourceOutcome]:
    """Delete every model package (version) of ``group``, then the group; one outcome each; never raises.

    The group is attempted only once no version is left (SageMaker refuses to delete a group with versions).
    """
    outcomes: list[ResourceOutcome] = []
    arns: list[str] = []
    try:
        token: str | None = None
        while True:
            page = (
                sagemaker.list_model_packages(ModelPackageGroupName=group, NextToken=token)
                if token
                else sagemaker.list_model_packages(ModelPackageGroupName=group)
            )
            arns += [summary["ModelPackageArn"] for summary in page.get("ModelPackageSummaryList", [])]
            token = page.get("NextToken")
            if not token:
                break
    except ClientError as exc:
        if not _registry_missing(exc):
            code, message = _error(exc)
            return [ResourceOutcome("model package group", group, "failed", f"listing its versions: {code}: {message}")]
    for arn in arns:
        try:
            sagemaker.delete_model_package(ModelPackageName=arn)
            outcomes.append(ResourceOutcome("model package", arn, "deleted", ""))
        except ClientError as exc:
            if _registry_missing(exc):
                outcomes.append(ResourceOutcome("model package", arn, "absent", "already deleted"))
            else:
                outcomes.append(ResourceOutcome("model package", arn, "failed", "{}: {}".format(*_error(exc))))
    left = [o.name for o in outcomes if o.result == "failed"]
    if left:
        outcomes.append(
            ResourceOutcome(
                "model package group",
                group,
                "failed",
                f"kept while {len(left)} of its versions remain; run destroy again",
            )
        )
        return outcomes
    try:
        sagemaker.delete_model_package_group(ModelPackageGroupName=group)
        outcomes.append(ResourceOutcome("model package group", group, "deleted", f"after its {len(arns)} versions"))
    except ClientError as exc:
        if _registry_missing(exc):
            outcomes.append(ResourceOutcome("model package group", group, "absent", "already deleted"))
        else:
            outcomes.append(ResourceOutcome("model package group", group, "failed", "{}: {}".format(*_error(exc))))
    return outcomes


def destroy_data(
    spec: PipelineSpec,
    *,
    s3: S3Client | None,
    sagemaker: SageMakerClient | None,
    progress: Callable[[ResourceOutcome], None] | None = None,
) -> list[ResourceOutcome]:
    """Empty the buckets and delete the registry (what ``terraform destroy`` cannot), reporting each."""
    outcomes: list[ResourceOutcome] = []

    def report(outcome: ResourceOutcome) -> None:
        outcomes.append(outcome)
        if progress is not None:
            progress(outcome)

    if s3 is not None:
        for bucket in destroy_buckets(spec):
            report(empty_bucket(s3, bucket))
    if sagemaker is not None:
        for outcome in delete_registry(sagemaker, naming.model_package_group(spec)):
            report(outcome)
    return outcomes


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
    s3: S3Client | None = None,
    sagemaker: SageMakerClient | None = None,
    resource_progress: Callable[[ResourceOutcome], None] | None = None,
) -> AwsDestroyReport:
    """Stop running executions, delete the stacks, then (only if all are gone) the base infrastructure.

    ``codepipeline=None`` leaves executions alone; ``terraform_dir=None`` keeps the base infrastructure (and its
    buckets' data and the registry). Before ``terraform destroy``, the buckets are emptied (``s3``) and the registry's
    versions and group deleted (``sagemaker``); ``terraform destroy`` runs only if all of them went.
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
        cli = terraform if terraform is not None else find_terraform()
        problem = terraform_problem(terraform_dir, cli)
        if problem is not None:  # nothing is emptied for a destroy that cannot follow
            return AwsDestroyReport(stacks, BaseInfraOutcome("failed", problem), stopped)
        resources = tuple(destroy_data(spec, s3=s3, sagemaker=sagemaker, progress=resource_progress))
        remaining = [r.name for r in resources if r.result == "failed"]
        if remaining:
            base = BaseInfraOutcome("skipped", f"kept while {', '.join(remaining)} remain; run destroy again")
        else:
            base = terraform_destroy(terraform_dir, run, cli)
        return AwsDestroyReport(stacks, base, stopped, resources)
    return AwsDestroyReport(stacks, base, stopped)


def format_stack_line(outcome: StackOutcome, width: int) -> str:
    """``  <stack>  <result>  <detail> (<seconds>)``."""
    took = f"({outcome.seconds:.0f} s)" if outcome.seconds >= 1 else ""
    detail = " ".join(part for part in (outcome.detail, took) if part)
    return f"  {outcome.stack_name:<{width + 2}}{outcome.result:<9}{detail}".rstrip()


def format_resource_line(outcome: ResourceOutcome, width: int) -> str:
    """``  <kind> <name>  <result>  <detail>``, aligned with :func:`format_stack_line`."""
    label = f"{outcome.kind} {outcome.name}"
    return f"  {label:<{width + 2}}{outcome.result:<9}{outcome.detail}".rstrip()


def report_width(spec: PipelineSpec) -> int:
    """The label width that aligns the stacks', the buckets' and the registry's lines."""
    labels = [naming.stack_name(spec, kind) for kind in naming.DESTROY_ORDER]
    labels += [f"bucket {bucket}" for bucket in destroy_buckets(spec)]
    return max(len(label) for label in labels)


def format_base_line(base: BaseInfraOutcome, width: int) -> str:
    """The base infrastructure's line, aligned with :func:`format_stack_line`."""
    result = f"{base.result} ".ljust(9)  # "destroyed" fills the column: keep a space before the detail
    return f"  {'base infrastructure':<{width + 2}}{result}{base.detail}"


def format_aws_report(report: AwsDestroyReport) -> str:
    """One line per stack, then the base infrastructure."""
    width = max((len(s.stack_name) for s in report.stacks), default=0)
    return "\n".join(
        [
            *(format_stack_line(s, width) for s in report.stacks),
            *(format_resource_line(r, width) for r in report.resources),
            format_base_line(report.base, width),
        ]
    )


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
