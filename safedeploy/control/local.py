"""Pipeline control on this machine: the stage runner, its execution records and the local runtime.

``start`` runs the execution in this process to the end or to the approval gate; ``decide`` records the answer and
resumes it; ``rollback`` deploys an earlier version along production's history (:mod:`safedeploy.rollback`);
``destroy`` stops the local runtime and removes the state directory, or with a model only that model's pipeline
(:mod:`safedeploy.local.destroy_model`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from safedeploy.approval import Decision
from safedeploy.aws import cleanup
from safedeploy.control import ControlReport, DestroyOptions, Progress, Target
from safedeploy.registry import ModelPackage
from safedeploy.report import format_execution, format_history, format_outcome, format_registry
from safedeploy.runner import ExecutionStore, PipelineExecution, Status
from safedeploy.spec import PipelineSpec

if TYPE_CHECKING:
    from safedeploy.backends import Backend
    from safedeploy.monitoring.model_quality_monitor import ModelQualityMonitor
    from safedeploy.monitoring.monitor import Monitor
    from safedeploy.progress import ProgressReporter

LOG = logging.getLogger(__name__)


def _settled(execution: PipelineExecution) -> ControlReport[PipelineExecution]:
    ok = execution.status == Status.SUCCEEDED or execution.awaiting_approval is not None
    return ControlReport(execution, format_outcome(execution), ok)


class LocalPipeline(Protocol):
    """What local control needs of the pipeline it drives (:class:`safedeploy.pipeline.Pipeline` is one)."""

    @property
    def spec(self) -> PipelineSpec:
        """The pipeline's spec."""
        ...

    @property
    def backend(self) -> Backend:
        """The local backend's interfaces."""
        ...

    @property
    def progress(self) -> ProgressReporter:
        """Where long steps (a rollback's deployment) report their progress."""
        ...

    @property
    def executions_store(self) -> ExecutionStore:
        """The execution records."""
        ...

    def run(self, trigger: str = ...) -> PipelineExecution:
        """Run a new execution to the end or the approval gate."""
        ...

    def retry(self, execution_id: str | None = None) -> PipelineExecution:
        """Resume a failed execution."""
        ...

    def run_decision(self, decision: Decision, execution_id: str | None = None) -> PipelineExecution:
        """Record a decision at the gate and resume."""
        ...

    def executions(self) -> list[PipelineExecution]:
        """Every execution, oldest first."""
        ...

    def model_packages(self) -> list[ModelPackage]:
        """Every registered version."""
        ...

    def monitor(self) -> Monitor:
        """Production's data-quality monitor."""
        ...

    def model_quality_monitor(self) -> ModelQualityMonitor:
        """Production's model-quality monitor."""
        ...


class LocalControl:
    """:class:`safedeploy.control.PipelineControl` on the local backend of ``pipeline``."""

    def __init__(self, pipeline: LocalPipeline) -> None:
        self.pipeline = pipeline

    @property
    def target(self) -> Target:
        """``local``."""
        return "local"

    def start(self, trigger: str) -> ControlReport[PipelineExecution]:
        """Run a new execution to the end (or to the approval gate)."""
        return _settled(self.pipeline.run(trigger=trigger))

    def retry(self, execution_id: str | None = None) -> ControlReport[PipelineExecution]:
        """Resume the latest (or the given) failed execution from its failed stage."""
        return _settled(self.pipeline.retry(execution_id))

    def status(
        self, execution_id: str | None = None, *, as_json: bool = False
    ) -> ControlReport[PipelineExecution | None]:
        """The latest (or the given) execution, and under it production's monitoring."""
        pipeline = self.pipeline
        store = pipeline.executions_store
        execution = store.get(execution_id) if execution_id else store.latest()
        if execution is None:
            return ControlReport(
                None, f"pipeline {pipeline.spec.pipeline_name} has not run yet (start it with `make deploy`)"
            )
        if as_json:
            return ControlReport(execution, execution.model_dump_json(indent=2))
        monitoring = self._monitoring()
        probe = self._probe()
        text = format_execution(execution) + (f"\n{monitoring}" if monitoring else "")
        return ControlReport(execution, text + (f"\n{probe}" if probe else ""))

    def _probe(self) -> str:
        """The standing synthetic probe's line (empty before DeployPrd created its schedule)."""
        from safedeploy import naming
        from safedeploy.monitoring.probe import probe_status, probes_root

        spec = self.pipeline.spec
        state_dir = spec.state_dir.resolve()
        if not (probes_root(state_dir) / naming.probe_canary_name(spec) / "schedule.json").is_file():
            return ""
        return f"\nSynthetic probe: {probe_status(state_dir, spec)}"

    def _monitoring(self) -> str:
        """The production schedule, its latest execution and the drift alarms (empty before production)."""
        from safedeploy.monitoring import summary
        from safedeploy.monitoring.records import MonitoringError
        from safedeploy.report import format_retraining
        from safedeploy.retraining.status import retraining_status

        monitor = self.pipeline.monitor()
        try:
            schedule = monitor.schedule()
        except MonitoringError:
            return ""
        executions = monitor.executions()
        lines = [
            f"\nMonitoring: {schedule.MonitoringScheduleName} {schedule.ScheduleExpression} on {schedule.EndpointName} "
            f"(v{schedule.ModelPackageVersion}'s baseline)"
        ]
        if executions:
            last = executions[-1]
            lines.append(
                f"  last execution {last.ScheduledTime:%Y-%m-%d %H:%M:%S}: {last.MonitoringExecutionStatus}, "
                f"{len(last.Violations)} violations ({last.Trigger}); report {last.ReportUri or '-'}"
            )
        else:
            lines.append("  no executions yet (`make monitor` runs one now)")
        lines.append(summary.format_alarms(monitor.alarm_states()))
        lines.extend(self._model_quality())
        lines.append(format_retraining(retraining_status(self.pipeline.spec, self.pipeline.executions())))
        return "\n".join(lines)

    def _model_quality(self) -> list[str]:
        """The model-quality schedule's latest execution (coverage, AUC vs threshold) and its alarm."""
        from safedeploy.monitoring import summary
        from safedeploy.monitoring.records import MonitoringError

        quality = self.pipeline.model_quality_monitor()
        try:
            schedule = quality.schedule()
        except MonitoringError:
            return []
        executions = quality.executions()
        lines = [
            f"Model quality: {schedule.MonitoringScheduleName} {schedule.ScheduleExpression} on "
            f"{schedule.EndpointName} (v{schedule.ModelPackageVersion}'s baseline; labels to {schedule.GroundTruthUri})"
        ]
        if executions:
            lines.append("  last execution " + summary.format_executions(executions[-1:]))
        else:
            lines.append("  no executions yet (`safedeploy monitor quality` runs one now)")
        lines.append(summary.format_alarms(quality.alarm_states()))
        return lines

    def history(self) -> ControlReport[list[PipelineExecution]]:
        """Every execution of this pipeline, oldest first."""
        executions = self.pipeline.executions()
        return ControlReport(executions, format_history(executions))

    def decide(self, decision: Decision, execution_id: str | None = None) -> ControlReport[PipelineExecution]:
        """Record the decision at the waiting execution's gate and resume it (into production when approved)."""
        return _settled(self.pipeline.run_decision(decision, execution_id))

    def registry(self) -> ControlReport[list[ModelPackage]]:
        """Every registered version of the model (``*`` marks production)."""
        packages = self.pipeline.model_packages()
        return ControlReport(packages, format_registry(packages, self.pipeline.spec.model_name))

    def check_retraining(self, trigger: str, alarm: str = "", since: str = "") -> ControlReport[object]:
        """One look as after a scheduled monitoring execution: the trigger alarms' own records say what fired.

        ``trigger``, ``alarm`` and ``since`` are AWS's (the retraining build's); locally the look reads the alarms.
        """
        from safedeploy.retraining.trigger import check

        decision = check(self.pipeline.spec, self.pipeline.backend)
        return ControlReport(decision, f"{decision.action}: {decision.reason}")

    def retraining_status(self) -> ControlReport[object]:
        """``<state>/retraining``: the last decision, the last retraining and its execution, the cooldown."""
        from safedeploy.report import format_retraining
        from safedeploy.retraining.status import retraining_status

        status = retraining_status(self.pipeline.spec, self.pipeline.executions())
        return ControlReport(status, format_retraining(status).lstrip("\n"))

    def rollback(self, version: int | None, by: str) -> ControlReport[object]:
        """Deploy the version that served before the current one (or ``version``) to production, all at once.

        Raises:
            DeploymentError: nothing to return to, or ``version`` cannot be chosen (nothing changed).
        """
        from safedeploy.blue_green import RolledBackError
        from safedeploy.rollback import roll_back_production

        pipeline = self.pipeline
        try:
            result = roll_back_production(pipeline.spec, pipeline.backend, by, version, pipeline.progress)
        except RolledBackError as exc:
            return ControlReport(exc, f"the rollback was itself rolled back; production is unchanged: {exc}", False)
        was, now = result.was, result.now
        lines = [f"production rolled back: {was.endpoint} (v{was.version}) -> {now.endpoint} (v{now.version})"]
        lines += [f"  skipped {reason}" for reason in result.skipped]
        return ControlReport(result, "\n".join(lines))

    def destroy_plan(self, options: DestroyOptions) -> str:
        """What :meth:`destroy` removes."""
        spec = self.pipeline.spec
        if options.model is not None:
            from safedeploy.local.destroy_model import model_destroy_plan

            return model_destroy_plan(spec, options.model)
        return (
            f"destroy {spec.pipeline_name} locally: stop the local runtime (every endpoint and REST API it serves) "
            f"and remove {spec.state_dir.resolve()} (artifact store, registry, executions, deployment ledger of "
            "every pipeline kept there)"
        )

    def destroy(self, options: DestroyOptions, progress: Progress) -> ControlReport[object]:
        """Stop the local runtime and remove the state directory (with ``options.model``: that model's pipeline)."""
        spec = self.pipeline.spec
        if options.model is not None:
            from safedeploy.local.destroy_model import destroy_model

            removed = destroy_model(spec, options.model, progress)
            return ControlReport(removed, removed.text())
        report = cleanup.destroy_local(spec)
        return ControlReport(report, "\n".join([f"destroyed {spec.pipeline_name} locally:", *report.lines()]))
