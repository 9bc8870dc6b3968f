"""The endpoints' invocation metrics (CloudWatch's ``AWS/SageMaker``), read from the local runtime.

The runtime keeps them in memory, per second, for a few hours (``runtime/cloudwatch/metrics.py``) and answers
``GET /_local/metrics`` with ``GetMetricStatistics``' parameters. :class:`MetricsReader` is what the snapshot
needs, whoever answers it: the pipeline's process passes :class:`safedeploy.local.runtime_metrics.RuntimeMetrics`
(the runtime's signed local API), the console inside the runtime a reader over its own metric store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


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
