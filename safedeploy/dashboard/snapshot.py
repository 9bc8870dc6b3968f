"""Everything the report, the console and the notebook show, collected from a pipeline's local state.

:func:`collect_snapshot` reads (never writes) the execution records, the model registry and each version's
model-quality baseline statistics, the deployment ledger, the endpoints' metrics (through a
:class:`~safedeploy.dashboard.endpoint_metrics.MetricsReader`, the running runtime by default), the monitoring
executions (data quality: ``feature_baseline_drift_<name>``; model quality: ``auc``, ``f1``...), the alarm states,
the custom-metric log (the synthetic canary's ``CloudWatchSynthetics``/``SuccessPercent``) and the retraining
decisions. The result is plain frozen dataclasses: no plotting here, and every empty part says why it is empty
(:attr:`DashboardSnapshot.empty_reasons`) so a view can show "no data yet: <why>" instead of an empty chart.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from safedeploy import naming
from safedeploy.dashboard.endpoint_metrics import MetricPoint, MetricsReader, RuntimeMetrics
from safedeploy.ledger import EVENT_ROLLED_BACK, EVENT_STARTED, EVENT_SUCCEEDED, DeploymentLedger
from safedeploy.metric_log import MetricLog
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.drift_alarms import AlarmStates
from safedeploy.monitoring.records import MonitoringExecution, MonitoringRecords
from safedeploy.registry import LocalModelRegistry, ModelPackage
from safedeploy.runner import ExecutionStore, PipelineExecution
from safedeploy.spec import PipelineSpec
from safedeploy.store import LocalArtifactStore, S3Uri

LOG = logging.getLogger(__name__)

CANARY_NAMESPACE = "CloudWatchSynthetics"
"""CloudWatch Synthetics' namespace: the synthetic canary publishes ``SuccessPercent`` there per ``CanaryName``."""
CANARY_METRIC = "SuccessPercent"
CANARY_DIMENSION = "CanaryName"
QUALITY_METRICS = ("auc", "f1", "accuracy", "precision", "recall")
"""The model-quality metrics drawn over time (``aws/sagemaker/Endpoints/model-metrics``)."""
MAX_EXECUTIONS = 12
"""The execution timeline shows the most recent executions only."""
MAX_DRIFT_FEATURES = 8
"""The drift chart shows the features that drifted most (and every feature with a drift alarm)."""
TRAFFIC_POINTS = 120
"""About this many datapoints per variant in a deployment's traffic chart (the period follows)."""
TRAFFIC_MARGIN = timedelta(seconds=5)
TRAFFIC_DEPLOYMENTS = 4
"""By default the endpoint metrics of this many most recent deployments are read (the report draws as many)."""


@dataclass(frozen=True)
class StageSpan:
    """One stage of one execution, as the timeline draws it."""

    stage: str
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    summary: str = ""


@dataclass(frozen=True)
class ExecutionView:
    """One pipeline execution."""

    execution_id: str
    status: str
    trigger: str
    started_at: datetime
    ended_at: datetime | None
    version: int | None
    stages: tuple[StageSpan, ...]
    error: str | None = None


@dataclass(frozen=True)
class Curve:
    """A curve's points (ROC: false/true positive rates; precision-recall: recalls/precisions)."""

    x: tuple[float, ...]
    y: tuple[float, ...]


@dataclass(frozen=True)
class ModelQualityBaseline:
    """A version's model-quality baseline (Model Monitor's binary-classification statistics, validation set)."""

    item_count: int
    roc: Curve
    precision_recall: Curve
    confusion: tuple[tuple[int, int], tuple[int, int]]
    """``confusion[actual][predicted]``, labels 0 then 1."""
    metrics: Mapping[str, float]
    """``auc``, ``f1``, ``accuracy``... (NaN ones left out)."""


@dataclass(frozen=True)
class ModelView:
    """A registered version with its training metrics and its quality baseline (if it has one)."""

    version: int
    role: str
    """``production``, ``latest`` or ``production, latest``."""
    approval: str
    created: datetime
    training_metrics: Mapping[str, float]
    baseline: ModelQualityBaseline | None
    baseline_missing: str = ""
    """Why there is no baseline (no ``ModelQuality`` drift-check baseline, unreadable file...)."""


@dataclass(frozen=True)
class VariantTraffic:
    """One endpoint's traffic during a deployment (per period)."""

    endpoint: str
    version: int | None
    role: str
    """``blue`` or ``green``."""
    times: tuple[datetime, ...]
    requests: tuple[float, ...]
    errors: tuple[float, ...]
    """5XX errors (what green's error-rate alarm reads)."""
    p99_times: tuple[datetime, ...]
    p99_ms: tuple[float, ...]


@dataclass(frozen=True)
class WeightStep:
    """A ``TrafficShifted`` event: from ``time`` on, these shares of the production API."""

    time: datetime
    weights: Mapping[str, float]


@dataclass(frozen=True)
class DeploymentView:
    """One production deployment from the ledger, with its variants' traffic when the runtime still has it."""

    deployment_id: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str
    reason: str | None
    strategy: str
    blue: str | None
    blue_version: int | None
    green: str
    green_version: int
    rollback_of: int | None
    """The version ``make rollback`` rolled back from, if this deployment is such a rollback."""
    rehearsal: str | None
    steps: tuple[WeightStep, ...]
    variants: tuple[VariantTraffic, ...]
    traffic_missing: str = ""
    """Why ``variants`` is empty (no runtime running, the metrics expired...)."""

    @property
    def rolled_back(self) -> bool:
        """The deployment itself rolled back (an alarm, a hook, a failed green)."""
        return self.outcome == "RolledBack"


@dataclass(frozen=True)
class Series:
    """A metric over time, with the threshold its alarm (or check) compares with."""

    name: str
    times: tuple[datetime, ...]
    values: tuple[float, ...]
    threshold: float | None = None
    comparison: str = ""
    """``GreaterThanThreshold`` (drift) or ``LessThanThreshold`` (quality), for the legend."""


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger event, flattened for a table."""

    time: datetime
    deployment_id: str
    event: str
    detail: str


@dataclass(frozen=True)
class DashboardSnapshot:
    """Everything the views show, as of :attr:`generated_at`."""

    pipeline_name: str
    model_name: str
    state_dir: str
    generated_at: datetime
    production_version: int | None
    executions: tuple[ExecutionView, ...]
    models: tuple[ModelView, ...]
    deployments: tuple[DeploymentView, ...]
    drift: tuple[Series, ...]
    quality: tuple[Series, ...]
    canary: tuple[Series, ...]
    ledger: tuple[LedgerEntry, ...]
    alarms: Mapping[str, str] = field(default_factory=dict)
    """Monitoring alarm name -> state (``OK``, ``ALARM``, ``INSUFFICIENT_DATA``)."""
    retraining: str = ""
    """The last retraining decision, in a sentence (empty when there was none)."""
    empty_reasons: Mapping[str, str] = field(default_factory=dict)
    """Section (``executions``, ``models``, ``traffic``, ``drift``, ``quality``, ``canary``, ``ledger``) -> why it
    has no data and what makes some; a section with data has no entry."""


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _execution_view(execution: PipelineExecution) -> ExecutionView:
    version: int | None = None
    for stage in execution.stages:
        found = stage.outputs.get("model_package_version")
        if isinstance(found, int):
            version = found
    return ExecutionView(
        execution_id=execution.execution_id,
        status=str(execution.status),
        trigger=execution.trigger,
        started_at=_utc(execution.started_at),
        ended_at=_utc(execution.ended_at) if execution.ended_at else None,
        version=version,
        stages=tuple(
            StageSpan(
                stage=stage.name,
                status=str(stage.status) if stage.status else "NotStarted",
                started_at=_utc(stage.started_at) if stage.started_at else None,
                ended_at=_utc(stage.ended_at) if stage.ended_at else None,
                summary=stage.summary or stage.error or "",
            )
            for stage in execution.stages
        ),
        error=execution.error,
    )


def _number(value: Any) -> float:
    if value is None or value == "NaN":
        return math.nan
    return float(value)


def read_quality_baseline(document: Mapping[str, Any]) -> ModelQualityBaseline:
    """The parts of a ``statistics.json`` (binary classification) the views draw.

    Raises:
        ValueError: the document is not Model Monitor's binary-classification statistics.
    """
    body = document.get("binary_classification_metrics")
    if not isinstance(body, Mapping):
        raise ValueError("no binary_classification_metrics: not a binary-classification statistics.json")
    try:
        roc = body["receiver_operating_characteristic_curve"]
        pr = body["precision_recall_curve"]
        matrix = body["confusion_matrix"]
        confusion = (
            (int(matrix["0"]["0"]), int(matrix["0"]["1"])),
            (int(matrix["1"]["0"]), int(matrix["1"]["1"])),
        )
        metrics = {
            name: _number(entry.get("value"))
            for name, entry in body.items()
            if isinstance(entry, Mapping) and "value" in entry
        }
        return ModelQualityBaseline(
            item_count=int(document.get("dataset", {}).get("item_count", 0)),
            roc=Curve(
                tuple(_number(v) for v in roc["false_positive_rates"]),
                tuple(_number(v) for v in roc["true_positive_rates"]),
            ),
            precision_recall=Curve(
                tuple(_number(v) for v in pr["recalls"]), tuple(_number(v) for v in pr["precisions"])
            ),
            confusion=confusion,
            metrics={k: v for k, v in metrics.items() if not math.isnan(v)},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"binary_classification_metrics lacks {exc}") from None


def _model_view(package: ModelPackage, role: str, store: LocalArtifactStore) -> ModelView:
    baseline: ModelQualityBaseline | None = None
    missing = ""
    source = package.DriftCheckBaselines.get("ModelQuality", {}).get("Statistics")
    if source is None:
        missing = f"v{package.ModelPackageVersion} has no model-quality baseline (registered before there were any)"
    else:
        try:
            baseline = read_quality_baseline(json.loads(store.get_bytes(S3Uri.parse(source.S3Uri))))
        except (OSError, ValueError, KeyError) as exc:
            missing = f"v{package.ModelPackageVersion}'s model-quality baseline {source.S3Uri} is unreadable: {exc}"
    return ModelView(
        version=package.ModelPackageVersion,
        role=role,
        approval=package.ModelApprovalStatus,
        created=_utc(package.CreationTime),
        training_metrics=dict(package.Metrics),
        baseline=baseline,
        baseline_missing=missing,
    )


def _time(record: Mapping[str, Any]) -> datetime:
    return _utc(datetime.fromisoformat(str(record["time"])))


def _version(served: Any) -> int | None:
    if isinstance(served, Mapping) and isinstance(served.get("version"), int):
        return int(served["version"])
    return None


def _period(start: datetime, end: datetime) -> int:
    return max(1, math.ceil((end - start).total_seconds() / TRAFFIC_POINTS))


def _variant(
    reader: MetricsReader, endpoint: str, version: int | None, role: str, start: datetime, end: datetime
) -> VariantTraffic:
    period = _period(start, end)
    requests = reader.statistics(endpoint, "Invocations", start, end, period, "Sum")
    errors = {p.time: p.value for p in reader.statistics(endpoint, "Invocation5XXErrors", start, end, period, "Sum")}
    p99: list[MetricPoint] = reader.statistics(endpoint, "ModelLatency", start, end, period, "p99")
    return VariantTraffic(
        endpoint=endpoint,
        version=version,
        role=role,
        times=tuple(p.time for p in requests),
        requests=tuple(p.value for p in requests),
        errors=tuple(errors.get(p.time, 0.0) for p in requests),
        p99_times=tuple(p.time for p in p99),
        p99_ms=tuple(p.value / 1000.0 for p in p99),  # ModelLatency is in microseconds
    )


def _deployments(
    ledger_events: Sequence[Mapping[str, Any]], reader: MetricsReader | None, now: datetime, traffic_of: int
) -> list[DeploymentView]:
    starts: dict[str, Mapping[str, Any]] = {}
    ends: dict[str, Mapping[str, Any]] = {}
    steps: dict[str, list[WeightStep]] = {}
    for record in ledger_events:
        deployment = str(record.get("deployment_id", ""))
        if record.get("event") == EVENT_STARTED:
            starts[deployment] = record
        elif record.get("event") in (EVENT_SUCCEEDED, EVENT_ROLLED_BACK):
            ends[deployment] = record
        elif record.get("event") == "TrafficShifted" and isinstance(record.get("weights"), Mapping):
            steps.setdefault(deployment, []).append(
                WeightStep(_time(record), {str(k): float(v) for k, v in record["weights"].items()})
            )
    views = []
    first_read = len(starts) - traffic_of
    for index, (deployment, start) in enumerate(starts.items()):
        end = ends.get(deployment)
        started, ended = _time(start), (_time(end) if end else None)
        blue, green = start.get("blue"), start.get("green") or {}
        variants: list[VariantTraffic] = []
        missing = ""
        if reader is None:
            missing = "the local runtime is not running (its per-second endpoint metrics live in memory): `make deploy`"
        elif index < first_read:
            missing = f"only the {traffic_of} most recent deployments' traffic is read"
        else:
            window = (started - TRAFFIC_MARGIN, (ended or now) + TRAFFIC_MARGIN)
            try:
                if isinstance(blue, Mapping):
                    variants.append(_variant(reader, str(blue["endpoint"]), _version(blue), "blue", *window))
                variants.append(_variant(reader, str(green.get("endpoint", "")), _version(green), "green", *window))
            except Exception as exc:  # a runtime that went away mid-read: the rest of the snapshot still stands
                LOG.warning("reading the endpoint metrics of %s failed: %s", deployment, exc)
                variants, missing = [], f"the runtime's metrics could not be read: {exc}"
            if variants and not any(v.requests for v in variants):
                variants, missing = (
                    [],
                    (
                        "the runtime has no metrics for this deployment's endpoints (it keeps 3 hours, from its last "
                        "start)"
                    ),
                )
        rollback_of = start.get("rollback_of")
        views.append(
            DeploymentView(
                deployment_id=deployment,
                started_at=started,
                ended_at=ended,
                outcome="InProgress"
                if end is None
                else ("Succeeded" if end["event"] == EVENT_SUCCEEDED else "RolledBack"),
                reason=None if end is None else end.get("reason"),
                strategy=str(start.get("strategy", "")),
                blue=str(blue["endpoint"]) if isinstance(blue, Mapping) else None,
                blue_version=_version(blue),
                green=str(green.get("endpoint", "")),
                green_version=_version(green) or 0,
                rollback_of=_version(rollback_of),
                rehearsal=start.get("rehearsal") or None,
                steps=tuple(steps.get(deployment, ())),
                variants=tuple(variants),
                traffic_missing=missing,
            )
        )
    return views


_LEDGER_SKIP = frozenset(("deployment_id", "event", "time"))


def _ledger_entry(record: Mapping[str, Any]) -> LedgerEntry:
    parts = []
    for key in sorted(set(record) - _LEDGER_SKIP):
        value = record[key]
        if value is None:
            continue
        if isinstance(value, Mapping) and "endpoint" in value:
            value = f"v{value.get('version')} {value['endpoint']}"
        elif isinstance(value, Mapping):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        parts.append(f"{key}: {value}")
    return LedgerEntry(
        _time(record), str(record.get("deployment_id", "")), str(record.get("event", "")), "; ".join(parts)
    )


def _drift(executions: Sequence[MonitoringExecution], spec: PipelineSpec) -> list[Series]:
    values: dict[str, list[tuple[datetime, float]]] = {}
    thresholds: dict[str, float] = {}
    for execution in executions:
        verdicts = execution.Summary.get("verdicts")
        for metric, value in execution.Metrics.items():
            if not metric.startswith(F.DRIFT_METRIC_PREFIX):
                continue
            feature = metric.removeprefix(F.DRIFT_METRIC_PREFIX)
            values.setdefault(feature, []).append((_utc(execution.WindowEnd), float(value)))
            verdict = verdicts.get(feature) if isinstance(verdicts, Mapping) else None
            if isinstance(verdict, Mapping) and isinstance(verdict.get("threshold"), (int, float)):
                thresholds[feature] = float(verdict["threshold"])
    thresholds.update(spec.monitoring.drift_alarms)  # an alarm's threshold is what matters where there is one
    alarmed = [f for f in values if f in spec.monitoring.drift_alarms]
    ranked = sorted(values, key=lambda f: -max(v for _, v in values[f]))
    moved = [f for f in ranked if max(v for _, v in values[f]) > 0] or ranked  # features at 0 throughout: noise
    chosen = list(dict.fromkeys([*alarmed, *moved]))[: max(MAX_DRIFT_FEATURES, len(alarmed))]
    return [
        Series(
            name=feature,
            times=tuple(t for t, _ in sorted(values[feature])),
            values=tuple(v for _, v in sorted(values[feature])),
            threshold=thresholds.get(feature),
            comparison="GreaterThanThreshold",
        )
        for feature in chosen
    ]


def _quality(executions: Sequence[MonitoringExecution], auc_threshold: float | None) -> list[Series]:
    series = []
    for name in QUALITY_METRICS:
        points = [(_utc(e.WindowEnd), float(e.Metrics[name])) for e in executions if name in e.Metrics]
        if points:
            series.append(
                Series(
                    name=name,
                    times=tuple(t for t, _ in points),
                    values=tuple(v for _, v in points),
                    threshold=auc_threshold if name == "auc" else None,
                    comparison="LessThanThreshold" if name == "auc" else "",
                )
            )
    return series


def _canary(log: MetricLog) -> list[Series]:
    series = []
    for metric, dimensions in log.metrics(CANARY_NAMESPACE):
        names = dict(dimensions)
        if metric != CANARY_METRIC or CANARY_DIMENSION not in names:
            continue
        points = log.query(CANARY_NAMESPACE, metric, names)
        if points:
            series.append(
                Series(
                    name=names[CANARY_DIMENSION],
                    times=tuple(_utc(t) for t, _ in points),
                    values=tuple(v for _, v in points),
                )
            )
    return series


def _retraining(spec: PipelineSpec, executions: list[PipelineExecution]) -> str:
    try:
        from safedeploy.retraining.status import retraining_status

        decision = retraining_status(spec, executions).last_decision
    except Exception as exc:  # records of another layout: the report still renders, saying so
        LOG.warning("reading the retraining status failed: %s", exc)
        return ""
    if decision is None:
        return ""
    return f"{decision.time:%Y-%m-%d %H:%M:%S} UTC: {decision.action}: {decision.reason}"


def collect_snapshot(
    spec: PipelineSpec,
    metrics: MetricsReader | None = None,
    *,
    runtime_metrics: bool = True,
    traffic_deployments: int = TRAFFIC_DEPLOYMENTS,
) -> DashboardSnapshot:
    """Read the pipeline's local state into a :class:`DashboardSnapshot`.

    Args:
        spec: The pipeline's spec (its ``state_dir`` holds the records).
        metrics: Where the endpoints' metrics come from; by default the runtime running on ``state_dir``, if any.
        runtime_metrics: With no ``metrics``, whether to look for a running runtime at all.
        traffic_deployments: Read the endpoint metrics of this many most recent deployments (older ones say so).

    Returns:
        The snapshot; empty sections say why in ``empty_reasons``.
    """
    root = spec.state_dir.resolve()
    now = datetime.now(UTC)
    store = LocalArtifactStore(root / "s3")
    executions = ExecutionStore(root / "executions", spec.pipeline_name).list()
    registry = LocalModelRegistry(root / "registry", spec.region, spec.account_id)
    ledger = DeploymentLedger(root / "deployments", spec.pipeline_name)
    ledger_events = ledger.events()
    live = ledger.live()
    reader = metrics if metrics is not None else (RuntimeMetrics.running(root) if runtime_metrics else None)

    packages = registry.list_versions(spec.model_name)
    production = live.version if live else None
    models: list[ModelView] = []
    latest = packages[-1] if packages else None
    for package in packages:
        roles = [
            r
            for r, v in (("production", production), ("latest", latest and latest.ModelPackageVersion))
            if v == package.ModelPackageVersion
        ]
        if roles:
            models.append(_model_view(package, ", ".join(roles), store))

    records = MonitoringRecords(root / "monitoring")
    drift_executions = records.executions(naming.monitoring_schedule_name(spec))
    quality_executions = records.executions(naming.model_quality_schedule_name(spec))
    alarm_states = AlarmStates(root / "alarms", spec.region, spec.account_id)
    quality_alarm = alarm_states.get(naming.model_quality_alarm_name(spec))
    threshold = quality_alarm.get("Threshold")
    alarms = {
        path.stem: str(json.loads(path.read_text("utf-8")).get("StateValue", ""))
        for path in sorted((root / "alarms").glob("*.json"))
    }

    deployments = _deployments(ledger_events, reader, now, traffic_deployments)
    drift = _drift(drift_executions, spec)
    quality = _quality(quality_executions, float(threshold) if isinstance(threshold, (int, float)) else None)
    canary = _canary(MetricLog(root / "metrics"))
    empty: dict[str, str] = {}
    if not executions:
        empty["executions"] = "no executions: run `make deploy` first"
    if not models:
        empty["models"] = "no registered model version yet: `make deploy` trains, gates and registers one"
    elif not any(m.baseline for m in models):
        empty["models"] = "; ".join(m.baseline_missing for m in models)
    if not deployments:
        empty["traffic"] = "no production deployment yet: `make deploy AUTO_APPROVE=1` (or `make approve`) deploys one"
    elif not any(d.variants for d in deployments):
        empty["traffic"] = deployments[-1].traffic_missing
    if not drift:
        empty["drift"] = (
            "no data-quality monitoring execution yet: `make monitor` runs one on the captured traffic"
            if not drift_executions
            else "the monitoring executions published no drift metric yet (too little captured traffic per feature "
            "to tell drift from noise): send traffic, then `make monitor`"
        )
    if not quality:
        empty["quality"] = (
            "no model-quality execution yet: upload labels with `safedeploy monitor ground-truth --file labels.jsonl`,"
            " then `safedeploy monitor quality`"
            if not quality_executions
            else "the model-quality executions published no metric yet (too few labelled records)"
        )
    if not canary:
        empty["canary"] = f"no synthetic canary data yet (no {CANARY_NAMESPACE} {CANARY_METRIC} metric published)"
    if not ledger_events:
        empty["ledger"] = "the deployment ledger is empty: nothing has been deployed to production yet"
    return DashboardSnapshot(
        pipeline_name=spec.pipeline_name,
        model_name=spec.model_name,
        state_dir=str(root),
        generated_at=now,
        production_version=production,
        executions=tuple(_execution_view(e) for e in executions[-MAX_EXECUTIONS:]),
        models=tuple(models),
        deployments=tuple(deployments),
        drift=tuple(drift),
        quality=tuple(quality),
        canary=tuple(canary),
        ledger=tuple(_ledger_entry(r) for r in ledger_events),
        alarms=alarms,
        retraining=_retraining(spec, executions),
        empty_reasons=empty,
    )
