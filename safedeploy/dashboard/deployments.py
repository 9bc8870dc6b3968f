"""Production deployments as the views show them: the ledger's events, each variant's traffic from the metrics.

A deployment's window is its ``DeploymentStarted`` to its closing event (or now), with a few seconds either side;
blue's and green's ``Invocations``, ``Invocation5XXErrors`` and ``ModelLatency`` p99 come from a
:class:`~safedeploy.dashboard.endpoint_metrics.MetricsReader` at a period giving about :data:`TRAFFIC_POINTS` points.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from safedeploy.dashboard.endpoint_metrics import MetricPoint, MetricsReader
from safedeploy.dashboard.views import DeploymentView, LedgerEntry, VariantTraffic, WeightStep, as_utc
from safedeploy.ledger import EVENT_ROLLED_BACK, EVENT_SHIFTED, EVENT_STARTED, EVENT_SUCCEEDED

LOG = logging.getLogger(__name__)
TRAFFIC_POINTS = 120
"""About this many datapoints per variant in a deployment's traffic chart (the period follows)."""
TRAFFIC_MARGIN = timedelta(seconds=5)
TRAFFIC_DEPLOYMENTS = 4
"""By default the endpoint metrics of this many most recent deployments are read (the report draws as many)."""


def _time(record: Mapping[str, Any]) -> datetime:
    return as_utc(datetime.fromisoformat(str(record["time"])))


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


def deployment_views(
    ledger_events: Sequence[Mapping[str, Any]], reader: MetricsReader | None, now: datetime, traffic_of: int
) -> list[DeploymentView]:
    """One view per ``DeploymentStarted``; the ``traffic_of`` latest get their variants' metrics from ``reader``."""
    starts: dict[str, Mapping[str, Any]] = {}
    ends: dict[str, Mapping[str, Any]] = {}
    steps: dict[str, list[WeightStep]] = {}
    for record in ledger_events:
        deployment = str(record.get("deployment_id", ""))
        if record.get("event") == EVENT_STARTED:
            starts[deployment] = record
        elif record.get("event") in (EVENT_SUCCEEDED, EVENT_ROLLED_BACK):
            ends[deployment] = record
        elif record.get("event") == EVENT_SHIFTED and isinstance(record.get("weights"), Mapping):
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


def ledger_entry(record: Mapping[str, Any]) -> LedgerEntry:
    """One ledger event flattened for a table (served models as ``v<N> <endpoint>``)."""
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
