"""Monitoring as people read it: an execution's summary, the history, the alarms (CLI, status, notebook)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from safedeploy.monitoring.records import MonitoringExecution


def _auc_text(summary: Mapping[str, Any]) -> str:
    """``auc 0.8123 +/- 0.0105 vs threshold 0.85`` (or what is missing)."""
    if summary.get("status") == "InsufficientData":
        return f"auc not judged: fewer than {summary.get('min_labelled_records')} labelled records"
    auc = summary.get("auc") or {}
    value, sd = auc.get("value"), auc.get("standard_deviation")
    shown = f"{value:.4f}" if isinstance(value, (int, float)) else str(value or "-")
    spread = f" +/- {sd:.4f}" if isinstance(sd, (int, float)) else ""
    threshold = summary.get("auc_threshold")
    return f"auc {shown}{spread} vs threshold {threshold if threshold is not None else '-'}"


def format_quality_execution(execution: MonitoringExecution) -> str:
    """A model-quality execution: window, status, coverage and label counts, AUC against its threshold."""
    summary = execution.Summary
    lines = [
        f"{execution.MonitoringScheduleName} on {execution.EndpointName} (v{execution.ModelPackageVersion}): "
        f"{execution.MonitoringExecutionStatus}",
        f"  window    {execution.WindowStart:%Y-%m-%d %H:%M:%S} .. {execution.WindowEnd:%Y-%m-%d %H:%M:%S} UTC "
        f"(inference time; {execution.Trigger})",
    ]
    if execution.FailureReason:
        lines.append(f"  failed    {execution.FailureReason}")
    if summary:
        malformed = {**summary.get("malformed_labels", {})}
        lines.append(
            f"  labels    {summary.get('labelled', 0)} of {summary.get('captured', 0)} captured records labelled "
            f"(coverage {summary.get('coverage', 0):.0%}; at least {summary.get('min_labelled_records')} needed); "
            f"{summary.get('duplicate_labels', 0)} duplicates, {summary.get('unknown_labels', 0)} unknown ids, "
            f"{summary.get('labels_outside_window', 0)} for other windows, "
            f"malformed: {', '.join(f'{n} {k}' for k, n in sorted(malformed.items())) or 'none'}"
        )
        lines.append(f"  quality   {_auc_text(summary)}")
    for violation in execution.Violations[:20]:
        lines.append(f"  violation {violation['constraint_check_type']:<24} {violation['description']}")
    if execution.ReportUri:
        lines.append(f"  report    {execution.ReportUri}")
    if execution.ExitMessage:
        lines.append(f"  message   {execution.ExitMessage}")
    return "\n".join(lines)


def format_execution(execution: MonitoringExecution) -> str:
    """A few lines: window, status, counts, violations (drift with distance and threshold), the report."""
    if execution.MonitoringType == "ModelQuality":
        return format_quality_execution(execution)
    summary = execution.Summary
    lines = [
        f"{execution.MonitoringScheduleName} on {execution.EndpointName} (v{execution.ModelPackageVersion}): "
        f"{execution.MonitoringExecutionStatus}",
        f"  window    {execution.WindowStart:%Y-%m-%d %H:%M:%S} .. {execution.WindowEnd:%Y-%m-%d %H:%M:%S} UTC "
        f"({execution.Trigger})",
    ]
    if execution.FailureReason:
        lines.append(f"  failed    {execution.FailureReason}")
    if summary:
        excluded = ", ".join(f"{n} {k}" for k, n in sorted(summary.get("excluded", {}).items())) or "none"
        malformed = ", ".join(f"{n} {k}" for k, n in sorted(summary.get("malformed", {}).items())) or "none"
        lines.append(
            f"  records   {summary.get('records', 0)} ({summary.get('rows', 0)} rows); excluded: {excluded}; "
            f"malformed: {malformed}; outside the window: {summary.get('outside_window', 0)}"
        )
        insufficient = summary.get("insufficient_data") or []
        if insufficient:
            lines.append(f"  insufficient data for {len(insufficient)} feature(s): {', '.join(insufficient[:8])}")
    for violation in execution.Violations[:20]:
        detail = ""
        if "distance" in violation:
            detail = f" distance {violation['distance']:.3f} > {violation.get('threshold')}"
        lines.append(f"  violation {violation['constraint_check_type']:<24} {violation['feature_name']}{detail}")
    if len(execution.Violations) > 20:
        lines.append(f"  ... and {len(execution.Violations) - 20} more violations")
    if execution.ReportUri:
        lines.append(f"  report    {execution.ReportUri}")
    if execution.ExitMessage:
        lines.append(f"  message   {execution.ExitMessage}")
    return "\n".join(lines)


def format_executions(executions: Sequence[MonitoringExecution]) -> str:
    """``ListMonitoringExecutions``: one line each, newest last."""
    if not executions:
        return "no monitoring executions yet (run one with `make monitor`)"
    lines = []
    for execution in executions:
        violations = len(execution.Violations)
        if execution.MonitoringType == "ModelQuality":
            summary = execution.Summary
            lines.append(
                f"{execution.ScheduledTime:%Y-%m-%d %H:%M:%S}  {execution.MonitoringExecutionStatus:<23} "
                f"v{execution.ModelPackageVersion}  {summary.get('labelled', 0):>5}/{summary.get('captured', 0)} "
                f"labelled ({summary.get('coverage', 0):.0%})  {_auc_text(summary)}  {execution.ProcessingJobName}  "
                f"{execution.Trigger}" + (f"  ({execution.FailureReason})" if execution.FailureReason else "")
            )
            continue
        lines.append(
            f"{execution.ScheduledTime:%Y-%m-%d %H:%M:%S}  {execution.MonitoringExecutionStatus:<23} "
            f"v{execution.ModelPackageVersion}  {execution.Summary.get('records', 0):>7} records  "
            f"{violations:>3} violations  {execution.ProcessingJobName}  {execution.Trigger}"
            + (f"  ({execution.FailureReason})" if execution.FailureReason else "")
        )
    return "\n".join(lines)


def format_alarms(alarms: Mapping[str, Mapping[str, Any]]) -> str:
    """Alarm name, state and reason."""
    return "\n".join(f"  {name:<40} {a.get('StateValue')}  {a.get('StateReason', '')}" for name, a in alarms.items())
