"""The endpoints' invocation metrics (CloudWatch's ``AWS/SageMaker``) as the pipeline's process reads them.

The runtime keeps them in memory, per second, for a few hours (``runtime/cloudwatch/metrics.py``) and answers
``GET /_local/metrics`` with ``GetMetricStatistics``' parameters over its signed local API. :class:`RuntimeMetrics`
is a :class:`~safedeploy.dashboard.endpoint_metrics.MetricsReader` over that API, for the report and the notebook;
the console, inside the runtime, reads its own metric store instead.
"""

from __future__ import annotations

import urllib.parse
from datetime import datetime
from pathlib import Path

from safedeploy import constants as C
from safedeploy.dashboard.endpoint_metrics import MetricPoint
from safedeploy.local import daemon
from safedeploy.runtime.paths import RuntimePaths


class RuntimeMetrics:
    """The local runtime's metrics (its ``/_local/metrics``), for the state directory's runtime."""

    def __init__(self, info: daemon.RuntimeInfo, variant: str = C.DEFAULT_VARIANT) -> None:
        self.info = info
        self.variant = variant

    @classmethod
    def running(cls, state_dir: Path) -> RuntimeMetrics | None:
        """A reader for the runtime of ``state_dir``, or None when none is running there."""
        info = daemon.read_info(RuntimePaths(state_dir.resolve()))
        if info is None:
            return None
        try:
            daemon.local_get(info, "/_local/health")
        except (daemon.LocalRuntimeError, OSError):
            return None
        return cls(info)

    def statistics(
        self, endpoint: str, metric: str, start: datetime, end: datetime, period: int, statistic: str
    ) -> list[MetricPoint]:
        """Datapoints from the runtime (percentiles through ``ExtendedStatistics``)."""
        extended = statistic.startswith("p")
        query = urllib.parse.urlencode(
            {
                "EndpointName": endpoint,
                "VariantName": self.variant,
                "MetricName": metric,
                "StartTime": start.isoformat(),
                "EndTime": end.isoformat(),
                "Period": period,
                ("ExtendedStatistics" if extended else "Statistics"): statistic,
            }
        )
        reply = daemon.local_get(self.info, f"/_local/metrics?{query}")
        points = []
        for datapoint in reply.get("Datapoints", []):
            value = datapoint.get("ExtendedStatistics", {}).get(statistic) if extended else datapoint.get(statistic)
            if value is not None:
                points.append(MetricPoint(datetime.fromisoformat(str(datapoint["Timestamp"])), float(value)))
        return sorted(points, key=lambda p: p.time)
