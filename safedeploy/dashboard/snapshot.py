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
from datetime import UTC, datetime

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.dashboard.deployments import TRAFFIC_DEPLOYMENTS, deployment_views, ledger_entry
from safedeploy.dashboard.endpoint_metrics import MetricsReader
from safedeploy.dashboard.model_views import model_view, read_quality_baseline
from safedeploy.dashboard.monitoring_series import (
    canary_series,
    drift_series,
    quality_series,
)
from safedeploy.dashboard.views import (
    Curve,
    DashboardSnapshot,
    DeploymentView,
    ExecutionView,
    LedgerEntry,
    ModelQualityBaseline,
    ModelView,
    Series,
    StageSpan,
    VariantTraffic,
    WeightStep,
    as_utc,
)
from safedeploy.ledger import DeploymentLedger
from safedeploy.metric_log import MetricLog
from safedeploy.monitoring.drift_alarms import AlarmStates
from safedeploy.monitoring.records import MonitoringRecords
from safedeploy.registry import LocalModelRegistry
from safedeploy.runner import ExecutionStore, PipelineExecution
from safedeploy.spec import PipelineSpec
from safedeploy.store import LocalArtifactStore

__all__ = [
    "MAX_EXECUTIONS",
    "TRAFFIC_DEPLOYMENTS",
    "Curve",
    "DashboardSnapshot",
    "DeploymentView",
    "ExecutionView",
    "LedgerEntry",
    "ModelQualityBaseline",
    "ModelView",
    "Series",
    "StageSpan",
    "VariantTraffic",
    "WeightStep",
    "collect_snapshot",
    "read_quality_baseline",
]

LOG = logging.getLogger(__name__)
MAX_EXECUTIONS = 12
"""The execution timeline shows the most recent executions only."""


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
        started_at=as_utc(execution.started_at),
        ended_at=as_utc(execution.ended_at) if execution.ended_at else None,
        version=version,
        stages=tuple(
            StageSpan(
                stage=stage.name,
                status=str(stage.status) if stage.status else "NotStarted",
                started_at=as_utc(stage.started_at) if stage.started_at else None,
                ended_at=as_utc(stage.ended_at) if stage.ended_at else None,
                summary=stage.summary or stage.error or "",
            )
            for stage in execution.stages
        ),
        error=execution.error,
    )


def collect_snapshot(
    spec: PipelineSpec,
    metrics: MetricsReader | None = None,
    *,
    retraining: str = "",
    traffic_deployments: int = TRAFFIC_DEPLOYMENTS,
) -> DashboardSnapshot:
    """Read the pipeline's local state into a :class:`DashboardSnapshot`.

    Args:
        spec: The pipeline's spec (its ``state_dir`` holds the records).
        metrics: Where the endpoints' metrics come from (the pipeline's process passes
            :class:`~safedeploy.local.runtime_metrics.RuntimeMetrics`, as :meth:`safedeploy.pipeline.Pipeline.snapshot`
            does); without one the traffic section says the runtime is not running.
        retraining: The last retraining decision in a sentence
            (:func:`safedeploy.retraining.status.last_decision_line`), empty when there was none.
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
    reader = metrics

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
            models.append(model_view(package, ", ".join(roles), store))

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

    deployments = deployment_views(ledger_events, reader, now, traffic_deployments)
    drift = drift_series(drift_executions, spec)
    quality = quality_series(quality_executions, float(threshold) if isinstance(threshold, (int, float)) else None)
    probe = spec.monitoring.synthetic_canary
    canary = canary_series(MetricLog(root / "metrics"), probe.alarm.threshold if probe.enabled else None)
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
        empty["canary"] = (
            f"no synthetic canary data yet (no {C.SYNTHETICS_NAMESPACE} {C.SYNTHETICS_SUCCESS_METRIC} metric "
            "published): the runtime's probe runs every `monitoring.synthetic_canary.schedule_expression` once "
            "production serves"
        )
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
        ledger=tuple(ledger_entry(r) for r in ledger_events),
        alarms=alarms,
        retraining=retraining,
        empty_reasons=empty,
    )
