"""Mergeable statistics of a numeric column, as Spark's aggregates are: per partition, then merged in order.

deequ computes a dataset's statistics per Spark partition and merges the partial states: counts add, sums add,
the central moments merge with Chan's formula (Spark's ``CentralMomentAgg``), minimum and maximum combine, and
the quantile sketches merge (deequ's ``QuantileNonSample.merge``, after each partial was serialized and read
back, which resets its compactors' counters). A monitoring window is partitioned the same way: groups of capture
files, in time order, fixed by size and not by the number of processes, so the result is the same on two cores
or eight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.analyzer.kll import INITIAL_MAXIMUM, INITIAL_MINIMUM, QuantileSketch
from safedeploy.monitoring.analyzer.table import FloatArray, TypeCounts

EXACT_MOMENTS_MAX_ROWS = 200_000
"""For a baseline of up to this many rows, the moments are Spark's one-pass update in row order, bit for bit as the
analyzer's; beyond, and for monitoring windows, numpy's two-pass formula (equal to within rounding: milliseconds
instead of a Python loop over every value)."""


def sequential_sum(values: FloatArray) -> float:
    """Left-to-right double sum, as Spark sums one partition (numpy's pairwise sum rounds differently)."""
    return float(np.cumsum(values)[-1]) if values.size else 0.0


def moments(values: FloatArray, exact: bool = True) -> tuple[float, float]:
    """``(mean, m2)`` of one partition: Spark's ``CentralMomentAgg`` update in row order.

    (n += 1; delta = x - mean; delta_n = delta / n; mean += delta_n; m2 += delta * (delta - delta_n)), or the
    two-pass formula for long partitions (see :data:`EXACT_MOMENTS_MAX_ROWS`).
    """
    if not exact or values.size > EXACT_MOMENTS_MAX_ROWS:
        mean = float(np.mean(values))
        return mean, float(np.sum((values - mean) ** 2))
    n = average = m2 = 0.0
    for value in values.tolist():
        n += 1.0
        delta = value - average
        delta_n = delta / n
        average += delta_n
        m2 += delta * (delta - delta_n)
    return average, m2


@dataclass
class NumericPartial:
    """One numeric column's aggregates over a partition (or several, merged)."""

    types: TypeCounts = field(default_factory=TypeCounts)
    rows: int = 0
    count: int = 0
    total: float = 0.0
    mean: float = 0.0
    m2: float = 0.0
    minimum: float | None = None
    maximum: float | None = None
    sketch: QuantileSketch = field(default_factory=lambda: QuantileSketch(F.KLL_SKETCH_SIZE, F.KLL_SHRINKING_FACTOR))

    @classmethod
    def of(cls, values: FloatArray, types: TypeCounts, rows: int, exact: bool = True) -> NumericPartial:
        """Aggregate one partition's values (NaN: not a number; left out); ``exact``: see :func:`moments`."""
        present = values[~np.isnan(values)]
        partial = cls(types=types, rows=rows, count=int(present.size))
        if present.size:
            partial.total = sequential_sum(present)
            partial.mean, partial.m2 = moments(present, exact)
            partial.minimum, partial.maximum = float(present.min()), float(present.max())
            partial.sketch.update(present)
        return partial

    def merge(self, other: NumericPartial) -> None:
        """Fold ``other`` (the partition after this one) in, as Spark merges partial aggregates."""
        self.types.add(other.types)
        self.rows += other.rows
        if other.count == 0:
            return
        if self.count == 0:
            self.count, self.total, self.mean, self.m2 = other.count, other.total, other.mean, other.m2
            self.minimum, self.maximum = other.minimum, other.maximum
            self.sketch = _reconstructed(other.sketch)
            return
        n1, n2 = float(self.count), float(other.count)
        n = n1 + n2
        delta = other.mean - self.mean
        delta_n = delta / n
        self.mean += delta_n * n2
        self.m2 += other.m2 + delta * delta_n * n1 * n2
        self.count += other.count
        self.total += other.total
        assert self.minimum is not None and self.maximum is not None  # noqa: S101 - set with count
        assert other.minimum is not None and other.maximum is not None  # noqa: S101
        self.minimum, self.maximum = min(self.minimum, other.minimum), max(self.maximum, other.maximum)
        self.sketch = _reconstructed(self.sketch).merge(_reconstructed(other.sketch))

    def kll_bounds(self) -> tuple[float, float]:
        """The minimum and maximum deequ's KLL analyzer pairs with its sketch (seeded with Int.MaxValue/MinValue)."""
        assert self.minimum is not None and self.maximum is not None  # noqa: S101 - only asked with values
        return min(INITIAL_MINIMUM, self.minimum), max(INITIAL_MAXIMUM, self.maximum)

    @property
    def std_dev(self) -> float:
        """Population standard deviation (``stddev_pop``)."""
        return math.sqrt(self.m2 / self.count) if self.count else 0.0

    def to_json(self) -> dict[str, Any]:
        """The partial as JSON (a worker process hands it to its parent; the sketch as ``sketch.data``)."""
        types = self.types
        return {
            "types": [types.null, types.integral, types.fractional, types.boolean, types.string],
            "rows": self.rows,
            "count": self.count,
            "total": self.total,
            "mean": self.mean,
            "m2": self.m2,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "sketch": self.sketch.data(),
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> NumericPartial:
        """Read :meth:`to_json` back (the sketch reconstructed, as deequ deserializes one)."""
        null, integral, fractional, boolean, string = document["types"]
        return cls(
            types=TypeCounts(null=null, integral=integral, fractional=fractional, boolean=boolean, string=string),
            rows=document["rows"],
            count=document["count"],
            total=document["total"],
            mean=document["mean"],
            m2=document["m2"],
            minimum=document["minimum"],
            maximum=document["maximum"],
            sketch=QuantileSketch.from_data(document["sketch"], F.KLL_SKETCH_SIZE, F.KLL_SHRINKING_FACTOR),
        )


def _reconstructed(sketch: QuantileSketch) -> QuantileSketch:
    """The sketch as it reads back from ``sketch.data`` (deequ merges serialized partition sketches)."""
    return QuantileSketch.from_data(sketch.data(), sketch.parameters()["k"], F.KLL_SHRINKING_FACTOR)
