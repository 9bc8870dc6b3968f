"""The notebook's charts (Plotly): metrics per version, the traffic shift as clients saw it, drift per feature."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import plotly.graph_objects as go

from safedeploy.monitoring.analyzer.formats import DRIFT_METRIC_PREFIX

if TYPE_CHECKING:
    from safedeploy.monitoring.records import MonitoringExecution
    from safedeploy.notebook.endpoints import Answer


def metrics_figure(metrics_by_version: Mapping[int, Mapping[str, float]], names: Sequence[str]) -> go.Figure:
    """One group of bars per metric (``names``, e.g. ``test:auc``), one bar per version."""
    figure = go.Figure()
    for version, metrics in sorted(metrics_by_version.items()):
        shown = [name for name in names if name in metrics]
        figure.add_bar(name=f"v{version}", x=shown, y=[metrics[name] for name in shown])
    figure.update_layout(title="Model metrics per version", barmode="group", yaxis={"range": [0, 1]})
    return figure


def shift_figure(answers: Sequence[Answer], bin_s: float = 0.5) -> go.Figure:
    """Share of the answers per model version over time (``bin_s`` bins): the traffic shift as clients saw it."""
    bins: dict[int, Counter[str]] = {}
    for answer in answers:
        if answer.status == 200 and answer.version is not None:
            bins.setdefault(int(answer.seconds // bin_s), Counter())[answer.version] += 1
    versions = sorted({version for counts in bins.values() for version in counts})
    ordered = sorted(bins)
    figure = go.Figure()
    for version in versions:
        figure.add_scatter(
            name=f"v{version}",
            x=[index * bin_s for index in ordered],
            y=[bins[index][version] / sum(bins[index].values()) for index in ordered],
            mode="lines",
            stackgroup="share",
        )
    figure.update_layout(
        title="Which version answered (client requests through the REST API)",
        xaxis_title="seconds since the approval",
        yaxis={"title": "share of answers", "tickformat": ".0%", "range": [0, 1]},
    )
    return figure


def drift_figure(
    execution: MonitoringExecution, threshold: float, alarms: Mapping[str, float] | None = None
) -> go.Figure:
    """Each feature's distance from the baseline in one monitoring execution, against the drift threshold."""
    drift = {
        name.removeprefix(DRIFT_METRIC_PREFIX): value
        for name, value in execution.Metrics.items()
        if name.startswith(DRIFT_METRIC_PREFIX)
    }
    names = sorted(drift, key=lambda name: -drift[name])
    limits = {name: (alarms or {}).get(name, threshold) for name in names}
    figure = go.Figure()
    figure.add_bar(
        name="distance from the baseline",
        x=names,
        y=[drift[name] for name in names],
        marker_color=["crimson" if drift[name] > limits[name] else "steelblue" for name in names],
    )
    figure.add_scatter(name="threshold", x=names, y=[limits[name] for name in names], mode="markers+lines")
    figure.update_layout(
        title=f"Drift per feature, {execution.WindowStart:%H:%M:%S}-{execution.WindowEnd:%H:%M:%S} UTC "
        f"({execution.MonitoringExecutionStatus})",
        yaxis_title="distribution distance",
    )
    return figure
