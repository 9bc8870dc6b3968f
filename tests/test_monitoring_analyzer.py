"""The monitoring job (BYOC contract) on crafted baselines and capture windows: statistics, every violation type,
power-aware verdicts, malformed input, exclusions, failures."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from safedeploy.features import FeatureSchema
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.analyzer.job import main, suggest_baseline

START = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
SCHEMA = FeatureSchema(numeric=("x", "calls"), categorical=(("plan", ("no", "yes")),))
COLUMNS = SCHEMA.features  # x, calls, plan_no, plan_yes


def _csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    path.write_text(",".join(header) + "\n" + "".join(",".join(str(v) for v in row) + "\n" for row in rows))
    return path


def _population(rng: np.random.Generator, n: int, calls_shift: int = 0) -> list[dict[str, Any]]:
    x = np.round(rng.normal(100, 15, n), 1)
    calls = rng.poisson(1.5, n) + calls_shift
    plan = rng.random(n) < 0.3
    return [
        {"x": float(a), "calls": int(b), "plan": "yes" if p else "no"} for a, b, p in zip(x, calls, plan, strict=True)
    ]


def _encoded(record: dict[str, Any]) -> list[Any]:
    return [record["x"], record["calls"], int(record["plan"] == "no"), int(record["plan"] == "yes")]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Suggested baseline of 3,000 training rows in the model's encoded columns, plus the feature schema."""
    root = tmp_path_factory.mktemp("baseline")
    rows = [_encoded(r) for r in _population(np.random.default_rng(0), 3000)]
    suggest_baseline(_csv(root / "baseline.csv", COLUMNS, rows), root / "data")
    (root / "feature-schema.json").write_text(SCHEMA.to_json())
    return root


def _event(
    data: str, *, content_type: str, at: datetime, inference_id: str | None = None, out: str | None = None
) -> dict[str, Any]:
    encoding = "CSV" if content_type == "text/csv" else "JSON"
    capture: dict[str, Any] = {
        "endpointInput": {"observedContentType": content_type, "mode": "INPUT", "data": data, "encoding": encoding}
    }
    if out is not None:
        capture["endpointOutput"] = {
            "observedContentType": "text/csv",
            "mode": "OUTPUT",
            "data": out,
            "encoding": "CSV",
        }
    metadata = {"eventId": "e", "inferenceTime": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"}
    if inference_id:
        metadata["inferenceId"] = inference_id
    return {"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"}


def _write_capture(root: Path, lines: Sequence[dict[str, Any] | str | bytes], at: datetime = START) -> Path:
    folder = root / "endpoint" / "ep" / "AllTraffic" / at.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    body = b"".join(
        (line if isinstance(line, bytes) else (line if isinstance(line, str) else json.dumps(line)).encode()) + b"\n"
        for line in lines
    )
    (folder / f"{len(list(folder.iterdir())):02d}-capture.jsonl").write_bytes(body)
    return root / "endpoint"


def _json_events(records: Sequence[dict[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
    return [
        _event(json.dumps(r), content_type="application/json", at=START + timedelta(seconds=i % 3000), **kwargs)
        for i, r in enumerate(records)
    ]


def _run(
    tmp_path: Path, baseline: Path, source: Path, **extra: str
) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    base, output = tmp_path / "opt-ml", tmp_path / "out"
    env = _env(tmp_path, baseline, source, **extra)
    code = main(env)
    if code != 0:
        return code, {"failure": (base / "output" / "failure").read_text()}, []
    summary = json.loads((output / F.EXECUTION_SUMMARY_FILE).read_text())
    violations = json.loads((output / F.VIOLATIONS_FILE).read_text())["violations"]
    assert (base / "output" / "message").read_text() == summary["message"]
    return code, summary, violations


def _env(tmp_path: Path, baseline: Path, source: Path, **extra: str) -> dict[str, str]:
    """The container contract's environment for one window (10:00-11:00) of ``source`` against ``baseline``."""
    return {
        F.ENV_BASE_DIR: str(tmp_path / "opt-ml"),
        F.ENV_DATASET_FORMAT: F.DATASET_FORMAT_CAPTURE,
        F.ENV_DATASET_SOURCE: str(source),
        F.ENV_OUTPUT_PATH: str(tmp_path / "out"),
        F.ENV_START_TIME: "2026-12-03T10:00:00Z",
        F.ENV_END_TIME: "2026-12-03T11:00:00Z",
        F.ENV_BASELINE_STATISTICS: str(baseline / "data" / F.STATISTICS_FILE),
        F.ENV_BASELINE_CONSTRAINTS: str(baseline / "data" / F.CONSTRAINTS_FILE),
        F.ENV_FEATURE_SCHEMA: str(baseline / "feature-schema.json"),
        F.ENV_PUBLISH_METRICS: "Enabled",
        F.ENV_ENDPOINT_NAME: "ep",
        F.ENV_SCHEDULE_NAME: "schedule",
        **extra,
    }


def _checks(violations: Sequence[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(v["feature_name"], v["constraint_check_type"]) for v in violations}


# --- statistics on a hand-checked dataset --------------------------------------------------------------------
def test_statistics_of_a_tiny_dataset_are_exact(tmp_path: Path) -> None:
    source = _csv(tmp_path / "tiny.csv", ["a", "b", "c"], [[1, 2.5, "x"], [2, "", "y"], [3, 4.5, "x"]])
    suggest_baseline(source, tmp_path / "out")
    stats = json.loads((tmp_path / "out" / F.STATISTICS_FILE).read_text())
    a, b, c = stats["features"]
    assert stats["dataset"] == {"item_count": 3}
    assert a["inferred_type"] == "Integral"
    na = a["numerical_statistics"]
    assert na["common"] == {"num_present": 3, "num_missing": 0}
    assert (na["mean"], na["sum"], na["min"], na["max"]) == (2.0, 6.0, 1.0, 3.0)
    assert na["std_dev"] == pytest.approx(math.sqrt(2 / 3), abs=0, rel=1e-15)  # population, not sample
    buckets = na["distribution"]["kll"]["buckets"]
    assert [b_["count"] for b_ in buckets] == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    assert (buckets[0]["lower_bound"], buckets[5]["lower_bound"], buckets[-1]["upper_bound"]) == (1.0, 2.0, 3.0)
    assert na["distribution"]["kll"]["sketch"] == {"parameters": {"c": 0.64, "k": 2048.0}, "data": [[1.0, 2.0, 3.0]]}
    assert b["inferred_type"] == "Fractional"
    nb = b["numerical_statistics"]
    assert nb["common"] == {"num_present": 2, "num_missing": 1}
    assert (nb["mean"], nb["sum"], nb["std_dev"]) == (3.5, 7.0, 1.0)
    assert c == {
        "name": "c",
        "inferred_type": "String",
        "string_statistics": {
            "common": {"num_present": 3, "num_missing": 0},
            "distinct_count": 2.0,
            "distribution": {"categorical": {"buckets": [{"value": "x", "count": 2}, {"value": "y", "count": 1}]}},
        },
    }
    constraints = json.loads((tmp_path / "out" / F.CONSTRAINTS_FILE).read_text())
    assert constraints["features"][1] == {
        "name": "b",
        "inferred_type": "Fractional",
        "completeness": 2 / 3,
        "num_constraints": {"is_non_negative": True},
    }
    assert constraints["features"][2]["string_constraints"] == {"domains": ["x", "y"]}


def test_a_bad_baseline_dataset_names_the_line(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("a,b\n1,2\n3\n")
    base = tmp_path / "opt-ml"
    code = main(
        {
            F.ENV_BASE_DIR: str(base),
            F.ENV_ANALYSIS_TYPE: "SUGGEST_BASELINE",
            F.ENV_DATASET_SOURCE: str(source),
            F.ENV_OUTPUT_PATH: str(tmp_path / "out"),
        }
    )
    assert code == 1
    assert "line 3: 1 values, but the header names 2 columns" in (base / "output" / "failure").read_text()
    assert not (tmp_path / "out" / F.STATISTICS_FILE).exists()


# --- undrifted windows, drift, power ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_windows_from_the_baselines_distribution_raise_no_drift(tmp_path: Path, baseline: Path, seed: int) -> None:
    records = _population(np.random.default_rng(seed), 1000)
    code, summary, violations = _run(tmp_path, baseline, _write_capture(tmp_path / "capture", _json_events(records)))
    assert code == 0
    assert summary["status"] == F.COMPLETED, violations
    assert violations == []
    assert summary["rows"] == 1000
    assert {v["verdict"] for v in summary["verdicts"].values()} == {"ok"}
    assert summary["metrics"]["feature_baseline_drift_calls"] <= 0.1


def test_a_shifted_feature_is_a_drift_violation_with_its_numbers(tmp_path: Path, baseline: Path) -> None:
    records = _population(np.random.default_rng(7), 1000, calls_shift=3)
    code, summary, violations = _run(tmp_path, baseline, _write_capture(tmp_path / "capture", _json_events(records)))
    assert code == 0 and summary["status"] == F.COMPLETED_WITH_VIOLATIONS
    drift = [v for v in violations if v["constraint_check_type"] == F.BASELINE_DRIFT_CHECK]
    assert [v["feature_name"] for v in drift] == ["calls"]  # x and the plan columns did not move
    (calls,) = drift
    assert calls["description"] == f"Baseline drift distance: {calls['distance']} exceeds threshold: 0.1"
    assert calls["distance"] > 0.5 and calls["method"] == "Robust"
    assert (calls["window_n"], calls["baseline_n"]) == (1000, 3000)
    assert calls["min_detectable_distance"] < 0.1
    assert summary["metrics"]["feature_baseline_drift_calls"] == calls["distance"]
    assert (tmp_path / "opt-ml" / "output" / "message").read_text() == (
        f"CompletedWithViolations: Job completed successfully with {len(violations)} violations."
    )
    metrics = [
        json.loads(line)
        for line in (tmp_path / "opt-ml" / "output" / "metrics" / "cloudwatch" / F.CLOUDWATCH_METRICS_FILE)
        .read_text()
        .splitlines()
    ]
    drift_metric = next(m for m in metrics if m["MetricName"] == "feature_baseline_drift_calls")
    assert drift_metric["Value"] == calls["distance"]
    assert drift_metric["Timestamp"] == "2026-12-03T11:00:00Z"
    assert drift_metric["Dimensions"] == [
        {"Name": "Endpoint", "Value": "ep"},
        {"Name": "MonitoringSchedule", "Value": "schedule"},
    ]
    assert {m["MetricName"] for m in metrics} >= {f"feature_non_null_{c}" for c in COLUMNS}


@pytest.mark.parametrize("method", ["Simple", "Robust"])
def test_a_small_window_is_insufficient_data_never_a_pass_or_an_alarm(
    tmp_path: Path, baseline: Path, method: str
) -> None:
    """20 undrifted records: the Simple method alone would flag most such windows (distance noise ~ 0.3)."""
    constraints = json.loads((baseline / "data" / F.CONSTRAINTS_FILE).read_text())
    constraints["monitoring_config"]["distribution_constraints"]["comparison_method"] = method
    custom = tmp_path / "constraints.json"
    custom.write_text(json.dumps(constraints))
    records = _population(np.random.default_rng(11), 20)
    code, summary, violations = _run(
        tmp_path,
        baseline,
        _write_capture(tmp_path / "capture", _json_events(records)),
        baseline_constraints=str(custom),
    )
    assert code == 0
    assert [v for v in violations if v["constraint_check_type"] == F.BASELINE_DRIFT_CHECK] == []
    verdict = summary["verdicts"]["x"]
    assert verdict["verdict"] == "insufficient_data"
    assert verdict["min_detectable_distance"] > 0.1
    assert "smallest detectable distance" in verdict["reason"]
    assert "feature_baseline_drift_x" not in summary["metrics"]  # no datapoint: the alarm sees missing data
    assert set(summary["insufficient_data"]) == set(COLUMNS)


# --- every violation type ----------------------------------------------------------------------------------------------
def test_data_type_and_completeness_violations(tmp_path: Path, baseline: Path) -> None:
    rng = np.random.default_rng(3)
    rows = [_encoded(r) for r in _population(rng, 600)]
    lines = []
    for i, row in enumerate(rows):
        calls = f"{row[1]}.5" if i % 4 == 0 else str(row[1])  # a quarter of an Integral column is fractional
        x = "" if i % 5 == 0 else str(row[0])  # a fifth of x is missing
        lines.append(_event(f"{x},{calls},{row[2]},{row[3]}", content_type="text/csv", at=START))
    code, _, violations = _run(tmp_path, baseline, _write_capture(tmp_path / "capture", lines))
    assert code == 0
    found = {(v["feature_name"], v["constraint_check_type"]): v for v in violations}
    data_type = found[("calls", F.DATA_TYPE_CHECK)]
    assert data_type["observed"] == 0.75
    assert data_type["description"] == (
        "Data type match requirement is not met. Expected data type: Integral, Expected match: 100.0%. "
        "Observed: Only 75.0% of data is Integral."
    )
    completeness = found[("x", F.COMPLETENESS_CHECK)]
    assert completeness["observed"] == 0.8
    assert (
        completeness["description"]
        == "Data completeness requirement is not met. Expected: 100.0%. Observed: Only 80.0%."
    )


def test_unknown_categories_and_fields_in_raw_records(tmp_path: Path, baseline: Path) -> None:
    records = _population(np.random.default_rng(4), 500)
    for record in records[:50]:
        record["plan"] = "gold"
    for record in records[:10]:
        record["coupon"] = "X1"
    code, _, violations = _run(tmp_path, baseline, _write_capture(tmp_path / "capture", _json_events(records)))
    assert code == 0
    found = {(v["feature_name"], v["constraint_check_type"]): v for v in violations}
    categorical = found[("plan", F.CATEGORICAL_VALUES_CHECK)]
    assert categorical["unknown_values"] == {"gold": 50}
    assert categorical["observed"] == 0.9
    assert found[("coupon", F.EXTRA_COLUMN_CHECK)]["window_n"] == 10


def test_rows_with_a_column_too_many_are_one_preflight_violation(tmp_path: Path, baseline: Path) -> None:
    """The tutorial's 60 violations: the capture and the baseline disagreed on a column. Here: one violation."""
    rows = [_encoded(r) for r in _population(np.random.default_rng(5), 300)]
    lines = [_event(",".join(str(v) for v in [0.3, *row]), content_type="text/csv", at=START) for row in rows]
    code, summary, violations = _run(tmp_path, baseline, _write_capture(tmp_path / "capture", lines))
    assert code == 0 and summary["status"] == F.COMPLETED_WITH_VIOLATIONS
    assert len(violations) == 1
    (violation,) = violations
    assert violation["constraint_check_type"] == F.EXTRA_COLUMN_CHECK
    assert violation["observed_columns"] == 5 and violation["baseline_columns"] == 4
    assert "300 of 300 captured CSV rows have 5 columns; the baseline has 4" in violation["description"]
    assert summary["malformed"] == {"wrong_column_count": 300}


def test_rows_with_a_column_missing_are_a_missing_column_violation(tmp_path: Path, baseline: Path) -> None:
    rows = [_encoded(r) for r in _population(np.random.default_rng(6), 100)]
    lines = [_event(",".join(str(v) for v in row[:3]), content_type="text/csv", at=START) for row in rows]
    _, _, violations = _run(tmp_path, baseline, _write_capture(tmp_path / "capture", lines))
    assert _checks(violations) == {("(capture)", F.MISSING_COLUMN_CHECK)}


def test_a_baseline_with_the_label_is_named_once(tmp_path: Path) -> None:
    """AWS's churn tutorial baselined the label with the features: say so once, not per feature."""
    rows = [[int(r["calls"] > 3), *_encoded(r)] for r in _population(np.random.default_rng(8), 500)]
    suggest_baseline(_csv(tmp_path / "baseline.csv", ["Churn?", *COLUMNS], rows), tmp_path / "baseline" / "data")
    (tmp_path / "baseline" / "feature-schema.json").write_text(SCHEMA.to_json())
    lines = [_event(",".join(str(v) for v in row[1:]), content_type="text/csv", at=START) for row in rows]
    _, _, violations = _run(tmp_path, tmp_path / "baseline", _write_capture(tmp_path / "capture", lines))
    assert len(violations) == 2  # the baseline's label, and the rows one column short of that baseline
    assert violations[0]["feature_name"] == "Churn?"
    assert "label column 'Churn?' (position 1)" in violations[0]["description"]


# --- input that is wrong, empty or not ours --------------------------------------------------------------------------
def test_malformed_lines_are_counted_by_kind_and_never_stop_the_job(tmp_path: Path, baseline: Path) -> None:
    good = _json_events(_population(np.random.default_rng(9), 300))
    bad_base64 = _event("x", content_type="text/csv", at=START)
    bad_base64["captureData"]["endpointInput"]["encoding"] = "BASE64"
    bad_base64["captureData"]["endpointInput"]["data"] = "%%%not base64"
    valid_base64 = _event("", content_type="text/csv", at=START)
    valid_base64["captureData"]["endpointInput"].update(
        encoding="BASE64", data=base64.b64encode(b"100.0,1,1,0").decode()
    )
    lines: list[Any] = [
        *good,
        '{"captureData": {"endpointInput": ',  # cut short
        b"\xff\xfe not json",
        json.dumps({"eventMetadata": {"inferenceTime": "2026-12-03T10:00:00Z"}, "eventVersion": "0"}),
        bad_base64,
        valid_base64,
        _event("1,2,3,4,5,6", content_type="text/csv", at=START),
        _event("{not json", content_type="application/json", at=START),
        _event("<xml/>", content_type="application/xml", at=START),
    ]
    code, summary, _ = _run(tmp_path, baseline, _write_capture(tmp_path / "capture", lines))
    assert code == 0
    assert summary["malformed"] == {
        "invalid_json": 2,
        "missing_fields": 1,
        "bad_encoding": 2,
        "wrong_column_count": 1,
        "bad_input": 1,
    }
    assert summary["rows"] == 301  # the 300 records and the base64 row
    assert all(
        summary["malformed_examples"][kind].startswith("00-capture.jsonl:")
        for kind in ("invalid_json", "missing_fields")
    )


def test_synthetic_and_hook_rows_are_kept_out_and_counted(tmp_path: Path, baseline: Path) -> None:
    records = _population(np.random.default_rng(10), 400)
    shifted = _population(np.random.default_rng(10), 200, calls_shift=5)
    lines = [
        *_json_events(records),
        *_json_events(shifted, inference_id="synthetic-abc"),
        *_json_events(shifted[:10], inference_id="known-rows-1"),
    ]
    _, summary, violations = _run(tmp_path, baseline, _write_capture(tmp_path / "capture", lines))
    assert summary["rows"] == 400
    assert summary["excluded"] == {"synthetic": 200, "known-rows": 10}
    assert violations == []


def test_records_outside_the_window_are_counted_not_analysed(tmp_path: Path, baseline: Path) -> None:
    inside = _json_events(_population(np.random.default_rng(12), 300))
    late = [
        _event(
            e["captureData"]["endpointInput"]["data"],
            content_type="application/json",
            at=START + timedelta(hours=1, seconds=5),
        )
        for e in inside[:40]
    ]
    source = _write_capture(tmp_path / "capture", inside)
    _write_capture(tmp_path / "capture", late, at=START + timedelta(hours=1))
    _, summary, _ = _run(tmp_path, baseline, source)
    assert summary["rows"] == 300
    assert summary["outside_window"] == 0  # the next hour's folder is not even read (Model Monitor's layout)
    _, later, _ = _run(tmp_path / "later", baseline, source, end_time="2026-12-03T12:00:00Z")
    assert later["rows"] == 340


def test_an_empty_window_is_insufficient_data(tmp_path: Path, baseline: Path) -> None:
    source = tmp_path / "capture"
    source.mkdir()
    code, summary, violations = _run(tmp_path, baseline, source)
    assert code == 0
    assert summary["status"] == F.INSUFFICIENT_DATA and violations == []
    assert (tmp_path / "opt-ml" / "output" / "message").read_text().startswith("InsufficientData: no captured records")
    assert not (tmp_path / "opt-ml" / "output" / "metrics" / "cloudwatch" / F.CLOUDWATCH_METRICS_FILE).exists()


@pytest.mark.parametrize("damage", ["missing", "not-json", "wrong-schema"])
def test_a_missing_or_corrupt_baseline_fails_naming_the_file(tmp_path: Path, baseline: Path, damage: str) -> None:
    statistics = tmp_path / "statistics.json"
    if damage == "not-json":
        statistics.write_text('{"version": 0.0, "features": [')
    elif damage == "wrong-schema":
        statistics.write_text('{"version": 0.0, "features": [{"name": "x"}]}')
    source = _write_capture(tmp_path / "capture", _json_events(_population(np.random.default_rng(13), 10)))
    code, result, _ = _run(tmp_path, baseline, source, baseline_statistics=str(statistics))
    assert code == 1
    assert str(statistics) in result["failure"]
    assert result["failure"].startswith("ClientError: baseline statistics")
    assert (tmp_path / "opt-ml" / "output" / "message").read_text().startswith("Failed: baseline statistics")


def test_missing_contract_variables_are_named(tmp_path: Path) -> None:
    code = main({F.ENV_BASE_DIR: str(tmp_path)})
    assert code == 1
    assert "dataset_source is not set" in (tmp_path / "output" / "failure").read_text()


def test_on_aws_the_job_publishes_its_metrics_itself(tmp_path: Path, baseline: Path) -> None:
    """A plain Processing job has no Model Monitor platform to publish the metric file: PutMetricData."""
    import boto3
    from botocore.stub import ANY, Stubber

    from safedeploy.monitoring.analyzer.job import JobPaths, MonitoringSettings, run_monitoring

    records = _population(np.random.default_rng(14), 1000, calls_shift=3)
    source = _write_capture(tmp_path / "capture", _json_events(records))
    client = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    stub = Stubber(client)
    stub.add_response("put_metric_data", {}, {"Namespace": "/aws/sagemaker/Endpoints/data-metric", "MetricData": ANY})
    settings = MonitoringSettings.from_environ(_env(tmp_path, baseline, source, metrics_publisher="cloudwatch"))
    with stub:
        summary = run_monitoring(settings, JobPaths(tmp_path / "opt-ml"), cloudwatch=client)
        stub.assert_no_pending_responses()  # the one PutMetricData was made, in the data-metric namespace
    assert summary["metrics"]["feature_baseline_drift_calls"] > 0.5


def test_partitioned_summaries_equal_one_process(
    tmp_path: Path, baseline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window is cut into fixed partitions; one process or several give the same statistics, bit for bit."""
    from safedeploy.monitoring.analyzer import capture, parallel

    monkeypatch.setattr(capture, "GROUP_BYTES", 20_000)
    monkeypatch.setattr(parallel, "GROUP_BYTES", 20_000)
    source = tmp_path / "capture"
    records = _population(np.random.default_rng(15), 3000)
    for part in range(6):
        _write_capture(source, _json_events(records[part * 500 : (part + 1) * 500]))
    files = capture.capture_files(source)
    decoder = capture.CaptureDecoder(COLUMNS, SCHEMA, start=None, end=None)
    assert len(parallel.partitions(files, 20_000)) >= 3
    one = parallel.summarize_window(decoder, files, tmp_path / "scratch-1", workers=1)
    two = parallel.summarize_window(decoder, files, tmp_path / "scratch-2", workers=2)
    assert one.rows == two.rows == 3000
    assert [c.to_json() for c in one.columns] == [c.to_json() for c in two.columns]
    whole = np.array([r["x"] for r in records])
    x = one.columns[0]
    assert x.total == pytest.approx(whole.sum(), rel=1e-12)
    assert x.std_dev == pytest.approx(whole.std(), rel=1e-12)
    assert (x.minimum, x.maximum) == (whole.min(), whole.max())
    assert x.sketch.count == 3000
    assert not (tmp_path / "scratch-2").exists()  # the workers' files are cleaned up


def test_a_string_column_in_csv_capture_gets_domain_and_categorical_drift_checks(tmp_path: Path) -> None:
    """A baseline with a String feature (any CSV with a header): the window's values are counted and compared."""
    rng = np.random.default_rng(16)
    plans = rng.choice(["basic", "gold"], 2000, p=[0.7, 0.3])
    suggest_baseline(
        _csv(
            tmp_path / "b.csv",
            ["x", "plan"],
            [[round(v, 1), p] for v, p in zip(rng.normal(100, 15, 2000), plans, strict=True)],
        ),
        tmp_path / "baseline" / "data",
    )
    window_plans = rng.choice(["basic", "gold", "platinum"], 1000, p=[0.3, 0.6, 0.1])
    lines = [_event(f"{rng.normal(100, 15):.1f},{p}", content_type="text/csv", at=START) for p in window_plans]
    base, source = tmp_path / "opt", _write_capture(tmp_path / "capture", lines)
    env = _env(tmp_path, tmp_path / "baseline", source)
    del env[F.ENV_FEATURE_SCHEMA]  # a dataset of its own, not the model's encoded columns
    assert main({**env, F.ENV_BASE_DIR: str(base)}) == 0
    violations = json.loads((tmp_path / "out" / F.VIOLATIONS_FILE).read_text())["violations"]
    found = {(v["feature_name"], v["constraint_check_type"]): v for v in violations}
    assert found[("plan", F.CATEGORICAL_VALUES_CHECK)]["unknown_values"] == ["platinum"]
    drift = found[("plan", F.BASELINE_DRIFT_CHECK)]
    assert drift["method"] == "LInfinity" and drift["distance"] > 0.1
    assert ("x", F.BASELINE_DRIFT_CHECK) not in found
    statistics = json.loads((tmp_path / "out" / F.STATISTICS_FILE).read_text())
    plan = next(f for f in statistics["features"] if f["name"] == "plan")["string_statistics"]
    assert plan["distinct_count"] == 3.0 and plan["common"]["num_present"] == 1000
