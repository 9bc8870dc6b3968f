"""The console's charts: the dashboard's figures as JSON, the synthetic canary's latest success %, live metrics."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from safedeploy.metric_log import Datum, MetricLog
from safedeploy.runtime.cloudwatch.metrics import MetricStore
from safedeploy.runtime.console.charts import StoreMetrics, console_charts
from safedeploy.spec import load_spec


def test_an_empty_state_gives_figures_that_say_why_and_no_canary_value(tmp_path: Path) -> None:
    spec = load_spec(overrides={"state_dir": str(tmp_path / "state")})
    charts = console_charts(spec, MetricStore())
    assert set(charts["figures"]) == {"drift", "quality", "canary"}  # no deployment: no traffic-shift figure
    drift = charts["figures"]["drift"]
    assert drift["data"] == [] and "no data yet" in drift["layout"]["annotations"][0]["text"]
    assert charts["canary_success_percent"] is None


def test_the_latest_canary_success_percent_is_shown_with_its_series(tmp_path: Path) -> None:
    spec = load_spec(overrides={"state_dir": str(tmp_path / "state")})
    now = datetime.now(UTC)
    MetricLog(spec.state_dir / "metrics").put(
        [
            Datum(
                "CloudWatchSynthetics", "SuccessPercent", (("CanaryName", "probe"),), now - timedelta(minutes=2), 100
            ),
            Datum("CloudWatchSynthetics", "SuccessPercent", (("CanaryName", "probe"),), now - timedelta(minutes=1), 50),
        ]
    )
    charts = console_charts(spec, MetricStore())
    assert charts["canary_success_percent"] == 50
    (trace,) = charts["figures"]["canary"]["data"]
    assert trace["name"] == "probe" and list(trace["y"]) == [100, 50]


def test_store_metrics_reads_sums_and_percentiles_from_the_runtime_memory() -> None:
    store = MetricStore()
    second = time.time() - 10
    for latency_us in (1000, 2000, 90_000):
        store.record_invocation(
            "ep", "AllTraffic", status=200, model_latency_us=latency_us, overhead_latency_us=1, at=second
        )
    store.record_invocation("ep", "AllTraffic", status=500, model_latency_us=500, overhead_latency_us=1, at=second)
    reader = StoreMetrics(store)
    start, end = datetime.now(UTC) - timedelta(minutes=1), datetime.now(UTC)
    (requests,) = reader.statistics("ep", "Invocations", start, end, 60, "Sum")
    (errors,) = reader.statistics("ep", "Invocation5XXErrors", start, end, 60, "Sum")
    (p99,) = reader.statistics("ep", "ModelLatency", start, end, 60, "p99")
    assert (requests.value, errors.value) == (4, 1)
    assert p99.value == 90_000
    assert reader.statistics("other", "Invocations", start, end, 60, "Sum") == []
