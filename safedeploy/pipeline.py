"""The pipeline facade: one object for the CLI, the notebook and tests, whatever the target.

>>> pipeline = Pipeline.load(overrides={"data.source": "../shared/data/churn.txt"})  # doctest: +SKIP
>>> print(pipeline.start("notebook").text)                                          # doctest: +SKIP
>>> on_aws = Pipeline.load(overrides={"data.source": "churn.txt"}, target="aws")   # doctest: +SKIP
>>> print(on_aws.status().text)                                                     # doctest: +SKIP

``start``, ``status``, ``history``, ``decide``, ``rollback`` and ``destroy`` go to the target's
:mod:`safedeploy.control` implementation (this machine's runner, or the AWS CodePipeline). The rest (``run``,
``retry``, the registry, ``rollback_production``, ``deployments``, ``monitor``, ``snapshot``, ``write_report``) works on
the local backend, created on first use.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safedeploy import constants as C
from safedeploy.approval import Approver, AutoApprove, Decision
from safedeploy.backends import Backend, create_backend
from safedeploy.dashboard.snapshot import TRAFFIC_DEPLOYMENTS, DashboardSnapshot, collect_snapshot
from safedeploy.errors import ConfigError
from safedeploy.ledger import ServedModel
from safedeploy.local.runtime_metrics import RuntimeMetrics
from safedeploy.progress import PlainProgress, ProgressReporter
from safedeploy.registry import ApprovalStatus, ModelPackage
from safedeploy.retraining.status import last_decision_line
from safedeploy.rollback import roll_back_production
from safedeploy.runner import ExecutionStore, PipelineExecution, PipelineRunner
from safedeploy.spec import PipelineSpec, load_spec
from safedeploy.stages import pipeline_stages

if TYPE_CHECKING:
    from safedeploy.aws.clients import AwsClients
    from safedeploy.control import ControlReport, DestroyOptions, PipelineControl, Progress, Target
    from safedeploy.monitoring.model_quality_monitor import ModelQualityMonitor
    from safedeploy.monitoring.monitor import Monitor

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Pipeline:
    """A pipeline (one spec) bound to its backend."""

    def __init__(
        self,
        spec: PipelineSpec,
        project_root: Path = PROJECT_ROOT,
        approver: Approver | None = None,
        *,
        target: Target = "local",
        aws_clients: Callable[[PipelineSpec], AwsClients] | None = None,
        progress: ProgressReporter | None = None,
    ) -> None:
        self.spec = spec
        self.progress: ProgressReporter = progress or PlainProgress()
        """Where runs, resumed executions and rollbacks report their progress (the CLI's terminal, or log lines)."""
        self.project_root = project_root
        self.approver = approver
        self.target: Target = target
        self._aws_clients = aws_clients

    @cached_property
    def backend(self) -> Backend:
        """The local backend (artifact store, registry, runtime...), created on first use."""
        return create_backend(self.spec)

    @property
    def executions_store(self) -> ExecutionStore:
        """The local backend's execution records."""
        return self.backend.executions

    @cached_property
    def runner(self) -> PipelineRunner:
        """The local stage runner over this spec's stages."""
        return PipelineRunner(
            self.spec.pipeline_name,
            pipeline_stages(self.spec, self.backend, self.project_root, self.approver),
            self.backend.executions,
            self.backend.lock_path,
            verify=self.backend.store.verify,
            progress=self.progress,
        )

    @cached_property
    def control(self) -> PipelineControl:
        """Start, status, decide and destroy on this pipeline's target."""
        if self.target == "aws":
            from safedeploy.aws.clients import AwsClients, session_for
            from safedeploy.control.aws import AwsControl

            return AwsControl(self.spec, self._aws_clients or (lambda spec: AwsClients(session_for(spec))))
        from safedeploy.control.local import LocalControl

        return LocalControl(self)

    def start(self, trigger: str = "api") -> ControlReport[object]:
        """Start an execution on the target (locally it runs to the end or to the approval gate).

        Raises:
            ConfigError: an automatic approver on AWS, where the gate is CodePipeline's manual approval.
        """
        if self.target == "aws" and isinstance(self.approver, AutoApprove):
            raise ConfigError(
                "--auto-approve (AUTO_APPROVE=1) is for local runs: on AWS the gate is CodePipeline's manual "
                "approval; answer it with `make approve TARGET=aws COMMENT='why'`"
            )
        return self.control.start(trigger)

    def retry_execution(self, execution_id: str | None = None) -> ControlReport[object]:
        """Resume the latest (or the given) failed execution on the target from its failed stage."""
        return self.control.retry(execution_id)

    def status(self, execution_id: str | None = None, *, as_json: bool = False) -> ControlReport[object]:
        """The latest (or the given) execution on the target, stage by stage."""
        return self.control.status(execution_id, as_json=as_json)

    def history(self) -> ControlReport[object]:
        """The target's executions."""
        return self.control.history()

    def decide(self, decision: Decision, execution_id: str | None = None) -> ControlReport[object]:
        """Answer the approval gate on the target (the latest waiting execution by default)."""
        return self.control.decide(decision, execution_id)

    def registry(self) -> ControlReport[object]:
        """The target's model registry listing (``*`` marks production, rolled-back versions say so)."""
        return self.control.registry()

    def check_retraining(self, trigger: str = "", alarm: str = "", since: str = "") -> ControlReport[object]:
        """One retraining look on the target (locally as after a scheduled monitoring execution)."""
        return self.control.check_retraining(trigger, alarm, since)

    def retraining_status(self) -> ControlReport[object]:
        """The target's last retraining decision and last retraining."""
        return self.control.retraining_status()

    def rollback(self, version: int | None = None, by: str | None = None) -> ControlReport[object]:
        """Return production to the version that served before the current one, or to ``version``, on the target.

        Raises:
            DeploymentError: nothing to return to, or ``version`` cannot be chosen (the message lists those that
                can); nothing changed.
            ConfigError: on AWS, which rolls back by itself (the message says what to run instead).
        """
        return self.control.rollback(version, by or getpass.getuser())

    def destroy_plan(self, options: DestroyOptions) -> str:
        """What :meth:`destroy` would delete on the target."""
        return self.control.destroy_plan(options)

    def destroy(self, options: DestroyOptions, progress: Progress = print) -> ControlReport[object]:
        """Delete what the pipeline created on the target."""
        return self.control.destroy(options, progress)

    def outputs(self) -> dict[str, Any]:
        """What the stacks would output (``ApiUrl``, ``ApiKey``, ``EndpointName``...) and the drift alarms' states."""
        from safedeploy.monitoring.records import MonitoringError

        outputs: dict[str, Any] = dict(self.backend.serving.outputs())
        monitor = self.monitor()
        try:
            schedule = monitor.schedule()
        except MonitoringError:
            return outputs
        alarms = monitor.alarm_states()
        combined = next(iter(alarms))
        outputs["MonitoringSchedule"] = schedule.MonitoringScheduleName
        outputs["DriftAlarm"] = combined
        outputs["DriftAlarmState"] = alarms[combined]["StateValue"]
        outputs["DriftAlarms"] = {name: alarm["StateValue"] for name, alarm in alarms.items()}
        return outputs

    def monitor(self) -> Monitor:
        """Production's data-quality monitor (local backend)."""
        from safedeploy.monitoring.monitor import Monitor  # numpy and the analyzer, only where it is used

        return Monitor(self.spec, self.backend.store, self.backend.processing, self.backend.processing_image)

    def model_quality_monitor(self) -> ModelQualityMonitor:
        """Production's model-quality monitor (local backend)."""
        from safedeploy.monitoring.model_quality_monitor import ModelQualityMonitor

        return ModelQualityMonitor(
            self.spec, self.backend.store, self.backend.processing, self.backend.processing_image
        )

    @classmethod
    def load(
        cls, config_file: Path | None = None, overrides: Mapping[str, Any] | None = None, target: Target = "local"
    ) -> Pipeline:
        """Resolve the spec (arguments > environment > file > defaults) and bind it to a target."""
        return cls(load_spec(config_file, overrides), target=target)

    def run(self, trigger: str = "api") -> PipelineExecution:
        """Start a new execution and run it to the end."""
        return self.runner.start(self.spec.model_dump(mode="json"), trigger)

    def retry(self, execution_id: str | None = None) -> PipelineExecution:
        """Resume the latest (or the given) failed execution from its failed stage, with its original spec."""
        target = self.backend.executions.get(execution_id) if execution_id else self.backend.executions.latest()
        if target is not None and target.spec != self.spec.model_dump(mode="json"):
            other = Pipeline(
                PipelineSpec.model_validate(target.spec), self.project_root, self.approver, progress=self.progress
            )
            return other.runner.retry(target.execution_id)
        return self.runner.retry(execution_id)

    def approve_execution(
        self, comment: str, *, approver: str | None = None, execution_id: str | None = None
    ) -> PipelineExecution:
        """Approve the execution waiting at the gate (the latest waiting one by default) and resume it into prod."""
        return self.run_decision(Decision("Approved", approver or getpass.getuser(), comment), execution_id)

    def reject_execution(
        self, comment: str, *, approver: str | None = None, execution_id: str | None = None
    ) -> PipelineExecution:
        """Reject the execution waiting at the gate: it fails, and the version is marked Rejected."""
        return self.run_decision(Decision("Rejected", approver or getpass.getuser(), comment), execution_id)

    def run_decision(self, decision: Decision, execution_id: str | None = None) -> PipelineExecution:
        """Record ``decision`` at the local gate of the waiting execution and resume it."""
        waiting = self.runner.waiting_execution(execution_id)  # resume with the spec it started with
        if waiting.spec != self.spec.model_dump(mode="json"):
            other = Pipeline(
                PipelineSpec.model_validate(waiting.spec), self.project_root, self.approver, progress=self.progress
            )
            return other.runner.decide(decision, waiting.execution_id)
        return self.runner.decide(decision, waiting.execution_id)

    def waiting_execution(self) -> PipelineExecution | None:
        """The latest execution paused at the approval gate, if any."""
        waiting = [e for e in self.backend.executions.list() if e.awaiting_approval is not None]
        return waiting[-1] if waiting else None

    def rollback_production(self, by: str | None = None, version: int | None = None) -> tuple[ServedModel, ServedModel]:
        """Return production to the version that served before the current one (or ``version``); return (from, to).

        The rule for "before the current one" is :func:`safedeploy.rollback.return_path`'s.
        """
        result = roll_back_production(self.spec, self.backend, by or getpass.getuser(), version, self.progress)
        return result.was, result.now

    def snapshot(self, *, traffic_deployments: int | None = None) -> DashboardSnapshot:
        """The local backend's state as the report draws it (endpoint metrics from the runtime, when it runs)."""
        metrics = RuntimeMetrics.running(self.spec.state_dir)
        count = TRAFFIC_DEPLOYMENTS if traffic_deployments is None else traffic_deployments
        retraining = last_decision_line(self.spec, self._executions_read_only())
        return collect_snapshot(self.spec, metrics, retraining=retraining, traffic_deployments=count)

    def _executions_read_only(self) -> list[PipelineExecution]:
        """The execution records, read without creating the local backend (a report writes no state)."""
        return ExecutionStore(self.spec.state_dir.resolve() / "executions", self.spec.pipeline_name).list()

    def write_report(self, out: Path | None = None) -> Path:
        """Write the self-contained HTML report of the local backend's state (``make report``); return its path.

        Raises:
            ReportError: nothing has run yet.
        """
        from safedeploy.dashboard.html_report import DEFAULT_OUT, write_report  # plotly, only where it is used

        metrics = RuntimeMetrics.running(self.spec.state_dir)
        retraining = last_decision_line(self.spec, self._executions_read_only())
        return write_report(self.spec, out or DEFAULT_OUT, metrics, retraining)

    def deployments(self) -> list[dict[str, Any]]:
        """The production deployment ledger, one summary per deployment, oldest first."""
        return self.backend.deployments.deployments()

    def latest_execution(self) -> PipelineExecution | None:
        """The most recent execution, if any."""
        return self.backend.executions.latest()

    def executions(self) -> list[PipelineExecution]:
        """Every execution, oldest first."""
        return self.backend.executions.list()

    def model_packages(self) -> list[ModelPackage]:
        """Every registered version of this model, oldest first."""
        return self.backend.registry.list_versions(self.spec.model_name)

    def set_approval(self, version: int, status: ApprovalStatus, *, by: str, reason: str) -> ModelPackage:
        """Approve or reject a registered version, recording who and why."""
        return self.backend.registry.update_approval(
            self.spec.model_name, version, status, changed_by=by, reason=reason
        )

    def approve(self, version: int, *, by: str, reason: str) -> ModelPackage:
        """Approve a version (``Approved``)."""
        return self.set_approval(version, C.APPROVAL_APPROVED, by=by, reason=reason)

    def reject(self, version: int, *, by: str, reason: str) -> ModelPackage:
        """Reject a version (``Rejected``)."""
        return self.set_approval(version, C.APPROVAL_REJECTED, by=by, reason=reason)
