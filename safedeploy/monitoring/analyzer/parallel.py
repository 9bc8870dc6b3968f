"""Decoding a large window on every core: capture files split among forked workers, rows handed back as .npz.

A Processing instance has several cores (an ml.m5.xlarge four; this machine two) and decoding capture JSONL is
Python work bound to one core per process. The files, already sorted by time, are cut into one contiguous group
per worker of about equal size; each worker decodes its group (``CaptureDecoder.read``) and writes its rows as
numpy arrays (``np.savez``, no pickle) and its counters as JSON; the parent reads them back in group order, so
the rows keep the capture's order and the statistics (deequ's order-sensitive sketch included) are the same
as a single process would compute. Hand-written because ``multiprocessing`` would pickle the results.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from safedeploy.monitoring.analyzer.capture import CaptureDecoder, Chunk, WindowData

MIN_PARALLEL_BYTES = 16 * 1024 * 1024
"""Below this much capture, forking costs more than it saves."""


def default_workers() -> int:
    """The cores this process may run on (at most 8)."""
    try:
        return max(1, min(8, len(os.sched_getaffinity(0))))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, min(8, os.cpu_count() or 1))


def _groups(files: list[Path], workers: int) -> list[list[Path]]:
    sizes = [path.stat().st_size if path.exists() else 0 for path in files]
    target = sum(sizes) / workers
    groups: list[list[Path]] = [[]]
    size = 0.0
    for path, bytes_ in zip(files, sizes, strict=True):
        if size >= target and len(groups) < workers:
            groups.append([])
            size = 0.0
        groups[-1].append(path)
        size += bytes_
    return [g for g in groups if g]


def read_window(decoder: CaptureDecoder, files: list[Path], scratch: Path, workers: int | None = None) -> WindowData:
    """Decode ``files`` with ``workers`` processes (one, in this process, for small windows)."""
    workers = default_workers() if workers is None else workers
    total = sum(path.stat().st_size for path in files if path.exists())
    if workers <= 1 or len(files) < 2 or total < MIN_PARALLEL_BYTES:
        return decoder.read(files)
    groups = _groups(files, workers)
    scratch.mkdir(parents=True, exist_ok=True)
    children = []
    for index, group in enumerate(groups):
        pid = os.fork()
        if pid == 0:  # the worker: decode, write, leave without running the parent's cleanup
            code = 1
            try:
                data = decoder.read(group)
                arrays: dict[str, Any] = {}
                for number, chunk in enumerate(data.chunks):
                    arrays[f"matrix{number}"] = chunk.matrix
                    arrays[f"fractional{number}"] = chunk.fractional
                    arrays[f"text{number}"] = chunk.text
                    arrays[f"scores{number}"] = chunk.scores
                np.savez(scratch / f"part-{index}.npz", allow_pickle=False, **arrays)
                counters = {**data.counters(), "chunks": len(data.chunks)}
                (scratch / f"part-{index}.json").write_text(json.dumps(counters))
                code = 0
            except BaseException as exc:  # reported to the parent, which raises it
                (scratch / f"part-{index}.error").write_text(f"{type(exc).__name__}: {exc}")
            finally:
                os._exit(code)
        children.append(pid)
    failures = []
    for index, pid in enumerate(children):
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            error = scratch / f"part-{index}.error"
            failures.append(error.read_text() if error.exists() else f"worker {index} died ({status})")
    if failures:
        shutil.rmtree(scratch, ignore_errors=True)
        raise RuntimeError(f"decoding the capture failed: {'; '.join(failures)}")
    window = WindowData(decoder.width)
    for index in range(len(groups)):
        counters = json.loads((scratch / f"part-{index}.json").read_text())
        with np.load(scratch / f"part-{index}.npz", allow_pickle=False) as arrays:
            chunks = [
                Chunk(arrays[f"matrix{n}"], arrays[f"fractional{n}"], arrays[f"text{n}"], arrays[f"scores{n}"])
                for n in range(counters.pop("chunks"))
            ]
        window.merge(WindowData.from_counters(decoder.width, counters, chunks))
    shutil.rmtree(scratch, ignore_errors=True)
    return window
