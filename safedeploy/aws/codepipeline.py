"""The AWS CodePipeline of a model and environment: its executions, stage states and the manual approval.

Everything takes an injected CodePipeline client. :func:`pending_approval` finds the Manual approval action of the
ApproveDeployment stage (after DeployDev; a stage of its own so a version production already serves skips it;
found by its action type, whatever it is named) while it waits, with
the token ``PutApprovalResult`` needs; :func:`decide` answers it with a comment. Failures raise errors naming the
pipeline and what to do: no such pipeline, nothing waiting, a token gone stale meanwhile, already answered.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import ClientError

from safedeploy import constants as C
from safedeploy.errors import ConfigError, SafeDeployError

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_codepipeline.type_defs import (
        ActionStateTypeDef,
        PipelineExecutionSummaryTypeDef,
        StageStateTypeDef,
    )

RUNNING_STATUSES = ("InProgress", "Stopping")
"""Execution statuses that can still run actions (create or update stacks)."""
APPROVAL_CATEGORY = "Approval"
MANUAL_PROVIDER = "Manual"


class PipelineQueryError(SafeDeployError):
    """CodePipeline refused a query: no such pipeline, or the call failed."""


class PipelineNotFoundError(PipelineQueryError):
    """There is no such pipeline in the account and region."""


class NoPendingApprovalError(SafeDeployError):
    """Nothing waits at the manual approval (or not the execution asked about)."""


class StaleApprovalError(SafeDeployError):
    """The approval changed between reading its token and answering it (superseded, expired or answered)."""


@dataclass(frozen=True)
class ExecutionSummary:
    """One pipeline execution."""

    execution_id: str
    status: str
    started_at: datetime | None
    updated_at: datetime | None
    trigger: str | None
    status_summary: str | None = None

    @classmethod
    def parse(cls, summary: PipelineExecutionSummaryTypeDef) -> ExecutionSummary:
        """From a ``ListPipelineExecutions`` summary."""
        trigger = summary.get("trigger", {})
        kind, detail = trigger.get("triggerType"), trigger.get("triggerDetail")
        return cls(
            execution_id=summary.get("pipelineExecutionId", ""),
            status=summary.get("status", "Unknown"),
            started_at=summary.get("startTime"),
            updated_at=summary.get("lastUpdateTime"),
            trigger=f"{kind} ({detail})" if kind and detail else kind,
            status_summary=summary.get("statusSummary"),
        )


@dataclass(frozen=True)
class ActionState:
    """The latest execution of one action of a stage (``status`` is ``None`` if it never ran)."""

    name: str
    status: str | None
    summary: str | None
    changed_at: datetime | None
    token: str | None
    error: str | None

    @classmethod
    def parse(cls, state: ActionStateTypeDef) -> ActionState:
        """From ``GetPipelineState``'s action state."""
        latest = state.get("latestExecution", {})
        error = latest.get("errorDetails", {})
        return cls(
            name=state.get("actionName", ""),
            status=latest.get("status"),
            summary=latest.get("summary"),
            changed_at=latest.get("lastStatusChange"),
            token=latest.get("token"),
            error=error.get("message") or error.get("code"),
        )


@dataclass(frozen=True)
class StageState:
    """A stage's latest execution: which pipeline execution it belongs to, its status and its actions."""

    name: str
    status: str | None
    execution_id: str | None
    actions: tuple[ActionState, ...]

    @classmethod
    def parse(cls, state: StageStateTypeDef) -> StageState:
        """From ``GetPipelineState``'s stage state."""
        latest = state.get("latestExecution")
        return cls(
            name=state.get("stageName", ""),
            status=latest["status"] if latest else None,
            execution_id=latest["pipelineExecutionId"] if latest else None,
            actions=tuple(ActionState.parse(action) for action in state.get("actionStates", [])),
        )

    def action(self, name: str) -> ActionState | None:
        """The named action's state."""
        return next((a for a in self.actions if a.name == name), None)


@dataclass(frozen=True)
class PendingApproval:
    """A manual approval waiting for an answer."""

    pipeline_name: str
    stage_name: str
    action_name: str
    token: str
    execution_id: str | None
    """The pipeline execution waiting at the approval."""
    requested_at: datetime | None
    expires_at: datetime | None
    custom_data: str | None
    """The question the approval action asks (its ``CustomData``), if it has one."""


@dataclass(frozen=True)
class ApprovalDecision:
    """An answered approval."""

    approval: PendingApproval
    status: Literal["Approved", "Rejected"]
    comment: str
    decided_at: datetime | None


def _translate(exc: ClientError, pipeline_name: str, what: str) -> PipelineQueryError:
    error = exc.response.get("Error", {})
    code, message = error.get("Code", "Unknown"), error.get("Message", str(exc))
    if code == "PipelineNotFoundException":
        return PipelineNotFoundError(
            f"there is no CodePipeline named {pipeline_name} in this account and region ({message}): "
            "is the base infrastructure deployed, and are AWS_PROFILE / the spec's region right?"
        )
    return PipelineQueryError(f"{what} of pipeline {pipeline_name} failed: {code}: {message}")


@contextmanager
def _calling(pipeline_name: str, what: str) -> Iterator[None]:
    """Translate CodePipeline's errors for ``what`` into :class:`PipelineQueryError`."""
    try:
        yield
    except ClientError as exc:
        raise _translate(exc, pipeline_name, what) from None


def latest_execution(client: CodePipelineClient, pipeline_name: str) -> ExecutionSummary | None:
    """The most recent execution, or ``None`` if the pipeline never ran."""
    with _calling(pipeline_name, "ListPipelineExecutions"):
        page = client.list_pipeline_executions(pipelineName=pipeline_name, maxResults=1)
    summaries = page.get("pipelineExecutionSummaries", [])
    return ExecutionSummary.parse(summaries[0]) if summaries else None


def list_executions(client: CodePipelineClient, pipeline_name: str, limit: int = 20) -> list[ExecutionSummary]:
    """Up to ``limit`` executions, newest first."""
    found: list[ExecutionSummary] = []
    token: str | None = None
    with _calling(pipeline_name, "ListPipelineExecutions"):
        while len(found) < limit:
            size = min(100, limit - len(found))
            page = (
                client.list_pipeline_executions(pipelineName=pipeline_name, maxResults=size, nextToken=token)
                if token
                else client.list_pipeline_executions(pipelineName=pipeline_name, maxResults=size)
            )
            found.extend(ExecutionSummary.parse(s) for s in page.get("pipelineExecutionSummaries", []))
            token = page.get("nextToken")
            if not token:
                break
    return found[:limit]


def find_execution(
    client: CodePipelineClient, pipeline_name: str, id_or_prefix: str, limit: int = 100
) -> ExecutionSummary:
    """The execution whose id is (or starts with) ``id_or_prefix``, among the latest ``limit``.

    Raises:
        PipelineQueryError: none matches, or the prefix is ambiguous.
    """
    matches = [e for e in list_executions(client, pipeline_name, limit) if e.execution_id.startswith(id_or_prefix)]
    if not matches:
        raise PipelineQueryError(f"no execution {id_or_prefix!r} among the latest {limit} of {pipeline_name}")
    if len(matches) > 1 and not any(m.execution_id == id_or_prefix for m in matches):
        raise PipelineQueryError(f"{id_or_prefix!r} matches {len(matches)} executions of {pipeline_name}: give more")
    return next((m for m in matches if m.execution_id == id_or_prefix), matches[0])


def running_executions(client: CodePipelineClient, pipeline_name: str, limit: int = 20) -> list[ExecutionSummary]:
    """The executions among the latest ``limit`` that are InProgress or Stopping (a V2 pipeline may run several)."""
    return [e for e in list_executions(client, pipeline_name, limit) if e.status in RUNNING_STATUSES]


def stop_execution(client: CodePipelineClient, pipeline_name: str, execution_id: str, reason: str) -> None:
    """Stop an execution now, abandoning its in-progress actions; one that already ended or is stopping is left be."""
    try:
        client.stop_pipeline_execution(
            pipelineName=pipeline_name, pipelineExecutionId=execution_id, abandon=True, reason=reason
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("PipelineExecutionNotStoppableException", "DuplicatedStopRequestException"):
            return
        raise _translate(exc, pipeline_name, "StopPipelineExecution") from None


def stage_states(client: CodePipelineClient, pipeline_name: str) -> list[StageState]:
    """Every stage's latest execution, in pipeline order."""
    with _calling(pipeline_name, "GetPipelineState"):
        state = client.get_pipeline_state(name=pipeline_name)
    return [StageState.parse(stage) for stage in state.get("stageStates", [])]


@dataclass(frozen=True)
class RetriedStage:
    """A stage whose failed actions CodePipeline runs again."""

    execution_id: str
    stage_name: str


def retry_failed_stage(client: CodePipelineClient, pipeline_name: str, execution_id: str | None) -> RetriedStage:
    """Retry the failed stage of the latest (or the given) execution with ``RetryStageExecution(FAILED_ACTIONS)``.

    Raises:
        PipelineQueryError: no such execution, it has no failed stage (CodePipeline keeps only each stage's latest
            execution: a newer execution that reached the stage hides this one), or CodePipeline refused the retry.
    """
    target = (
        find_execution(client, pipeline_name, execution_id) if execution_id else latest_execution(client, pipeline_name)
    )
    if target is None:
        raise PipelineQueryError(f"pipeline {pipeline_name} has not run yet: nothing to retry")
    failed = [
        stage
        for stage in stage_states(client, pipeline_name)
        if stage.status == "Failed" and stage.execution_id == target.execution_id
    ]
    if not failed:
        raise PipelineQueryError(
            f"execution {target.execution_id} of {pipeline_name} ({target.status}) has no failed stage to retry"
        )
    stage = failed[0]
    with _calling(pipeline_name, "RetryStageExecution"):
        client.retry_stage_execution(
            pipelineName=pipeline_name,
            stageName=stage.name,
            pipelineExecutionId=target.execution_id,
            retryMode="FAILED_ACTIONS",
        )
    return RetriedStage(target.execution_id, stage.name)


@dataclass(frozen=True)
class _ApprovalAction:
    name: str
    custom_data: str | None
    timeout: timedelta


def _approval_actions(client: CodePipelineClient, pipeline_name: str, stage: str) -> list[_ApprovalAction]:
    with _calling(pipeline_name, "GetPipeline"):
        pipeline = client.get_pipeline(name=pipeline_name)["pipeline"]
    declared = next((s for s in pipeline["stages"] if s["name"] == stage), None)
    if declared is None:
        names = ", ".join(s["name"] for s in pipeline["stages"])
        raise PipelineQueryError(f"pipeline {pipeline_name} has no stage {stage} (its stages: {names})")
    actions = []
    for action in sorted(declared["actions"], key=lambda a: a.get("runOrder", 1)):
        kind = action["actionTypeId"]
        if kind["category"] == APPROVAL_CATEGORY and kind["provider"] == MANUAL_PROVIDER:
            minutes = action.get("timeoutInMinutes")
            timeout = timedelta(minutes=minutes) if minutes else timedelta(seconds=C.APPROVAL_TIMEOUT_SECONDS)
            actions.append(_ApprovalAction(action["name"], action.get("configuration", {}).get("CustomData"), timeout))
    if not actions:
        raise PipelineQueryError(f"stage {stage} of pipeline {pipeline_name} has no Manual approval action")
    return actions


def pending_approval(
    client: CodePipelineClient,
    pipeline_name: str,
    stage: str = C.STAGE_APPROVAL,
    states: list[StageState] | None = None,
) -> PendingApproval | None:
    """The manual approval of ``stage`` waiting for an answer (InProgress, with a token), or ``None``.

    Args:
        client: CodePipeline client.
        pipeline_name: The pipeline.
        stage: The stage holding the Manual approval action.
        states: :func:`stage_states` if the caller already has them (else they are read).

    Raises:
        PipelineQueryError: no such pipeline or stage, or the stage has no Manual approval action.
    """
    actions = _approval_actions(client, pipeline_name, stage)
    current = next(
        (s for s in (states if states is not None else stage_states(client, pipeline_name)) if s.name == stage), None
    )
    if current is None:
        return None
    for action in actions:
        state = current.action(action.name)
        if state is not None and state.status == "InProgress" and state.token:
            return PendingApproval(
                pipeline_name=pipeline_name,
                stage_name=stage,
                action_name=action.name,
                token=state.token,
                execution_id=current.execution_id,
                requested_at=state.changed_at,
                expires_at=state.changed_at + action.timeout if state.changed_at else None,
                custom_data=action.custom_data,
            )
    return None


def check_comment(comment: str) -> str:
    """The comment, stripped; raise :class:`ConfigError` if it is empty or longer than CodePipeline keeps."""
    text = comment.strip()
    if not text:
        raise ConfigError("a decision needs a comment saying why")
    if len(text) > C.APPROVAL_COMMENT_MAX_LENGTH:
        limit = C.APPROVAL_COMMENT_MAX_LENGTH
        raise ConfigError(f"the comment is {len(text)} characters; CodePipeline keeps at most {limit}")
    return text


def decide(
    client: CodePipelineClient,
    pipeline_name: str,
    *,
    approved: bool,
    comment: str,
    stage: str = C.STAGE_APPROVAL,
    execution_id: str | None = None,
) -> ApprovalDecision:
    """Approve or reject the waiting manual approval, with ``comment`` as its summary.

    Args:
        client: CodePipeline client.
        pipeline_name: The pipeline (``naming.codepipeline_name``).
        approved: ``True`` approves (the pipeline goes on to production), ``False`` rejects (the execution fails).
        comment: Why; recorded by CodePipeline with the caller's identity.
        stage: The stage holding the approval.
        execution_id: If given, the waiting execution must be this one (an id or a prefix of it).

    Raises:
        ConfigError: the comment is empty or too long.
        NoPendingApprovalError: nothing waits, or another execution does.
        StaleApprovalError: the approval was superseded, expired or answered meanwhile.
        PipelineQueryError: the pipeline, stage or action cannot be found, or CodePipeline refused.
    """
    text = check_comment(comment)
    approval = pending_approval(client, pipeline_name, stage)
    if approval is None:
        raise NoPendingApprovalError(
            f"nothing is waiting for approval in {pipeline_name} (stage {stage}): "
            "`safedeploy status --target aws` shows where the latest execution is"
        )
    if execution_id and not (approval.execution_id or "").startswith(execution_id):
        raise NoPendingApprovalError(
            f"execution {execution_id} is not the one waiting in {pipeline_name}: {approval.execution_id} is"
        )
    status: Literal["Approved", "Rejected"] = "Approved" if approved else "Rejected"
    try:
        reply = client.put_approval_result(
            pipelineName=pipeline_name,
            stageName=approval.stage_name,
            actionName=approval.action_name,
            result={"summary": text, "status": status},
            token=approval.token,
        )
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Unknown"), error.get("Message", str(exc))
        if code == "InvalidApprovalTokenException":
            raise StaleApprovalError(
                f"the approval of execution {approval.execution_id} is no longer the one waiting ({message}): it was "
                "superseded by a newer execution, expired or answered; check `safedeploy status --target aws`"
            ) from None
        if code == "ApprovalAlreadyCompletedException":
            raise StaleApprovalError(
                f"the approval of execution {approval.execution_id} was already answered ({message})"
            ) from None
        raise PipelineQueryError(f"PutApprovalResult of {pipeline_name} failed: {code}: {message}") from None
    return ApprovalDecision(approval, status, text, reply.get("approvedAt"))


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S %Z}".strip() if at else "-"


def format_status(
    pipeline_name: str,
    execution: ExecutionSummary | None,
    stages: list[StageState],
    approval: PendingApproval | None,
) -> str:
    """A human-readable status: the execution, each stage and action, and how to answer a waiting approval."""
    lines = [f"CodePipeline {pipeline_name}"]
    if execution is None:
        lines.append("  no executions yet")
    else:
        trigger = f", trigger {execution.trigger}" if execution.trigger else ""
        lines.append(
            f"Execution {execution.execution_id}  {execution.status}  started {_when(execution.started_at)}{trigger}"
        )
        if execution.status_summary:
            lines.append(f"  {execution.status_summary}")
    for stage in stages:
        other = (
            f"(from execution {stage.execution_id[:8]})"
            if execution and stage.execution_id and stage.execution_id != execution.execution_id
            else ""
        )
        lines.append(f"{stage.name:<19}{stage.status or '-':<12}{other}".rstrip())
        for action in stage.actions:
            detail = action.error or action.summary or ""
            lines.append(
                f"  {action.name:<24}{action.status or '-':<12}{_when(action.changed_at):<24}{detail}".rstrip()
            )
    if approval is not None:
        question = f" ({approval.custom_data})" if approval.custom_data else ""
        lines += [
            "",
            f"Waiting for approval at {approval.stage_name}/{approval.action_name}{question}, "
            f"execution {approval.execution_id}; expires {_when(approval.expires_at)}",
            "  approve: make approve TARGET=aws COMMENT='why'   "
            "(.venv/bin/safedeploy approve --target aws --comment 'why')",
            "  reject:  make reject TARGET=aws COMMENT='why'    "
            "(.venv/bin/safedeploy reject --target aws --comment 'why')",
        ]
    return "\n".join(lines)
