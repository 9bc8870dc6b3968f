"""The CLI's terminal: live progress with rich, failures in a red panel; plain lines when it is not a terminal.

:func:`wants_rich` decides once per command: stdout a terminal, ``NO_COLOR`` unset and ``TERM`` not ``dumb``.
Then :class:`RichProgress` (a :class:`safedeploy.progress.ProgressReporter`) shows the running stage with a
spinner, its elapsed time and the current sub-step, and prints each stage's line when it ends; the log lines go
through the same console, above the live line. Otherwise :class:`safedeploy.progress.PlainProgress` and the log
lines as they always were.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from typing import TextIO

from rich.console import Console
from rich.logging import RichHandler
from rich.panel import Panel
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column
from rich.text import Text

from safedeploy.hints import Failure
from safedeploy.progress import RUNNER_LOG, PlainProgress, ProgressReporter

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def wants_rich(stream: TextIO | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to draw on the terminal: ``stream`` (stdout) is one, ``NO_COLOR`` is unset and ``TERM`` is not dumb."""
    stream = stream if stream is not None else sys.stdout
    environ = environ if environ is not None else os.environ
    if environ.get("NO_COLOR") or environ.get("TERM", "") == "dumb":
        return False
    return stream.isatty()


def stderr_console() -> Console:
    """The console live progress, log lines and failure panels share (stderr: stdout keeps the command's result)."""
    return Console(stderr=True)


def configure_logging(verbose: bool, console: Console | None) -> None:
    """Log lines as always (plain, stderr) or, with a console, through it (above the live progress line)."""
    level = logging.DEBUG if verbose else logging.INFO
    if console is None:
        logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
        return
    handler = RichHandler(console=console, show_path=False, markup=False, log_time_format="%H:%M:%S")
    logging.basicConfig(level=level, format="%(name)s: %(message)s", handlers=[handler])


def reporter(console: Console | None) -> ProgressReporter:
    """Live progress on ``console``, or the plain log lines without one."""
    return RichProgress(console) if console is not None else PlainProgress()


def render_failure(failure: Failure, console: Console | None, stream: TextIO | None = None) -> None:
    """A red panel (stage, cause, next command) on the console; else the plain lines on ``stream`` (stderr)."""
    if console is None:
        print(failure.plain(), file=stream if stream is not None else sys.stderr)
        return
    body = Text()
    body.append("stage  ", style="bold").append(f"{failure.stage}\n")
    body.append("cause  ", style="bold").append(f"{failure.cause}\n")
    body.append("next   ", style="bold").append(failure.next_command, style="bold cyan")
    if failure.note:
        body.append(f"  # {failure.note}", style="dim")
    console.print(
        Panel(
            body,
            title=Text(f"failed: {failure.stage}", style="bold"),
            title_align="left",
            border_style="red",
            expand=False,
        )
    )


class RichProgress:
    """Live progress on a rich console: spinner, the stage or task, elapsed time, the current sub-step."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._display = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)),
            TimeElapsedColumn(),
            TextColumn("{task.fields[step]}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
            console=console,
            transient=True,
            expand=True,
        )
        self._task: TaskID | None = None
        self._started = 0.0

    def _begin(self, title: str) -> None:
        self._end()
        self._display.start()
        self._task = self._display.add_task(title, step="")
        self._started = time.monotonic()

    def _end(self) -> float:
        """Stop the live line; return how long it ran."""
        if self._task is None:
            return 0.0
        self._display.remove_task(self._task)
        self._display.stop()
        self._task = None
        return time.monotonic() - self._started

    def _line(self, mark: str, style: str, stage: str, status: str, seconds: float, detail: str) -> None:
        text = Text.assemble((f"{mark} ", style), (stage, "bold"), f" {status}")
        if seconds:
            text.append(f" in {seconds:.1f}s")
        if detail:
            text.append(": ").append(detail)
        self.console.print(text)

    def stage_started(self, stage: str, *, resumed: bool = False) -> None:
        """Spinner on ``stage``."""
        self._begin(f"{stage}{' (resumed)' if resumed else ''}")

    def stage_succeeded(self, stage: str, summary: str) -> None:
        """The stage line, green."""
        self._line("✓", "green", stage, "succeeded", self._end(), summary)

    def stage_paused(self, stage: str, summary: str) -> None:
        """The stage line, yellow: it waits."""
        self._line("‖", "yellow", stage, "waiting", self._end(), summary)

    def stage_failed(self, stage: str, message: str, *, unexpected: BaseException | None = None) -> None:
        """The stage line, red (an unexpected exception's traceback is logged)."""
        self._line("✗", "red", stage, "failed", self._end(), message)
        if isinstance(unexpected, Exception):
            RUNNER_LOG.error("stage %s: unexpected error", stage, exc_info=unexpected)

    def step(self, text: str) -> None:
        """Show the current sub-step beside the spinner."""
        if self._task is not None:
            self._display.update(self._task, step=text)

    @contextlib.contextmanager
    def task(self, title: str) -> Iterator[None]:
        """Spinner on ``title`` while the block runs."""
        self._begin(title)
        try:
            yield
        finally:
            self._end()

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Hide the live line (a prompt reads an answer), then show it again."""
        running = self._task is not None
        if running:
            self._display.stop()
        try:
            yield
        finally:
            if running:
                self._display.start()
