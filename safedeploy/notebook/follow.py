"""Watch an execution's stages while it runs: poll the facade's status and redraw it in place."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Generic, TypeVar

from safedeploy.runner import PipelineExecution, Status

if TYPE_CHECKING:
    from safedeploy.notebook.views import Render
    from safedeploy.pipeline import Pipeline

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 3 * 3600.0
"""Long enough for a CodePipeline execution on AWS (the workshop: 30-35 minutes)."""

_AWS_RUNNING = ("InProgress", "Stopping")
_CLOCK_SKEW = timedelta(seconds=5)


def is_settled(value: object, since: datetime | None = None) -> bool:
    """Whether a status value shows an execution that no longer moves by itself.

    Settled means waiting at the approval gate or ended (succeeded, failed, stopped). Only executions started at or
    after ``since`` count, so a run just submitted is not mistaken for the previous one.

    Args:
        value: ``pipeline.status().value``: a local :class:`PipelineExecution`, AWS's ``AwsStatus``, or None.
        since: When the run being followed was started (wall clock, UTC).
    """
    if isinstance(value, PipelineExecution):
        if since is not None and value.started_at < since - _CLOCK_SKEW:
            return False
        return value.status != Status.IN_PROGRESS or value.awaiting_approval is not None
    from safedeploy.control.aws import AwsStatus

    if isinstance(value, AwsStatus) and value.execution is not None:
        started = value.execution.started_at
        if since is not None and started is not None and started < since - _CLOCK_SKEW:
            return False
        return value.pending_approval is not None or value.execution.status not in _AWS_RUNNING
    return False


def waiting_for_approval(pipeline: Pipeline) -> bool:
    """Whether the pipeline's latest execution waits at the approval gate, on either target."""
    from safedeploy.control.aws import AwsStatus

    value = pipeline.status().value
    if isinstance(value, PipelineExecution):
        return value.awaiting_approval is not None
    return isinstance(value, AwsStatus) and value.pending_approval is not None


@dataclass
class _Outcome(Generic[T]):
    value: T | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def run_in_background(action: Callable[[], T]) -> tuple[threading.Thread, _Outcome[T]]:
    """Start ``action`` on a daemon thread; the outcome holds its result or exception once ``done`` is set."""
    outcome: _Outcome[T] = _Outcome()

    def run() -> None:
        try:
            outcome.value = action()
        except BaseException as exc:  # handed to the caller's thread, which re-raises it
            outcome.error = exc
        finally:
            outcome.done.set()

    thread = threading.Thread(target=run, name="safedeploy-notebook-action", daemon=True)
    thread.start()
    return thread, outcome


def follow(
    pipeline: Pipeline,
    action: Callable[[], T],
    view: Render,
    *,
    new_execution: bool = False,
    poll_s: float = 0.5,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> T:
    """Run ``action`` (a facade call: start, decide...) and redraw the execution's stages until it settles.

    Locally the call itself runs the stages, so it runs on a background thread while this one polls
    ``pipeline.status()``; on AWS the call returns once CodePipeline has the request, and the polling goes on until
    the execution waits at the approval or ends.

    Args:
        pipeline: The facade whose ``status()`` is shown.
        action: The call to make.
        view: Where the status goes (a :class:`~safedeploy.notebook.views.LiveView`, a widget's setter...).
        new_execution: ``action`` starts a new execution: on AWS an older one does not count as settled.
        poll_s: Seconds between two reads of the status.
        timeout_s: How long the execution may take to settle.

    Returns:
        What ``action`` returned.

    Raises:
        TimeoutError: the execution did not settle within ``timeout_s``.
        BaseException: whatever ``action`` raised.
    """
    since = datetime.now(UTC) if new_execution else None
    local = pipeline.target == "local"  # the call itself runs the stages: settled once it returned
    began = time.monotonic()
    thread, outcome = run_in_background(action)
    while True:
        report = pipeline.status()
        elapsed = time.monotonic() - began
        finished = outcome.done.is_set()
        settled = finished and (outcome.error is not None or local or is_settled(report.value, since))
        view(f"{report.text}\n\n{'settled' if settled else 'running'} after {elapsed:.1f} s")
        if settled:
            break
        if elapsed > timeout_s:
            raise TimeoutError(f"the execution did not settle in {timeout_s:.0f} s; `make status` shows where it is")
        outcome.done.wait(poll_s)
        if not finished and outcome.done.is_set():
            continue  # redraw at once with the final state
    thread.join()
    if outcome.error is not None:
        raise outcome.error
    return outcome.value  # type: ignore[return-value]  # set whenever no error was
