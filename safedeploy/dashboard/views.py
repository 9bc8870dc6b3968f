"""The snapshot's types: frozen dataclasses of what the views show (no I/O, no plotting)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime


def as_utc(value: datetime) -> datetime:
    """``value`` with UTC as its zone when it has none."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


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
