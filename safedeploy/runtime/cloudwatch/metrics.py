"""Endpoint metrics, CloudWatch style: per endpoint and variant, at one-second resolution.

Each invocation adds to ``Invocations``, ``Invocation4XXErrors``, ``Invocation5XXErrors``, ``ModelLatency``
and ``OverheadLatency`` (microseconds), as SageMaker publishes to ``AWS/SageMaker``.
:meth:`MetricStore.get_metric_statistics` answers like CloudWatch's ``GetMetricStatistics``: datapoints of
``Sum``, ``SampleCount``, ``Average``, ``Minimum`` and ``Maximum`` per period, and for the latency metrics the
``ExtendedStatistics`` percentiles (``p50``, ``p99``, ``p99.9``...) from a KLL sketch per second (Apache
DataSketches, the sketch SageMaker Model Monitor uses; rank error about 1.3 % at k=200). Counts are recorded
as 0-or-1 samples so that ``Average`` of an error metric is the error rate, as in CloudWatch.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from datasketches import kll_floats_sketch

from safedeploy import constants as C

STATISTICS = ("Sum", "SampleCount", "Average", "Minimum", "Maximum")
UNITS = {"ModelLatency": "Microseconds", "OverheadLatency": "Microseconds"}
PERCENTILE_METRICS = frozenset(UNITS)
"""Metrics whose samples are also sketched, so percentiles can be asked for."""
SKETCH_K = 200
_PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d{1,3})?|100)$")


@dataclass
class _Aggregate:
    total: float = 0.0
    count: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf
    sketch: kll_floats_sketch | None = None

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1
        if value < self.minimum:
            self.minimum = value
        if value > self.maximum:
            self.maximum = value
        if self.sketch is not None:
            self.sketch.update(value)

    def merge(self, other: _Aggregate) -> None:
        self.total += other.total
        self.count += other.count
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        if other.sketch is not None:
            if self.sketch is None:
                self.sketch = kll_floats_sketch(SKETCH_K)
            self.sketch.merge(other.sketch)


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
                    sketch = kll_floats_sketch(SKETCH_K) if metric in PERCENTILE_METRICS else None
                    bucket = buckets[second] = _Aggregate(sketch=sketch)
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
        extended_statistics: tuple[str, ...] = (),
    ) -> list[dict[str, object]]:
        """Datapoints in ``[start, end)``, one per ``period`` seconds that has samples, oldest first.

        ``extended_statistics`` are percentiles (``p99``), answered under ``ExtendedStatistics`` as CloudWatch does.
        """
        if metric not in C.INVOCATION_METRICS:
            raise ValueError(f"unknown metric {metric!r}; known: {', '.join(C.INVOCATION_METRICS)}")
        if period < 1:
            raise ValueError(f"period must be at least 1 second, got {period}")
        unknown = set(statistics) - set(STATISTICS)
        if unknown:
            raise ValueError(f"unknown statistic(s) {sorted(unknown)}; known: {', '.join(STATISTICS)}")
        for name in extended_statistics:
            if not _PERCENTILE.match(name) or float(name[1:]) > 100:
                raise ValueError(f"unknown extended statistic {name!r}; use a percentile such as p99 or p99.9")
        if extended_statistics and metric not in PERCENTILE_METRICS:
            raise ValueError(f"percentiles are kept for {', '.join(sorted(PERCENTILE_METRICS))}, not {metric}")
        first, last = int(start.timestamp()), math.ceil(end.timestamp())
        periods: dict[int, _Aggregate] = {}
        with self._lock:
            for second, aggregate in self._series.get((endpoint, variant, metric), {}).items():
                if first <= second < last:
                    slot = first + (second - first) // period * period
                    periods.setdefault(slot, _Aggregate()).merge(aggregate)
        return [
            self._datapoint(metric, slot, periods[slot], statistics, extended_statistics) for slot in sorted(periods)
        ]

    @staticmethod
    def _datapoint(
        metric: str, slot: int, aggregate: _Aggregate, statistics: tuple[str, ...], extended: tuple[str, ...]
    ) -> dict[str, object]:
        values = {
            "Sum": aggregate.total,
            "SampleCount": float(aggregate.count),
            "Average": aggregate.total / aggregate.count,
            "Minimum": aggregate.minimum,
            "Maximum": aggregate.maximum,
        }
        point: dict[str, object] = {"Timestamp": datetime.fromtimestamp(slot, UTC).isoformat()}
        point.update({name: values[name] for name in statistics})
        if extended and aggregate.sketch is not None:
            point["ExtendedStatistics"] = {
                name: aggregate.sketch.get_quantile(float(name[1:]) / 100) for name in extended
            }
        point["Unit"] = UNITS.get(metric, "None")
        return point
