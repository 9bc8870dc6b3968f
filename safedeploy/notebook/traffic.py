"""Client traffic through production's REST API while a deployment shifts it: which version answered, live."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from safedeploy.notebook.endpoints import Answer, RestApi
from safedeploy.notebook.follow import run_in_background

if TYPE_CHECKING:
    from safedeploy.notebook.views import Render
    from safedeploy.pipeline import Pipeline

T = TypeVar("T")

REDRAW_S = 0.25


def describe_answers(answers: Sequence[Answer], window_s: float = 1.0) -> str:
    """Counts per model version, in all and in the last ``window_s`` seconds, and the non-200 answers."""
    if not answers:
        return "no answers yet"
    now = answers[-1].seconds
    recent = Counter(a.version for a in answers if a.seconds >= now - window_s and a.status == 200)
    total = Counter(a.version for a in answers if a.status == 200)
    failed = Counter(a.status for a in answers if a.status != 200)
    lines = [f"{len(answers)} requests in {now:.1f} s"]
    for version in sorted(total, key=lambda v: (v is None, v or "")):
        share = recent[version] / max(1, sum(recent.values()))
        lines.append(
            f"  v{version}: {total[version]:5d} answers, {share:6.1%} of the last {window_s:.0f} s "
            f"{'#' * round(share * 40)}"
        )
    if failed:
        lines.append("  not 200: " + ", ".join(f"{status} x {n}" for status, n in sorted(failed.items())))
    return "\n".join(lines)


def describe_shift(pipeline: Pipeline) -> str:
    """The latest deployment's strategy, steps so far (weights) and outcome, from the ledger."""
    deployments = pipeline.deployments()
    if not deployments:
        return "no deployment yet"
    latest = deployments[-1]
    lines = [f"deployment {latest['deployment_id']} ({latest.get('strategy', '?')}): {latest['outcome']}"]
    for step in latest["steps"]:
        weights = ", ".join(f"{endpoint} {weight:.0%}" for endpoint, weight in step["weights"].items())
        lines.append(f"  {step['time'][11:23]}  {weights}")
    if latest.get("reason"):
        lines.append(f"  reason: {latest['reason']}")
    return "\n".join(lines)


def send_during(
    pipeline: Pipeline,
    api: RestApi,
    records: Sequence[dict[str, Any]],
    action: Callable[[], T],
    view: Render,
    *,
    pause_s: float = 0.01,
) -> tuple[T, list[Answer]]:
    """Run ``action`` (the approval that deploys) while sending ``records`` round and round through ``api``.

    The view shows, redrawn in place, the deployment's traffic steps and which version answered.

    Returns:
        What ``action`` returned, and every answer in order.

    Raises:
        ValueError: no records to send.
        BaseException: whatever ``action`` raised (after the traffic stopped).
    """
    if not records:
        raise ValueError("no records to send: the table has no rows")
    thread, outcome = run_in_background(action)
    answers: list[Answer] = []
    started = time.monotonic()
    drawn = 0.0
    try:
        for record in itertools.cycle(records):
            if outcome.done.is_set():
                break
            answers.append(api.predict(record, started))
            if time.monotonic() - drawn >= REDRAW_S:
                view(f"{describe_shift(pipeline)}\n\n{describe_answers(answers)}")
                drawn = time.monotonic()
            time.sleep(pause_s)
    finally:
        thread.join()
        api.close()
    view(f"{describe_shift(pipeline)}\n\n{describe_answers(answers)}")
    if outcome.error is not None:
        raise outcome.error
    return outcome.value, answers  # type: ignore[return-value]  # set whenever no error was


def send(api: RestApi, records: Sequence[dict[str, Any]]) -> list[Answer]:
    """Send each record once; return the answers."""
    started = time.monotonic()
    try:
        return [api.predict(record, started) for record in records]
    finally:
        api.close()
