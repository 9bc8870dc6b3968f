"""The traffic shift as the notebook's clients saw it (Plotly); the other charts are :mod:`safedeploy.dashboard`'s."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import plotly.graph_objects as go

from safedeploy.dashboard.figures import TEMPLATE

if TYPE_CHECKING:
    from safedeploy.notebook.endpoints import Answer


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
        template=TEMPLATE,
        xaxis_title="seconds since the approval",
        yaxis={"title": "share of answers", "tickformat": ".0%", "range": [0, 1]},
    )
    return figure
