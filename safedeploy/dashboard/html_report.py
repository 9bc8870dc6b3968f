"""The self-contained HTML report (``safedeploy report``, ``make report``).

One file: plotly.js inlined once in the page's head (no CDN: it opens offline, from an e-mail or a CI artifact),
then every :class:`~safedeploy.dashboard.figures.Panel` as a Plotly graph div, or as a "no data yet" box saying why
and which command makes some. Written atomically.
"""

from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from safedeploy import constants as C
from safedeploy.atomic import atomic_write_text
from safedeploy.dashboard.endpoint_metrics import MetricsReader
from safedeploy.dashboard.figures import Panel, report_panels
from safedeploy.dashboard.snapshot import DashboardSnapshot, collect_snapshot
from safedeploy.errors import SafeDeployError
from safedeploy.spec import PipelineSpec

DEFAULT_OUT = Path(C.REPORT_FILE)
DEFAULT_HEIGHT = 420
"""Pixels, for a figure that sets no height of its own."""

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 1rem 2rem; color: #222; }
h1 { margin-bottom: 0.2rem; }
.meta { color: #555; margin-top: 0; }
.facts { display: flex; flex-wrap: wrap; gap: 0.6rem; margin: 1rem 0; padding: 0; list-style: none; }
.facts li { background: #f3f6fa; border: 1px solid #dde3ea; border-radius: 6px; padding: 0.4rem 0.8rem; }
main { display: flex; flex-wrap: wrap; column-gap: 2%; }
section { margin: 1.2rem 0 2rem; width: 100%; min-width: 0; }
section.half { width: 49%; }
section h2 { font-size: 1.15rem; border-bottom: 1px solid #dde3ea; padding-bottom: 0.3rem; }
.caption { color: #555; margin: 0.2rem 0; }
.no-data { background: #fff8e6; border: 1px dashed #e0b84c; border-radius: 6px; padding: 1.2rem; color: #6b5300; }
.alarm-ALARM { color: #c62828; font-weight: 600; }
.alarm-OK { color: #2e7d32; }
"""


class ReportError(SafeDeployError):
    """No report can be made (no pipeline state yet)."""


def _facts(snapshot: DashboardSnapshot) -> str:
    items = [
        f"pipeline <b>{html.escape(snapshot.pipeline_name)}</b>",
        f"production: <b>{'v' + str(snapshot.production_version) if snapshot.production_version else 'none'}</b>",
        f"executions: <b>{len(snapshot.executions)}</b>",
        f"deployments: <b>{len(snapshot.deployments)}</b>",
    ]
    items += [
        f'{html.escape(name)}: <span class="alarm-{html.escape(state)}">{html.escape(state)}</span>'
        for name, state in snapshot.alarms.items()
    ]
    if snapshot.retraining:
        items.append(f"retraining: {html.escape(snapshot.retraining)}")
    return '<ul class="facts">' + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def _section(panel: Panel) -> str:
    width = ' class="half"' if panel.half else ""
    head = f'<section id="{html.escape(panel.key)}"{width}><h2>{html.escape(panel.title)}</h2>'
    if panel.figure is None:
        key, why = html.escape(panel.key), html.escape(panel.empty)
        return f'{head}<div class="no-data" data-panel="{key}">no data yet: {why}</div></section>'
    figure = go.Figure(panel.figure)  # a copy: the page's heading carries the title
    caption = figure.layout.title.text or ""
    figure.update_layout(title=None, margin={"t": 30, "b": figure.layout.margin.b})
    body = figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=f"chart-{panel.key}",
        config={"displaylogo": False, "responsive": True},
        default_height=figure.layout.height or DEFAULT_HEIGHT,
    )
    return f'{head}<p class="caption">{html.escape(caption)}</p>{body}</section>'


def render_html(snapshot: DashboardSnapshot, panels: list[Panel] | None = None) -> str:
    """The page: plotly.js once, then the panels (default: :func:`report_panels`)."""
    sections = "\n".join(_section(p) for p in (panels if panels is not None else report_panels(snapshot)))
    title = f"safedeploy report: {snapshot.pipeline_name}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="meta">model {html.escape(snapshot.model_name)} · state {html.escape(snapshot.state_dir)} · '
        f"generated {snapshot.generated_at:%Y-%m-%d %H:%M:%S} UTC</p>"
        f"{_facts(snapshot)}\n<main>{sections}</main>\n</body></html>\n"
    )


def write_report(
    spec: PipelineSpec, out: Path = DEFAULT_OUT, metrics: MetricsReader | None = None, retraining: str = ""
) -> Path:
    """Collect the pipeline's state (endpoint metrics from ``metrics``) and write the report to ``out`` atomically.

    ``retraining`` is the last retraining decision in a sentence, for the page's facts.

    Returns:
        The path written.

    Raises:
        ReportError: the state directory has no execution yet.
    """
    snapshot = collect_snapshot(spec, metrics, retraining=retraining)
    if not snapshot.executions:
        raise ReportError(f"no executions in {spec.state_dir}: run `make deploy` first")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, render_html(snapshot))
    return out
