"""Stage runner: execution records, the pipeline lock, crash recovery and retry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest

from safedeploy.errors import ExecutionError, PipelineLockedError, SafeDeployError
from safedeploy.locking import exclusive_lock
from safedeploy.runner import (
    ExecutionStore,
    PipelineExecution,
    PipelineRunner,
    StageContext,
    StageExecution,
    StageResult,
    Status,
)
from safedeploy.stage_outputs import StageOutputs
from safedeploy.store import ArtifactRef, LocalArtifactStore, S3Uri


@dataclass
class FakeStage:
    name: str
    fail_times: int = 0
    error: BaseException = field(default_factory=lambda: SafeDeployError("boom"))
    calls: int = 0
    artifact: ArtifactRef | None = None

    def run(self, context: StageContext) -> StageResult:
        self.calls += 1
        if self.calls <= self.fail_times:
            raise self.error
        artifacts = {"out": self.artifact} if self.artifact else {}
        return StageResult(summary=f"{self.name} done", outputs=_Calls(n=self.calls), artifacts=artifacts)


class _Calls(StageOutputs):
    """A fake stage's outputs: how many times it ran."""

    STAGE: ClassVar[str] = "A"

    n: int


def _runner(tmp_path: Path, *stages: FakeStage, valid: set[str] | None = None) -> PipelineRunner:
    return PipelineRunner(
        "demo-dev",
        stages,
        ExecutionStore(tmp_path / "executions", "demo-dev"),
        tmp_path / "locks" / "demo-dev.lock",
        verify=lambda ref: valid is None or ref.sha256 in valid,
    )


def test_successful_execution_is_recorded(tmp_path: Path) -> None:
    runner = _runner(tmp_path, FakeStage("Data"), FakeStage("Train"))
    execution = runner.start({"model_name": "demo"}, trigger="test")
    assert execution.status == Status.SUCCEEDED
    stored = runner.executions.latest()
    assert stored == execution
    for stage in stored.stages:
        assert stage.status == Status.SUCCEEDED and stage.summary == f"{stage.name} done"
        assert stage.duration_seconds is not None and stage.duration_seconds >= 0
    assert execution.duration_seconds is not None


def test_failed_stage_stops_the_pipeline(tmp_path: Path) -> None:
    later = FakeStage("Register")
    runner = _runner(tmp_path, FakeStage("Data"), FakeStage("Train", fail_times=1), later)
    execution = runner.start({}, trigger="test")
    assert execution.status == Status.FAILED
    assert execution.error == "Train: boom"
    assert execution.stage("Train").error == "boom"
    assert execution.stage("Register").status is None and later.calls == 0


def test_unexpected_exception_is_recorded_with_its_type(tmp_path: Path) -> None:
    runner = _runner(tmp_path, FakeStage("Data", fail_times=1, error=KeyError("x")))
    execution = runner.start({}, trigger="test")
    assert execution.stage("Data").error == "KeyError: 'x'"


def test_interrupt_is_recorded_then_raised(tmp_path: Path) -> None:
    runner = _runner(tmp_path, FakeStage("Data", fail_times=1, error=KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        runner.start({}, trigger="test")
    latest = runner.executions.latest()
    assert latest is not None and latest.status == Status.FAILED
    assert latest.stage("Data").error == "interrupted (KeyboardInterrupt)"


def test_second_concurrent_run_is_refused(tmp_path: Path) -> None:
    runner = _runner(tmp_path, FakeStage("Data"))
    with exclusive_lock(runner.lock_path, {"execution_id": "1234-running"}), pytest.raises(PipelineLockedError) as info:
        runner.start({}, trigger="test")
    assert "pipeline demo-dev is already running (execution 1234-running, pid" in str(info.value)
    assert runner.executions.list() == []
    assert runner.start({}, trigger="test").status == Status.SUCCEEDED  # lock released


def test_orphaned_execution_is_marked_failed_on_next_start(tmp_path: Path) -> None:
    runner = _runner(tmp_path, FakeStage("Data"), FakeStage("Train"))
    orphan = PipelineExecution(
        pipeline_name="demo-dev", execution_id="dead-beef", status=Status.IN_PROGRESS, trigger="test",
        started_at=datetime(2026, 1, 1, tzinfo=UTC), pid=999_999, host="h", spec={},
        stages=[
            StageExecution(name="Data", status=Status.SUCCEEDED),
            StageExecution(name="Train", status=Status.IN_PROGRESS, started_at=datetime(2026, 1, 1, tzinfo=UTC)),
        ],
    )  # fmt: skip
    runner.executions.save(orphan)
    fresh = runner.start({}, trigger="test")
    assert fresh.status == Status.SUCCEEDED
    recovered = runner.executions.get("dead-beef")
    assert recovered.status == Status.FAILED
    assert recovered.error == (
        "interrupted: the process running this execution (pid 999999) ended while stage Train was in progress"
    )
    assert recovered.stage("Train").status == Status.FAILED


def test_retry_resumes_from_the_failed_stage(tmp_path: Path) -> None:
    data, train = FakeStage("Data"), FakeStage("Train", fail_times=1)
    runner = _runner(tmp_path, data, train)
    failed = runner.start({}, trigger="test")
    assert failed.status == Status.FAILED
    resumed = runner.retry()
    assert resumed.execution_id == failed.execution_id
    assert resumed.status == Status.SUCCEEDED
    assert (data.calls, train.calls) == (1, 2)
    assert resumed.stage("Train").attempts == 2 and resumed.stage("Data").attempts == 1
    with pytest.raises(ExecutionError, match="only a Failed execution can be retried"):
        runner.retry(failed.execution_id[:8])


def test_retry_reruns_a_stage_whose_artifacts_changed(tmp_path: Path) -> None:
    ref = ArtifactRef(uri="s3://b/k", sha256="aa", size=1)
    data, train = FakeStage("Data", artifact=ref), FakeStage("Train", fail_times=1)
    runner = _runner(tmp_path, data, train, valid={"aa"})
    runner.start({}, trigger="test")
    runner.verify = lambda r: False  # the Data stage's artifact vanished
    assert runner.retry().status == Status.SUCCEEDED
    assert data.calls == 2


@dataclass
class WritingStage:
    """Writes a real object to the local artifact store and records it as its artifact, as real stages do."""

    name: str
    store: LocalArtifactStore
    calls: int = 0

    def run(self, context: StageContext) -> StageResult:
        self.calls += 1
        ref = self.store.put_bytes(S3Uri("bucket", f"{self.name.lower()}/out.csv"), b"a,b\n1,2\n")
        return StageResult(summary=f"{self.name} wrote {ref.uri}", artifacts={"out": ref})


def _store_runner(tmp_path: Path, *stages: object, store: LocalArtifactStore) -> PipelineRunner:
    return PipelineRunner(
        "demo-dev",
        stages,  # type: ignore[arg-type]
        ExecutionStore(tmp_path / "executions", "demo-dev"),
        tmp_path / "locks" / "demo-dev.lock",
        verify=store.verify,  # what Pipeline wires in
    )


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(b"a,b\n1,3\n"),  # same size, other bytes
        lambda path: path.write_bytes(b""),
        lambda path: path.unlink(),
    ],
    ids=["corrupted", "truncated", "deleted"],
)
def test_retry_reruns_the_stage_whose_artifact_no_longer_verifies_in_the_store(
    tmp_path: Path, damage: Callable[[Path], object]
) -> None:
    store = LocalArtifactStore(tmp_path / "s3")
    data, train = WritingStage("Data", store), WritingStage("Train", store)
    register = FakeStage("Register", fail_times=2)
    runner = _store_runner(tmp_path, data, train, register, store=store)
    assert runner.start({}, trigger="test").status == Status.FAILED

    again = runner.retry()  # every artifact verifies: nothing before the failed stage runs again
    assert again.status == Status.FAILED and (data.calls, train.calls, register.calls) == (1, 1, 2)

    damage(store.path_of(S3Uri("bucket", "train/out.csv")))
    resumed = runner.retry()
    assert resumed.status == Status.SUCCEEDED
    assert (data.calls, train.calls, register.calls) == (1, 2, 3)  # Train re-produced its artifact, Data did not
    assert [s.attempts for s in resumed.stages] == [1, 2, 3]
    assert store.verify(resumed.stage("Train").artifacts["out"])


def test_unknown_execution(tmp_path: Path) -> None:
    runner = _runner(tmp_path, FakeStage("Data"))
    with pytest.raises(ExecutionError, match="no execution of demo-dev matches 'nope'"):
        runner.retry("nope")
    with pytest.raises(ExecutionError, match="has no execution to retry"):
        runner.retry()
