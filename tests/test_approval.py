"""The manual approval gate: pause with state saved, approve/reject to resume or end, expiry, superseding."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from safedeploy import constants as C
from safedeploy.approval import (
    ApprovalExpiredError,
    AutoApprove,
    Decision,
    Deferred,
    ManualApproval,
    TerminalPrompt,
    choose_approver,
)
from safedeploy.backends import Backend, create_backend
from safedeploy.errors import ExecutionError, SafeDeployError
from safedeploy.local import daemon
from safedeploy.registry import ModelRegistration
from safedeploy.runner import PipelineExecution, PipelineRunner, Stage, StageContext, StageResult, Status
from safedeploy.spec import load_spec
from safedeploy.stage_outputs import DeployDevOutputs, RegisterOutputs, SmokeTestSummary, TrainOutputs
from safedeploy.stages import ApprovalStage
from tests.conftest import REPO_ROOT, churn_rows, write_table

# --- The approval record -------------------------------------------------------------------------------


def test_an_approval_expires_and_then_refuses_a_decision() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    approval = ManualApproval.request("v1", C.APPROVAL_TIMEOUT_SECONDS, now=start)
    assert approval.expires_at == start + timedelta(days=7)
    assert not approval.expired(start + timedelta(days=6, hours=23))
    assert approval.expired(start + timedelta(days=7))
    with pytest.raises(ApprovalExpiredError, match="expired at 2026-12-08 00:00:00 UTC"):
        approval.decide(Decision("Approved", "alice", "ok"), now=start + timedelta(days=8))
    assert approval.pending


def test_a_decision_needs_a_comment_and_happens_once() -> None:
    approval = ManualApproval.request("v1", 3600)
    with pytest.raises(SafeDeployError, match="needs a comment"):
        approval.decide(Decision("Approved", "alice", "  "))
    approval.decide(Decision("Rejected", "bob", "AUC regressed"))
    assert (approval.status, approval.approver, approval.comment) == ("Rejected", "bob", "AUC regressed")
    assert approval.decided_at is not None and "Rejected by bob" in approval.describe()
    with pytest.raises(SafeDeployError, match="already Rejected by bob"):
        approval.decide(Decision("Approved", "alice", "ok"))


@pytest.mark.parametrize(
    ("typed", "outcome", "comment"),
    [
        ("y\nlooks good\n", "Approved", "looks good"),
        ("maybe\nNO\nAUC too low\n", "Rejected", "AUC too low"),
        ("yes\n\n", "Approved", "approved at the terminal"),
    ],
)
def test_terminal_prompt_asks_the_seed_question(typed: str, outcome: str, comment: str) -> None:
    shown = io.StringIO()
    prompt = TerminalPrompt(stdin=io.StringIO(typed), stdout=shown, user=lambda: "carol")
    decision = prompt.decide(ManualApproval.request("customerchurn v3 on customerchurn-dev", 60))
    assert decision == Decision(outcome, "carol", comment)  # type: ignore[arg-type]
    assert "Shall this model be put into production? [y/n]" in shown.getvalue()
    assert "customerchurn v3 on customerchurn-dev" in shown.getvalue()


def test_terminal_prompt_pauses_at_end_of_input() -> None:
    prompt = TerminalPrompt(stdin=io.StringIO(""), stdout=io.StringIO())
    assert prompt.decide(ManualApproval.request("v", 60)) is None


def test_the_approver_follows_the_flag_and_the_terminal() -> None:
    assert isinstance(choose_approver(auto_approve=True, interactive=True), AutoApprove)
    assert isinstance(choose_approver(auto_approve=False, interactive=True), TerminalPrompt)
    assert isinstance(choose_approver(auto_approve=False, interactive=False), Deferred)
    decision = AutoApprove().decide(ManualApproval.request("v", 60))
    assert decision is not None and decision.outcome == "Approved" and "auto-approve" in decision.approver


# --- The gate in a runner (earlier stages stand in for Data..DeployDev; the gate and registry are real) --------


@dataclass(frozen=True)
class _Registered:
    """Registers a real version and reports what Train, Register and DeployDev would."""

    backend: Backend
    name: str

    def run(self, context: StageContext) -> StageResult:
        if self.name == C.STAGE_TRAIN:
            return StageResult(
                "trained",
                TrainOutputs(
                    training_job_name="job",
                    model_data_url="s3://b/model.tar.gz",
                    metrics={"test:auc": 0.93, "test:f1": 0.8},
                    hyperparameters={},
                    feature_schema_uri="s3://b/schema.json",
                ),
            )
        if self.name == C.STAGE_DEPLOY_DEV:
            return StageResult(
                "dev",
                DeployDevOutputs(
                    endpoint_name="customerchurn-dev",
                    endpoint_config_name="customerchurn-dev-config",
                    model_name="customerchurn-dev-model",
                    model_package_version=1,
                    api_url="http://x/api",
                    smoke_test=SmokeTestSummary(rows=50, max_abs_error=0.0, seconds=0.1),
                ),
            )
        package = self.backend.registry.register(
            "customerchurn",
            ModelRegistration(
                model_data_url="s3://b/model.tar.gz",
                model_data_sha256="1" * 64,
                framework_version=C.XGBOOST_FRAMEWORK_VERSION,
                metrics={"test:auc": 0.93},
                hyperparameters={},
                data_sha256="0" * 64,
                code_revision="abc",
                training_job_name="job",
                pipeline_execution_id=context.execution_id,
                feature_schema_uri="s3://b/schema.json",
                registered_by="test",
            ),
        )
        return StageResult(
            "registered",
            RegisterOutputs(
                model_package_arn=package.ModelPackageArn,
                model_package_version=package.ModelPackageVersion,
                approval_status=package.ModelApprovalStatus,
            ),
        )


@dataclass(frozen=True)
class _After:
    """Stands in for DeployPrd: records that it ran."""

    ran: list[str]
    name: str = "DeployPrd"

    def run(self, context: StageContext) -> StageResult:
        self.ran.append(context.execution_id)
        return StageResult("prod")


def _runner(
    tmp_path: Path, approver: Any, ran: list[str], clock: Callable[[], datetime] | None = None, **overrides: Any
) -> tuple[PipelineRunner, Backend]:
    settings = {"state_dir": str(tmp_path / "state"), "data.source": str(tmp_path / "x.csv"), **overrides}
    spec = load_spec(overrides=settings)
    backend = create_backend(spec)
    stages: list[Stage] = [
        _Registered(backend, C.STAGE_TRAIN),
        _Registered(backend, C.STAGE_REGISTER),
        _Registered(backend, C.STAGE_DEPLOY_DEV),
        ApprovalStage(spec, backend, approver),
        _After(ran),
    ]
    timing: dict[str, Any] = {"clock": clock} if clock else {}
    runner = PipelineRunner("p", stages, backend.executions, backend.lock_path, verify=lambda _: True, **timing)
    return runner, backend


def _status(backend: Backend, version: int) -> str:
    return backend.registry.describe("customerchurn", version).ModelApprovalStatus


def test_unanswered_gate_pauses_with_state_saved_then_approval_resumes_the_same_execution(tmp_path: Path) -> None:
    ran: list[str] = []
    runner, backend = _runner(tmp_path, Deferred(), ran)
    paused = runner.start({}, "test")
    assert paused.status == Status.IN_PROGRESS and ran == []
    waiting = paused.awaiting_approval
    assert waiting is not None and waiting.name == C.STAGE_APPROVAL and waiting.approval is not None
    assert (
        "customerchurn v1 (test:auc 0.9300, test:f1 0.8000) is serving on customerchurn-dev" in waiting.approval.summary
    )
    saved = backend.executions.latest()
    assert saved is not None and saved.awaiting_approval is not None  # persisted, not just in memory
    assert _status(backend, 1) == C.APPROVAL_PENDING

    # A later process (new runner) resumes it: the lock is free and the paused run is not treated as orphaned.
    runner2, _ = _runner(tmp_path, Deferred(), ran)
    done = runner2.decide(Decision("Approved", "alice", "smoke test and AUC fine"))
    assert done.execution_id == paused.execution_id and done.status == Status.SUCCEEDED
    assert ran == [paused.execution_id]
    gate = done.stage(C.STAGE_APPROVAL)
    assert gate.approval is not None and gate.approval.status == "Approved" and gate.approval.approver == "alice"
    assert gate.attempts == 1 and gate.duration_seconds is not None
    package = backend.registry.describe("customerchurn", 1)
    assert package.ModelApprovalStatus == C.APPROVAL_APPROVED
    assert package.ApprovalHistory[-1].changed_by == "alice"
    assert package.ApprovalHistory[-1].reason == "smoke test and AUC fine"
    assert package.ApprovalDescription == "smoke test and AUC fine"
    meta = package.CustomerMetadataProperties
    assert (meta["ApprovalDecidedBy"], meta["ApprovalComment"]) == ("alice", "smoke test and AUC fine")
    with pytest.raises(ExecutionError, match="no execution of p is waiting"):
        runner2.decide(Decision("Approved", "alice", "again"))


def test_rejection_fails_the_execution_and_marks_the_version_rejected(tmp_path: Path) -> None:
    ran: list[str] = []
    runner, backend = _runner(tmp_path, Deferred(), ran)
    runner.start({}, "test")
    done = runner.decide(Decision("Rejected", "bob", "recall too low"))
    assert done.status == Status.FAILED and ran == []
    assert done.error is not None and "not approved: Rejected by bob" in done.error and "recall too low" in done.error
    assert _status(backend, 1) == C.APPROVAL_REJECTED
    package = backend.registry.describe("customerchurn", 1)
    assert package.ApprovalDescription == "recall too low" and not package.production_candidate
    assert package.CustomerMetadataProperties["ApprovalDecidedBy"] == "bob"


def test_an_answering_approver_never_pauses(tmp_path: Path) -> None:
    ran: list[str] = []
    runner, backend = _runner(tmp_path, AutoApprove(approver="ci-bot"), ran)
    done = runner.start({}, "test")
    assert done.status == Status.SUCCEEDED and len(ran) == 1
    assert _status(backend, 1) == C.APPROVAL_APPROVED
    assert done.stage(C.STAGE_APPROVAL).summary.startswith("Approved by ci-bot")


def test_an_expired_approval_fails_the_execution_with_that_reason(tmp_path: Path) -> None:
    ran: list[str] = []
    runner, backend = _runner(tmp_path, Deferred(), ran)
    paused = runner.start({}, "test")
    record = backend.executions.get(paused.execution_id)
    gate = record.stage(C.STAGE_APPROVAL)
    assert gate.approval is not None
    gate.approval.expires_at = datetime.now(UTC) - timedelta(seconds=1)  # seven days went by
    backend.executions.save(record)
    with pytest.raises(ExecutionError, match="is Failed: ApproveDeployment: the approval expired unanswered"):
        runner.decide(Decision("Approved", "alice", "late"))
    failed = backend.executions.get(paused.execution_id)
    assert failed.status == Status.FAILED and failed.error is not None and "expired" in failed.error
    assert failed.stage(C.STAGE_APPROVAL).approval.status == "Expired"  # type: ignore[union-attr]
    assert ran == [] and _status(backend, 1) == C.APPROVAL_PENDING


def _paused_at_the_gate(tmp_path: Path, ran: list[str], **overrides: Any) -> ManualApproval:
    """Run to the gate on the real clock; return the approval as the execution saved it."""
    runner, backend = _runner(tmp_path, Deferred(), ran, **overrides)
    before = datetime.now(UTC)
    paused = runner.start({}, "test")
    saved = backend.executions.get(paused.execution_id).stage(C.STAGE_APPROVAL).approval
    assert saved is not None and saved.pending and before <= saved.requested_at <= datetime.now(UTC)
    return saved


@pytest.mark.parametrize(
    ("overrides", "timeout"), [({}, timedelta(days=7)), ({"approval.timeout_seconds": 3600}, timedelta(hours=1))]
)
def test_an_approval_answered_at_its_timeout_has_expired(
    tmp_path: Path, overrides: dict[str, Any], timeout: timedelta
) -> None:
    """At exactly ``approval.timeout_seconds`` (7 days by default) after the request, the execution fails."""
    ran: list[str] = []
    approval = _paused_at_the_gate(tmp_path, ran, **overrides)
    assert approval.expires_at - approval.requested_at == timeout
    late, backend = _runner(tmp_path, Deferred(), ran, clock=lambda: approval.requested_at + timeout, **overrides)
    with pytest.raises(ExecutionError, match="is Failed: ApproveDeployment: the approval expired unanswered at"):
        late.decide(Decision("Approved", "alice", "late"))
    [execution] = backend.executions.list()
    assert execution.status == Status.FAILED and execution.ended_at == approval.requested_at + timeout
    expiry = f"{approval.expires_at:%Y-%m-%d %H:%M:%S} UTC"
    assert execution.error == f"ApproveDeployment: the approval expired unanswered at {expiry}"
    gate = execution.stage(C.STAGE_APPROVAL)
    assert gate.status == Status.FAILED and gate.approval is not None and gate.approval.status == "Expired"
    assert ran == [] and _status(backend, 1) == C.APPROVAL_PENDING


@pytest.mark.parametrize(
    ("overrides", "timeout"), [({}, timedelta(days=7)), ({"approval.timeout_seconds": 3600}, timedelta(hours=1))]
)
def test_an_approval_answered_just_inside_its_timeout_resumes(
    tmp_path: Path, overrides: dict[str, Any], timeout: timedelta
) -> None:
    ran: list[str] = []
    approval = _paused_at_the_gate(tmp_path, ran, **overrides)
    just_in_time = approval.requested_at + timeout - timedelta(microseconds=1)
    runner, backend = _runner(tmp_path, Deferred(), ran, clock=lambda: just_in_time, **overrides)
    done = runner.decide(Decision("Approved", "alice", "just in time"))
    assert done.status == Status.SUCCEEDED and ran == [done.execution_id]
    gate = done.stage(C.STAGE_APPROVAL)
    assert gate.approval is not None and gate.approval.status == "Approved"
    assert gate.approval.decided_at == just_in_time and _status(backend, 1) == C.APPROVAL_APPROVED


def test_a_new_execution_fails_an_expired_one_instead_of_superseding_it(tmp_path: Path) -> None:
    ran: list[str] = []
    approval = _paused_at_the_gate(tmp_path, ran)
    later, backend = _runner(tmp_path, Deferred(), ran, clock=lambda: approval.expires_at)
    second = later.start({}, "test")
    first = next(e for e in backend.executions.list() if e.execution_id != second.execution_id)
    assert first.status == Status.FAILED and first.error is not None and "expired unanswered" in first.error
    assert second.awaiting_approval is not None


def test_a_newer_execution_supersedes_one_waiting_at_the_gate(tmp_path: Path) -> None:
    ran: list[str] = []
    runner, backend = _runner(tmp_path, Deferred(), ran)
    first = runner.start({}, "test")
    second = runner.start({}, "test")
    old = backend.executions.get(first.execution_id)
    assert old.status == Status.SUPERSEDED and old.error is not None and second.execution_id in old.error
    assert second.awaiting_approval is not None
    done = runner.decide(Decision("Approved", "alice", "ok"))
    assert done.execution_id == second.execution_id and ran == [second.execution_id]


# --- End to end: the CLI without a terminal pauses and names the command; approve resumes ---------------------


@pytest.mark.slow
def test_cli_pauses_without_a_terminal_then_approve_resumes_into_the_next_stage(tmp_path: Path) -> None:
    state = tmp_path / "state"
    data = write_table(tmp_path / "churn.csv", churn_rows(600, seed=21))
    env = {k: v for k, v in os.environ.items() if not k.startswith(C.ENV_PREFIX)}
    env |= {f"{C.ENV_PREFIX}SERVING__ENABLED": "true", f"{C.ENV_PREFIX}STATE_DIR": str(state)}
    env |= {
        f"{C.ENV_PREFIX}HYPERPARAMETERS__NUM_ROUND": "40",
        f"{C.ENV_PREFIX}TRAINING__SOURCE_DIR": str(REPO_ROOT / "model"),
    }
    env |= {f"{C.ENV_PREFIX}GATE__CONDITIONS": json.dumps([{"metric": "test:auc", "op": ">=", "threshold": 0.5}])}
    cli = [sys.executable, "-m", "safedeploy.cli"]
    try:
        run = subprocess.run(
            [*cli, "run", "--data", str(data)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert "is waiting at ApproveDeployment" in run.stdout and "make approve COMMENT=" in run.stdout
        no_comment = subprocess.run([*cli, "approve", "--comment", ""], env=env, cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
        assert no_comment.returncode == 2 and "needs a comment" in no_comment.stderr
        approve = subprocess.run(
            [*cli, "approve", "--comment", "dev smoke test passed", "--by", "dana"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert approve.returncode == 0, approve.stderr
        assert "Approved by dana" in approve.stdout
        status = subprocess.run([*cli, "status", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True)
        execution = PipelineExecution.model_validate_json(status.stdout)
        assert execution.status == Status.SUCCEEDED
        registry = subprocess.run([*cli, "registry", "describe", "1"], env=env, cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
        assert json.loads(registry.stdout)["ModelApprovalStatus"] == "Approved"
    finally:
        daemon.stop(state)
