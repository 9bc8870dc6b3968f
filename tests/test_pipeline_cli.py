"""End to end through the CLI: Data -> Train -> gate -> Register, status, crash recovery and the lock."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from safedeploy import cli
from safedeploy.pipeline import Pipeline
from safedeploy.runner import ExecutionStore, PipelineExecution, Status
from safedeploy.spec import load_spec
from safedeploy.store import LocalArtifactStore, S3Uri
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def _args(tmp_path: Path, churn_csv: Path) -> list[str]:
    return [
        "--set", f"state_dir={tmp_path / 'state'}",
        "--set", f"training.source_dir={REPO_ROOT / 'model'}",
        "--set", "hyperparameters.num_round=300",
    ]  # fmt: skip


def test_run_status_and_registry(tmp_path: Path, churn_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = _args(tmp_path, churn_csv)
    assert cli.main(["run", "--data", str(churn_csv), *common]) == 0
    out = capsys.readouterr().out
    assert "model package customerchurn v1 (PendingManualApproval), test AUC 0." in out

    assert cli.main(["status", *common]) == 0
    status = capsys.readouterr().out
    for stage in ("Data", "Train", "Register"):
        line = next(line for line in status.splitlines() if line.startswith(stage))
        assert "Succeeded" in line and line.split()[3].endswith("s")  # duration column
    assert "Status Succeeded" in status

    assert cli.main(["registry", "approve", "1", "--reason", "looks good", "--by", "alice", *common]) == 0
    assert "Approved by alice (looks good)" in capsys.readouterr().out
    assert cli.main(["registry", "list", *common]) == 0
    assert "Approved" in capsys.readouterr().out
    assert cli.main(["registry", "approve", "1", "--reason", "again", *common]) == 2
    assert "cannot become Approved" in capsys.readouterr().err

    # The registered model archive holds the XGBoost JSON model and the feature schema, nothing pickled.
    spec = load_spec(overrides={"state_dir": str(tmp_path / "state")})
    package = Pipeline(spec).model_packages()[0]
    archive = LocalArtifactStore(tmp_path / "state" / "s3").get_bytes(S3Uri.parse(package.ModelDataUrl))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert sorted(tar.getnames()) == ["feature-schema.json", "pre-traffic-checks.json", "xgboost-model.json"]
    assert package.CustomerMetadataProperties["DataSha256"] != ""


def test_bad_data_fails_the_data_stage_cleanly(
    tmp_path: Path, churn_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(churn_csv.read_text().replace("False.", "Nope.", 1))
    assert cli.main(["run", "--data", str(bad), *_args(tmp_path, churn_csv)]) == 1
    out = capsys.readouterr().out
    assert "Data      Failed" in out and "unknown label 'Nope.'" in out
    assert not (tmp_path / "state" / "s3").exists() or not any((tmp_path / "state" / "s3").rglob("*.csv"))


def test_missing_data_and_bad_config_are_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--set", f"state_dir={tmp_path}", "--set", "model_name=Bad_Name"]) == 2
    assert "model_name" in capsys.readouterr().err
    assert cli.main(["run", "--set", f"state_dir={tmp_path}"]) == 1
    assert "no input data: pass DATA=<path>" in capsys.readouterr().out


def _wait_for(store: ExecutionStore, predicate: object, timeout: float = 60) -> PipelineExecution:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        latest = store.latest()
        if latest is not None and predicate(latest):  # type: ignore[operator]
            return latest
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the execution record")


def _wait_for_child(pid: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.02)
    raise AssertionError("the training job never started")


def test_kill_9_mid_stage_then_rerun_and_the_lock(tmp_path: Path, churn_csv: Path) -> None:
    common = _args(tmp_path, churn_csv)
    command = [sys.executable, "-m", "safedeploy.cli", "run", "--data", str(churn_csv), *common]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    executions = ExecutionStore(tmp_path / "state" / "executions", "customerchurn-dev")

    endless = ["--set", "hyperparameters.num_round=100000", "--set", "hyperparameters.early_stopping_rounds=100000"]
    first = subprocess.Popen([*command, *endless], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        running = _wait_for(executions, lambda e: e.stages[1].status == Status.IN_PROGRESS)
        job = _wait_for_child(first.pid)  # the training job is running, and will not finish on its own
        # A second run of the same pipeline is refused while the first holds the lock.
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode == 2, second.stderr
        assert f"pipeline customerchurn-dev is already running (execution {running.execution_id}" in second.stderr
    finally:
        os.kill(first.pid, signal.SIGKILL)  # the pipeline process only, mid-Train
        first.wait(timeout=10)
    deadline = time.monotonic() + 10  # its training job dies with it (PR_SET_PDEATHSIG)
    while Path(f"/proc/{job}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{job}").exists(), "the training job outlived the killed pipeline"

    status = subprocess.run(
        [sys.executable, "-m", "safedeploy.cli", "status", "--json", *common], env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(status.stdout)["status"] == "InProgress"  # the record shows where it died

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr
    killed = executions.get(running.execution_id)
    assert killed.status == Status.FAILED
    assert "interrupted" in str(killed.stage("Train").error)
    assert executions.latest() is not None and executions.latest().status == Status.SUCCEEDED  # type: ignore[union-attr]
    leftovers = [p for p in (tmp_path / "state" / "s3").rglob("*.tmp")]
    assert leftovers == []


def test_retry_after_a_gate_failure_resumes_at_train(
    tmp_path: Path, churn_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = _args(tmp_path, churn_csv)
    strict = ["--set", 'gate.conditions=[{"metric": "test:auc", "op": ">=", "threshold": 0.99999}]']
    assert cli.main(["run", "--data", str(churn_csv), *common, *strict]) == 1
    capsys.readouterr()
    # A retry replays the execution with the spec it started with, so it fails the gate again at Train.
    assert cli.main(["retry", *common]) == 1
    execution = ExecutionStore(tmp_path / "state" / "executions", "customerchurn-dev").latest()
    assert execution is not None
    assert execution.stage("Data").attempts == 1 and execution.stage("Train").attempts == 2
