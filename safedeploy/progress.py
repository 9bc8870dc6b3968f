"""How long steps report progress: the interface the pipeline side calls, and its plain (log-line) form.

The runner reports each stage's start and end, stages and the blue/green controller report their long sub-steps
(the training job, waiting for ``InService``, each traffic-shift step and the bake on the model-time clock), and
commands outside the runner (``rollback``, ``monitor run``) wrap their long call in :meth:`ProgressReporter.task`.
Nobody prints: a :class:`ProgressReporter` is injected, :class:`PlainProgress` by default.

:class:`PlainProgress` writes the log lines the pipeline has always written (``stage Data: started``,
``stage Data: succeeded: ...``); sub-steps are debug lines, since the plain output already logs what matters
(``traffic: 10% to ...``). On a terminal the CLI injects :class:`safedeploy.terminal.RichProgress` instead: a spinner
with the stage, its elapsed time and the current sub-step, then the stage line.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Protocol

RUNNER_LOG = logging.getLogger("safedeploy.runner")
"""The stage lines' logger: the runner's, as before the reporter existed (people and tests grep these lines)."""
STEP_LOG = logging.getLogger("safedeploy.progress")


class ProgressReporter(Protocol):
    """Receives the progress of a run as it happens."""

    def stage_started(self, stage: str, *, resumed: bool = False) -> None:
        """A stage starts (or resumes after its approval was answered)."""
        ...

    def stage_succeeded(self, stage: str, summary: str) -> None:
        """A stage ended well; ``summary`` is its one-line result."""
        ...

    def stage_paused(self, stage: str, summary: str) -> None:
        """A stage paused the execution (an unanswered approval)."""
        ...

    def stage_failed(self, stage: str, message: str, *, unexpected: BaseException | None = None) -> None:
        """A stage failed with ``message``; ``unexpected`` is the exception when it was not an expected failure."""
        ...

    def step(self, text: str) -> None:
        """The current sub-step of a long stage or task (replaces the previous one)."""
        ...

    def task(self, title: str) -> contextlib.AbstractContextManager[None]:
        """A long call outside the runner (a rollback, a monitoring execution), shown while it runs."""
        ...

    def suspended(self) -> contextlib.AbstractContextManager[None]:
        """Nothing live on the terminal meanwhile (a prompt reads an answer)."""
        ...


class PlainProgress:
    """The log lines, one per event: what non-terminals (CI, tests, pipes, ``TERM=dumb``) get."""

    def stage_started(self, stage: str, *, resumed: bool = False) -> None:
        """``stage X: started`` (or ``resumed``)."""
        RUNNER_LOG.info("stage %s: %s", stage, "resumed" if resumed else "started")

    def stage_succeeded(self, stage: str, summary: str) -> None:
        """``stage X: succeeded: <summary>``."""
        RUNNER_LOG.info("stage %s: succeeded: %s", stage, summary)

    def stage_paused(self, stage: str, summary: str) -> None:
        """``stage X: <what it waits for>``."""
        RUNNER_LOG.info("stage %s: %s", stage, summary)

    def stage_failed(self, stage: str, message: str, *, unexpected: BaseException | None = None) -> None:
        """``stage X: failed: <message>``, with the traceback of an unexpected exception."""
        exc_info = unexpected if isinstance(unexpected, Exception) else None
        RUNNER_LOG.error("stage %s: failed: %s", stage, message, exc_info=exc_info)

    def step(self, text: str) -> None:
        """A debug line (the plain output's own log lines already say what matters)."""
        STEP_LOG.debug("%s", text)

    @contextlib.contextmanager
    def task(self, title: str) -> Iterator[None]:
        """A debug line at the start; the command prints its outcome."""
        STEP_LOG.debug("%s", title)
        yield

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Nothing to suspend."""
        yield
