"""The pipeline facade: one object for the CLI, the notebook and tests.

>>> pipeline = Pipeline.load(overrides={"data.source": "../shared/data/churn.txt"})  # doctest: +SKIP
>>> execution = pipeline.run()                                                        # doctest: +SKIP
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safedeploy import constants as C
from safedeploy.approval import Approver, Decision
from safedeploy.backends import Backend, create_backend
from safedeploy.ledger import ServedModel
from safedeploy.registry import ApprovalStatus, ModelPackage
from safedeploy.runner import PipelineExecution, PipelineRunner
from safedeploy.spec import PipelineSpec, load_spec
from safedeploy.stages import pipeline_stages, roll_back_production

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class Pipeline:
    """A pipeline (one spec) bound to its backend."""

    def __init__(self, spec: PipelineSpec, project_root: Path = PROJECT_ROOT, approver: Approver | None = None) -> None:
        self.spec = spec
        self.project_root = project_root
        self.approver = approver
        self.backend: Backend = create_backend(spec)
        self.runner = PipelineRunner(
            spec.pipeline_name,
            pipeline_stages(spec, self.backend, project_root, approver),
            self.backend.executions,
            self.backend.lock_path,
            verify=self.backend.store.verify,
        )

    @classmethod
    def load(cls, config_file: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Pipeline:
        """Resolve the spec (arguments > environment > file > defaults) and bind its backend."""
        return cls(load_spec(config_file, overrides))

    def run(self, trigger: str = "api") -> PipelineExecution:
        """Start a new execution and run it to the end."""
        return self.runner.start(self.spec.model_dump(mode="json"), trigger)

    def retry(self, execution_id: str | None = None) -> PipelineExecution:
        """Resume the latest (or the given) failed execution from its failed stage, with its original spec."""
        target = self.backend.executions.get(execution_id) if execution_id else self.backend.executions.latest()
        if target is not None and target.spec != self.spec.model_dump(mode="json"):
            other = Pipeline(PipelineSpec.model_validate(target.spec), self.project_root, self.approver)
            return other.runner.retry(target.execution_id)
        return self.runner.retry(execution_id)

    def approve_execution(
        self, comment: str, *, approver: str | None = None, execution_id: str | None = None
    ) -> PipelineExecution:
        """Approve the execution waiting at the gate (the latest waiting one by default) and resume it into prod."""
        return self._decide(Decision("Approved", approver or getpass.getuser(), comment), execution_id)

    def reject_execution(
        self, comment: str, *, approver: str | None = None, execution_id: str | None = None
    ) -> PipelineExecution:
        """Reject the execution waiting at the gate: it fails, and the version is marked Rejected."""
        return self._decide(Decision("Rejected", approver or getpass.getuser(), comment), execution_id)

    def _decide(self, decision: Decision, execution_id: str | None) -> PipelineExecution:
        waiting = self.runner.waiting_execution(execution_id)  # resume with the spec it started with
        if waiting.spec != self.spec.model_dump(mode="json"):
            other = Pipeline(PipelineSpec.model_validate(waiting.spec), self.project_root, self.approver)
            return other.runner.decide(decision, waiting.execution_id)
        return self.runner.decide(decision, waiting.execution_id)

    def waiting_execution(self) -> PipelineExecution | None:
        """The latest execution paused at the approval gate, if any."""
        waiting = [e for e in self.backend.executions.list() if e.awaiting_approval is not None]
        return waiting[-1] if waiting else None

    def rollback_production(self, by: str | None = None) -> tuple[ServedModel, ServedModel]:
        """Return production to the model it served before the current one; return (from, to)."""
        return roll_back_production(self.spec, self.backend, by or getpass.getuser())

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
