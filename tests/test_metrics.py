"""The metric store: CloudWatch-style statistics per period, and latency percentiles from KLL sketches."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from safedeploy.runtime.cloudwatch.metrics import MetricStore

T0 = 1_780_000_000  # a whole second


def _store() -> MetricStore:
    store = MetricStore()
    for second in range(4):  # 4 seconds, 250 requests each, latency 1..1000 us spread over them
        for i in range(250):
            latency = float(second * 250 + i + 1)
            status = 500 if i < 5 * second else 200
            store.record_invocation(
                "e", "v", status=status, model_latency_us=latency, overhead_latency_us=10.0, at=T0 + second + 0.5
            )
    return store


def _at(second: int) -> datetime:
    return datetime.fromtimestamp(T0 + second, UTC)


def test_statistics_per_period_and_error_rate_as_average() -> None:
    store = _store()
    points = store.get_metric_statistics(
        endpoint="e", variant="v", metric="Invocation5XXErrors", start=_at(0), end=_at(4), period=2
    )
    assert [p["SampleCount"] for p in points] == [500.0, 500.0]
    assert [p["Sum"] for p in points] == [5.0, 25.0]  # 0+5 and 10+15 errors
    assert points[1]["Average"] == pytest.approx(0.05)


def test_percentiles_merge_across_the_period() -> None:
    store = _store()
    (point,) = store.get_metric_statistics(
        endpoint="e",
        variant="v",
        metric="ModelLatency",
        start=_at(0),
        end=_at(4),
        period=4,
        statistics=("Maximum",),
        extended_statistics=("p50", "p99", "p99.9"),
    )
    extended = point["ExtendedStatistics"]
    assert isinstance(extended, dict)
    assert point["Maximum"] == 1000.0
    assert extended["p50"] == pytest.approx(500, rel=0.03)  # KLL rank error ~1.3 % at k=200
    assert extended["p99"] == pytest.approx(990, rel=0.03)
    assert extended["p99"] <= extended["p99.9"] <= 1000.0


@pytest.mark.parametrize(
    ("metric", "extended", "message"),
    [
        ("ModelLatency", ("p101",), "unknown extended statistic"),
        ("ModelLatency", ("median",), "unknown extended statistic"),
        ("Invocations", ("p99",), "percentiles are kept for"),
    ],
)
def test_bad_percentile_requests_are_refused(metric: str, extended: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _store().get_metric_statistics(
            endpoint="e", variant="v", metric=metric, start=_at(0), end=_at(4), period=1, extended_statistics=extended
        )


def test_a_models_4xx_counts_as_4xx_never_as_the_5xx_alarms_read() -> None:
    """SageMaker's rule: a model answering 4xx is a ModelError to the caller but an Invocation4XXError."""
    store = MetricStore()
    for status in (200, 400, 404, 413, 415, 424, 499, 500, 503):
        store.record_invocation("e", "v", status=status, model_latency_us=1.0, overhead_latency_us=1.0, at=T0)

    def total(metric: str) -> float:
        (point,) = store.get_metric_statistics(
            endpoint="e", variant="v", metric=metric, start=_at(0), end=_at(1), period=1
        )
        return float(point["Sum"])  # type: ignore[arg-type]

    assert (total("Invocations"), total("Invocation4XXErrors"), total("Invocation5XXErrors")) == (9.0, 6.0, 2.0)
