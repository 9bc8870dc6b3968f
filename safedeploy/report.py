"""Human-readable views of executions and registry entries (what the consoles would show)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from safedeploy import constants as C
from safedeploy.registry import (
    META_DECIDED_BY,
    META_ROLLED_BACK_AT,
    META_ROLLED_BACK_BY,
    META_ROLLED_BACK_REASON,
    ModelPackage,
)
from safedeploy.runner import PipelineExecution
from safedeploy.stage_outputs import RegisterOutputs, TrainOutputs

if TYPE_CHECKING:
    from safedeploy.retraining.status import RetrainingStatus


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def format_execution(execution: PipelineExecution) -> str:
    """Render an execution like the CodePipeline console: one line per stage with status and duration."""
    head = (
        f"Pipeline {execution.pipeline_name}  execution {execution.execution_id}\n"
        f"Status {execution.status}  started {execution.started_at:%Y-%m-%d %H:%M:%S} UTC  "
        f"duration {_duration(execution.duration_seconds)}  trigger {execution.trigger}"
    )
    rows = []
    for stage in execution.stages:
        detail = stage.error if stage.error else stage.summary
        rows.append(
            [
                stage.name,
                str(stage.status) if stage.status else "-",
                f"{stage.started_at:%H:%M:%S}" if stage.started_at else "-",
                _duration(stage.duration_seconds),
                (detail or "").splitlines()[0] if detail else "",
            ]
        )
    text = f"{head}\n\n{_table(['STAGE', 'STATUS', 'STARTED', 'DURATION', 'DETAIL'], rows)}"
    if execution.error and "\n" in execution.error:
        text += f"\n\nError:\n{execution.error}"
    return text


def execution_summary(execution: PipelineExecution) -> str:
    """One closing line: outcome, and for a success the registered version and its test AUC."""
    waiting = execution.awaiting_approval
    if waiting is not None:
        return f"Execution {execution.execution_id} is waiting at {waiting.name}: {waiting.summary}"
    if execution.status != "Succeeded":
        first_line = (execution.error or "").splitlines()[0] if execution.error else ""
        return f"Execution {execution.execution_id} {execution.status}: {first_line}"
    train = execution.output(TrainOutputs)
    register = execution.output(RegisterOutputs)
    auc = train.metrics.get("test:auc", float("nan"))
    status = register.approval_status
    approved = next((s for s in execution.stages if s.name == C.STAGE_APPROVAL and s.approval is not None), None)
    if approved is not None and approved.approval is not None:
        status = f"{approved.approval.status} by {approved.approval.approver}"
    return (
        f"Execution {execution.execution_id} Succeeded in {_duration(execution.duration_seconds)}: "
        f"model package {execution.spec['model_name']} v{register.model_package_version} "
        f"({status}), test AUC {auc:.4f}{_against_production(train)}"
    )


def _against_production(train: TrainOutputs) -> str:
    """`` vs production v3 0.9263`` (and whether the version was reused): candidate and production side by side."""
    text = ""
    if train.production_version is not None and "test:auc" in train.production_metrics:
        text += f" vs production v{train.production_version} {train.production_metrics['test:auc']:.4f}"
    if train.reused_version is not None:
        text += f" (v{train.reused_version} reused: identical inputs, no new version)"
    return text


def format_outcome(execution: PipelineExecution) -> str:
    """An execution as a run, retry or decision leaves it: stages, closing line, and how to answer a waiting gate."""
    text = f"{format_execution(execution)}\n\n{execution_summary(execution)}"
    waiting = execution.awaiting_approval
    if waiting is not None and waiting.approval is not None:
        text += (
            f"\n\n{waiting.approval.summary}\n{waiting.approval.question}\n"
            f"  approve: make approve COMMENT='why'   (.venv/bin/safedeploy approve --comment 'why')\n"
            f"  reject:  make reject COMMENT='why'    (.venv/bin/safedeploy reject --comment 'why')\n"
            f"The approval expires at {waiting.approval.expires_at:%Y-%m-%d %H:%M:%S} UTC; "
            f"the dev endpoint keeps serving meanwhile."
        )
    return text


def format_history(executions: Sequence[PipelineExecution]) -> str:
    """One line per execution: start, id, status, and what triggered it."""
    return "\n".join(
        f"{e.started_at:%Y-%m-%d %H:%M:%S}  {e.execution_id}  {e.status}  trigger: {e.trigger}" for e in executions
    )


def format_retraining(status: RetrainingStatus) -> str:
    """``make status``'s retraining lines: last decision and why, the triggered execution, the cooldown."""
    alarms = ", ".join(status.trigger_alarms)
    lines = [f"\nRetraining: {'on' if status.enabled else 'off'}, on {alarms}"]
    decision = status.last_decision
    if decision is None:
        lines.append("  no decision yet (one is taken after each scheduled monitoring execution)")
    else:
        lines.append(f"  last decision {decision.time:%Y-%m-%d %H:%M:%S}: {decision.action}: {decision.reason}")
    if status.last_started is not None:
        started = status.last_started
        execution = (
            f"execution {status.execution_id} {status.execution_status}"
            if status.execution_id
            else f"no execution yet (log {started.log})"
        )
        lines.append(f"  last retraining {started.retraining_id}: {execution}; trigger: {started.trigger}")
    if status.cooldown_ends is not None:
        lines.append(f"  cooldown ends {status.cooldown_ends:%Y-%m-%d %H:%M:%S} (model time, monitoring clock)")
    return "\n".join(lines)


def _serving(package: ModelPackage) -> str:
    meta = package.CustomerMetadataProperties
    parts = []
    for stage in package.serves_in:
        since = meta.get(f"{stage.capitalize()}Since", "")
        parts.append(f"{stage} since {since[:16].replace('T', ' ')}" if since else stage)
    return ", ".join(parts) or "-"


def _status(package: ModelPackage) -> str:
    if package.rolled_back:
        return f"{package.ModelApprovalStatus}, rolled back"
    return package.ModelApprovalStatus


def format_registry(packages: Sequence[ModelPackage], group: str, notes: Sequence[str] = ()) -> str:
    """``make registry``: the versions as a table (or that there are none), then what was updated first, if anything."""
    text = format_packages(packages) if packages else f"no versions of {group} registered yet"
    return "\n".join([text, *(f"(updated: {note})" for note in notes)])


def format_packages(packages: Sequence[ModelPackage]) -> str:
    """Render registry versions as a table: ``*`` marks the version in production, and rolled-back versions say so.

    Under the table: what the marker means and, for each rolled-back version, when and why.
    """
    rows = [
        [
            "*" if C.PRD_STAGE in p.serves_in else "",
            str(p.ModelPackageVersion),
            _status(p),
            _serving(p),
            f"{p.CreationTime:%Y-%m-%d %H:%M:%S}",
            f"{p.Metrics.get('test:auc', float('nan')):.4f}",
            p.CustomerMetadataProperties.get(META_DECIDED_BY, "")[:24],
            p.CustomerMetadataProperties.get("CodeRevision", "")[:12],
            p.CustomerMetadataProperties.get("DataSha256", "")[:12],
        ]
        for p in packages
    ]
    table = _table(["", "VERSION", "STATUS", "SERVES", "CREATED (UTC)", "TEST AUC", "DECIDED BY", "CODE", "DATA"], rows)
    live = next((p for p in reversed(packages) if C.PRD_STAGE in p.serves_in), None)
    notes = [f"* in production: v{live.ModelPackageVersion}" if live else "no version is in production"]
    for p in packages:
        if p.rolled_back:
            meta = p.CustomerMetadataProperties
            notes.append(
                f"v{p.ModelPackageVersion} rolled back at {meta.get(META_ROLLED_BACK_AT, '?')} by "
                f"{meta.get(META_ROLLED_BACK_BY, '?')}: {meta.get(META_ROLLED_BACK_REASON, '')}"
            )
    return "\n".join([table, "", *notes])
