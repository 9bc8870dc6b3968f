"""What went wrong, where, and the command to run next: one table for every failure the CLI reports.

A failure is an exception a command raised before or outside the pipeline's stages (a bad ``--set``, the lock held,
the runtime not running, credentials...) or a failed execution's record, whose failed stage keeps the exception's
class name (``StageExecution.error_type``). Both are looked up in :data:`HINTS` by exception type, first match wins
(so subclasses come before their bases), and give a :class:`Failure`: the stage (or "before the pipeline started"),
the cause and the next command. :mod:`safedeploy.terminal` renders it, a red panel on a terminal, plain lines
otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from safedeploy.approval import ApprovalExpiredError, ApprovalRejectedError
from safedeploy.aws.codepipeline import NoPendingApprovalError, PipelineNotFoundError
from safedeploy.blue_green import RolledBackError
from safedeploy.errors import (
    ArtifactError,
    AwsCredentialsError,
    ConfigError,
    ConfigFileError,
    DataValidationError,
    DeploymentError,
    ExecutionError,
    GateFailedError,
    OverrideError,
    PipelineLockedError,
    RegistryError,
    SafeDeployError,
    TrainingJobError,
)
from safedeploy.local.daemon import LocalRuntimeError
from safedeploy.monitoring.records import MonitoringError
from safedeploy.reserve import is_disk_full
from safedeploy.runner import PipelineExecution, Status

BEFORE_THE_PIPELINE = "before the pipeline started"
DATA = "make deploy DATA=path/to/churn.csv"
RETRY = "make retry"
ROLLBACK = "DeployPrd (rollback)"
"""Where ``make rollback``'s failures happen."""
DISK_FULL = "No space left on device"
"""``strerror(ENOSPC)``: how a full disk reads in a recorded failure."""


@dataclass(frozen=True)
class Hint:
    """The next command for one kind of failure.

    Attributes:
        kind: The exception type (and its subclasses) this hint is for.
        command: What to run next, as a person types it.
        note: When or why, in a few words.
        stage: Only for failures in this stage (``None``: wherever it happens).
        where: The stage it belongs to when raised outside the runner (an expired approval belongs to
            ApproveDeployment); ``None``: :data:`BEFORE_THE_PIPELINE`, or the command's own.
    """

    kind: type[BaseException]
    command: str
    note: str = ""
    stage: str | None = None
    where: str | None = None


SPEC = ".venv/bin/safedeploy spec"
AWS_CHECK = "aws sts get-caller-identity"
HINTS: tuple[Hint, ...] = (
    Hint(
        OverrideError,
        f"{SPEC} --set KEY=VALUE",
        "checks the corrected argument (dotted keys: hyperparameters.max_depth=4); then run the command again",
    ),
    Hint(ConfigFileError, SPEC, "after fixing pipeline.toml (or the --config file): it prints the resolved spec"),
    Hint(
        AwsCredentialsError,
        AWS_CHECK,
        "after configuring as said above (aws configure, AWS_PROFILE, account_id); then run the command again",
    ),
    Hint(ConfigError, DATA, "the churn table to train on (seed format)", stage="Data"),
    Hint(
        ConfigError,
        SPEC,
        "after correcting the setting named above (--set / DATA=, a SAFEDEPLOY_* variable or pipeline.toml)",
    ),
    Hint(DataValidationError, DATA, "after fixing the rows named above (or with another file)"),
    Hint(
        GateFailedError,
        DATA,
        "nothing was registered: improve the data or hyperparameters, or relax gate.conditions in pipeline.toml",
    ),
    Hint(TrainingJobError, RETRY, "after reading the training job's log named above"),
    Hint(
        RolledBackError,
        "make deployments",
        f"shows why; production still serves what it served before; then {DATA} (or {RETRY} for this version)",
    ),
    Hint(
        DeploymentError,
        RETRY,
        "the dev REST API was not moved; the runtime log (`.venv/bin/safedeploy runtime status` names it) says why",
        stage="DeployDev",
    ),
    Hint(
        DeploymentError,
        "make rollback VERSION=n",
        "with n one of the versions listed above, if any; `make deployments` shows which served production and "
        "how each ended, nothing changed meanwhile",
        stage=ROLLBACK,
    ),
    Hint(DeploymentError, "make status", f"and `make deployments` show where it stopped; {RETRY} once it is fixed"),
    Hint(
        ApprovalRejectedError,
        DATA,
        "the version is Rejected and production unchanged: train and deploy another one",
        where="ApproveDeployment",
    ),
    Hint(
        ApprovalExpiredError,
        DATA,
        "the approval expired unanswered and the execution failed: start a new one",
        where="ApproveDeployment",
    ),
    Hint(
        PipelineLockedError,
        "make status",
        "shows the running execution; wait for it (or stop its process), then run the command again",
    ),
    Hint(
        LocalRuntimeError,
        ".venv/bin/safedeploy runtime start",
        "then run the command again (`make deploy` starts the runtime too)",
    ),
    Hint(NoPendingApprovalError, "make status TARGET=aws", "approve when it waits at ApproveDeployment"),
    Hint(
        PipelineNotFoundError,
        "make plan ENV=dev && make apply",
        "the base infrastructure is not deployed in this account and region",
    ),
    Hint(ExecutionError, "make status", f"shows the latest execution (`make history`: every one); or {DATA}"),
    Hint(ArtifactError, RETRY, "re-runs the stages whose artifacts no longer verify"),
    Hint(RegistryError, "make registry", "shows each version's status"),
    Hint(MonitoringError, "make status", "shows production and its monitoring (`make deploy` sets it up)"),
    Hint(BotoCoreError, AWS_CHECK, "then, if the base infrastructure is not applied: make plan ENV=dev && make apply"),
    Hint(ClientError, AWS_CHECK, "then, if the base infrastructure is not applied: make plan ENV=dev && make apply"),
)
DEFAULT_HINT = Hint(SafeDeployError, RETRY, "after fixing the cause above (`make status` shows the execution)")
DISK_FULL_HINT = Hint(OSError, RETRY, "after freeing disk space (the state directory, .safedeploy/, and /tmp)")
SUPERSEDED_HINT = Hint(
    SafeDeployError, "make approve COMMENT='why'", "a newer execution waits at the gate (`make status`)"
)


@dataclass(frozen=True)
class Failure:
    """A failure as the person running the pipeline reads it.

    Attributes:
        stage: The stage that failed, or :data:`BEFORE_THE_PIPELINE`.
        cause: What went wrong (the exception's or the record's message).
        next_command: What to run next.
        note: When or why, in a few words (shown after the command as a shell comment).
    """

    stage: str
    cause: str
    next_command: str
    note: str = ""

    @classmethod
    def of(cls, stage: str, cause: str, hint: Hint) -> Failure:
        """The failure ``hint`` answers."""
        return cls(stage, cause, hint.command, hint.note)

    @property
    def next_step(self) -> str:
        """The next command and its note on one line."""
        return f"{self.next_command}  # {self.note}" if self.note else self.next_command

    def plain(self) -> str:
        """``error: <cause>``, then the stage and the next command, one per line."""
        return f"error: {self.cause}\n  stage: {self.stage}\n  next:  {self.next_step}"


def _names(kind: type[BaseException]) -> Iterator[str]:
    yield kind.__name__
    for sub in kind.__subclasses__():
        yield from _names(sub)


def _hint(kind: str, stage: str | None) -> Hint | None:
    """The first hint for an exception class named ``kind`` (or a subclass of it) that applies in ``stage``."""
    for hint in HINTS:
        if (hint.stage is None or hint.stage == stage) and kind in set(_names(hint.kind)):
            return hint
    return None


def failure_of_exception(exc: BaseException, where: str | None = None, *, cause: str | None = None) -> Failure:
    """A command's exception, raised outside the stages: ``where`` names the command's part (default: before).

    ``cause`` replaces the exception's message (an AWS error in one line, a rollback's own words).
    """
    cause = cause or str(exc) or type(exc).__name__
    if is_disk_full(exc):
        return Failure.of(where or BEFORE_THE_PIPELINE, cause, DISK_FULL_HINT)
    hint = _hint(type(exc).__name__, where)
    stage = (hint.where if hint else None) or where or BEFORE_THE_PIPELINE
    return Failure.of(stage, cause, hint or DEFAULT_HINT)


def failure_of_execution(execution: PipelineExecution) -> Failure | None:
    """Why ``execution`` failed and what to run next; ``None`` unless it failed (or was superseded)."""
    if execution.status not in (Status.FAILED, Status.SUPERSEDED):
        return None
    failed = next((s for s in execution.stages if s.status in (Status.FAILED, Status.SUPERSEDED)), None)
    stage = failed.name if failed else BEFORE_THE_PIPELINE
    cause = (failed.error if failed else None) or execution.error or f"execution {execution.status}"
    if execution.status == Status.SUPERSEDED:
        return Failure.of(stage, cause, SUPERSEDED_HINT)
    if DISK_FULL in cause:
        return Failure.of(stage, cause, DISK_FULL_HINT)
    hint = _hint(failed.error_type, stage) if failed and failed.error_type else None
    return Failure.of(stage, cause, hint or DEFAULT_HINT)


def is_expected(exc: BaseException) -> bool:
    """Whether the CLI reports ``exc`` as a failure with a hint (else it is a bug, and its traceback shows)."""
    return isinstance(exc, SafeDeployError | BotoCoreError | ClientError) or is_disk_full(exc)
