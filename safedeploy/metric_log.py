"""Custom metrics (``PutMetricData``): an append-only, fsynced JSONL log per namespace, queried as CloudWatch does.

The runtime's in-memory :class:`~safedeploy.runtime.cloudwatch.metrics.MetricStore` holds the endpoints' per-second
invocation metrics; metrics that jobs publish (the monitor's ``feature_baseline_drift_<name>`` in
``/aws/sagemaker/Endpoints/data-metric``) arrive from other processes, hourly, and must survive a runtime
restart, so they live here: each datum one line in PutMetricData's shape (``MetricName``, ``Dimensions``,
``Timestamp``, ``Value``, ``Unit``) plus its ``Namespace``. Appends take a lock and end with fsync; a reader
skips a torn last line (a writer killed mid-append) and the next append starts on a fresh line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safedeploy.locking import exclusive_lock

Dimensions = Mapping[str, str]


@dataclass(frozen=True)
class Datum:
    """One published value."""

    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    timestamp: datetime
    value: float
    unit: str = "None"

    def line(self) -> bytes:
        """The datum as one JSON line."""
        return (
            json.dumps(
                {
                    "Namespace": self.namespace,
                    "MetricName": self.metric,
                    "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
                    "Timestamp": self.timestamp.astimezone(UTC).isoformat(),
                    "Value": self.value,
                    "Unit": self.unit,
                },
                allow_nan=False,
            ).encode()
            + b"\n"
        )


def _slug(namespace: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in namespace.strip("/")) or "default"


class MetricLog:
    """Namespaces as files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, namespace: str) -> Path:
        return self.root / f"{_slug(namespace)}.jsonl"

    def put(self, data: Sequence[Datum]) -> None:
        """Append ``data`` (PutMetricData); durable when this returns."""
        by_namespace: dict[str, list[Datum]] = {}
        for datum in data:
            by_namespace.setdefault(datum.namespace, []).append(datum)
        self.root.mkdir(parents=True, exist_ok=True)
        for namespace, items in by_namespace.items():
            path = self._path(namespace)
            with exclusive_lock(path.with_suffix(".lock"), wait=True), path.open("ab") as handle:
                if handle.tell() > 0:
                    with path.open("rb") as reader:
                        reader.seek(-1, os.SEEK_END)
                        if reader.read(1) != b"\n":  # a torn last line: start afresh
                            handle.write(b"\n")
                handle.write(b"".join(d.line() for d in items))
                handle.flush()
                os.fsync(handle.fileno())

    def query(
        self,
        namespace: str,
        metric: str,
        dimensions: Dimensions,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[tuple[datetime, float]]:
        """Values of ``metric`` with exactly ``dimensions`` in ``[start, end)``, oldest first."""
        path = self._path(namespace)
        if not path.is_file():
            return []
        wanted = sorted(dimensions.items())
        points = []
        for raw in path.read_bytes().splitlines():
            try:
                item: dict[str, Any] = json.loads(raw)
                if item["Namespace"] != namespace or item["MetricName"] != metric:
                    continue
                if sorted((d["Name"], d["Value"]) for d in item["Dimensions"]) != wanted:
                    continue
                stamp = datetime.fromisoformat(item["Timestamp"])
                value = float(item["Value"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn or foreign line
            if (start is None or stamp >= start) and (end is None or stamp < end):
                points.append((stamp, value))
        return sorted(points)

    def metrics(self, namespace: str) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
        """``ListMetrics``: every (metric, dimensions) published in ``namespace``."""
        path = self._path(namespace)
        if not path.is_file():
            return []
        seen: dict[tuple[str, tuple[tuple[str, str], ...]], None] = {}
        for raw in path.read_bytes().splitlines():
            try:
                item = json.loads(raw)
                key = (item["MetricName"], tuple((d["Name"], d["Value"]) for d in item["Dimensions"]))
            except (ValueError, KeyError, TypeError):
                continue
            seen[key] = None
        return list(seen)


def statistics(
    points: Sequence[tuple[datetime, float]], start: datetime, period: int, wanted: Sequence[str]
) -> list[dict[str, Any]]:
    """CloudWatch datapoints: ``wanted`` statistics (Sum, SampleCount, Average, Minimum, Maximum) per period."""
    if period < 1:
        raise ValueError(f"period must be at least 1 second, got {period}")
    unknown = set(wanted) - {"Sum", "SampleCount", "Average", "Minimum", "Maximum"}
    if unknown:
        raise ValueError(f"unknown statistic(s) {sorted(unknown)}")
    slots: dict[int, list[float]] = {}
    origin = start.timestamp()
    for stamp, value in points:
        slot = int((stamp.timestamp() - origin) // period)
        slots.setdefault(slot, []).append(value)
    datapoints = []
    for slot in sorted(slots):
        values = slots[slot]
        every = {
            "Sum": sum(values),
            "SampleCount": float(len(values)),
            "Average": sum(values) / len(values),
            "Minimum": min(values),
            "Maximum": max(values),
        }
        point: dict[str, Any] = {"Timestamp": datetime.fromtimestamp(origin + slot * period, UTC).isoformat()}
        point.update({name: every[name] for name in wanted})
        point["Unit"] = "None"
        datapoints.append(point)
    return datapoints
