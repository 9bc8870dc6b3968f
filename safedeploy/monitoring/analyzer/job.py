"""The Processing job's entry point: ``python -m safedeploy.monitoring.analyzer.job``.

Two analyses, chosen by ``analysis_type`` (as Model Monitor's analyzer image is driven):

* ``SUGGEST_BASELINE``: ``dataset_source`` is a CSV with a header row (a file, or a folder of them); writes
  ``statistics.json``, ``constraints.json`` and ``digests.json`` (their sha256, as SageMaker's ``ContentDigest``)
  to ``output_path``.
* ``SUGGEST_OUTPUT_BASELINE``: the model's scores. ``dataset_source`` is a SageMaker CSV (label first, no header;
  a file or a folder of them, e.g. the validation split), ``model_archive`` the training job's ``model.tar.gz`` (or
  a folder holding it); the rows are scored with XGBoost and the single column ``score`` is baselined as
  ``SUGGEST_BASELINE`` would baseline a CSV of a ``score`` header and one ``.9g`` score per line; writes the same
  three files.
* ``MODEL_MONITOR`` (the default): the bring-your-own-container contract. ``dataset_source`` holds the
  window's data-capture JSONL (``<endpoint>/<variant>/yyyy/mm/dd/hh``), ``start_time``/``end_time`` bound it,
  ``baseline_statistics``/``baseline_constraints`` name the baseline. Writes ``statistics.json``,
  ``constraints.json`` and ``constraint_violations.json`` (plus ``output_statistics.json`` and
  ``execution_summary.json``) to ``output_path``, CloudWatch metric lines under
  ``<base>/output/metrics/cloudwatch`` when ``publish_cloudwatch_metrics`` is ``Enabled``, and
  ``<base>/output/message`` (``CompletedWithViolations: Job completed successfully with N violations.``).

``<base>`` is ``/opt/ml``, or ``$SAGEMAKER_BASE_DIR`` locally. A missing or corrupt baseline fails the job
(exit 1, ``<base>/output/failure`` and the message name the file); an empty window ends ``InsufficientData``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from safedeploy.features import FeatureSchema
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.analyzer import model_quality_job as MQ
from safedeploy.monitoring.analyzer.capture import CaptureDecoder, capture_files, iso_millis, parse_time
from safedeploy.monitoring.analyzer.checks import CheckResult, WindowFeature, evaluate
from safedeploy.monitoring.analyzer.cloudwatch import cloudwatch_client, put_metric_data
from safedeploy.monitoring.analyzer.constraints import Constraints, read_constraints, suggest_constraints
from safedeploy.monitoring.analyzer.parallel import summarize_window
from safedeploy.monitoring.analyzer.partials import NumericPartial
from safedeploy.monitoring.analyzer.preflight import preflight, raw_field_violations
from safedeploy.monitoring.analyzer.statistics import (
    BaselineError,
    BaselineFeature,
    dataset_statistics,
    numeric_document,
    read_baseline_statistics,
    write_json,
)
from safedeploy.monitoring.analyzer.table import Column, DatasetError, Table, TypeCounts, read_csv_with_header

UTC = timezone.utc  # datetime.UTC is Python 3.11+; the framework container may run an older Python

Json = dict[str, Any]


class JobError(Exception):
    """The job cannot run (bad configuration or baseline); the message names the problem."""


@dataclass(frozen=True)
class JobPaths:
    """Where the container contract puts things."""

    base: Path

    @property
    def message(self) -> Path:
        """``/opt/ml/output/message``: the job's one-line outcome (DescribeProcessingJob's ExitMessage)."""
        return self.base / "output" / F.MESSAGE_FILE

    @property
    def failure(self) -> Path:
        """``/opt/ml/output/failure``: why the job failed (its FailureReason)."""
        return self.base / "output" / "failure"

    @property
    def metrics_dir(self) -> Path:
        """``/opt/ml/output/metrics/cloudwatch``."""
        return self.base / "output" / "metrics" / "cloudwatch"


def _require(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise JobError(f"the environment variable {name} is not set (SageMaker's Model Monitor container contract)")
    return value


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, "utf-8")
    temporary.replace(path)


# --- suggest-baseline ---------------------------------------------------------------------------------------
def suggest_baseline(dataset: Path, output: Path, distribution: Mapping[str, Any] | None = None) -> Json:
    """Baseline a CSV with a header (a file or a folder of ``*.csv``); write statistics, constraints and digests.

    ``distribution`` overrides ``monitoring_config.distribution_constraints`` in the suggested constraints.
    """
    files = sorted(dataset.rglob("*.csv")) if dataset.is_dir() else [dataset]
    if not files:
        raise JobError(f"no CSV files under {dataset}")
    texts = [(path, _read_text(path, "dataset")) for path in files]
    tables = [read_csv_with_header(str(path), text) for path, text in texts]
    table = tables[0] if len(tables) == 1 else _concatenate(tables, [str(p) for p, _ in texts])
    return _write_baseline(table, output, distribution)


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        raise JobError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JobError(f"{what} {path} cannot be read as UTF-8 text: {exc}") from None


def _write_baseline(table: Table, output: Path, distribution: Mapping[str, Any] | None) -> Json:
    """``statistics.json``, ``constraints.json`` and ``digests.json`` (the sha256 of the bytes written)."""
    statistics = dataset_statistics(table).document
    constraints = suggest_constraints(statistics)
    constraints["monitoring_config"]["distribution_constraints"].update(distribution or {})
    write_json(output / F.STATISTICS_FILE, statistics)
    write_json(output / F.CONSTRAINTS_FILE, constraints)
    digests = {
        name: "sha256:" + hashlib.sha256((output / name).read_bytes()).hexdigest()
        for name in (F.STATISTICS_FILE, F.CONSTRAINTS_FILE)
    }
    write_json(output / F.DIGESTS_FILE, digests)
    return {"item_count": table.item_count, "features": len(table.columns)}


def _model_json(model_archive: Path) -> bytes:
    """``xgboost-model.json`` of a training job's ``model.tar.gz`` (the file, or the one folder holding it)."""
    archive = model_archive
    if model_archive.is_dir():
        found = sorted(model_archive.rglob("*.tar.gz"))
        if not found:
            raise JobError(f"no model.tar.gz under {model_archive}")
        archive = found[0]
    try:
        with tarfile.open(archive, "r:*") as tar:
            try:
                member = tar.extractfile(F.MODEL_FILE)
            except KeyError:
                member = None
            if member is None:
                raise JobError(f"model archive {archive} has no {F.MODEL_FILE}")
            return member.read()
    except FileNotFoundError:
        raise JobError(f"model archive {archive} does not exist") from None
    except (OSError, tarfile.TarError) as exc:
        raise JobError(f"model archive {archive} cannot be read: {exc}") from None


def model_scores(dataset: Path, model_archive: Path) -> list[str]:
    """The model's scores for the SageMaker CSV rows under ``dataset`` (label first), as ``.9g`` text."""
    return [f"{float(s):.9g}" for s in scored_rows(dataset, model_archive)[1]]


def scored_rows(dataset: Path, model_archive: Path) -> tuple[Any, Any]:
    """(labels, float32 scores) of the SageMaker CSV rows under ``dataset`` (label first), scored by the model."""
    import xgboost as xgb  # the XGBoost framework image has it; only the baseline analyses need it

    files = sorted(p for p in dataset.rglob("*.csv")) if dataset.is_dir() else [dataset]
    if not files:
        raise JobError(f"no CSV files under {dataset}")
    booster = xgb.Booster()
    model = _model_json(model_archive)
    try:
        booster.load_model(bytearray(model))
    except xgb.core.XGBoostError as exc:
        raise JobError(f"{F.MODEL_FILE} of {model_archive} is not an XGBoost model: {exc}") from None
    booster.set_param({"nthread": 1})
    width = booster.num_features()
    labels: list[Any] = []
    scores: list[Any] = []
    for path in files:
        text = _read_text(path, "dataset")
        if not text.strip():
            continue
        try:
            rows = np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2)
        except ValueError as exc:
            raise JobError(f"dataset {path} is not a numeric CSV without a header (label first): {exc}") from None
        if rows.shape[1] - 1 != width:
            raise JobError(
                f"dataset {path} has {rows.shape[1]} columns: expected the label and the model's {width} features"
            )
        predicted = booster.inplace_predict(rows[:, 1:].astype(np.float32), validate_features=False)
        labels.append(rows[:, 0])
        scores.append(np.asarray(predicted, dtype=np.float32).reshape(-1))
    if not scores:
        raise JobError(f"dataset {dataset} has no rows to score")
    return np.concatenate(labels), np.concatenate(scores)


def suggest_output_baseline(
    dataset: Path, model_archive: Path, output: Path, distribution: Mapping[str, Any] | None = None
) -> Json:
    """Baseline the model's scores on ``dataset``: the column ``score``, exactly as ``SUGGEST_BASELINE`` would."""
    scores = model_scores(dataset, model_archive)
    text = F.OUTPUT_FEATURE + "\n" + "".join(s + "\n" for s in scores)
    table = read_csv_with_header(f"scores of {dataset}", text)
    return _write_baseline(table, output, distribution)


def _concatenate(tables: list[Table], names: list[str]) -> Table:
    header = tables[0].names()
    for table, name in zip(tables[1:], names[1:]):
        if table.names() != header:
            raise JobError(f"{name}: its header differs from {names[0]}'s; every part must have the same columns")
    columns = []
    for index, first in enumerate(tables[0].columns):
        parts = [t.columns[index] for t in tables]
        types = TypeCounts()
        for part in parts:
            types.add(part.types)
        strings = None
        if all(p.strings is not None for p in parts):
            strings = [s for p in parts for s in (p.strings or [])]
        columns.append(Column(first.name, np.concatenate([p.values for p in parts]), types, strings))
    return Table(columns, sum(t.item_count for t in tables))


# --- monitoring --------------------------------------------------------------------------------------------------
def _check_partials(
    names: list[str],
    partials: list[NumericPartial],
    rows: int,
    baseline: list[BaselineFeature],
    constraints: Constraints,
    significance: float,
    categories: Mapping[str, Mapping[str, int]] | None = None,
) -> tuple[Json, CheckResult]:
    """The window's ``statistics.json`` from its merged aggregates, then every check against the baseline.

    ``categories`` holds the counted values of String features (their domain and categorical drift checks).
    """
    types = {f.name: f.inferred_type for f in baseline}
    features: list[Json] = []
    window: dict[str, WindowFeature] = {}
    for name, partial in zip(names, partials):
        inferred = types.get(name) or partial.types.inferred_type()
        if inferred in (F.INTEGRAL, F.FRACTIONAL):
            features.append(numeric_document(name, inferred, partial))
            window[name] = WindowFeature(name, partial.types, rows, partial.sketch)
        else:
            counts = dict((categories or {}).get(name, {}))
            strings: Json = {"common": {"num_present": partial.types.present, "num_missing": partial.types.null}}
            if counts:
                ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
                strings["distinct_count"] = float(len(counts))
                strings["distribution"] = {"categorical": {"buckets": [{"value": v, "count": n} for v, n in ordered]}}
            features.append({"name": name, "inferred_type": inferred, "string_statistics": strings})
            window[name] = WindowFeature(name, partial.types, rows, None, counts or None)
    document: Json = {"version": 0.0, "dataset": {"item_count": rows}, "features": features}
    return document, evaluate(constraints, baseline, window, significance=significance)


@dataclass(frozen=True)
class MonitoringSettings:
    """The job's inputs, read from the environment (the container contract, plus this analyzer's extras)."""

    dataset_source: Path
    output_path: Path
    start: datetime | None
    end: datetime | None
    baseline_statistics: Path
    baseline_constraints: Path
    publish_metrics: bool
    endpoint: str
    schedule: str
    feature_schema: Path | None
    output_statistics: Path | None
    output_constraints: Path | None
    exclude_prefixes: tuple[str, ...]
    significance: float
    workers: int | None
    metrics_publisher: str = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> MonitoringSettings:
        """Read and validate the settings."""

        def path(name: str) -> Path | None:
            value = environ.get(name, "").strip()
            return Path(value) if value else None

        def moment(name: str) -> datetime | None:
            value = environ.get(name, "").strip()
            if not value:
                return None
            try:
                return parse_time(value)
            except ValueError:
                raise JobError(f"{name}={value!r} is not an ISO-8601 time such as 2026-12-03T10:00:00Z") from None

        fmt = environ.get(F.ENV_DATASET_FORMAT, "").strip()
        if fmt:
            try:
                parsed = json.loads(fmt)
            except json.JSONDecodeError:
                raise JobError(f"{F.ENV_DATASET_FORMAT} is not JSON: {fmt!r}") from None
            if not isinstance(parsed, dict) or "sagemakerCaptureJson" not in parsed:
                raise JobError(
                    f"{F.ENV_DATASET_FORMAT}={fmt}: this monitor reads an endpoint's data capture "
                    '({"sagemakerCaptureJson": {...}}); batch-transform formats are not supported'
                )
        try:
            significance = float(environ.get(F.ENV_SIGNIFICANCE, "0.05"))
        except ValueError:
            raise JobError(f"{F.ENV_SIGNIFICANCE} must be a number between 0 and 1") from None
        if not 0 < significance < 1:
            raise JobError(f"{F.ENV_SIGNIFICANCE} must be between 0 and 1, got {significance}")
        prefixes = environ.get(
            F.ENV_EXCLUDE_INFERENCE_ID_PREFIXES, f"{F.SYNTHETIC_INFERENCE_PREFIX},{F.KNOWN_ROWS_INFERENCE_PREFIX}"
        )
        settings = cls(
            dataset_source=Path(_require(environ, F.ENV_DATASET_SOURCE)),
            output_path=Path(_require(environ, F.ENV_OUTPUT_PATH)),
            start=moment(F.ENV_START_TIME),
            end=moment(F.ENV_END_TIME),
            baseline_statistics=Path(_require(environ, F.ENV_BASELINE_STATISTICS)),
            baseline_constraints=Path(_require(environ, F.ENV_BASELINE_CONSTRAINTS)),
            publish_metrics=environ.get(F.ENV_PUBLISH_METRICS, "Disabled").strip() == "Enabled",
            endpoint=environ.get(F.ENV_ENDPOINT_NAME, ""),
            schedule=environ.get(F.ENV_SCHEDULE_NAME, ""),
            feature_schema=path(F.ENV_FEATURE_SCHEMA),
            output_statistics=path(F.ENV_OUTPUT_BASELINE_STATISTICS),
            output_constraints=path(F.ENV_OUTPUT_BASELINE_CONSTRAINTS),
            exclude_prefixes=tuple(p.strip() for p in prefixes.split(",") if p.strip()),
            significance=significance,
            workers=_workers(environ.get(F.ENV_WORKERS, "")),
            metrics_publisher=environ.get(F.ENV_METRICS_PUBLISHER, "").strip(),
        )
        if settings.start and settings.end and settings.start >= settings.end:
            raise JobError(f"start_time {iso_millis(settings.start)} is not before end_time {iso_millis(settings.end)}")
        return settings


def _workers(text: str) -> int | None:
    if not text.strip():
        return None
    try:
        workers = int(text)
    except ValueError:
        workers = 0
    if not 1 <= workers <= 64:
        raise JobError(f"{F.ENV_WORKERS}={text!r} must be a whole number of processes from 1 to 64")
    return workers


def run_monitoring(settings: MonitoringSettings, paths: JobPaths, cloudwatch: Any = None) -> Json:
    """Analyse one window; write the reports; return the execution summary."""
    started = time.perf_counter()
    baseline_n, baseline = read_baseline_statistics(settings.baseline_statistics)
    constraints = read_constraints(settings.baseline_constraints)
    schema = None
    if settings.feature_schema is not None:
        try:
            schema = FeatureSchema.from_json(settings.feature_schema.read_bytes())
        except FileNotFoundError:
            raise BaselineError(f"feature schema {settings.feature_schema} does not exist") from None
        except ValueError as exc:
            raise BaselineError(f"feature schema {settings.feature_schema}: {exc}") from None
    output_baseline = None
    if settings.output_statistics is not None and settings.output_constraints is not None:
        output_baseline = (
            read_baseline_statistics(settings.output_statistics)[1],
            read_constraints(settings.output_constraints),
        )
    names = [f.name for f in baseline]
    if not settings.dataset_source.is_dir():
        raise JobError(f"dataset_source {settings.dataset_source} is not a directory")
    files = capture_files(settings.dataset_source, settings.start, settings.end)
    decoder = CaptureDecoder(
        names,
        schema,
        start=settings.start,
        end=settings.end,
        exclude_prefixes=settings.exclude_prefixes,
        string_columns=[f.name for f in baseline if f.inferred_type == F.STRING],
    )
    window = summarize_window(decoder, files, paths.base / "work" / "decode", settings.workers)
    data = window.data
    read_seconds = time.perf_counter() - started

    rows = window.rows
    summary: Json = {
        "window": {
            "start_time": iso_millis(settings.start) if settings.start else None,
            "end_time": iso_millis(settings.end) if settings.end else None,
        },
        "files": len(files),
        "records": data.records,
        "rows": rows,
        "excluded": dict(data.excluded),
        "outside_window": data.outside_window,
        "malformed": dict(data.problems.counts),
        "malformed_examples": data.problems.examples,
        "content_types": dict(data.content_types),
        "baseline_item_count": baseline_n,
    }
    result = CheckResult()
    blocking = preflight(names, schema, data, result)
    statistics_doc: Json = {"version": 0.0, "dataset": {"item_count": rows}, "features": []}
    if rows and not blocking:
        statistics_doc, checks = _check_partials(
            names, window.columns, rows, baseline, constraints, settings.significance, data.categories
        )
        result.violations.extend(checks.violations)
        result.verdicts.update(checks.verdicts)
        result.metrics.update(checks.metrics)
        raw_field_violations(data, schema, result)
        if output_baseline is not None and window.scores.count:
            output_statistics, output_constraints = output_baseline
            output_doc, output_checks = _check_partials(
                [F.OUTPUT_FEATURE], [window.scores], rows, output_statistics, output_constraints, settings.significance
            )
            write_json(settings.output_path / F.OUTPUT_STATISTICS_FILE, output_doc)
            for violation in output_checks.violations:
                violation["source"] = "endpointOutput"
            result.violations.extend(output_checks.violations)
            result.verdicts.update({f"{F.OUTPUT_FEATURE} (output)": v for v in output_checks.verdicts.values()})
            result.metrics.update(output_checks.metrics)
    summary["verdicts"] = result.verdicts
    summary["violations"] = len(result.violations)
    summary["violations_by_check"] = dict(Counter(v["constraint_check_type"] for v in result.violations))
    summary["insufficient_data"] = sorted(
        n for n, v in result.verdicts.items() if v.get("verdict") == "insufficient_data"
    )
    if result.violations:
        status = F.COMPLETED_WITH_VIOLATIONS
        message = f"{status}: Job completed successfully with {len(result.violations)} violations."
    elif rows == 0:
        status = F.INSUFFICIENT_DATA
        message = (
            f"{F.INSUFFICIENT_DATA}: no captured records in the window "
            f"({data.outside_window} outside it, {sum(data.excluded.values())} synthetic or hook records excluded, "
            f"{data.problems.total} malformed)."
        )
    else:
        status = F.COMPLETED
        message = f"{status}: Job completed successfully with no violations."
    summary["status"] = status
    summary["message"] = message
    statistics_out = statistics_doc
    write_json(settings.output_path / F.STATISTICS_FILE, statistics_out)
    write_json(settings.output_path / F.CONSTRAINTS_FILE, suggest_constraints(statistics_out))
    write_json(settings.output_path / F.VIOLATIONS_FILE, {"violations": result.violations})
    summary["seconds"] = {"read": round(read_seconds, 3), "total": round(time.perf_counter() - started, 3)}
    summary["metrics"] = result.metrics
    write_json(settings.output_path / F.EXECUTION_SUMMARY_FILE, summary)
    if settings.publish_metrics and rows:
        _write_metrics(paths, settings, result.metrics, cloudwatch)
    _write_text(paths.message, message)
    return summary


def _write_metrics(
    paths: JobPaths, settings: MonitoringSettings, metrics: Mapping[str, float], client: Any = None
) -> None:
    """CloudWatch metric lines in the container contract's format (one JSON object per line).

    With ``metrics_publisher=cloudwatch`` also PutMetricData (``client``, else boto3's).
    """
    stamp = (settings.end or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    dimensions = [
        {"Name": F.DIMENSION_ENDPOINT, "Value": settings.endpoint},
        {"Name": F.DIMENSION_SCHEDULE, "Value": settings.schedule},
    ]
    lines = [
        {"MetricName": name, "Timestamp": stamp, "Dimensions": dimensions, "Value": value, "Unit": "None"}
        for name, value in sorted(metrics.items())
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    _write_text(paths.metrics_dir / F.CLOUDWATCH_METRICS_FILE, text)
    if settings.metrics_publisher == "cloudwatch" and lines:
        put_metric_data(client if client is not None else cloudwatch_client(), lines)


def _distribution_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if threshold := env.get(F.ENV_COMPARISON_THRESHOLD, "").strip():
        try:
            value = float(threshold)
        except ValueError:
            value = -1.0
        if not 0 < value <= 1:
            raise JobError(f"{F.ENV_COMPARISON_THRESHOLD}={threshold!r} must be a number in (0, 1]")
        overrides["comparison_threshold"] = value
    if method := env.get(F.ENV_COMPARISON_METHOD, "").strip():
        if method not in F.COMPARISON_METHODS:
            raise JobError(f"{F.ENV_COMPARISON_METHOD}={method!r} must be one of {', '.join(F.COMPARISON_METHODS)}")
        overrides["comparison_method"] = method
    return overrides


def main(environ: Mapping[str, str] | None = None) -> int:
    """Run the analysis the environment asks for; 0 on success (violations included), 1 on failure."""
    env = dict(os.environ if environ is None else environ)
    paths = JobPaths(Path(env.get(F.ENV_BASE_DIR) or F.OPT_ML))
    try:
        analysis = env.get(F.ENV_ANALYSIS_TYPE, "MODEL_MONITOR").strip()
        if analysis == "SUGGEST_BASELINE":
            done = suggest_baseline(
                Path(_require(env, F.ENV_DATASET_SOURCE)),
                Path(_require(env, F.ENV_OUTPUT_PATH)),
                _distribution_overrides(env),
            )
            _write_text(
                paths.message, f"Completed: baseline of {done['item_count']} rows, {done['features']} features."
            )
            print(json.dumps(done))
            return 0
        if analysis == "SUGGEST_OUTPUT_BASELINE":
            done = suggest_output_baseline(
                Path(_require(env, F.ENV_DATASET_SOURCE)),
                Path(_require(env, F.ENV_MODEL_ARCHIVE)),
                Path(_require(env, F.ENV_OUTPUT_PATH)),
                _distribution_overrides(env),
            )
            _write_text(paths.message, f"Completed: baseline of the model's scores on {done['item_count']} rows.")
            print(json.dumps(done))
            return 0
        if analysis == F.ANALYSIS_MODEL_QUALITY:
            quality = MQ.run_model_quality(MQ.QualitySettings.from_environ(env), paths.base)
            print(quality["message"])
            return 0
        if analysis == F.ANALYSIS_SUGGEST_MODEL_QUALITY_BASELINE:
            threshold, seed, auc_threshold = MQ.baseline_settings(env)
            labels, scores = scored_rows(
                Path(_require(env, F.ENV_DATASET_SOURCE)), Path(_require(env, F.ENV_MODEL_ARCHIVE))
            )
            done = MQ.suggest_model_quality_baseline(
                labels,
                scores.astype(np.float64),
                Path(_require(env, F.ENV_OUTPUT_PATH)),
                threshold=threshold,
                seed=seed,
                auc_threshold=auc_threshold,
                when=MQ.evaluation_time(env),
            )
            _write_text(
                paths.message, f"Completed: model-quality baseline on {done['item_count']} rows, auc {done['auc']}."
            )
            print(json.dumps(done))
            return 0
        if analysis != "MODEL_MONITOR":
            raise JobError(
                f"{F.ENV_ANALYSIS_TYPE}={analysis!r}: expected MODEL_MONITOR, SUGGEST_BASELINE, "
                f"SUGGEST_OUTPUT_BASELINE, {F.ANALYSIS_MODEL_QUALITY} or {F.ANALYSIS_SUGGEST_MODEL_QUALITY_BASELINE}"
            )
        summary = run_monitoring(MonitoringSettings.from_environ(env), paths)
        print(summary["message"])
        return 0
    except (JobError, BaselineError, DatasetError, MQ.ModelQualityJobError) as exc:
        reason = f"ClientError: {exc}"
        _write_text(paths.failure, reason)
        _write_text(paths.message, f"{F.FAILED}: {exc}"[:1024])
        print(reason, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
