"""Approve or reject from the console: the runtime starts ``safedeploy approve|reject`` as a detached process.

Why a process and not a call: the decision must record exactly what the CLI records (approver, comment, time on
the execution; the registry's status and history) and then *resume the execution* into DeployPrd, which runs the
blue/green deployment for minutes of model time. That is the pipeline's work (``safedeploy.pipeline`` and its
stages, floors above the runtime): importing it here would make the runtime depend upward on the code that drives
it, and running a deployment inside the runtime would make the runtime the controller of the deployment it serves
(its lease watchdog exists to outlive a dead controller). So the console starts the CLI's own verb,
``python -m safedeploy.cli approve|reject EXECUTION --spec FILE --by "<user> (console)" --comment ...``, in its own
session (as ``retraining/trigger.py`` starts its retraining: no page closing or runtime signal reaches it), its
output in ``<state>/runtime/console/decisions/``. The spec file is the one the console link was issued for, so the
decision resumes the execution with the pipeline's own settings. The page follows the execution's record as the
process moves it on; the process's exit status and last log lines are reported until the next decision.
"""

from __future__ import annotations

import getpass
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from safedeploy import constants as C
from safedeploy.atomic import atomic_write_text
from safedeploy.spec import PipelineSpec

Outcome = Literal["Approved", "Rejected"]
LOG_TAIL_LINES = 6


def comment_problem(comment: str) -> str | None:
    """Why ``comment`` cannot be recorded as a decision's comment (it goes into a process's arguments), or None."""
    if len(comment) > C.APPROVAL_COMMENT_MAX_LENGTH:
        return (
            f"the comment is {len(comment)} characters; an approval keeps at most {C.APPROVAL_COMMENT_MAX_LENGTH} "
            "(CodePipeline's limit)"
        )
    if any(ord(c) < 32 and c not in "\t\n" for c in comment):
        return "the comment holds control characters: write it as plain text"
    try:
        comment.encode("utf-8")
    except UnicodeEncodeError:
        return "the comment is not valid text (a lone surrogate): write it as plain text"
    return None


def console_approver() -> str:
    """Who a console decision is recorded as: the user running the runtime, marked as deciding in the console."""
    return f"{getpass.getuser()} (console)"


class DecisionConflictError(Exception):
    """A decision for this pipeline is already being carried out."""


@dataclass
class StartedDecision:
    """A decision process the console started."""

    execution_id: str
    outcome: Outcome
    approver: str
    comment: str
    started_at: datetime
    log: Path
    process: subprocess.Popen[bytes]

    def view(self) -> dict[str, Any]:
        """JSON for the page: what was decided, by whom, and whether the process still runs (or how it ended)."""
        code = self.process.poll()
        tail: list[str] = []
        if code not in (None, 0):
            try:
                with self.log.open("r", encoding="utf-8", errors="replace") as lines:
                    tail = [line.rstrip() for line in deque(lines, LOG_TAIL_LINES)]
            except OSError:
                tail = []
        return {
            "execution_id": self.execution_id,
            "outcome": self.outcome,
            "approver": self.approver,
            "comment": self.comment,
            "started_at": self.started_at.isoformat(),
            "running": code is None,
            "exit_code": code,
            "log": str(self.log),
            "log_tail": tail,
        }


class DecisionLauncher:
    """Starts decision processes, one at a time per pipeline, and remembers the latest of each."""

    def __init__(self, root: Path, python: str = sys.executable) -> None:
        self.root = root
        self.python = python
        self._latest: dict[str, StartedDecision] = {}
        self._lock = threading.Lock()

    def latest(self, pipeline_name: str) -> StartedDecision | None:
        """The last decision started for the pipeline, if any."""
        return self._latest.get(pipeline_name)

    def start(self, spec: PipelineSpec, execution_id: str, outcome: Outcome, comment: str) -> StartedDecision:
        """Start ``safedeploy approve|reject`` for the execution.

        Raises:
            DecisionConflictError: the previous decision for this pipeline is still running.
        """
        with self._lock:
            previous = self._latest.get(spec.pipeline_name)
            if previous is not None and previous.process.poll() is None:
                raise DecisionConflictError(
                    f"the {previous.outcome.lower()} decision for execution {previous.execution_id} is still being "
                    f"carried out (pid {previous.process.pid}); wait for it"
                )
            now = datetime.now(UTC)
            directory = self.root / "decisions"
            directory.mkdir(parents=True, exist_ok=True)
            spec_file = self.root / f"{spec.pipeline_name}.spec.json"
            atomic_write_text(spec_file, spec.model_dump_json())
            log = directory / f"{now:%Y%m%dT%H%M%SZ}-{execution_id}.log"
            approver = console_approver()
            verb = "approve" if outcome == "Approved" else "reject"
            with log.open("ab") as out:
                process = subprocess.Popen(
                    [self.python, "-m", "safedeploy.cli", verb, execution_id, "--spec", str(spec_file),
                     f"--by={approver}", f"--comment={comment}"],  # a comment starting with '-' stays a value
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    start_new_session=True,  # a runtime stopping mid-deployment does not take the deployment down
                )  # fmt: skip
            started = StartedDecision(execution_id, outcome, approver, comment, now, log, process)
            self._latest[spec.pipeline_name] = started
            return started
