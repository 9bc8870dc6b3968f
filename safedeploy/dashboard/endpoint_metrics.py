"""The endpoints' invocation metrics (CloudWatch's ``AWS/SageMaker``), read from the local runtime.

The runtime keeps them in memory, per second, for a few hours (``runtime/cloudwatch/metrics.py``) and answers
``GET /_local/metrics`` with ``GetMetricStatistics``' parameters. :class:`MetricsReader` is what the snapshot
needs; :class:`RuntimeMetrics` asks a running runtime over its signed local API (the pipeline side's client,
imported only when used). A caller inside the runtime (the console) passes a reader over its own metric store.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from safedeploy import constants as C

if TYPE_CHECKING:
    from safedeploy.local.daemon import RuntimeInfo


@dataclass(frozen=True)
class MetricPoint:
    """One period's datapoint: its start and the statistic asked for."""

    time: datetime
    value: float


class MetricsReader(Protocol):
    """``GetMetricStatistics`` for one endpoint's variant."""

    def statistics(
        self, endpoint: str, metric: str, start: datetime, end: datetime, period: int, statistic: str
    ) -> list[MetricPoint]:
        """Datapoints of ``statistic`` (``Sum``, ``Average``... or a percentile such as ``p99``), oldest first."""
        ...


class RuntimeMetrics:
    """The local runtime's metrics (its ``/_local/metrics``), for the state directory's runtime."""

    def __init__(self, info: RuntimeInfo, variant: str = C.DEFAULT_VARIANT) -> None:
        self.info = info
        self.variant = variant

    @classmethod
    def running(cls, state_dir: Path) -> RuntimeMetrics | None:
        """A reader for the runtime of ``state_dir``, or None when none is running there."""
        from safedeploy.local import daemon  # the pipeline side's client: not imported by readers of the protocol
        from safedeploy.runtime.paths import RuntimePaths

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
        from safedeploy.local import daemon

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
