"""The report on a real pipeline state (``tests/dashboard_state.py``): v1 all at once, v2 through a canary shift,
v3 a game-day rehearsal the error-rate alarm rolls back, `make rollback` (v2 -> v1), then a clean and a drifted
monitoring window, each with a model-quality execution.

The collectors are checked against the records they read (ledger, registry, monitoring executions, alarms), the
figures against the snapshot, and the written page in headless Chromium: every Plotly graph carries data and every
no-data panel says why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import plotly.graph_objects as go
import pytest

from safedeploy import naming
from safedeploy.cli import main as cli_main
from safedeploy.dashboard import figures
from safedeploy.dashboard.html_report import render_html
from safedeploy.dashboard.snapshot import DashboardSnapshot, collect_snapshot
from safedeploy.ledger import DeploymentLedger
from safedeploy.local import daemon
from safedeploy.monitoring.drift_alarms import AlarmStates
from safedeploy.pipeline import Pipeline
from tests.browser import chromium, page
from tests.dashboard_state import build_state

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    pipeline: Pipeline | None = None
    root = tmp_path_factory.mktemp("report")
    try:
        pipeline = build_state(root)
        yield pipeline
    finally:
        daemon.stop(root / "state")


@pytest.fixture(scope="module")
def snapshot(state: Pipeline) -> DashboardSnapshot:
    return state.snapshot()  # the endpoint metrics from the running runtime


def test_deployments_come_from_the_ledger_with_each_variants_traffic(
    state: Pipeline, snapshot: DashboardSnapshot
) -> None:
    ledger = DeploymentLedger(state.spec.state_dir.resolve() / "deployments", state.spec.pipeline_name)
    first, canary, rehearsal, rollback = snapshot.deployments
    assert [d.outcome for d in snapshot.deployments] == ["Succeeded", "Succeeded", "RolledBack", "Succeeded"]
    assert (first.blue, first.green_version) == (None, 1)
    assert (canary.blue_version, canary.green_version) == (1, 2)
    assert (rehearsal.blue_version, rehearsal.green_version, rehearsal.rehearsal) == (2, 3, "errors:0.5")
    assert rehearsal.rolled_back and "green-error-rate" in (rehearsal.reason or "")
    assert (rollback.blue_version, rollback.green_version, rollback.rollback_of) == (2, 1, 2)
    assert first.rollback_of is None and canary.rollback_of is None and not canary.rolled_back
    assert [round(100 * s.weights[canary.green]) for s in canary.steps] == [10, 100]
    assert snapshot.production_version == 1  # the rollback's green serves
    events = ledger.events(canary.deployment_id)
    synthetic = next(e["synthetic_requests"] for e in events if e["event"] == "DeploymentSucceeded")
    by_role = {v.role: v for v in canary.variants}
    assert set(by_role) == {"blue", "green"} and by_role["green"].version == 2
    # every synthetic request of the shift went through the API to blue or green, inside the drawn window
    assert sum(by_role["blue"].requests) + sum(by_role["green"].requests) >= synthetic > 0
    assert sum(by_role["green"].requests) > 0 and by_role["green"].p99_ms and min(by_role["green"].p99_ms) > 0
    assert all(e == 0 for v in canary.variants for e in v.errors)  # a healthy shift: no 5XX
    faulty = next(v for v in rehearsal.variants if v.role == "green")
    assert sum(faulty.errors) > 0 and faulty.version == 3  # the injected errors, counted where the alarm saw them
    assert len(snapshot.ledger) == len(ledger.events())
    assert {e.event for e in snapshot.ledger} >= {"DeploymentStarted", "TrafficShifted", "DeploymentSucceeded"}


def test_without_the_runtime_the_traffic_section_says_why(state: Pipeline) -> None:
    quiet = collect_snapshot(state.spec)  # no metrics reader: as when the runtime is not running
    assert all(not d.variants for d in quiet.deployments)
    assert "the local runtime is not running" in quiet.empty_reasons["traffic"]
    assert len(quiet.deployments) == 4 and quiet.models  # the rest of the state is still read


def test_model_metrics_are_the_versions_quality_baselines(state: Pipeline, snapshot: DashboardSnapshot) -> None:
    roles = {m.version: m.role for m in snapshot.models}
    assert roles == {1: "production", 3: "latest"}
    for model in snapshot.models:
        package = state.backend.registry.describe(state.spec.model_name, model.version)
        baseline = model.baseline
        assert baseline is not None, model.baseline_missing
        assert model.training_metrics == package.Metrics
        assert baseline.item_count == 225  # the validation split of 1,500 rows
        assert sum(sum(row) for row in baseline.confusion) == baseline.item_count
        roc = baseline.roc
        assert (roc.x[0], roc.y[0], roc.x[-1], roc.y[-1]) == (0.0, 0.0, 1.0, 1.0)
        assert list(roc.x) == sorted(roc.x) and list(roc.y) == sorted(roc.y)
        trapezoids = sum((roc.x[i + 1] - roc.x[i]) * (roc.y[i + 1] + roc.y[i]) / 2 for i in range(len(roc.x) - 1))
        assert math.isclose(trapezoids, baseline.metrics["auc"], abs_tol=1e-9)
        assert abs(baseline.metrics["auc"] - package.Metrics["validation:auc"]) < 0.01  # same set, same model
        tp = baseline.confusion[1][1]
        assert math.isclose(baseline.metrics["recall"], tp / sum(baseline.confusion[1]))


def test_drift_and_quality_follow_the_monitoring_executions(state: Pipeline, snapshot: DashboardSnapshot) -> None:
    drift_runs = state.monitor().executions()
    quality_runs = state.model_quality_monitor().executions()
    assert len(drift_runs) == len(quality_runs) == 2
    calls = next(s for s in snapshot.drift if s.name == "CustServ Calls")
    assert calls.values == tuple(r.Metrics["feature_baseline_drift_CustServ Calls"] for r in drift_runs)
    assert calls.threshold == state.spec.monitoring.drift_alarms["CustServ Calls"]
    assert calls.values[0] <= calls.threshold < calls.values[1]  # clean, then drifted
    auc = next(s for s in snapshot.quality if s.name == "auc")
    assert auc.values == tuple(r.Metrics["auc"] for r in quality_runs)
    record = AlarmStates(state.spec.state_dir.resolve() / "alarms", "", "").get(
        naming.model_quality_alarm_name(state.spec)
    )
    assert auc.threshold == record["Threshold"] and auc.comparison == "LessThanThreshold"
    assert snapshot.alarms[naming.drift_alarm_name(state.spec, "CustServ Calls")] == "ALARM"
    assert "drift" not in snapshot.empty_reasons and "quality" not in snapshot.empty_reasons
    assert snapshot.empty_reasons["canary"].startswith("no synthetic canary data yet")


def _points(figure: go.Figure) -> int:
    count = 0
    for trace in figure.data:
        if trace.type == "table":
            count += len(trace.cells.values[0])
        elif trace.type == "heatmap":
            count += sum(len(row) for row in trace.z)
        else:
            count += min(len(trace.x), len(trace.y))
    return count


def test_every_panel_has_a_figure_with_data_or_says_why(snapshot: DashboardSnapshot) -> None:
    panels = figures.report_panels(snapshot)
    keys = [p.key for p in panels]
    assert keys[:6] == ["timeline", "executions", "training-metrics", "confusion", "roc", "precision-recall"]
    assert [k for k in keys if k.startswith("traffic-")] == [
        f"traffic-{d.deployment_id}" for d in reversed(snapshot.deployments)
    ]
    for panel in panels:
        if panel.figure is None:
            assert panel.empty, panel.key
        else:
            assert _points(panel.figure) > 0, panel.key
    (canary,) = [p for p in panels if p.key == "canary"]
    assert canary.figure is None and "no synthetic canary data yet" in canary.empty
    timeline = figures.execution_timeline(snapshot.executions)
    stages = sum(1 for e in snapshot.executions for s in e.stages if s.started_at is not None)
    assert sum(len(t.x) for t in timeline.data) == stages
    assert {t.name for t in timeline.data} == {"Succeeded", "Failed"}  # the rehearsal's DeployPrd failed
    rollback = figures.traffic_shift(snapshot.deployments[-1])
    assert any("make rollback from v2" in a.text for a in rollback.layout.annotations)
    assert any(shape.line.color == figures.ROLLBACK_COLOUR for shape in rollback.layout.shapes)
    rolled_back = figures.traffic_shift(snapshot.deployments[2])
    assert any(a.text.startswith("rolled back: ") for a in rolled_back.layout.annotations)
    share = next(t for t in rolled_back.data if t.name == "green's share")
    assert share.y[0] == 10 and share.y[-1] == 0  # the canary step, then back to blue


def test_empty_inputs_draw_a_no_data_figure_not_an_empty_chart() -> None:
    for figure in (
        figures.roc_curves([]),
        figures.drift_over_time([]),
        figures.quality_over_time([]),
        figures.canary_success([]),
        figures.ledger_table([]),
        figures.execution_timeline([]),
    ):
        assert not figure.data
        assert figure.layout.annotations[0].text.startswith("no data yet: ")


def test_make_report_writes_one_self_contained_page(
    state: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nested" / "report.html"
    assert cli_main(["report", "--out", str(out), "--set", f"state_dir={state.spec.state_dir}"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    text = out.read_text("utf-8")
    assert text.count("plotly.js v") == 1  # plotly.js inlined once (its banner)
    assert not re.search(r"<script[^>]+src=", text)  # nothing fetched: works offline
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # atomic: no temporary left behind
    # by default under build/report/ of the working directory (the tests run in tmp_path), as `make report` writes it
    assert cli_main(["report", "--set", f"state_dir={state.spec.state_dir}"]) == 0
    assert capsys.readouterr().out.strip() == "build/report/report.html"
    assert (tmp_path / "build" / "report" / "report.html").read_text("utf-8").count("plotly.js v") == 1


def test_the_page_renders_in_chromium_with_data_in_every_chart(
    state: Pipeline, snapshot: DashboardSnapshot, tmp_path: Path
) -> None:
    html_file = tmp_path / "report.html"
    html_file.write_text(render_html(snapshot), "utf-8")
    panels = figures.report_panels(snapshot)
    with chromium() as browser, page(browser) as view:
        view.goto(html_file.as_uri())
        view.wait_for_function("document.querySelectorAll('.js-plotly-plot').length > 0")
        charts = view.evaluate(
            """() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => ({
                id: gd.id,
                traces: gd.data.map(t => t.type === 'table' ? t.cells.values[0].length
                    : t.type === 'heatmap' ? t.z.flat().length
                    : Math.min((t.x || []).length, (t.y || []).length)),
                drawn: gd.querySelectorAll('.main-svg').length,
            }))"""
        )
        empty = view.evaluate(
            "() => [...document.querySelectorAll('.no-data')].map(d => [d.dataset.panel, d.textContent])"
        )
    assert sorted(c["id"] for c in charts) == sorted(f"chart-{p.key}" for p in panels if p.figure is not None)
    for chart in charts:
        assert chart["traces"] and all(n > 0 for n in chart["traces"]), chart
        assert chart["drawn"] > 0, chart
    # the probe's first run is one schedule period (5 minutes of model time) after the deployment: not yet
    assert empty == [["canary", f"no data yet: {snapshot.empty_reasons['canary']}"]]
    assert "no CloudWatchSynthetics SuccessPercent metric published" in empty[0][1]
