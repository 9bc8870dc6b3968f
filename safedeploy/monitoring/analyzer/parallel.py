"""A window as Spark would aggregate it: fixed partitions of capture, summarized on every core, merged in order.

Decoding capture JSONL is Python work bound to one core per process, and a Processing instance has several (an
ml.m5.xlarge four, this machine two). The files, sorted by time, are cut into partitions of about
``GROUP_BYTES`` each, a size fixed by the data and not by the number of processes. Each partition is decoded
and reduced to per-column aggregates (:class:`~safedeploy.monitoring.analyzer.partials.NumericPartial`: counts,
sum, moments, bounds and deequ's sketch) and its counters; only those small summaries leave a worker (as
JSON), and the parent merges them in partition order as Spark merges partial aggregates. The result is the same
with one process or eight, and no process ever holds the whole window's rows. Hand-written because
``multiprocessing`` would pickle the results and a fork with a JSON file per worker is all this needs.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from safedeploy.monitoring.analyzer.capture import GROUP_BYTES, CaptureDecoder, WindowData
from safedeploy.monitoring.analyzer.partials import NumericPartial
from safedeploy.monitoring.analyzer.table import FloatArray, TypeCounts


def default_workers() -> int:
    """The cores this process may run on (at most 8)."""
    try:
        return max(1, min(8, len(os.sched_getaffinity(0))))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, min(8, os.cpu_count() or 1))


def partitions(files: list[Path], group_bytes: int = GROUP_BYTES) -> list[list[Path]]:
    """Consecutive groups of files of about ``group_bytes`` each (a file is never split)."""
    groups: list[list[Path]] = [[]]
    size = 0
    for path in files:
        if size >= group_bytes:
            groups.append([])
            size = 0
        groups[-1].append(path)
        size += path.stat().st_size if path.exists() else 0
    return [g for g in groups if g]


def typed_column(values: FloatArray, fractional: Any, text: Any) -> tuple[FloatArray, TypeCounts]:
    """A decoded column's numbers (non-finite: NaN) and its deequ type counts, from how each value arrived."""
    values = values.copy()
    values[~np.isfinite(values)] = np.nan
    numeric = ~np.isnan(values)
    rows = int(values.shape[0])
    fractional_count = int(np.count_nonzero(fractional & numeric))
    present_numeric = int(np.count_nonzero(numeric))
    strings = int(np.count_nonzero(text))
    types = TypeCounts(
        null=rows - present_numeric - strings,
        integral=present_numeric - fractional_count,
        fractional=fractional_count,
        string=strings,
    )
    return values, types


def score_types(scores: FloatArray) -> TypeCounts:
    """Scores are numbers or missing (NaN)."""
    present = int(np.count_nonzero(~np.isnan(scores)))
    fractional = int(np.count_nonzero((scores != np.trunc(scores)) & ~np.isnan(scores)))
    return TypeCounts(null=int(scores.size) - present, integral=present - fractional, fractional=fractional)


@dataclass
class WindowSummary:
    """The window's counters and its columns' (and scores') aggregates."""

    data: WindowData
    """Counters only: records, exclusions, malformed lines, widths, raw-record findings (no rows)."""
    columns: list[NumericPartial]
    scores: NumericPartial
    rows: int

    def merge(self, other: WindowSummary) -> None:
        """Fold in the partition after this one."""
        self.data.merge(other.data)
        for mine, theirs in zip(self.columns, other.columns):
            mine.merge(theirs)
        self.scores.merge(other.scores)
        self.rows += other.rows

    def to_json(self) -> dict[str, Any]:
        """As a worker hands it over."""
        return {
            "counters": self.data.counters(),
            "columns": [c.to_json() for c in self.columns],
            "scores": self.scores.to_json(),
            "rows": self.rows,
        }

    @classmethod
    def from_json(cls, width: int, document: dict[str, Any]) -> WindowSummary:
        """Read :meth:`to_json` back."""
        return cls(
            data=WindowData.from_counters(width, document["counters"], []),
            columns=[NumericPartial.from_json(c) for c in document["columns"]],
            scores=NumericPartial.from_json(document["scores"]),
            rows=document["rows"],
        )


def summarize_partition(decoder: CaptureDecoder, files: list[Path]) -> WindowSummary:
    """Decode one partition and reduce it to aggregates."""
    data = decoder.read(files)
    rows = data.rows
    columns = []
    for index in range(decoder.width):
        values, types = typed_column(*data.column(index))
        columns.append(NumericPartial.of(values, types, rows, exact=False))
    scores = data.scores()
    summary = WindowSummary(data, columns, NumericPartial.of(scores, score_types(scores), rows, exact=False), rows)
    data.chunks = []  # the rows are not needed any more
    return summary


def summarize_window(
    decoder: CaptureDecoder, files: list[Path], scratch: Path, workers: int | None = None
) -> WindowSummary:
    """Summarize every partition of ``files`` (on ``workers`` processes) and merge them in order."""
    groups = partitions(files)
    workers = min(default_workers() if workers is None else workers, len(groups))
    if workers <= 1:
        parts = [summarize_partition(decoder, group) for group in groups]
    else:
        parts = _in_workers(decoder, groups, scratch, workers)
    empty = WindowSummary(WindowData(decoder.width), [NumericPartial() for _ in range(decoder.width)],
                          NumericPartial(), 0)  # fmt: skip
    for part in parts:
        empty.merge(part)
    return empty


def _in_workers(decoder: CaptureDecoder, groups: list[list[Path]], scratch: Path, workers: int) -> list[WindowSummary]:
    scratch.mkdir(parents=True, exist_ok=True)
    share = -(-len(groups) // workers)  # contiguous ranges of partitions, as even as possible
    ranges = [range(start, min(start + share, len(groups))) for start in range(0, len(groups), share)]
    children = []
    for number, indices in enumerate(ranges):
        pid = os.fork()
        if pid == 0:  # the worker: summarize its partitions, write JSON, leave without the parent's cleanup
            code = 1
            try:
                documents = [summarize_partition(decoder, groups[i]).to_json() for i in indices]
                (scratch / f"worker-{number}.json").write_text(json.dumps(documents))
                code = 0
            except BaseException as exc:  # reported to the parent, which raises it
                (scratch / f"worker-{number}.error").write_text(f"{type(exc).__name__}: {exc}")
            finally:
                os._exit(code)
        children.append(pid)
    failures = []
    for number, pid in enumerate(children):
        _, status = os.waitpid(pid, 0)
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            error = scratch / f"worker-{number}.error"
            failures.append(error.read_text() if error.exists() else f"worker {number} died ({status})")
    try:
        if failures:
            raise RuntimeError(f"decoding the capture failed: {'; '.join(failures)}")
        parts: list[WindowSummary] = []
        for number in range(len(ranges)):
            documents = json.loads((scratch / f"worker-{number}.json").read_text())
            parts.extend(WindowSummary.from_json(decoder.width, document) for document in documents)
        return parts
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
