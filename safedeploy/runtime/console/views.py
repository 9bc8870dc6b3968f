"""What the console page shows, as JSON: read from the pipeline's records and the runtime's own memory.

Everything here reads, nothing writes: the latest execution's stages (``<state>/executions``), the approval it
waits at, production's traffic split (the production REST API route's primary and canary weights in the runtime's
state, as Lambda alias routing splits it), each variant's requests, 5XX errors and p99 model latency (the
runtime's per-second metrics, :class:`~safedeploy.runtime.cloudwatch.metrics.MetricStore`) and the deployment
ledger (``<state>/deployments``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from safedeploy import constants as C
from safedeploy.ledger import DeploymentLedger
from safedeploy.runner import ExecutionStore, PipelineExecution
from safedeploy.runtime.cloudwatch.metrics import MetricStore
from safedeploy.runtime.state import RestApiRoute, RuntimeState
from safedeploy.spec import PipelineSpec

TRAFFIC_WINDOW = timedelta(minutes=3)
"""How far back the traffic charts reach."""
TRAFFIC_PERIOD_S = 2
LEDGER_ROWS = 15


@dataclass(frozen=True)
class ConsoleSubject:
    """What one console link shows: a pipeline (its spec) and the names of its REST API routes."""

    spec: PipelineSpec
    production_route: str
    dev_route: str


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def execution_view(execution: PipelineExecution | None, now: datetime) -> dict[str, Any] | None:
    """The execution's stages (status, times, duration so far, summary, error) and its waiting approval."""
    if execution is None:
        return None
    stages = []
    for stage in execution.stages:
        end = stage.ended_at or (now if stage.status == "InProgress" and stage.started_at else None)
        duration = None if stage.started_at is None or end is None else (end - stage.started_at).total_seconds()
        approval = None if stage.approval is None else stage.approval.model_dump(mode="json", exclude={"token"})
        stages.append(
            {
                "name": stage.name,
                "status": "WaitingForApproval" if stage.awaiting_approval else (stage.status or "NotStarted"),
                "started_at": _iso(stage.started_at),
                "ended_at": _iso(stage.ended_at),
                "duration_s": duration,
                "summary": stage.summary,
                "error": stage.error,
                "approval": approval,
            }
        )
    waiting = execution.awaiting_approval
    gate = None
    if waiting is not None and waiting.approval is not None:
        gate = {
            "execution_id": execution.execution_id,
            "stage": waiting.name,
            "question": waiting.approval.question,
            "summary": waiting.approval.summary,
            "requested_at": _iso(waiting.approval.requested_at),
            "expires_at": _iso(waiting.approval.expires_at),
        }
    return {
        "execution_id": execution.execution_id,
        "status": execution.status,
        "trigger": execution.trigger,
        "started_at": _iso(execution.started_at),
        "ended_at": _iso(execution.ended_at),
        "error": execution.error,
        "stages": stages,
        "approval": gate,
    }


def _variant_metrics(metrics: MetricStore, endpoint: str, now: datetime) -> dict[str, Any]:
    start = now - TRAFFIC_WINDOW

    def points(metric: str, statistic: str) -> list[dict[str, object]]:
        extended = (statistic,) if statistic.startswith("p") else ()
        return metrics.get_metric_statistics(
            endpoint=endpoint,
            variant=C.DEFAULT_VARIANT,
            metric=metric,
            start=start,
            end=now,
            period=TRAFFIC_PERIOD_S,
            statistics=() if extended else (statistic,),
            extended_statistics=extended,
        )

    requests = points("Invocations", "Sum")
    errors = points("Invocation5XXErrors", "Sum")
    latency = points("ModelLatency", "p99")
    request_counts = [_number(p["Sum"]) for p in requests]
    error_counts = [_number(p["Sum"]) for p in errors]
    return {
        "times": [p["Timestamp"] for p in requests],
        "requests": request_counts,
        "errors": error_counts,
        "latency_times": [p["Timestamp"] for p in latency],
        "p99_ms": [_number(p["ExtendedStatistics"], "p99") / 1000 for p in latency],  # microseconds in the store
        "total_requests": sum(request_counts),
        "total_errors": sum(error_counts),
    }


def _number(value: object, key: str | None = None) -> float:
    """A datapoint's number (``key``: from the ``ExtendedStatistics`` mapping)."""
    if key is not None:
        value = value.get(key) if isinstance(value, Mapping) else None
    return float(value) if isinstance(value, int | float) else 0.0


def traffic_view(route: RestApiRoute | None, metrics: MetricStore, now: datetime) -> dict[str, Any] | None:
    """Production's split (primary and canary variant, their weights) and each variant's recent metrics."""
    if route is None:
        return None
    variants = []
    canary_weight = route.Canary.Weight if route.Canary is not None else 0.0
    sides: list[tuple[str, Mapping[str, str], float]] = [("primary", route.Environment, 1.0 - canary_weight)]
    if route.Canary is not None:
        sides.append(("canary", route.Canary.Environment, canary_weight))
    for role, environment, weight in sides:
        endpoint = environment.get("ENDPOINT_NAME", "")
        variants.append(
            {
                "role": role,
                "endpoint": endpoint,
                "version": environment.get("MODEL_VERSION", ""),
                "weight": round(weight, 6),
                "metrics": _variant_metrics(metrics, endpoint, now) if endpoint else None,
            }
        )
    return {"path": route.Path, "shifting": route.Canary is not None, "variants": variants}


def ledger_view(ledger: DeploymentLedger) -> list[dict[str, Any]]:
    """The latest production deployments, newest first: versions, strategy, outcome and reason."""
    rows = []
    for entry in reversed(ledger.deployments()[-LEDGER_ROWS:]):
        green = entry.get("green") or {}
        blue = entry.get("blue") or {}
        rows.append(
            {
                "time": entry.get("time"),
                "deployment_id": entry.get("deployment_id"),
                "blue_version": blue.get("version"),
                "green_version": green.get("version"),
                "strategy": entry.get("strategy"),
                "outcome": entry.get("outcome"),
                "reason": entry.get("reason"),
                "rehearsal": entry.get("rehearsal"),
            }
        )
    return rows


def console_state(subject: ConsoleSubject, runtime: RuntimeState, metrics: MetricStore) -> dict[str, Any]:
    """The page's whole state for one poll (figures and the decision in progress are added by the caller)."""
    spec = subject.spec
    root = spec.state_dir.resolve()
    now = datetime.now(UTC)
    ledger = DeploymentLedger(root / "deployments", spec.pipeline_name)
    live = ledger.live()
    return {
        "pipeline": spec.pipeline_name,
        "model": spec.model_name,
        "generated_at": _iso(now),
        "execution": execution_view(ExecutionStore(root / "executions", spec.pipeline_name).latest(), now),
        "production": {"endpoint": live.endpoint, "version": live.version} if live else None,
        "traffic": traffic_view(runtime.Routes.get(subject.production_route), metrics, now),
        "ledger": ledger_view(ledger),
    }
