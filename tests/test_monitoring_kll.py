"""deequ's deterministic KLL sketch: exact buffers against a slow item-by-item port, buckets, ranks, quantiles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safedeploy.monitoring.analyzer.kll import (
    INITIAL_MAXIMUM,
    INITIAL_MINIMUM,
    QuantileSketch,
    kll_buckets,
    kll_min_max,
    rank_lookup,
)

# -- the reference: deequ's QuantileNonSample / NonSampleCompactor, one item at a time, plain Python lists -------


def java_key(x: float) -> tuple[bool, float, float]:
    """Java's Double.compare order: -0.0 before 0.0, NaN after everything."""
    nan = math.isnan(x)
    return nan, 0.0 if nan else x, math.copysign(1.0, x)


class RefCompactor:
    def __init__(self) -> None:
        self.num_of_compress = 0
        self.offset = 0
        self.buffer: list[float] = []

    def compact(self) -> list[float]:
        items = len(self.buffer)
        length = items - items % 2
        if self.num_of_compress % 2 == 1:
            self.offset = 1 - self.offset
        ordered = sorted(self.buffer[:length], key=java_key)
        output = [ordered[i] for i in range(self.offset, length, 2)]
        self.buffer = [self.buffer[items - 1]] if items % 2 == 1 else []
        self.num_of_compress += 1
        return output


class RefSketch:
    def __init__(self, k: int = 2048, c: float = 0.64) -> None:
        self.k, self.c = k, c
        self.compactors: list[RefCompactor] = []
        self.actual = 0
        self.total = 0
        self.expand()

    def capacity(self, height: int) -> int:
        return 2 * (math.ceil(self.k * math.pow(self.c, height) / 2) + 1)

    def expand(self) -> None:
        self.compactors.append(RefCompactor())
        self.total = sum(self.capacity(h) for h in range(len(self.compactors)))

    def update(self, item: float) -> None:
        self.compactors[0].buffer.append(item)
        self.actual += 1
        if self.actual > self.total:
            self.condense()

    def condense(self) -> None:
        for height in range(len(self.compactors)):
            if len(self.compactors[height].buffer) >= self.capacity(height):
                if height + 1 >= len(self.compactors):
                    self.expand()
                self.compactors[height + 1].buffer.extend(self.compactors[height].compact())
                self.actual = sum(len(c.buffer) for c in self.compactors)
                break

    def merge(self, that: RefSketch) -> RefSketch:
        while len(self.compactors) < len(that.compactors):
            self.expand()
        for i, compactor in enumerate(that.compactors):
            self.compactors[i].buffer = self.compactors[i].buffer + compactor.buffer
        self.actual = sum(len(c.buffer) for c in self.compactors)
        while self.actual >= self.total:
            self.condense()
        return self

    @classmethod
    def reconstruct(cls, k: int, c: float, data: list[list[float]]) -> RefSketch:
        sketch = cls(k, c)
        sketch.compactors = [RefCompactor() for _ in data]
        for compactor, level in zip(sketch.compactors, data, strict=True):
            compactor.buffer = list(level)
        sketch.actual = sum(len(level) for level in data)
        sketch.total = sum(sketch.capacity(h) for h in range(len(data)))
        return sketch

    def data(self) -> list[list[float]]:
        return [list(c.buffer) for c in self.compactors]

    def states(self) -> list[tuple[int, int]]:
        return [(c.num_of_compress, c.offset) for c in self.compactors]


def reference(values: np.ndarray, k: int = 2048, c: float = 0.64) -> RefSketch:
    sketch = RefSketch(k, c)
    for value in values.tolist():
        sketch.update(value)
    return sketch


def bits(data: list[list[float]]) -> list[list[int]]:
    """Exact comparison: -0.0 differs from 0.0 and NaN equals NaN."""
    return [np.asarray(level, dtype=np.float64).view(np.int64).tolist() for level in data]


def assert_same(sketch: QuantileSketch, ref: RefSketch) -> None:
    assert bits(sketch.data()) == bits(ref.data())
    assert sketch.compactor_states() == ref.states()
    assert sketch.num_retained == ref.actual


# -- exact buffers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2047, 2048, 2050, 2051, 4097, 50_000, 200_000])
def test_vectorized_update_equals_item_by_item_on_random_data(n: int) -> None:
    values = np.random.default_rng(n).normal(10.0, 3.0, n)
    sketch = QuantileSketch()
    sketch.update(values)
    ref = reference(values)
    assert_same(sketch, ref)
    assert sketch.count == n


@pytest.mark.parametrize(
    "kind",
    ["sorted", "reversed", "constant", "ties", "integers", "signed_zeros"],
)
def test_vectorized_update_equals_item_by_item_on_structured_data(kind: str) -> None:
    rng = np.random.default_rng(7)
    n = 30_000
    values = {
        "sorted": np.sort(rng.normal(size=n)),
        "reversed": np.sort(rng.normal(size=n))[::-1],
        "constant": np.full(n, 4.25),
        "ties": rng.integers(0, 5, n).astype(np.float64) / 4,
        "integers": rng.integers(-1000, 1000, n),  # converted to double as deequ does
        "signed_zeros": rng.choice([-0.0, 0.0, 1.0, -1.0], n),
    }[kind]
    sketch = QuantileSketch()
    sketch.update(values)
    assert_same(sketch, reference(np.asarray(values, dtype=np.float64)))


@pytest.mark.parametrize("seed", range(8))
def test_negative_zero_sorts_before_zero_in_small_compactions(seed: int) -> None:
    """numpy's SIMD sort does not keep zeros' signs; Java puts every -0.0 before every 0.0."""
    rng = np.random.default_rng(seed)
    n = 3000
    values = np.where(rng.uniform(size=n) < 0.3, -0.0, rng.integers(-2, 3, n).astype(np.float64))
    k = int(rng.integers(4, 40))
    sketch = QuantileSketch(k)
    sketch.update(values)
    assert_same(sketch, reference(values, k))


def test_nan_is_sketched_last_as_java_orders_it() -> None:
    values = np.random.default_rng(3).normal(size=9000)
    values[::7] = np.nan
    sketch = QuantileSketch()
    sketch.update(values)
    assert_same(sketch, reference(values))


def test_chunked_updates_equal_one_update() -> None:
    values = np.random.default_rng(11).exponential(size=60_000)
    whole = QuantileSketch()
    whole.update(values)
    pieces = QuantileSketch()
    for piece in np.array_split(values, [1, 2, 2050, 2051, 7000, 7001, 33_333]):
        pieces.update(piece)
    assert bits(pieces.data()) == bits(whole.data())
    assert pieces.compactor_states() == whole.compactor_states()


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.integers(-20, 20).map(float), st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([-0.0, 0.0])),
        max_size=400,
    ),
    k=st.integers(2, 40),
    c=st.sampled_from([0.3, 0.5, 0.64, 0.9, 1.0]),
    cuts=st.lists(st.integers(0, 400), max_size=5),
)
def test_small_sketches_equal_item_by_item_for_any_input_and_chunking(
    values: list[float], k: int, c: float, cuts: list[int]
) -> None:
    """Small k compacts every few items, over many levels: every rule is exercised."""
    array = np.array(values, dtype=np.float64)
    sketch = QuantileSketch(k, c)
    for piece in np.split(array, sorted(min(cut, array.size) for cut in cuts)):
        sketch.update(piece)
    assert_same(sketch, reference(array, k, c))


def test_first_capacity_keeps_values_in_input_order() -> None:
    values = np.random.default_rng(5).normal(size=2051)
    sketch = QuantileSketch()
    sketch.update(values[:2050])
    assert sketch.data() == [values[:2050].tolist()]  # 2050 = capacity(0): no compaction, input order
    sketch.update(values[2050:])
    data = sketch.data()
    # The 2051st item exceeds the capacity: level 0 is compacted; the odd item out is the last one inserted.
    assert data[0] == [values[2050]]
    assert data[1] == np.sort(values[:2050])[0::2].tolist()
    assert sketch.compactor_states() == [(1, 0), (0, 0)]


def test_capacities_and_parameters_are_deequs() -> None:
    sketch = QuantileSketch()
    sketch.update(np.arange(100_000, dtype=np.float64))
    assert sketch.capacities()[:6] == [2050, 1314, 842, 540, 346, 222]
    params = sketch.parameters()
    assert params == {"c": 0.64, "k": 2048.0}
    assert all(type(value) is float for value in params.values())


def test_offsets_alternate_zero_one_one_zero() -> None:
    """Before its j-th compaction (j from 0) a level flips its offset if j is odd: 0, 1, 1, 0, 0, 1, 1, 0."""
    sketch = QuantileSketch(2, 1.0)  # every level's capacity is 4: compactions are frequent and easy to follow
    offsets = []
    for value in range(200):
        before = sketch.compactor_states()[0][0]
        sketch.update(np.array([float(value)]))
        num, offset = sketch.compactor_states()[0]
        if num > before:
            offsets.append(offset)
    assert offsets[:8] == [0, 1, 1, 0, 0, 1, 1, 0]


def test_caller_mutating_its_array_afterwards_does_not_change_the_sketch() -> None:
    values = np.random.default_rng(2).normal(size=5000)
    sketch = QuantileSketch()
    sketch.update(values)
    before = sketch.data()
    values[:] = 0.0
    assert sketch.data() == before


def test_invalid_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="sketch_size"):
        QuantileSketch(0)
    with pytest.raises(ValueError, match="shrinking_factor"):
        QuantileSketch(2048, 1.5)
    with pytest.raises(ValueError, match="integral"):
        QuantileSketch.from_data([[1.0]], 2048.5, 0.64)


# -- merge and reconstruction -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n1", "n2"), [(0, 10), (10, 0), (3000, 100), (100, 3000), (2050, 0), (40_000, 25_000)])
def test_merge_equals_deequs_merge(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 + n2)
    a, b = rng.normal(size=n1), rng.uniform(size=n2)
    sketch_a, sketch_b = QuantileSketch(), QuantileSketch()
    sketch_a.update(a)
    sketch_b.update(b)
    data_a = sketch_a.data()
    merged = sketch_a.merge(sketch_b)
    assert_same(merged, reference(a).merge(reference(b)))
    assert merged.count == n1 + n2
    assert sketch_a.data() == data_a  # inputs are left alone


def test_merge_into_empty_compacts_a_full_first_level() -> None:
    """Merging condenses while retained >= capacity (update: while >): 2050 items get compacted on merge."""
    full = QuantileSketch()
    full.update(np.arange(2050, dtype=np.float64))
    assert len(full.data()) == 1
    merged = QuantileSketch().merge(full)
    assert [len(level) for level in merged.data()] == [0, 1025]


def test_merge_of_different_parameters_is_refused() -> None:
    with pytest.raises(ValueError, match="different parameters"):
        QuantileSketch(2048).merge(QuantileSketch(1024))


def test_from_data_round_trips_and_resets_compaction_state_as_reconstruct_does() -> None:
    values = np.random.default_rng(9).normal(size=30_000)
    more = np.random.default_rng(10).normal(size=20_000)
    sketch = QuantileSketch()
    sketch.update(values)
    rebuilt = QuantileSketch.from_data(sketch.data(), **{k: v for k, v in sketch.parameters().items()})
    assert rebuilt.data() == sketch.data()
    assert rebuilt.compactor_states() == [(0, 0)] * len(sketch.data())
    rebuilt.update(more)
    ref = RefSketch.reconstruct(2048, 0.64, sketch.data())
    for value in more.tolist():
        ref.update(value)
    assert_same(rebuilt, ref)


def test_from_data_over_capacity_condenses_once_per_item_as_deequ() -> None:
    data = [list(map(float, range(3000)))]  # more than the one level's capacity of 2050
    rebuilt = QuantileSketch.from_data(data)
    rebuilt.update(np.arange(5, dtype=np.float64))
    ref = RefSketch.reconstruct(2048, 0.64, data)
    for value in range(5):
        ref.update(float(value))
    assert_same(rebuilt, ref)


def test_empty_data_is_one_empty_level() -> None:
    assert QuantileSketch.from_data([]).data() == [[]]
    assert QuantileSketch().data() == [[]]


# -- ranks, rank map, quantiles -----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.integers(-50, 50).map(float), min_size=1, max_size=2050), q=st.integers(1, 120))
def test_ranks_and_quantiles_are_exact_while_nothing_is_compacted(values: list[float], q: int) -> None:
    data = np.array(values)
    sketch = QuantileSketch()
    sketch.update(data)
    ordered = np.sort(data)
    n = data.size
    for item in (-51.0, -0.5, 0.0, 3.0, 17.5, 51.0, *values[:5]):
        assert sketch.rank(item) == np.count_nonzero(data <= item)
        assert sketch.rank_exclusive(item) == np.count_nonzero(data < item)
    keys, ranks = sketch.rank_map()
    assert keys.tolist() == np.unique(data).tolist()
    assert ranks.tolist() == np.searchsorted(ordered, keys, side="right").tolist()
    cdf_keys, cdf = sketch.cdf()
    assert cdf_keys.tolist() == keys.tolist()
    assert cdf.tolist() == (ranks / n).tolist()
    expected = [ordered[min(j * n // q, n - 1)] for j in range(1, q)]
    assert sketch.quantiles(q).tolist() == expected


def test_weighted_ranks_count_two_to_the_level() -> None:
    sketch = QuantileSketch.from_data([[3.0, 1.0], [2.0], [], [5.0]])
    assert sketch.count == 1 + 1 + 2 + 8
    assert sketch.rank(2.0) == 1 + 2
    assert sketch.rank_exclusive(2.0) == 1
    assert sketch.rank(5.0) == 12
    keys, ranks = sketch.rank_map()
    assert keys.tolist() == [1.0, 2.0, 3.0, 5.0]
    assert ranks.tolist() == [1, 3, 4, 12]
    assert rank_lookup((keys, ranks), [0.0, 1.0, 2.5, 4.9, 5.0, 99.0]).tolist() == [0, 1, 3, 4, 12, 12]


def test_quantiles_keep_deequs_early_stop() -> None:
    """deequ leaves quantiles at the smallest item once its index runs past the last item."""
    sketch = QuantileSketch.from_data([[1.0], [], [5.0]])  # weights 1 and 4
    assert sketch.quantiles(5).tolist() == [5.0, 5.0, 1.0, 1.0]
    assert QuantileSketch().quantiles(4).size == 0
    with pytest.raises(ValueError):
        sketch.quantiles(0)


# -- buckets ------------------------------------------------------------------------------------------------------


def test_buckets_on_a_hand_checked_example() -> None:
    sketch = QuantileSketch()
    sketch.update(np.array([0.0, 1.0, 1.0, 2.0, 5.0, 9.0, 10.0]))
    buckets = kll_buckets(sketch, 0.0, 10.0, 5)
    assert buckets == [
        {"lower_bound": 0.0, "upper_bound": 2.0, "count": 3},  # 0, 1, 1 (2 belongs to the next bucket)
        {"lower_bound": 2.0, "upper_bound": 4.0, "count": 1},
        {"lower_bound": 4.0, "upper_bound": 6.0, "count": 1},
        {"lower_bound": 6.0, "upper_bound": 8.0, "count": 0},
        {"lower_bound": 8.0, "upper_bound": 10.0, "count": 2},  # the last bucket includes the maximum
    ]


def test_bucket_bounds_use_deequs_floating_point_order() -> None:
    sketch = QuantileSketch()
    sketch.update(np.array([0.1, 0.7]))
    bounds = [b["lower_bound"] for b in kll_buckets(sketch, 0.1, 0.7, 10)]
    # start + (end - start) * i / b: for i = 9 this is 0.6399999999999999; 0.1 + 0.6 * (9 / 10) would be 0.64
    assert bounds[9] == 0.6399999999999999
    assert 0.1 + (0.7 - 0.1) * (9 / 10) == 0.64
    assert bounds == [0.1 + (0.7 - 0.1) * i / 10.0 for i in range(10)]


def test_buckets_with_equal_minimum_and_maximum_put_everything_last() -> None:
    sketch = QuantileSketch()
    sketch.update(np.full(5, 3.0))
    buckets = kll_buckets(sketch, 3.0, 3.0)
    assert [(b["lower_bound"], b["upper_bound"]) for b in buckets] == [(3.0, 3.0)] * 10
    assert [b["count"] for b in buckets] == [0] * 9 + [5]


def test_buckets_of_an_empty_sketch() -> None:
    buckets = kll_buckets(QuantileSketch(), None, None)
    assert [b["count"] for b in buckets] == [0] * 10
    assert buckets[0]["lower_bound"] == INITIAL_MINIMUM
    assert buckets[-1]["upper_bound"] == INITIAL_MAXIMUM
    with pytest.raises(ValueError, match="required"):
        kll_buckets(QuantileSketch.from_data([[1.0]]), None, None)
    with pytest.raises(ValueError, match="number_of_buckets"):
        kll_buckets(QuantileSketch(), 0.0, 1.0, 101)


def test_buckets_of_a_compacted_sketch_add_up_to_the_count_and_are_close() -> None:
    values = np.random.default_rng(4).normal(size=200_000)
    sketch = QuantileSketch()
    sketch.update(values)
    low, high = float(values.min()), float(values.max())
    buckets = kll_buckets(sketch, low, high)
    assert sum(b["count"] for b in buckets) == values.size
    exact = np.histogram(values, bins=10, range=(low, high))[0]
    assert np.max(np.abs(np.array([b["count"] for b in buckets]) - exact)) < 0.01 * values.size


def test_kll_min_max_has_deequs_int_seeds() -> None:
    assert kll_min_max(np.array([])) == (2147483647.0, -2147483648.0)
    assert kll_min_max(np.array([1.0, -2.0])) == (-2.0, 1.0)
    assert kll_min_max(np.array([5e9, 6e9])) == (2147483647.0, 6e9)
    assert all(math.isnan(v) for v in kll_min_max(np.array([1.0, np.nan])))
