"""Operator UX: live progress on a terminal, the plain log lines elsewhere, and every failure naming its stage,
its cause and the next command (``safedeploy/progress.py``, ``safedeploy/terminal.py``, ``safedeploy/hints.py``)."""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from safedeploy import cli
from safedeploy import constants as C
from safedeploy.approval import ApprovalExpiredError
from safedeploy.aws.codepipeline import PipelineNotFoundError
from safedeploy.blue_green import RolledBackError
from safedeploy.errors import DeploymentError, GateFailedError, SafeDeployError
from safedeploy.hints import BEFORE_THE_PIPELINE, Failure, failure_of_exception, failure_of_execution
from safedeploy.local import daemon
from safedeploy.locking import exclusive_lock
from safedeploy.pipeline import Pipeline
from safedeploy.runner import (
    ExecutionStore,
    PipelineExecution,
    PipelineRunner,
    StageContext,
    StageExecution,
    StageResult,
    Status,
)
from safedeploy.spec import PipelineSpec, load_spec
from safedeploy.terminal import RichProgress, render_failure, wants_rich
from tests.conftest import REPO_ROOT, churn_rows, write_table

# --- Progress: the plain lines as they always were; a live spinner on a terminal ---------------------------------


@dataclass
class _Stage:
    name: str
    steps: tuple[str, ...] = ()
    error: BaseException | None = None
    pause: float = 0.0

    def run(self, context: StageContext) -> StageResult:
        for step in self.steps:
            context.progress.step(step)
            time.sleep(self.pause)
        if self.error is not None:
            raise self.error
        return StageResult(summary=f"{self.name} done")


def _runner(tmp_path: Path, *stages: _Stage, progress: object = None) -> PipelineRunner:
    return PipelineRunner(
        "demo-dev",
        stages,
        ExecutionStore(tmp_path / "executions", "demo-dev"),
        tmp_path / "locks" / "demo-dev.lock",
        verify=lambda ref: True,
        progress=progress,  # type: ignore[arg-type]
    )


def test_the_plain_reporter_logs_the_stage_lines_of_before(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stages = (_Stage("Data", steps=("reading",)), _Stage("Train", error=GateFailedError("quality gate failed: x")))
    with caplog.at_level(logging.DEBUG, logger="safedeploy"):
        execution = _runner(tmp_path, *stages).start({}, "test")
    assert execution.status == Status.FAILED
    lines = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("safedeploy.runner", "INFO", "stage Data: started"),
        ("safedeploy.progress", "DEBUG", "reading"),  # sub-steps are debug lines: -v shows them
        ("safedeploy.runner", "INFO", "stage Data: succeeded: Data done"),
        ("safedeploy.runner", "INFO", "stage Train: started"),
        ("safedeploy.runner", "ERROR", "stage Train: failed: quality gate failed: x"),
    ]
    assert execution.stage("Train").error_type == "GateFailedError"


def _terminal(width: int = 120) -> tuple[Console, io.StringIO]:
    stream = io.StringIO()
    return Console(file=stream, force_terminal=True, width=width, record=True, color_system="truecolor"), stream


def test_the_rich_reporter_shows_stage_elapsed_time_and_sub_step_then_the_stage_line(tmp_path: Path) -> None:
    console, stream = _terminal()
    stages = (
        _Stage("Train", steps=("training job j-1: up to 300 rounds",), pause=0.4),
        _Stage("DeployPrd", steps=("10% step: blue 90%, green 10%; model time 1:00 of 5:00",), pause=0.4,
               error=RolledBackError("rolled back to blue: alarm green-error-rate in ALARM")),
    )  # fmt: skip
    execution = _runner(tmp_path, *stages, progress=RichProgress(console)).start({}, "test")
    assert execution.status == Status.FAILED
    drawn = stream.getvalue()  # the live frames, as the terminal received them
    assert "\x1b[" in drawn  # drawn with escape codes: a terminal
    assert "training job j-1: up to 300 rounds" in drawn and "model time 1:00 of 5:00" in drawn
    assert "0:00:00" in drawn  # the elapsed-time column
    assert any(frame in drawn for frame in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")  # the spinner
    kept = console.export_text()  # the stage lines printed when each stage ends
    assert "✓ Train succeeded in 0." in kept and ": Train done" in kept
    assert "✗ DeployPrd failed in 0." in kept and "alarm green-error-rate in ALARM" in kept
    assert kept.rstrip().endswith("alarm green-error-rate in ALARM")  # the live line is gone at the end


def test_the_rich_reporter_suspends_for_a_prompt_and_shows_tasks() -> None:
    console, stream = _terminal()
    progress = RichProgress(console)
    with progress.task("rollback: all at once"):
        progress.step("green customerchurn-prd-v1-x: starting")
        time.sleep(0.3)
        with progress.suspended():
            console.print("Shall this model be put into production? [y/n]")
    drawn = stream.getvalue()
    assert "rollback: all at once" in drawn and "green customerchurn-prd-v1-x: starting" in drawn
    assert "Shall this model be put into production?" in console.export_text()


@pytest.mark.parametrize(
    ("tty", "environ", "expected"),
    [
        (True, {"TERM": "xterm-256color"}, True),
        (False, {"TERM": "xterm-256color"}, False),  # a pipe, CI, tests
        (True, {"TERM": "xterm-256color", "NO_COLOR": "1"}, False),
        (True, {"TERM": "dumb"}, False),
    ],
)
def test_rich_only_on_a_real_terminal(tty: bool, environ: dict[str, str], expected: bool) -> None:
    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return tty

    assert wants_rich(Stream(), environ) is expected


def test_the_cli_without_a_terminal_prints_no_escape_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "--set", f"state_dir={tmp_path / 'state'}"]) == 0
    captured = capsys.readouterr()
    assert "has not run yet" in captured.out and "\x1b[" not in captured.out + captured.err


class _Recorder:
    """A ProgressReporter that keeps every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def stage_started(self, stage: str, *, resumed: bool = False) -> None:
        self.events.append(("started", stage))

    def stage_succeeded(self, stage: str, summary: str) -> None:
        self.events.append(("succeeded", stage))

    def stage_paused(self, stage: str, summary: str) -> None:
        self.events.append(("paused", stage))

    def stage_failed(self, stage: str, message: str, *, unexpected: BaseException | None = None) -> None:
        self.events.append(("failed", stage))

    def step(self, text: str) -> None:
        self.events.append(("step", text))

    @contextlib.contextmanager
    def task(self, title: str) -> Iterator[None]:
        self.events.append(("task", title))
        yield

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        yield


@pytest.mark.slow
def test_a_real_run_reports_its_stages_and_the_training_rounds(make_spec: Callable[..., PipelineSpec]) -> None:
    recorder = _Recorder()
    execution = Pipeline(make_spec(), project_root=REPO_ROOT, progress=recorder).run()
    assert execution.status == Status.SUCCEEDED, execution.error
    stages = [(kind, name) for kind, name in recorder.events if kind in ("started", "succeeded")]
    assert stages == [(kind, s.name) for s in execution.stages for kind in ("started", "succeeded")]
    steps = [text for kind, text in recorder.events if kind == "step"]
    job = execution.stage("Train").outputs["training_job_name"]
    rounds = [text for text in steps if text.startswith(f"training job {job}: round ")]
    assert rounds and rounds[0].startswith(f"training job {job}: round 0 of up to 300: train-auc:")  # XGBoost's lines
    assert "validation-auc:" in rounds[-1] and "quality gate" in steps


# --- Failures: stage, cause, next command ------------------------------------------------------------------------


def _lines(err: str) -> dict[str, str]:
    """``error:``, ``stage:`` and ``next:`` of a plain failure."""
    found = {}
    for line in err.splitlines():
        key, _, value = line.strip().partition(":")
        if key in ("error", "stage", "next") and key not in found:
            found[key] = value.strip()
    assert set(found) == {"error", "stage", "next"}, err
    return found


def _common(tmp_path: Path) -> list[str]:
    return [
        "--set", f"state_dir={tmp_path / 'state'}",
        "--set", f"training.source_dir={REPO_ROOT / 'model'}",
        "--set", "hyperparameters.num_round=30",
    ]  # fmt: skip


def test_a_malformed_override_fails_before_the_pipeline_naming_the_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run", "--set", "max_depth", *_common(tmp_path)]) == 2
    failure = _lines(capsys.readouterr().err)
    assert failure["error"] == "expected KEY=VALUE, got 'max_depth'"
    assert failure["stage"] == BEFORE_THE_PIPELINE
    assert failure["next"].startswith(".venv/bin/safedeploy spec --set KEY=VALUE")

    assert cli.main(["run", "--set", "hyperparameters.max_depth=deep", *_common(tmp_path)]) == 2
    err = capsys.readouterr().err
    failure = _lines(err)
    assert "hyperparameters.max_depth" in err and failure["stage"] == BEFORE_THE_PIPELINE
    assert failure["next"].startswith(".venv/bin/safedeploy spec")
    assert not (tmp_path / "state" / "executions").exists()  # nothing started


def test_a_broken_pipeline_toml_names_the_file_and_how_to_check_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pipeline.toml").write_text('model_name = "churn\n[data\n')  # the tests run in tmp_path
    assert cli.main(["status"]) == 2
    failure = _lines(capsys.readouterr().err)
    assert failure["error"].startswith("cannot read config file pipeline.toml")
    assert failure["stage"] == BEFORE_THE_PIPELINE
    assert "after fixing pipeline.toml" in failure["next"]


def test_a_bad_data_file_fails_the_data_stage_and_asks_for_another(
    tmp_path: Path, churn_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(churn_csv.read_text().replace("False.", "Nope.", 1))
    assert cli.main(["run", "--data", str(bad), *_common(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "Data      Failed" in captured.out  # the status table as before, on stdout
    failure = _lines(captured.err)
    assert failure["stage"] == "Data" and "unknown label 'Nope.'" in captured.err
    assert failure["next"].startswith("make deploy DATA=")
    assert cli.main(["status", *_common(tmp_path)]) == 0
    assert "\nNext: make deploy DATA=" in capsys.readouterr().out  # make status says it too


@pytest.mark.slow
def test_a_quality_gate_failure_names_train_the_metric_and_a_new_deploy(
    tmp_path: Path, churn_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    strict = ["--set", 'gate.conditions=[{"metric": "test:auc", "op": ">=", "threshold": 0.99999}]']
    assert cli.main(["run", "--data", str(churn_csv), *_common(tmp_path), *strict]) == 1
    failure = _lines(capsys.readouterr().err)
    assert failure["stage"] == "Train"
    assert failure["error"].startswith("quality gate failed: test:auc = 0.")
    assert "below the threshold 0.99999" in failure["error"]
    assert failure["next"].startswith("make deploy DATA=") and "gate.conditions" in failure["next"]


def test_a_held_lock_names_the_running_execution_and_make_status(
    tmp_path: Path, churn_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = load_spec(overrides={"state_dir": str(tmp_path / "state")})
    lock = Pipeline(spec).backend.lock_path
    with exclusive_lock(lock, {"execution_id": "e-running", "host": "here"}):
        assert cli.main(["run", "--data", str(churn_csv), *_common(tmp_path)]) == 2
    failure = _lines(capsys.readouterr().err)
    assert "is already running (execution e-running" in failure["error"]
    assert failure["stage"] == BEFORE_THE_PIPELINE and failure["next"].startswith("make status")


@pytest.mark.slow
def test_rollback_in_deploy_prd_rejection_and_a_stopped_runtime(tmp_path: Path) -> None:
    """The real thing, as `make deploy` runs it: green fails to load and DeployPrd rolls back; a rejected approval;
    then a command that needs the runtime after it was stopped."""
    state = tmp_path / "state"
    data = write_table(tmp_path / "churn.csv", churn_rows(600, seed=31))
    env = {k: v for k, v in os.environ.items() if not k.startswith(C.ENV_PREFIX) and k != "NO_COLOR"}
    env |= {
        f"{C.ENV_PREFIX}SERVING__ENABLED": "true",
        f"{C.ENV_PREFIX}STATE_DIR": str(state),
        f"{C.ENV_PREFIX}HYPERPARAMETERS__NUM_ROUND": "30",
        f"{C.ENV_PREFIX}TRAINING__SOURCE_DIR": str(REPO_ROOT / "model"),
        f"{C.ENV_PREFIX}GATE__CONDITIONS": '[{"metric": "test:auc", "op": ">=", "threshold": 0.5}]',
        f"{C.ENV_PREFIX}PRODUCTION__TIME_SCALE": "120",
    }

    def safedeploy(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "safedeploy.cli", *argv], env=env, cwd=tmp_path, capture_output=True, text=True,
            timeout=300, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip

    try:
        rolled = safedeploy("run", "--data", str(data), "--auto-approve", "--set", "production.fault=load-failure")
        assert rolled.returncode == 1, rolled.stdout + rolled.stderr
        failure = _lines(rolled.stderr)
        assert failure["stage"] == "DeployPrd" and failure["error"].startswith("rolled back to ")
        assert failure["next"].startswith("make deployments")

        waiting = safedeploy("run", "--data", str(data))
        assert waiting.returncode == 0 and "make approve COMMENT=" in waiting.stdout, waiting.stderr
        rejected = safedeploy("reject", "--comment", "not this one", "--by", "erin")
        assert rejected.returncode == 1, rejected.stdout + rejected.stderr
        failure = _lines(rejected.stderr)
        assert failure["stage"] == "ApproveDeployment" and "was not approved" in failure["error"]
        assert "Rejected by erin" in failure["error"] and failure["next"].startswith("make deploy DATA=")
        assert "\x1b[" not in rejected.stdout + rejected.stderr  # not a terminal: plain
    finally:
        daemon.stop(state)
    outputs = safedeploy("outputs")
    assert outputs.returncode == 2
    failure = _lines(outputs.stderr)
    assert failure["error"].startswith("the local runtime is not running")
    assert failure["next"].startswith(".venv/bin/safedeploy runtime start")


# --- The hint table ----------------------------------------------------------------------------------------------


def _failed(stage: str, error: str, error_type: str | None) -> PipelineExecution:
    now = datetime.now(UTC)
    return PipelineExecution(
        pipeline_name="demo-dev", execution_id="e-1", status=Status.FAILED, trigger="test", started_at=now,
        ended_at=now, pid=1, host="h", spec={}, error=f"{stage}: {error}",
        stages=[StageExecution(name="Data", status=Status.SUCCEEDED),
                StageExecution(name=stage, status=Status.FAILED, error=error, error_type=error_type)],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("stage", "error_type", "error", "command"),
    [
        ("DeployPrd", "RolledBackError", "rolled back to blue: alarm x", "make deployments"),
        ("DeployDev", "DeploymentError", "smoke test: 3 of 50 rows differ", "make retry"),
        ("Train", "TrainingJobError", "training job j Failed: AlgorithmError", "make retry"),
        ("ApproveDeployment", "ApprovalExpiredError", "the approval expired unanswered", "make deploy DATA="),
        ("Data", "ConfigError", "no input data: pass DATA=<path>", "make deploy DATA="),
        ("Baseline", "OSError", "OSError: [Errno 28] No space left on device", "make retry"),
        ("Train", None, "interrupted: the process running this execution (pid 7) ended", "make retry"),
    ],
)
def test_a_failed_record_maps_to_its_next_command(stage: str, error_type: str, error: str, command: str) -> None:
    failure = failure_of_execution(_failed(stage, error, error_type))
    assert failure is not None and failure.stage == stage and failure.cause == error
    assert failure.next_command.startswith(command)
    if "No space" in error:
        assert "disk space" in failure.note


def test_exceptions_outside_the_stages_map_to_where_they_belong() -> None:
    expired = failure_of_exception(ApprovalExpiredError("the approval expired unanswered at 2026-12-10"))
    assert expired.stage == "ApproveDeployment" and expired.next_command.startswith("make deploy DATA=")
    refused = failure_of_exception(DeploymentError("production serves v1 and ...: v2, v3"), "DeployPrd (rollback)")
    assert refused.stage == "DeployPrd (rollback)" and refused.next_command == "make rollback VERSION=n"
    missing = failure_of_exception(PipelineNotFoundError("there is no CodePipeline named churn-dev"))
    assert missing.stage == BEFORE_THE_PIPELINE and missing.next_command == "make plan ENV=dev && make apply"
    full = failure_of_exception(OSError(errno.ENOSPC, "No space left on device"), "DeployPrd (rollback)")
    assert full.stage == "DeployPrd (rollback)" and "disk space" in full.note
    other = failure_of_exception(SafeDeployError("something"))
    assert other.next_command == "make retry"
    running = _failed("Train", "x", None).model_copy(update={"status": Status.IN_PROGRESS, "ended_at": None})
    assert failure_of_execution(running) is None
    assert expired.plain().splitlines()[0] == "error: the approval expired unanswered at 2026-12-10"


def test_the_terminal_renders_a_failure_as_a_red_panel() -> None:
    console, stream = _terminal(width=100)
    render_failure(Failure("Train", "quality gate failed: test:auc = 0.8", "make deploy DATA=x", "retrain"), console)
    text = console.export_text()
    assert "failed: Train" in text and "quality gate failed: test:auc = 0.8" in text and "make deploy DATA=x" in text
    assert "╭" in text and "\x1b[31m" in stream.getvalue()  # a box, in red
    plain = io.StringIO()
    render_failure(Failure("Train", "quality gate failed", "make deploy DATA=x"), None, plain)
    assert plain.getvalue() == "error: quality gate failed\n  stage: Train\n  next:  make deploy DATA=x\n"
