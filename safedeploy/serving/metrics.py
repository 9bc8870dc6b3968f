"""Endpoint metrics, CloudWatch style: per endpoint and variant, at one-second resolution.

Each invocation adds to ``Invocations``, ``Invocation4XXErrors``, ``Invocation5XXErrors``, ``ModelLatency``
and ``OverheadLatency`` (microseconds), as SageMaker publishes to ``AWS/SageMaker``.
:meth:`MetricStore.get_metric_statistics` answers like CloudWatch's ``GetMetricStatistics``: datapoints of
``Sum``, ``SampleCount``, ``Average``, ``Minimum`` and ``Maximum`` per period. Counts are recorded as
0-or-1 samples so that ``Average`` of an error metric is the error rate, as in CloudWatch.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from safedeploy import constants as C

STATISTICS = ("Sum", "SampleCount", "Average", "Minimum", "Maximum")
UNITS = {"ModelLatency": "Microseconds", "OverheadLatency": "Microseconds"}


@dataclass
class _Aggregate:
    total: float = 0.0
    count: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)

    def merge(self, other: _Aggregate) -> None:
        self.total += other.total
        self.count += other.count
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)


SeriesKey = tuple[str, str, str]  # endpoint, variant, metric


class MetricStore:
    """In-memory metric series with bounded retention; safe to use from several threads."""

    def __init__(self, retention_seconds: int = 3 * 3600) -> None:
        self.retention = retention_seconds
        self._series: dict[SeriesKey, dict[int, _Aggregate]] = defaultdict(dict)
        self._lock = threading.Lock()

    def record_invocation(
        self,
        endpoint: str,
        variant: str,
        *,
        status: int,
        model_latency_us: float,
        overhead_latency_us: float,
        at: float | None = None,
    ) -> None:
        """Record one invocation that reached a variant, with the status its model answered."""
        second = int(at if at is not None else time.time())
        samples = {
            "Invocations": 1.0,
            "Invocation4XXErrors": 1.0 if 400 <= status < 500 else 0.0,
            "Invocation5XXErrors": 1.0 if status >= 500 else 0.0,
            "ModelLatency": model_latency_us,
            "OverheadLatency": overhead_latency_us,
        }
        with self._lock:
            for metric, value in samples.items():
                buckets = self._series[(endpoint, variant, metric)]
                bucket = buckets.get(second)
                if bucket is None:
                    bucket = buckets[second] = _Aggregate()
                    self._prune(buckets, second)
                bucket.add(value)

    def _prune(self, buckets: dict[int, _Aggregate], newest: int) -> None:
        if len(buckets) > self.retention:
            for second in [s for s in buckets if s <= newest - self.retention]:
                del buckets[second]

    def get_metric_statistics(
        self,
        *,
        endpoint: str,
        variant: str,
        metric: str,
        start: datetime,
        end: datetime,
        period: int,
        statistics: tuple[str, ...] = STATISTICS,
    ) -> list[dict[str, object]]:
        """Datapoints in ``[start, end)``, one per ``period`` seconds that has samples, oldest first."""
        if metric not in C.INVOCATION_METRICS:
            raise ValueError(f"unknown metric {metric!r}; known: {', '.join(C.INVOCATION_METRICS)}")
        if period < 1:
            raise ValueError(f"period must be at least 1 second, got {period}")
        unknown = set(statistics) - set(STATISTICS)
        if unknown:
            raise ValueError(f"unknown statistic(s) {sorted(unknown)}; known: {', '.join(STATISTICS)}")
        first, last = int(start.timestamp()), math.ceil(end.timestamp())
        periods: dict[int, _Aggregate] = {}
        with self._lock:
            for second, aggregate in self._series.get((endpoint, variant, metric), {}).items():
                if first <= second < last:
                    slot = first + (second - first) // period * period
                    periods.setdefault(slot, _Aggregate()).merge(aggregate)
        return [self._datapoint(metric, slot, periods[slot], statistics) for slot in sorted(periods)]

    @staticmethod
    def _datapoint(metric: str, slot: int, aggregate: _Aggregate, statistics: tuple[str, ...]) -> dict[str, object]:
        values = {
            "Sum": aggregate.total,
            "SampleCount": float(aggregate.count),
            "Average": aggregate.total / aggregate.count,
            "Minimum": aggregate.minimum,
            "Maximum": aggregate.maximum,
        }
        point: dict[str, object] = {"Timestamp": datetime.fromtimestamp(slot, UTC).isoformat()}
        point.update({name: values[name] for name in statistics})
        point["Unit"] = UNITS.get(metric, "None")
        return point
