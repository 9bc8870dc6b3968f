"""deequ's deterministic KLL quantile sketch, as SageMaker Model Monitor writes it in ``statistics.json``.

Model Monitor's data-quality analyzer is built on awslabs/deequ. Each numeric feature's
``distribution.kll`` holds ten ``buckets`` and a ``sketch`` whose ``data`` are the compactor buffers of deequ's
``QuantileNonSample`` (k 2048, c 0.64) and whose ``parameters`` are ``{"c": 0.64, "k": 2048.0}``. This module
re-implements that sketch and the analyzer's bucket computation so that our baselines and reports carry the same
sketch and the same buckets as Model Monitor's, and so that a Model Monitor baseline can be compared with ours.

Algorithm source (read, not copied): awslabs/deequ at commit 0b8cea54b25fd4713c6212c17703117f9eddc734,
``src/main/scala/com/amazon/deequ/analyzers/``: ``QuantileNonSample.scala``, ``NonSampleCompactor.scala``,
``KLLSketch.scala``, ``catalyst/KLLSketchSerializer.scala`` and ``runners/KLLRunner.scala``.

Why it is hand-written: no Python library implements deequ's variant. Apache datasketches' KLL (a dependency
of this project) is the randomized KLL of Karnin, Lang and Liberty with its own level capacities and binary
format; deequ's is a deterministic, "lazy" non-sampling variant whose buffers are exactly what Model Monitor
publishes as ``sketch.data``. Only an exact re-implementation reproduces them.

deequ's rules, as implemented here:

* Capacity of level ``h``: ``2 * (ceil(k * c**h / 2) + 1)`` (2050, 1314, 842, 540, ... for the defaults); the
  sketch's total capacity is the sum over its current levels.
* Update: append the item to level 0; if the number of retained items now *exceeds* the total capacity,
  condense once.
* Condense: compact the *lowest* level holding at least its capacity (adding a level above it first if it is
  the top one), append the compaction's output to the level above, and stop (one compaction per condense).
* Compaction of a level with ``m`` items: sort the first ``m - m % 2`` items (Java's total order on doubles:
  ``-0.0 < 0.0``, NaN last), keep every second one starting at ``offset``; if ``m`` is odd, the last item
  *in insertion order* stays behind as the level's only item. The offset is deterministic: before the j-th
  compaction of a level (j = 0, 1, ...), it flips if j is odd, so the offsets run 0, 1, 1, 0, 0, 1, 1, 0, ...
  deequ imports ``scala.util.Random`` in ``NonSampleCompactor`` but the random-offset line is commented
  out: nothing in the sketch is random.
* Merge (Spark partitions' sketches are reduced pairwise): add levels to ``self`` until it has as many as
  ``other``, concatenate level by level (``self``'s items first), then condense while the retained count is
  *at least* (not more than) the total capacity. ``self``'s per-level compaction counters are kept.
* ``data`` is the list of level buffers (level 0 first), each in insertion order; ``parameters`` are
  ``c`` and ``float(k)``. The per-level compaction counters and offsets are in deequ's binary state
  (``KLLSketchSerializer``) but not in ``sketch.data``; a sketch rebuilt from ``data`` starts them at 0, as
  deequ's ``reconstruct`` does.
* Items carry weight ``2**level``; ``rank`` counts the weight of items not greater than the query,
  ``rank_exclusive`` the weight of items smaller than it (IEEE comparisons: Scala 2.12's ``Ordering.Double``).

One stream into one sketch equals one Spark partition. deequ sketches each partition separately and merges the
partition sketches, so Model Monitor's buffers also depend on how Spark split the data; build one sketch per
partition and :meth:`QuantileSketch.merge` them to reproduce a multi-partition run.

Known differences, all outside finite, NaN-free data: NaNs are sorted last as in Java, but NaNs with different
bit patterns are not told apart; :meth:`QuantileSketch.rank_map` keeps one NaN key (deequ keeps one per NaN,
in hash-map order). Capacities use the C library's ``pow`` where deequ uses Java's ``Math.pow``, which may
differ in the last bit; for the default parameters every ``k * c**h / 2`` above 1/2 is at least 4e-4 (relative)
away from an integer and the smaller ones round up to 1 either way, so no capacity can differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_SKETCH_SIZE = 2048
"""deequ's ``KLLSketch.DEFAULT_SKETCH_SIZE`` (k), the value Model Monitor uses."""
DEFAULT_SHRINKING_FACTOR = 0.64
"""deequ's ``KLLSketch.DEFAULT_SHRINKING_FACTOR`` (c), the value Model Monitor uses."""
MAXIMUM_BUCKETS = 100
"""deequ's ``KLLSketch.MAXIMUM_ALLOWED_DETAIL_BINS``."""
INITIAL_MINIMUM = float(2**31 - 1)
"""deequ's KLL analyzer starts its running minimum at ``Int.MaxValue.toDouble`` (see :func:`kll_min_max`)."""
INITIAL_MAXIMUM = float(-(2**31))
"""deequ's KLL analyzer starts its running maximum at ``Int.MinValue.toDouble`` (see :func:`kll_min_max`)."""

_NEGATIVE_ZERO_BITS = np.int64(-(2**63))


def _capacity(k: int, c: float, height: int) -> int:
    """Level capacity, deequ's ``capacity(height)``: ``2 * (ceil(k * c**height / 2) + 1)``."""
    return 2 * (math.ceil(k * math.pow(c, height) / 2) + 1)


def _has_negative_zero(values: FloatArray) -> bool:
    return bool(np.any(values.view(np.int64) == _NEGATIVE_ZERO_BITS))


def _count_negative_zeros(values: FloatArray) -> int:
    return int(np.count_nonzero(values.view(np.int64) == _NEGATIVE_ZERO_BITS))


def _order_signed_zeros(ordered: FloatArray, negative: int) -> None:
    """Rewrite the zeros of a sorted array as ``negative`` times ``-0.0`` then ``0.0``, in place.

    Java sorts ``-0.0`` before ``0.0``; numpy's sort treats them as equal and its SIMD sorting networks (min/max
    instructions) do not even keep their signs, so the count of ``-0.0`` is taken before sorting.
    """
    low = int(np.searchsorted(ordered, 0.0, side="left"))
    high = int(np.searchsorted(ordered, 0.0, side="right"))
    if high > low:
        ordered[low : low + negative] = -0.0
        ordered[low + negative : high] = 0.0


def _java_order(values: FloatArray) -> IntArray:
    """Stable argsort in Java's ``Double.compare`` order (``-0.0 < 0.0``, every NaN equal and last)."""
    bits = np.where(np.isnan(values), np.nan, values).view(np.int64)
    keys = bits ^ ((bits >> 63) & np.int64(0x7FFF_FFFF_FFFF_FFFF))
    return np.argsort(keys, kind="stable")


class QuantileSketch:
    """deequ's ``QuantileNonSample[Double]``: a deterministic KLL sketch with deequ's exact buffers.

    Feeding values with :meth:`update` (in one call or many) gives exactly the compactor buffers deequ's
    ``update(item)`` gives for the same values one at a time, in the same order.

    Attributes:
        sketch_size: k, the capacity parameter (deequ's ``sketchSize``).
        shrinking_factor: c, the ratio between consecutive levels' capacities (deequ's ``shrinkingFactor``).
    """

    __slots__ = (
        "_actual",
        "_capacities",
        "_lengths",
        "_levels",
        "_negative_zero",
        "_num_compress",
        "_offsets",
        "_total",
        "shrinking_factor",
        "sketch_size",
    )

    def __init__(
        self, sketch_size: int = DEFAULT_SKETCH_SIZE, shrinking_factor: float = DEFAULT_SHRINKING_FACTOR
    ) -> None:
        """An empty sketch with one (empty) level, as deequ's constructor makes it.

        Args:
            sketch_size: k (deequ's default and Model Monitor's: 2048).
            shrinking_factor: c, in (0, 1] (deequ's default and Model Monitor's: 0.64).

        Raises:
            ValueError: k is not a positive integer or c is not in (0, 1].
        """
        if isinstance(sketch_size, bool) or not isinstance(sketch_size, int) or sketch_size < 1:
            raise ValueError(f"sketch_size must be a positive integer, got {sketch_size!r}")
        if not 0.0 < shrinking_factor <= 1.0:
            raise ValueError(f"shrinking_factor must be in (0, 1], got {shrinking_factor!r}")
        self.sketch_size = sketch_size
        self.shrinking_factor = float(shrinking_factor)
        # Level h's buffer is the concatenation of _levels[h] (chunks, in insertion order); _lengths[h] its size.
        self._levels: list[list[FloatArray]] = []
        self._lengths: list[int] = []
        self._capacities: list[int] = []
        self._num_compress: list[int] = []
        self._offsets: list[int] = []
        self._actual = 0  # deequ's compactorActualSize
        self._total = 0  # deequ's compactorTotalSize
        self._negative_zero = False  # whether -0.0 may be retained: sorts must then order signed zeros
        self._expand()

    # -- construction and export ------------------------------------------------------------------------------

    @classmethod
    def from_data(
        cls,
        data: Sequence[Sequence[float]],
        k: int | float = DEFAULT_SKETCH_SIZE,
        c: float = DEFAULT_SHRINKING_FACTOR,
    ) -> QuantileSketch:
        """Rebuild a sketch from ``sketch.data`` and ``sketch.parameters``, as deequ's ``reconstruct`` does.

        Every level's compaction counter and offset start at 0 (``sketch.data`` does not carry them), so a
        rebuilt sketch that is updated further can differ from the original one updated further.

        Args:
            data: The level buffers, level 0 first. An empty list is read as one empty level.
            k: The sketch size; a float such as ``2048.0`` (as ``parameters`` holds it) must be integral.
            c: The shrinking factor.

        Returns:
            The sketch.

        Raises:
            ValueError: k is not integral.
        """
        if isinstance(k, float):
            if not float(k).is_integer():
                raise ValueError(f"k must be integral, got {k!r}")
            k = int(k)
        sketch = cls(k, c)
        levels = [np.array(level, dtype=np.float64).reshape(-1) for level in data] or [np.empty(0)]
        sketch._levels = [[level] for level in levels]
        sketch._lengths = [int(level.size) for level in levels]
        sketch._capacities = [_capacity(sketch.sketch_size, sketch.shrinking_factor, h) for h in range(len(levels))]
        sketch._num_compress = [0] * len(levels)
        sketch._offsets = [0] * len(levels)
        sketch._actual = sum(sketch._lengths)
        sketch._total = sum(sketch._capacities)
        sketch._negative_zero = any(_has_negative_zero(level) for level in levels)
        return sketch

    def copy(self) -> QuantileSketch:
        """An independent copy, compaction counters and offsets included."""
        other = QuantileSketch(self.sketch_size, self.shrinking_factor)
        other._levels = [[self._level(h)] for h in range(len(self._levels))]
        other._lengths = list(self._lengths)
        other._capacities = list(self._capacities)
        other._num_compress = list(self._num_compress)
        other._offsets = list(self._offsets)
        other._actual = self._actual
        other._total = self._total
        other._negative_zero = self._negative_zero
        return other

    def data(self) -> list[list[float]]:
        """The compactor buffers, level 0 first, each in insertion order: Model Monitor's ``sketch.data``."""
        return [self._level(h).tolist() for h in range(len(self._levels))]

    def parameters(self) -> dict[str, float]:
        """``sketch.parameters`` as the analyzer writes them: ``{"c": 0.64, "k": 2048.0}`` (both doubles)."""
        return {"c": self.shrinking_factor, "k": float(self.sketch_size)}

    def compactor_states(self) -> list[tuple[int, int]]:
        """Each level's ``(numOfCompress, offset)``: deequ's binary state, not part of ``sketch.data``."""
        return list(zip(self._num_compress, self._offsets))

    def capacities(self) -> list[int]:
        """Each current level's capacity (deequ's ``capacity(height)``)."""
        return list(self._capacities)

    @property
    def count(self) -> int:
        """The number of items sketched: the total weight, which compaction preserves exactly."""
        return sum(length << h for h, length in enumerate(self._lengths))

    @property
    def num_retained(self) -> int:
        """The number of items held in the buffers (deequ's ``compactorActualSize``)."""
        return self._actual

    def __repr__(self) -> str:
        return (
            f"QuantileSketch(k={self.sketch_size}, c={self.shrinking_factor}, count={self.count}, "
            f"levels={self._lengths})"
        )

    # -- updates ----------------------------------------------------------------------------------------------

    def update(self, values: npt.ArrayLike) -> None:
        """Add values in order; the result is identical to deequ's ``update`` called once per value.

        Values are appended in chunks that end exactly where deequ would condense; then the one compaction
        deequ would do runs, and the next chunk follows. Missing values must be dropped by the caller (deequ
        skips nulls); NaN is sketched as deequ sketches it (last in the order).

        Args:
            values: Numbers, converted to float64 (as deequ converts every numeric column to double) and
                flattened in C order.
        """
        x = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
        n = x.size
        if n == 0:
            return
        if not self._negative_zero and _has_negative_zero(x):
            self._negative_zero = True
        lengths = self._lengths
        level0 = self._levels[0]
        actual, total = self._actual, self._total
        position = 0
        while position < n:
            # deequ condenses once the retained count exceeds the total capacity: after total - actual + 1 more
            # items (or after every item while a rebuilt sketch is still over its capacity).
            end = position + max(total - actual + 1, 1)
            end = min(end, n)
            level0.append(x[position:end])
            lengths[0] += end - position
            actual += end - position
            position = end
            if actual > total:
                self._actual = actual
                self._condense()
                actual, total = self._actual, self._total
        self._actual = actual
        # Own level 0's items: its chunks may be views of the caller's array.
        if len(level0) > 1 or (level0 and level0[0].base is not None):
            level0[:] = [np.concatenate(level0)]

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """Merge as deequ's ``this.merge(that)`` does, into a new sketch (neither input changes).

        Args:
            other: The sketch whose buffers are appended after this one's, level by level.

        Returns:
            The merged sketch, with this sketch's compaction counters and offsets.

        Raises:
            ValueError: The sketches' k or c differ (deequ would silently keep this sketch's).
        """
        if (other.sketch_size, other.shrinking_factor) != (self.sketch_size, self.shrinking_factor):
            raise ValueError(
                f"cannot merge sketches with different parameters: k={self.sketch_size}, c={self.shrinking_factor}"
                f" and k={other.sketch_size}, c={other.shrinking_factor}"
            )
        merged = self.copy()
        while len(merged._levels) < len(other._levels):
            merged._expand()
        for h in range(len(other._levels)):
            if other._lengths[h]:
                merged._levels[h].append(other._level(h))
                merged._lengths[h] += other._lengths[h]
        merged._actual = sum(merged._lengths)
        merged._negative_zero = merged._negative_zero or other._negative_zero
        while merged._actual >= merged._total:
            if not merged._condense():  # cannot happen: some level is at or over its capacity
                raise AssertionError("condense found no level to compact")
        return merged

    def _expand(self) -> None:
        height = len(self._levels)
        self._levels.append([])
        self._lengths.append(0)
        self._capacities.append(_capacity(self.sketch_size, self.shrinking_factor, height))
        self._num_compress.append(0)
        self._offsets.append(0)
        self._total += self._capacities[-1]

    def _condense(self) -> bool:
        """Condense as deequ does: compact the lowest level at or over its capacity, once (False: none is)."""
        lengths, capacities = self._lengths, self._capacities
        for height in range(len(lengths)):
            if lengths[height] >= capacities[height]:
                if height + 1 >= len(lengths):
                    self._expand()
                self._compact(height)
                return True
        return False

    def _compact(self, height: int) -> None:
        """Compact one level as deequ's ``NonSampleCompactor.compact`` does; output goes to the level above."""
        chunks = self._levels[height]
        items = self._lengths[height]
        odd = items & 1
        even = items - odd
        buffer = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        negative = _count_negative_zeros(buffer[:even]) if self._negative_zero else 0
        if len(chunks) == 1:
            ordered = np.sort(buffer[:even])
        else:
            ordered = buffer[:even]
            ordered.sort()
        if negative:
            _order_signed_zeros(ordered, negative)
        compactions = self._num_compress[height]
        if compactions & 1:
            self._offsets[height] ^= 1
        output = ordered[self._offsets[height] :: 2]
        # The odd item out is the last one inserted, not the largest: it is never sorted.
        chunks.clear()  # in place: update() holds level 0's list
        if odd:
            chunks.append(buffer[even:])
        self._lengths[height] = odd
        self._num_compress[height] = compactions + 1
        half = even >> 1
        self._levels[height + 1].append(output)
        self._lengths[height + 1] += half
        self._actual -= half

    def _level(self, height: int) -> FloatArray:
        chunks = self._levels[height]
        if not chunks:
            return np.empty(0, dtype=np.float64)
        if len(chunks) == 1:
            return chunks[0].copy()
        return np.concatenate(chunks)

    # -- queries ----------------------------------------------------------------------------------------------

    def items(self) -> tuple[FloatArray, IntArray]:
        """Every retained item (deequ's ``output``) with its weight ``2**level``, level 0 first."""
        values = [self._level(h) for h in range(len(self._levels))]
        weights = [np.full(v.size, 1 << h, dtype=np.int64) for h, v in enumerate(values)]
        return np.concatenate(values), np.concatenate(weights)

    def rank(self, item: float) -> int:
        """The total weight of retained items not greater than ``item`` (deequ's ``getRank(item)``)."""
        values, weights = self.items()
        return int(weights[~(values > item)].sum())

    def rank_exclusive(self, item: float) -> int:
        """The total weight of retained items smaller than ``item`` (deequ's ``getRankExclusive(item)``)."""
        values, weights = self.items()
        return int(weights[values < item].sum())

    def rank_map(self) -> tuple[FloatArray, IntArray]:
        """The distinct retained items in order and each one's cumulative rank (deequ's ``getRankMap``).

        Returns:
            ``(keys, ranks)``: ascending distinct items (``-0.0`` and ``0.0`` are one key, as in deequ's map;
            NaNs are one last key) and the total weight of items up to and including each key.
        """
        values, weights = self.items()
        order = _java_order(values)
        ordered, cumulative = values[order], np.cumsum(weights[order])
        if ordered.size == 0:
            return ordered, cumulative
        nan = np.isnan(ordered)
        # A key ends where the next item differs (IEEE ==, so signed zeros share a key; NaNs share one here).
        last = np.ones(ordered.size, dtype=bool)
        last[:-1] = (ordered[1:] != ordered[:-1]) & ~(nan[1:] & nan[:-1])
        first = np.ones(ordered.size, dtype=bool)
        first[1:] = last[:-1]
        return ordered[first], cumulative[last]

    def cdf(self) -> tuple[FloatArray, FloatArray]:
        """The rank map's keys and their ranks divided by the total weight (deequ's ``getCDF``)."""
        keys, ranks = self.rank_map()
        if ranks.size == 0:
            return keys, ranks.astype(np.float64)
        return keys, ranks / float(ranks[-1])

    def quantiles(self, q: int) -> FloatArray:
        """The q-quantiles 1/q, ..., (q-1)/q by deequ's exact rule (its ``quantiles(q)``).

        With the items in ascending order and weights summed as ``S(i)`` (first ``i`` items), the j-th
        quantile is the item at index ``min(i_j, len - 1)`` where ``i_j`` is the first index (never moving
        back) with ``S(i_j) >= floor(j * total / q)``: for an uncompacted sketch of n items that is
        ``sorted[min(floor(j * n / q), n - 1)]``. deequ stops once the index passes the last item; the
        quantiles not reached then keep its initial value, the smallest item; this port keeps that quirk.

        Args:
            q: The number of quantile intervals, at least 1.

        Returns:
            ``q - 1`` values (empty when the sketch is empty).

        Raises:
            ValueError: q is below 1.
        """
        if q < 1:
            raise ValueError(f"q must be at least 1, got {q}")
        values, weights = self.items()
        if values.size == 0:
            return np.empty(0, dtype=np.float64)
        order = _java_order(values)
        ordered, ordered_weights = values[order], weights[order]
        prefix = np.concatenate(([0], np.cumsum(ordered_weights)))
        total = int(prefix[-1])
        result = np.full(q - 1, ordered[0])
        index, j = 0, 1
        threshold = total // q
        while index < ordered.size and j < q:
            # deequ's inner loop adds weights while the running sum is below the threshold.
            index = max(index, int(np.searchsorted(prefix, threshold, side="left")))
            result[j - 1] = ordered[min(index, ordered.size - 1)]
            j += 1
            threshold = j * total // q
        return result


def rank_lookup(rank_map: tuple[FloatArray, IntArray], items: npt.ArrayLike) -> IntArray:
    """Ranks from a rank map, as deequ's ``getRank(item, rankMap)``: the last key's before the first greater key.

    Args:
        rank_map: A :meth:`QuantileSketch.rank_map`.
        items: The query items.

    Returns:
        The ranks, 0 where no key is at or below the item. NaN keys (last) are never "greater", so an item at or
        above every finite key, or a NaN item, gets the last key's rank.
    """
    keys, ranks = rank_map
    query = np.asarray(items, dtype=np.float64)
    finite = int(np.count_nonzero(~np.isnan(keys)))
    index = np.searchsorted(keys[:finite], query, side="right")
    index = np.where((index == finite) | np.isnan(query), keys.size, index)
    padded = np.concatenate(([0], ranks)).astype(np.int64)
    result: IntArray = padded[index]
    return result


def kll_min_max(values: npt.ArrayLike) -> tuple[float, float]:
    """The minimum and maximum deequ's KLL analyzer pairs with its sketch (its ``globalMin``/``globalMax``).

    deequ seeds them with ``Int.MaxValue`` and ``Int.MinValue`` (as doubles) and folds ``Math.min``/``Math.max``
    over the values, so an empty column gives ``(2147483647.0, -2147483648.0)``, a column entirely above
    2**31 - 1 keeps the minimum 2147483647.0 (entirely below -2**31: the maximum -2147483648.0), and a NaN makes
    both NaN. Model Monitor's own ``min``/``max`` statistics are separate analyzers and do not have this seed.

    Args:
        values: The column's non-null values.

    Returns:
        ``(minimum, maximum)`` as deequ's analyzer has them.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size and np.isnan(x).any():
        return math.nan, math.nan
    minimum = min(INITIAL_MINIMUM, float(x.min())) if x.size else INITIAL_MINIMUM
    maximum = max(INITIAL_MAXIMUM, float(x.max())) if x.size else INITIAL_MAXIMUM
    return minimum, maximum


def kll_buckets(
    sketch: QuantileSketch,
    minimum: float | None,
    maximum: float | None,
    number_of_buckets: int = 10,
) -> list[dict[str, Any]]:
    """The analyzer's ``BucketDistribution`` buckets: equal-width over [minimum, maximum], counts from the sketch.

    For bucket ``i`` of ``b``: ``low = min + (max - min) * i / b`` and ``high = min + (max - min) * (i + 1) / b``
    (this exact floating-point order). Its count is ``rank_exclusive(high) - rank_exclusive(low)``, except the
    last bucket's, ``rank(high) - rank_exclusive(low)``, which also counts items equal to the maximum. Counts
    are sketch estimates (exact while nothing was compacted). With ``min == max`` every bucket is
    ``[min, min]`` and the last one holds every item; an empty sketch gives zero counts.

    Args:
        sketch: The column's sketch.
        minimum: The column's minimum as deequ's analyzer tracks it (see :func:`kll_min_max`); None only for an
            empty sketch, meaning deequ's initial value.
        maximum: Likewise, the maximum.
        number_of_buckets: 1 to 100 (deequ's limit); Model Monitor uses 10.

    Returns:
        ``[{"lower_bound": low, "upper_bound": high, "count": n}, ...]`` as in ``statistics.json``.

    Raises:
        ValueError: number_of_buckets is out of range, or a bound is None for a non-empty sketch.
    """
    if not 1 <= number_of_buckets <= MAXIMUM_BUCKETS:
        raise ValueError(f"number_of_buckets must be 1 to {MAXIMUM_BUCKETS}, got {number_of_buckets}")
    values, weights = sketch.items()
    if minimum is None or maximum is None:
        if values.size:
            raise ValueError("minimum and maximum are required for a non-empty sketch")
        minimum = INITIAL_MINIMUM if minimum is None else minimum
        maximum = INITIAL_MAXIMUM if maximum is None else maximum
    finite = ~np.isnan(values)
    ordered_order = np.argsort(values[finite], kind="stable")
    ordered = values[finite][ordered_order]
    prefix = np.concatenate(([0], np.cumsum(weights[finite][ordered_order]))).astype(np.int64)
    nan_weight = int(weights[~finite].sum())
    total = int(prefix[-1]) + nan_weight

    def rank(item: float) -> int:  # items not greater than item: NaN items are never greater
        if math.isnan(item):
            return total
        return int(prefix[np.searchsorted(ordered, item, side="right")]) + nan_weight

    def rank_exclusive(item: float) -> int:  # items smaller than item: NaN items never are
        if math.isnan(item):
            return 0
        return int(prefix[np.searchsorted(ordered, item, side="left")])

    start, end = float(minimum), float(maximum)
    buckets: list[dict[str, Any]] = []
    for i in range(number_of_buckets):
        low = start + (end - start) * i / float(number_of_buckets)
        high = start + (end - start) * (i + 1) / float(number_of_buckets)
        upper = rank(high) if i == number_of_buckets - 1 else rank_exclusive(high)
        buckets.append({"lower_bound": low, "upper_bound": high, "count": upper - rank_exclusive(low)})
    return buckets
