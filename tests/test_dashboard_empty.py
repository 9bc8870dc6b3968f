"""The report before there is much to show: no state at all (a clear error), then one execution that stopped at
Register (charts of the version, and "no data yet" panels naming the command that makes some for the rest); and
the synthetic canary's series, read from the metric log where the probe publishes it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from safedeploy import constants as C
from safedeploy.approval import AutoApprove
from safedeploy.cli import main as cli_main
from safedeploy.dashboard import figures
from safedeploy.dashboard.html_report import ReportError, write_report
from safedeploy.dashboard.snapshot import collect_snapshot
from safedeploy.metric_log import Datum, MetricLog
from safedeploy.pipeline import Pipeline
from safedeploy.spec import PipelineSpec
from tests.browser import chromium, page
from tests.conftest import REPO_ROOT

MINUTE = timedelta(minutes=1)


def test_no_state_is_a_clear_error(
    make_spec: Callable[..., PipelineSpec], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_spec()
    snapshot = collect_snapshot(spec)
    assert set(snapshot.empty_reasons) == {"executions", "models", "traffic", "drift", "quality", "canary", "ledger"}
    assert snapshot.empty_reasons["executions"] == "no executions: run `make deploy` first"
    with pytest.raises(ReportError, match=r"no executions in .*: run `make deploy` first"):
        write_report(spec, tmp_path / "report.html")
    out = tmp_path / "cli.html"
    assert cli_main(["report", "--out", str(out), "--set", f"state_dir={spec.state_dir}"]) == 2
    assert "no executions" in capsys.readouterr().err and not out.exists()


@pytest.mark.slow
def test_one_registered_version_shows_its_metrics_and_says_why_the_rest_is_empty(
    make_spec: Callable[..., PipelineSpec], tmp_path: Path
) -> None:
    spec = make_spec(hyperparameters__num_round=30)  # serving off (tests' default): the run stops at Register
    execution = Pipeline(spec, project_root=REPO_ROOT, approver=AutoApprove("tests")).run(trigger="test")
    assert execution.status == "Succeeded", execution.error
    snapshot = collect_snapshot(spec)
    assert [(m.version, m.role) for m in snapshot.models] == [(1, "latest")]
    assert snapshot.production_version is None and snapshot.models[0].baseline is not None
    panels = {p.key: p for p in figures.report_panels(snapshot)}
    with_data = {k for k, p in panels.items() if p.figure is not None}
    assert with_data == {"timeline", "executions", "training-metrics", "roc", "precision-recall", "confusion"}
    assert "make deploy" in panels["traffic"].empty
    assert "make monitor" in panels["drift"].empty
    assert "safedeploy monitor ground-truth" in panels["quality"].empty
    assert panels["canary"].empty.startswith("no synthetic canary data yet")
    assert "nothing has been deployed" in panels["ledger"].empty

    out = write_report(spec, tmp_path / "report.html")
    with chromium() as browser, page(browser) as view:
        view.goto(out.as_uri())
        view.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
        charts = view.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => gd.data.length)")
        empty = dict(
            view.evaluate("() => [...document.querySelectorAll('.no-data')].map(d => [d.dataset.panel, d.textContent])")
        )
    assert len(charts) == len(with_data) and all(n > 0 for n in charts)
    assert set(empty) == {"traffic", "drift", "quality", "canary", "ledger"}
    assert all(text.startswith("no data yet: ") and len(text) > 30 for text in empty.values())


def test_the_canary_series_is_read_from_the_metric_log(make_spec: Callable[..., PipelineSpec]) -> None:
    spec = make_spec()
    log = MetricLog(spec.state_dir.resolve() / "metrics")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    values = [100.0, 0.0, 100.0]
    log.put(
        [
            *(
                Datum(
                    C.SYNTHETICS_NAMESPACE,
                    C.SYNTHETICS_SUCCESS_METRIC,
                    ((C.SYNTHETICS_CANARY_DIMENSION, "customerchurn-probe"),),
                    start + i * MINUTE,
                    v,
                )
                for i, v in enumerate(values)
            ),
            Datum(
                C.SYNTHETICS_NAMESPACE,
                "Duration",
                ((C.SYNTHETICS_CANARY_DIMENSION, "customerchurn-probe"),),
                start,
                120.0,
            ),
            Datum(
                C.SYNTHETICS_NAMESPACE, C.SYNTHETICS_SUCCESS_METRIC, (("Other", "x"),), start, 50.0
            ),  # not a canary's series
        ]
    )
    snapshot = collect_snapshot(spec)
    (series,) = snapshot.canary
    assert series.name == "customerchurn-probe" and series.values == tuple(values)
    assert series.times == tuple(start + i * MINUTE for i in range(3))
    assert series.threshold == spec.monitoring.synthetic_canary.alarm.threshold == C.PROBE_SUCCESS_THRESHOLD
    assert "canary" not in snapshot.empty_reasons
    (panel,) = [p for p in figures.report_panels(snapshot) if p.key == "canary"]
    assert panel.figure is not None and list(panel.figure.data[0].y) == values
