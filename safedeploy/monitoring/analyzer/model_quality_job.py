"""The model-quality analyses of the Processing job (``analysis_type`` ``MODEL_QUALITY`` and its baseline).

* ``MODEL_QUALITY``: ``dataset_source`` holds the window's capture (as ``MODEL_MONITOR`` reads it),
  ``ground_truth_source`` the labels (``yyyy/mm/dd/hh/*.jsonl`` by the hour collected: every hour from the
  window's start on is read, so late labels count for the window of their inference), ``start_time``/``end_time``
  bound the *inference* time. Writes to ``output_path``: ``statistics.json`` (Model Monitor's
  ``binary_classification_metrics``), ``constraint_violations.json`` against ``baseline_constraints``, and
  ``execution_summary.json`` (coverage and every count of the merge); the merged records to
  ``<merged_output_path>/<merged_file_name>.jsonl``; the metric lines (``auc``, ``f1``, ``recall``...) under
  ``<base>/output/metrics/cloudwatch``. Fewer than ``min_labelled_records`` labelled records: ``InsufficientData``,
  no violations and no metric line (the alarm sees missing data, never OK).
* ``SUGGEST_MODEL_QUALITY_BASELINE``: ``dataset_source`` a SageMaker CSV (label first, e.g. the validation
  channel), ``model_archive`` the training job's ``model.tar.gz``; writes ``statistics.json``,
  ``constraints.json`` and ``digests.json`` to ``output_path``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.analyzer import ground_truth as G
from safedeploy.monitoring.analyzer import model_quality as Q
from safedeploy.monitoring.analyzer.capture import capture_files, iso_millis, parse_time
from safedeploy.monitoring.analyzer.cloudwatch import cloudwatch_client, put_metric_data
from safedeploy.monitoring.analyzer.statistics import write_json

UTC = timezone.utc
Json = dict[str, Any]
DEFAULT_MIN_LABELLED = 30


class ModelQualityJobError(Exception):
    """The job cannot run (bad configuration or baseline); the message names the problem."""


def _float(environ: Mapping[str, str], name: str, default: float | None, low: float, high: float) -> float | None:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise ModelQualityJobError(f"{name}={text!r} must be a number from {low} to {high}")
    return value


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ModelQualityJobError(f"{name}={text!r} must be a whole number, 0 or more")
    return value


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ModelQualityJobError(f"the environment variable {name} is not set (the model-quality job's contract)")
    return value


@dataclass(frozen=True)
class QualitySettings:
    """The model-quality job's inputs, from the environment."""

    dataset_source: Path
    ground_truth_source: Path
    output_path: Path
    start: datetime | None
    end: datetime | None
    baseline_constraints: Path | None
    threshold: float
    seed: int
    min_labelled: int
    auc_threshold: float | None
    publish_metrics: bool
    endpoint: str
    schedule: str
    exclude_prefixes: tuple[str, ...]
    merged_output_path: Path | None
    merged_file_name: str
    metrics_publisher: str = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> QualitySettings:
        """Read and validate the settings; a bad value raises naming the variable."""

        def moment(name: str) -> datetime | None:
            value = environ.get(name, "").strip()
            if not value:
                return None
            try:
                return parse_time(value)
            except ValueError:
                raise ModelQualityJobError(f"{name}={value!r} is not an ISO-8601 time") from None

        problem = environ.get(F.ENV_PROBLEM_TYPE, F.PROBLEM_TYPE_BINARY).strip()
        if problem != F.PROBLEM_TYPE_BINARY:
            raise ModelQualityJobError(f"{F.ENV_PROBLEM_TYPE}={problem!r}: only {F.PROBLEM_TYPE_BINARY} is evaluated")
        prefixes = environ.get(
            F.ENV_EXCLUDE_INFERENCE_ID_PREFIXES, f"{F.SYNTHETIC_INFERENCE_PREFIX},{F.KNOWN_ROWS_INFERENCE_PREFIX}"
        )
        constraints = environ.get(F.ENV_BASELINE_CONSTRAINTS, "").strip()
        merged = environ.get(F.ENV_MERGED_OUTPUT_PATH, "").strip()
        settings = cls(
            dataset_source=Path(_required(environ, F.ENV_DATASET_SOURCE)),
            ground_truth_source=Path(_required(environ, F.ENV_GROUND_TRUTH_SOURCE)),
            output_path=Path(_required(environ, F.ENV_OUTPUT_PATH)),
            start=moment(F.ENV_START_TIME),
            end=moment(F.ENV_END_TIME),
            baseline_constraints=Path(constraints) if constraints else None,
            threshold=_float(environ, F.ENV_PROBABILITY_THRESHOLD, Q.DEFAULT_THRESHOLD, 0.0, 1.0) or 0.0,
            seed=_int(environ, F.ENV_BOOTSTRAP_SEED, Q.DEFAULT_SEED),
            min_labelled=_int(environ, F.ENV_MIN_LABELLED_RECORDS, DEFAULT_MIN_LABELLED),
            auc_threshold=_float(environ, F.ENV_AUC_THRESHOLD, None, 0.0, 1.0),
            publish_metrics=environ.get(F.ENV_PUBLISH_METRICS, "Disabled").strip() == "Enabled",
            endpoint=environ.get(F.ENV_ENDPOINT_NAME, ""),
            schedule=environ.get(F.ENV_SCHEDULE_NAME, ""),
            exclude_prefixes=tuple(p.strip() for p in prefixes.split(",") if p.strip()),
            merged_output_path=Path(merged) if merged else None,
            merged_file_name=environ.get(F.ENV_MERGED_FILE_NAME, "").strip() or "merged",
            metrics_publisher=environ.get(F.ENV_METRICS_PUBLISHER, "").strip(),
        )
        if settings.start and settings.end and settings.start >= settings.end:
            raise ModelQualityJobError(
                f"start_time {iso_millis(settings.start)} is not before end_time {iso_millis(settings.end)}"
            )
        return settings


def _read_json(path: Path, what: str) -> Json:
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ModelQualityJobError(f"{what} {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ModelQualityJobError(f"{what} {path} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ModelQualityJobError(f"{what} {path} is not a JSON object")
    return document


def _constraints(settings: QualitySettings) -> dict[str, tuple[float, str]]:
    found: dict[str, tuple[float, str]] = {}
    if settings.baseline_constraints is not None:
        path = settings.baseline_constraints
        if path.is_dir():
            path = path / F.CONSTRAINTS_FILE
        try:
            found = Q.read_constraints(_read_json(path, "baseline constraints"))
        except Q.ModelQualityError as exc:
            raise ModelQualityJobError(f"baseline constraints {path}: {exc}") from None
    if settings.auc_threshold is not None:
        found["auc"] = (settings.auc_threshold, Q.LESS_THAN)
    return found


def _evaluation_time(settings: QualitySettings) -> str:
    """The window's end (so a rerun of the same window writes the same bytes), else now."""
    return iso_millis(settings.end or datetime.now(UTC))


def run_model_quality(settings: QualitySettings, base: Path, cloudwatch: Any = None) -> Json:
    """Merge the window's capture with its labels, evaluate, write the reports; return the execution summary."""
    started = time.perf_counter()
    constraints = _constraints(settings)
    if not settings.dataset_source.is_dir():
        raise ModelQualityJobError(f"dataset_source {settings.dataset_source} is not a directory")
    captured = G.read_captured(
        capture_files(settings.dataset_source), settings.start, settings.end, settings.exclude_prefixes
    )
    label_files = (
        G.ground_truth_files(settings.ground_truth_source, settings.start)
        if settings.ground_truth_source.exists()
        else []
    )
    labels = G.read_labels(label_files)
    merged = G.merge(captured, labels, settings.start)
    if settings.merged_output_path is not None and merged.records:  # no empty object for retraining to read
        _write_text(settings.merged_output_path / f"{settings.merged_file_name}.jsonl", G.merged_jsonl(merged.records))
    statistics = Q.statistics(
        merged.labels,
        merged.scores,
        threshold=settings.threshold,
        seed=settings.seed,
        evaluation_time=_evaluation_time(settings),
    )
    labelled = merged.counts["labelled"]
    enough = labelled >= max(settings.min_labelled, 1)
    found = Q.violations(statistics, constraints) if enough else []
    metrics = Q.cloudwatch_metrics(statistics) if enough else {}
    if not enough:
        status = F.INSUFFICIENT_DATA
        message = (
            f"{F.INSUFFICIENT_DATA}: {labelled} labelled records in the window, fewer than "
            f"{settings.min_labelled} ({merged.counts['captured']} captured, coverage "
            f"{merged.counts['coverage']:.0%}); no metric published."
        )
    elif found:
        status = F.COMPLETED_WITH_VIOLATIONS
        message = f"{status}: Job completed successfully with {len(found)} violations."
    else:
        status = F.COMPLETED
        message = f"{status}: Job completed successfully with no violations."
    body = statistics["binary_classification_metrics"]
    summary: Json = {
        "analysis_type": F.ANALYSIS_MODEL_QUALITY,
        "window": {
            "start_time": iso_millis(settings.start) if settings.start else None,
            "end_time": iso_millis(settings.end) if settings.end else None,
        },
        "ground_truth_files": len(label_files),
        **merged.counts,
        "min_labelled_records": settings.min_labelled,
        "probability_threshold": settings.threshold,
        "bootstrap_seed": settings.seed,
        "auc": body["auc"],
        "auc_threshold": constraints["auc"][0] if "auc" in constraints else None,
        "violations": len(found),
        "status": status,
        "message": message,
        "metrics": metrics,
        "seconds": {"total": round(time.perf_counter() - started, 3)},
    }
    write_json(settings.output_path / F.STATISTICS_FILE, statistics)
    write_json(settings.output_path / F.VIOLATIONS_FILE, {"violations": found})
    write_json(settings.output_path / F.EXECUTION_SUMMARY_FILE, summary)
    if settings.publish_metrics and metrics:
        _write_metrics(base, settings, metrics, cloudwatch)
    _write_text(base / "output" / F.MESSAGE_FILE, message)
    return summary


def _write_metrics(base: Path, settings: QualitySettings, metrics: Mapping[str, float], client: Any) -> None:
    """The metric lines (the container contract's format); with ``metrics_publisher=cloudwatch`` PutMetricData."""
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
    _write_text(base / "output" / "metrics" / "cloudwatch" / F.CLOUDWATCH_METRICS_FILE, text)
    if settings.metrics_publisher == "cloudwatch" and lines:
        put_metric_data(
            client if client is not None else cloudwatch_client(), lines, namespace=F.MODEL_METRIC_NAMESPACE_ENDPOINT
        )


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, "utf-8")
    temporary.replace(path)


def suggest_model_quality_baseline(
    labels: Any, scores: Any, output: Path, *, threshold: float, seed: int, auc_threshold: float | None, when: str
) -> Json:
    """``statistics.json``, ``constraints.json`` and ``digests.json`` of the model on a labelled dataset."""
    try:
        statistics = Q.statistics(labels, scores, threshold=threshold, seed=seed, evaluation_time=when)
    except Q.ModelQualityError as exc:
        raise ModelQualityJobError(f"the baseline dataset cannot be evaluated: {exc}") from None
    constraints = Q.suggest_constraints(statistics, auc_threshold)
    write_json(output / F.STATISTICS_FILE, statistics)
    write_json(output / F.CONSTRAINTS_FILE, constraints)
    digests = {
        name: "sha256:" + hashlib.sha256((output / name).read_bytes()).hexdigest()
        for name in (F.STATISTICS_FILE, F.CONSTRAINTS_FILE)
    }
    write_json(output / F.DIGESTS_FILE, digests)
    auc = statistics["binary_classification_metrics"]["auc"]
    return {"item_count": int(statistics["dataset"]["item_count"]), "auc": auc["value"]}


def baseline_settings(environ: Mapping[str, str]) -> tuple[float, int, float | None]:
    """(probability threshold, bootstrap seed, AUC threshold override) of a baseline job."""
    return (
        _float(environ, F.ENV_PROBABILITY_THRESHOLD, Q.DEFAULT_THRESHOLD, 0.0, 1.0) or 0.0,
        _int(environ, F.ENV_BOOTSTRAP_SEED, Q.DEFAULT_SEED),
        _float(environ, F.ENV_AUC_THRESHOLD, None, 0.0, 1.0),
    )


def evaluation_time(environ: Mapping[str, str]) -> str:
    """A baseline's ``evaluation_time``: ``end_time`` when given (a rerun then writes the same bytes), else now."""
    text = environ.get(F.ENV_END_TIME, "").strip()
    if not text:
        return iso_millis(datetime.now(UTC))
    try:
        return iso_millis(parse_time(text))
    except ValueError:
        raise ModelQualityJobError(f"{F.ENV_END_TIME}={text!r} is not an ISO-8601 time") from None
