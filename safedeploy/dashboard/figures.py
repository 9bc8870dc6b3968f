"""Plotly figures of a :class:`~safedeploy.dashboard.views.DashboardSnapshot`: one function per chart, no I/O.

Each chart function takes the snapshot's data (not the snapshot) and returns a ``plotly.graph_objects.Figure``;
given nothing to draw it returns :func:`no_data_figure` (an annotation saying why, no traces).
:func:`report_panels` is the report's (and the console's) page in order: every :class:`Panel` has either a
figure with data or the reason it has none, so no view ever shows an empty chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from safedeploy.dashboard.deployments import TRAFFIC_DEPLOYMENTS
from safedeploy.dashboard.views import (
    DashboardSnapshot,
    DeploymentView,
    ExecutionView,
    LedgerEntry,
    ModelQualityBaseline,
    ModelView,
    Series,
)

STATUS_COLOURS = {
    "Succeeded": "#2ca02c",
    "Failed": "#d62728",
    "InProgress": "#1f77b4",
    "Superseded": "#9467bd",
    "NotStarted": "#c7c7c7",
}
ROLE_COLOURS = {"blue": "#1f77b4", "green": "#2ca02c"}
ROLLBACK_COLOUR = "#d62728"
MAX_DEPLOYMENT_CHARTS = TRAFFIC_DEPLOYMENTS
"""The report draws the traffic of this many most recent production deployments."""
TEMPLATE = "plotly_white"


@dataclass(frozen=True)
class Panel:
    """One section of a page: a figure with data, or why there is none (``empty``)."""

    key: str
    title: str
    figure: go.Figure | None
    empty: str = ""
    half: bool = False
    """Half the page's width (pairs of small charts side by side)."""


def no_data_figure(title: str, why: str) -> go.Figure:
    """A figure without traces that says why there is nothing to draw."""
    figure = go.Figure()
    figure.add_annotation(
        text=f"no data yet: {why}", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 14}
    )
    figure.update_layout(title=title, template=TEMPLATE, xaxis={"visible": False}, yaxis={"visible": False})
    return figure


def _duration_ms(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds() * 1000.0, 1.0)


def execution_timeline(executions: Sequence[ExecutionView], now: datetime | None = None) -> go.Figure:
    """Gantt-like: one row per execution, one bar per stage, coloured by the stage's status."""
    title = "Pipeline executions: stages over time"
    if not executions:
        return no_data_figure(title, "no executions: run `make deploy` first")
    labels = {e.execution_id: f"{e.execution_id[:8]} v{e.version or '?'} ({e.status})" for e in executions}
    bars: dict[str, dict[str, list[object]]] = {}
    for execution in executions:
        for stage in execution.stages:
            if stage.started_at is None:
                continue
            end = stage.ended_at or now or execution.ended_at or stage.started_at
            bar = bars.setdefault(stage.status, {"base": [], "x": [], "y": [], "text": [], "hover": []})
            bar["base"].append(stage.started_at.isoformat())
            bar["x"].append(_duration_ms(stage.started_at, end))
            bar["y"].append(labels[execution.execution_id])
            bar["text"].append(stage.stage)
            seconds = (end - stage.started_at).total_seconds()
            bar["hover"].append(f"{stage.stage}: {stage.status}, {seconds:.1f}s<br>{stage.summary[:160]}")
    figure = go.Figure()
    for status, bar in bars.items():
        figure.add_trace(
            go.Bar(
                name=status,
                orientation="h",
                base=bar["base"],
                x=bar["x"],
                y=bar["y"],
                text=bar["text"],
                textposition="inside",
                insidetextanchor="middle",
                hovertext=bar["hover"],
                hoverinfo="text",
                marker={"color": STATUS_COLOURS.get(status, "#7f7f7f"), "line": {"color": "white", "width": 1}},
            )
        )
    figure.update_layout(
        title=title,
        template=TEMPLATE,
        barmode="overlay",
        xaxis={"type": "date", "title": "time (UTC)"},
        yaxis={"autorange": "reversed", "title": None},
        height=max(260, 140 + 40 * len(executions)),
        legend={"title": "stage status"},
    )
    return figure


def _with_baseline(models: Sequence[ModelView]) -> list[tuple[ModelView, ModelQualityBaseline]]:
    return [(m, m.baseline) for m in models if m.baseline is not None]


def roc_curves(models: Sequence[ModelView]) -> go.Figure:
    """ROC curves of the versions' model-quality baselines (validation set), AUC in the legend."""
    title = "ROC curve (model-quality baseline, validation set)"
    drawn = _with_baseline(models)
    if not drawn:
        return no_data_figure(title, "no version has a model-quality baseline: `make deploy` makes one")
    figure = go.Figure()
    for model, baseline in drawn:
        auc = baseline.metrics.get("auc", math.nan)
        figure.add_trace(
            go.Scatter(
                x=baseline.roc.x,
                y=baseline.roc.y,
                mode="lines",
                name=f"v{model.version} ({model.role}) AUC {auc:.3f}",
            )
        )
    figure.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "#7f7f7f"})
    )
    figure.update_layout(
        title=title,
        template=TEMPLATE,
        xaxis={"title": "false positive rate", "range": [0, 1]},
        yaxis={"title": "true positive rate", "range": [0, 1.02]},
        legend={"x": 0.45, "y": 0.1},
    )
    return figure


def precision_recall_curves(models: Sequence[ModelView]) -> go.Figure:
    """Precision-recall curves of the versions' model-quality baselines."""
    title = "Precision-recall curve (model-quality baseline, validation set)"
    drawn = _with_baseline(models)
    if not drawn:
        return no_data_figure(title, "no version has a model-quality baseline: `make deploy` makes one")
    figure = go.Figure()
    for model, baseline in drawn:
        figure.add_trace(
            go.Scatter(
                x=baseline.precision_recall.x,
                y=baseline.precision_recall.y,
                mode="lines",
                line={"shape": "hv"},
                name=f"v{model.version} ({model.role})",
            )
        )
    figure.update_layout(
        title=title,
        template=TEMPLATE,
        xaxis={"title": "recall", "range": [0, 1]},
        yaxis={"title": "precision", "range": [0, 1.02]},
        legend={"x": 0.02, "y": 0.1},
    )
    return figure


def confusion_matrices(models: Sequence[ModelView]) -> go.Figure:
    """The baselines' confusion matrices (actual label by predicted label, threshold 0.5), side by side."""
    title = "Confusion matrix (model-quality baseline, validation set)"
    drawn = _with_baseline(models)
    if not drawn:
        return no_data_figure(title, "no version has a model-quality baseline: `make deploy` makes one")
    figure = make_subplots(
        rows=1, cols=len(drawn), subplot_titles=[f"v{m.version} ({m.role})" for m, _ in drawn], horizontal_spacing=0.15
    )
    for column, (model, baseline) in enumerate(drawn, 1):
        matrix = [list(row) for row in baseline.confusion]
        figure.add_trace(
            go.Heatmap(
                z=matrix,
                x=["stays", "churns"],
                y=["stays", "churns"],
                text=[[str(v) for v in row] for row in matrix],
                texttemplate="%{text}",
                colorscale="Blues",
                showscale=False,
                name=f"v{model.version}",
            ),
            row=1,
            col=column,
        )
        figure.update_yaxes(autorange="reversed", title="actual" if column == 1 else None, row=1, col=column)
        figure.update_xaxes(title="predicted", row=1, col=column)
    figure.update_layout(title=title, template=TEMPLATE, height=420)
    return figure


def training_metrics(models: Sequence[ModelView]) -> go.Figure:
    """The versions' test-set metrics from training (what the quality gate judged), grouped by metric."""
    title = "Training metrics (test set, from the registry)"
    if not models:
        return no_data_figure(title, "no registered version yet: `make deploy` trains and registers one")
    figure = go.Figure()
    for model in models:
        names = sorted(k for k in model.training_metrics if k.startswith("test:") and k != "test:log_loss")
        figure.add_trace(
            go.Bar(
                name=f"v{model.version} ({model.role})",
                x=[n.removeprefix("test:") for n in names],
                y=[model.training_metrics[n] for n in names],
                texttemplate="%{y:.2f}",
                textposition="outside",
                textfont={"size": 10},
            )
        )
    figure.update_layout(title=title, template=TEMPLATE, barmode="group", yaxis={"range": [0, 1.1]})
    return figure


def _green_share(deployment: DeploymentView) -> tuple[list[str], list[float]]:
    times, shares = [], []
    for step in deployment.steps:
        times.append(step.time.isoformat())
        shares.append(100.0 * step.weights.get(deployment.green, 0.0))
    if times and deployment.ended_at is not None:
        final = 0.0 if deployment.rolled_back else shares[-1]
        times.append(deployment.ended_at.isoformat())
        shares.append(final)
    return times, shares


def traffic_shift(deployment: DeploymentView) -> go.Figure:
    """One deployment: requests, 5XX errors and p99 model latency per variant, green's traffic share, rollbacks."""
    blue = f"v{deployment.blue_version}" if deployment.blue_version is not None else "nothing"
    title = (
        f"Deployment {deployment.deployment_id}: {blue} → v{deployment.green_version} "
        f"({deployment.strategy.split(':')[0]}, {deployment.outcome})"
    )
    if not deployment.variants:
        return no_data_figure(title, deployment.traffic_missing or "no traffic recorded")
    figure = make_subplots(
        rows=4,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.05,
        subplot_titles=("requests per period", "5XX errors per period", "p99 model latency (ms)", "green's share (%)"),
    )
    for variant in deployment.variants:
        colour = ROLE_COLOURS.get(variant.role, "#7f7f7f")
        name = f"{variant.role} v{variant.version}"
        times = [t.isoformat() for t in variant.times]
        group = {"legendgroup": name, "line": {"color": colour}}
        figure.add_trace(go.Scatter(x=times, y=variant.requests, mode="lines", name=name, **group), row=1, col=1)
        figure.add_trace(
            go.Scatter(x=times, y=variant.errors, mode="lines", name=f"{name} 5XX", showlegend=False, **group),
            row=2,
            col=1,
        )
        figure.add_trace(
            go.Scatter(
                x=[t.isoformat() for t in variant.p99_times],
                y=variant.p99_ms,
                mode="lines+markers",
                name=f"{name} p99",
                showlegend=False,
                **group,
            ),
            row=3,
            col=1,
        )
    times, shares = _green_share(deployment)
    if times:
        figure.add_trace(
            go.Scatter(
                x=times,
                y=shares,
                mode="lines+markers",
                line={"shape": "hv", "color": ROLE_COLOURS["green"]},
                name="green's share",
            ),
            row=4,
            col=1,
        )
    if deployment.rolled_back and deployment.ended_at is not None:
        figure.add_vline(x=deployment.ended_at.timestamp() * 1000, line={"color": ROLLBACK_COLOUR, "dash": "dash"})
        figure.add_annotation(
            x=deployment.ended_at.isoformat(), y=1, yref="paper", text=f"rolled back: {deployment.reason or ''}"[:90],
            showarrow=False, font={"color": ROLLBACK_COLOUR}, xanchor="right",
        )  # fmt: skip
    if deployment.rollback_of is not None:
        figure.add_vline(x=deployment.started_at.timestamp() * 1000, line={"color": ROLLBACK_COLOUR, "dash": "dot"})
        figure.add_annotation(
            x=deployment.started_at.isoformat(), y=1, yref="paper",
            text=f"make rollback from v{deployment.rollback_of}", showarrow=False,
            font={"color": ROLLBACK_COLOUR}, xanchor="left",
        )  # fmt: skip
    figure.update_yaxes(rangemode="tozero", row=1, col=1)
    figure.update_yaxes(rangemode="nonnegative", row=2, col=1)
    figure.update_yaxes(rangemode="tozero", row=3, col=1)
    figure.update_yaxes(range=[0, 105], row=4, col=1)
    figure.update_layout(title=title, template=TEMPLATE, height=640, legend={"orientation": "h", "y": -0.08})
    return figure


def _over_time(title: str, series: Sequence[Series], y_title: str, threshold_name: str) -> go.Figure:
    figure = go.Figure()
    thresholds: dict[float, list[str]] = {}
    for item in series:
        figure.add_trace(
            go.Scatter(x=[t.isoformat() for t in item.times], y=item.values, mode="lines+markers", name=item.name)
        )
        if item.threshold is not None:
            thresholds.setdefault(item.threshold, []).append(item.name)
    for value, names in thresholds.items():
        label = f"{threshold_name} {value:g}" + ("" if len(thresholds) == 1 else f" ({', '.join(names)})")
        figure.add_hline(
            y=value, line={"dash": "dash", "color": ROLLBACK_COLOUR}, annotation_text=label,
            annotation_position="top left",
        )  # fmt: skip
    figure.update_layout(title=title, template=TEMPLATE, yaxis={"title": y_title}, xaxis={"title": "window end (UTC)"})
    return figure


def drift_over_time(series: Sequence[Series]) -> go.Figure:
    """Each feature's drift (``feature_baseline_drift_<name>``) per monitoring execution, with its threshold."""
    title = "Data drift per feature (distance from the baseline)"
    if not series:
        return no_data_figure(title, "no drift metric published yet: send traffic, then `make monitor`")
    return _over_time(title, series, "distance", "drift threshold")


def quality_over_time(series: Sequence[Series]) -> go.Figure:
    """Model-quality metrics per execution (``aws/sagemaker/Endpoints/model-metrics``) and the AUC alarm's threshold."""
    title = "Model quality over time (captured predictions joined with ground truth)"
    if not series:
        return no_data_figure(title, "no model-quality execution yet: upload labels, then `safedeploy monitor quality`")
    return _over_time(title, series, "metric value", "auc alarm threshold")


def canary_success(series: Sequence[Series]) -> go.Figure:
    """The synthetic canary's ``SuccessPercent`` over time."""
    title = "Synthetic canary: success %"
    if not series:
        return no_data_figure(title, "no synthetic canary data yet")
    figure = _over_time(title, series, "success %", "alarm below")
    figure.update_yaxes(range=[0, 105])
    return figure


def ledger_table(entries: Sequence[LedgerEntry]) -> go.Figure:
    """The deployment ledger, newest first."""
    title = "Deployment ledger (newest first)"
    if not entries:
        return no_data_figure(title, "the ledger is empty: nothing has been deployed to production yet")
    rows = list(reversed(entries))
    figure = go.Figure(
        go.Table(
            columnwidth=[1.3, 1.1, 1.3, 6],
            header={
                "values": ["time (UTC)", "deployment", "event", "detail"],
                "align": "left",
                "fill_color": "#e8eef7",
            },
            cells={
                "values": [
                    [f"{e.time:%Y-%m-%d %H:%M:%S}" for e in rows],
                    [e.deployment_id for e in rows],
                    [e.event for e in rows],
                    [e.detail for e in rows],
                ],
                "align": "left",
                "font": {"size": 11},
            },
        )
    )
    figure.update_layout(
        title=title, template=TEMPLATE, height=min(900, 110 + 40 * len(rows)), margin={"t": 50, "b": 10}
    )
    return figure


def executions_table(executions: Sequence[ExecutionView]) -> go.Figure:
    """The executions, newest first: status, trigger, version, times, error."""
    title = "Executions (newest first)"
    if not executions:
        return no_data_figure(title, "no executions: run `make deploy` first")
    rows = list(reversed(executions))
    figure = go.Figure(
        go.Table(
            columnwidth=[2.2, 1, 0.6, 1.4, 0.8, 1.6, 3],
            header={
                "values": ["execution", "status", "version", "started (UTC)", "duration", "trigger", "error"],
                "align": "left",
                "fill_color": "#e8eef7",
            },
            cells={
                "values": [
                    [e.execution_id for e in rows],
                    [e.status for e in rows],
                    [f"v{e.version}" if e.version else "-" for e in rows],
                    [f"{e.started_at:%Y-%m-%d %H:%M:%S}" for e in rows],
                    [f"{(e.ended_at - e.started_at).total_seconds():.1f}s" if e.ended_at else "-" for e in rows],
                    [e.trigger for e in rows],
                    [e.error or "" for e in rows],
                ],
                "align": "left",
                "font": {"size": 11},
            },
        )
    )
    figure.update_layout(
        title=title,
        template=TEMPLATE,
        height=min(700, 110 + sum(26 + 18 * math.ceil(len(e.error or "") / 60) for e in rows)),  # errors wrap
        margin={"t": 50, "b": 10},
    )
    return figure


def _panel(key: str, title: str, figure: go.Figure, empty: str | None, *, half: bool = False) -> Panel:
    return Panel(key, title, None, empty, half) if empty else Panel(key, title, figure, half=half)


def report_panels(snapshot: DashboardSnapshot) -> list[Panel]:
    """The report's sections in order, each a figure with data or the reason there is none."""
    why = snapshot.empty_reasons
    models = snapshot.models
    no_baseline = why.get("models") if not any(m.baseline for m in models) else None
    panels = [
        _panel("timeline", "Execution timeline", execution_timeline(snapshot.executions), why.get("executions")),
        _panel("executions", "Executions", executions_table(snapshot.executions), why.get("executions")),
        _panel(
            "training-metrics",
            "Training metrics",
            training_metrics(models),
            "no registered model version yet: `make deploy` trains, gates and registers one" if not models else None,
            half=True,
        ),
        _panel("confusion", "Confusion matrix", confusion_matrices(models), no_baseline, half=True),
        _panel("roc", "ROC curve", roc_curves(models), no_baseline, half=True),
        _panel("precision-recall", "Precision-recall curve", precision_recall_curves(models), no_baseline, half=True),
    ]
    deployments = snapshot.deployments[-MAX_DEPLOYMENT_CHARTS:]
    if not deployments:
        panels.append(Panel("traffic", "Traffic shift", None, why.get("traffic", "no production deployment yet")))
    for deployment in reversed(deployments):
        panels.append(
            _panel(
                f"traffic-{deployment.deployment_id}",
                f"Traffic shift: {deployment.deployment_id}",
                traffic_shift(deployment),
                deployment.traffic_missing if not deployment.variants else None,
            )
        )
    panels += [
        _panel("drift", "Data drift", drift_over_time(snapshot.drift), why.get("drift")),
        _panel("quality", "Model quality", quality_over_time(snapshot.quality), why.get("quality")),
        _panel("canary", "Synthetic canary", canary_success(snapshot.canary), why.get("canary")),
        _panel("ledger", "Deployment ledger", ledger_table(snapshot.ledger), why.get("ledger")),
    ]
    return panels
