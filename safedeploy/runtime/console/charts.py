"""The console's monitoring charts: the dashboard's Plotly figures, as JSON the page draws with ``Plotly.react``.

The figures are the report's own (:mod:`safedeploy.dashboard.figures`, from a
:func:`~safedeploy.dashboard.snapshot.collect_snapshot` of the pipeline's records): drift per feature against its
threshold, model quality over time, the synthetic canary's success %, the latest deployment's traffic shift. The
endpoints' metrics come straight from the runtime's memory (:class:`StoreMetrics`), not over its own HTTP API.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from safedeploy import constants as C
from safedeploy.dashboard import figures
from safedeploy.dashboard.endpoint_metrics import MetricPoint
from safedeploy.dashboard.snapshot import collect_snapshot
from safedeploy.runtime.cloudwatch.metrics import MetricStore
from safedeploy.spec import PipelineSpec


class StoreMetrics:
    """:class:`~safedeploy.dashboard.endpoint_metrics.MetricsReader` over the runtime's own metric store."""

    def __init__(self, store: MetricStore, variant: str = C.DEFAULT_VARIANT) -> None:
        self.store = store
        self.variant = variant

    def statistics(
        self, endpoint: str, metric: str, start: datetime, end: datetime, period: int, statistic: str
    ) -> list[MetricPoint]:
        """Datapoints of ``statistic`` (``Sum``... or a percentile such as ``p99``), oldest first."""
        extended = statistic.startswith("p")
        points = self.store.get_metric_statistics(
            endpoint=endpoint,
            variant=self.variant,
            metric=metric,
            start=start,
            end=end,
            period=period,
            statistics=() if extended else (statistic,),
            extended_statistics=(statistic,) if extended else (),
        )
        result = []
        for point in points:
            extended_values = point.get("ExtendedStatistics")
            value = extended_values.get(statistic) if isinstance(extended_values, dict) else point.get(statistic)
            if isinstance(value, int | float):
                result.append(MetricPoint(datetime.fromisoformat(str(point["Timestamp"])), float(value)))
        return result


def console_charts(spec: PipelineSpec, metrics: MetricStore) -> dict[str, Any]:
    """``{"figures": {name: figure JSON}, "canary_success_percent": latest value or None}``."""
    snapshot = collect_snapshot(spec, StoreMetrics(metrics))
    drawn = {
        "drift": figures.drift_over_time(snapshot.drift),
        "quality": figures.quality_over_time(snapshot.quality),
        "canary": figures.canary_success(snapshot.canary),
    }
    if snapshot.deployments:
        drawn["traffic_shift"] = figures.traffic_shift(snapshot.deployments[-1])
    latest = [(series.times[-1], series.values[-1]) for series in snapshot.canary if series.times]
    return {
        # plotly's own encoder (numpy arrays, dates), then plain JSON for aiohttp
        "figures": {name: json.loads(figure.to_json()) for name, figure in drawn.items()},
        "canary_success_percent": max(latest)[1] if latest else None,
    }
