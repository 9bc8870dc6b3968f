"""Quality gate: the trained model's metrics against the spec's conditions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from safedeploy.errors import GateFailedError
from safedeploy.spec import GateCondition, GateSpec


@dataclass(frozen=True)
class GateCheck:
    """One condition and the value it was checked against."""

    condition: GateCondition
    value: float

    @property
    def passed(self) -> bool:
        """Whether the value meets the condition."""
        if self.condition.op == ">=":
            return self.value >= self.condition.threshold
        return self.value <= self.condition.threshold

    def __str__(self) -> str:
        if self.passed:
            return f"{self.condition.metric} = {self.value:.4f} (required {self.condition})"
        side = "below" if self.condition.op == ">=" else "above"
        return (
            f"{self.condition.metric} = {self.value:.4f} is {side} the threshold {self.condition.threshold:g} "
            f"(required {self.condition})"
        )


def check_gate(gate: GateSpec, metrics: Mapping[str, float]) -> list[GateCheck]:
    """Check every condition; raise :class:`GateFailedError` naming each failed metric, value and threshold.

    A metric the job did not report fails the gate too: an unmeasured model is not a good model.
    """
    missing = [c.metric for c in gate.conditions if c.metric not in metrics]
    if missing:
        raise GateFailedError(
            f"quality gate failed: metric(s) {', '.join(missing)} not reported by training "
            f"(reported: {', '.join(sorted(metrics)) or 'none'}); the model was not registered"
        )
    checks = [GateCheck(c, float(metrics[c.metric])) for c in gate.conditions]
    failed = [check for check in checks if not check.passed]
    if failed:
        raise GateFailedError(
            "quality gate failed: " + "; ".join(str(c) for c in failed) + "; the model was not registered"
        )
    return checks


COMPARED_METRIC = "test:auc"
"""The metric the comparative gate holds a candidate to: production's, measured on the same held-out rows."""
PRODUCTION_PREFIX = "production:"


@dataclass(frozen=True)
class ProductionComparison:
    """The candidate's ``test:auc`` beside the production version's, on the same held-out rows."""

    version: int
    candidate: float
    production: float
    tolerance: float
    rows: int | None = None
    metric: str = COMPARED_METRIC

    @property
    def passed(self) -> bool:
        """Not worse than production by more than the tolerance."""
        return self.candidate >= self.production - self.tolerance

    def describe(self) -> str:
        """``test:auc 0.9301 vs production v3 0.9263``."""
        return f"{self.metric} {self.candidate:.4f} vs production v{self.version} {self.production:.4f}"

    def failure(self) -> str:
        """Why the gate refused: both values, the rows and the tolerance."""
        rows = f"the same {self.rows} held-out rows" if self.rows else "the same held-out rows"
        return (
            f"quality gate failed: {self.metric} {self.candidate:.4f} is below production v{self.version}'s "
            f"{self.production:.4f} on {rows} (tolerance {self.tolerance:g}); the model was not registered"
        )


def compare_with_production(
    gate: GateSpec,
    metrics: Mapping[str, float],
    production_metrics: Mapping[str, float],
    version: int,
    rows: int | None,
) -> ProductionComparison:
    """Hold the candidate to production; raise :class:`GateFailedError` naming both values if it is worse.

    ``production_metrics`` are production's metrics on the candidate's test rows (``test:auc``, unprefixed).
    """
    for name, where in ((COMPARED_METRIC, metrics), (COMPARED_METRIC, production_metrics)):
        if name not in where:
            whose = "the candidate" if where is metrics else f"production v{version}"
            raise GateFailedError(
                f"quality gate failed: {name} of {whose} was not measured, so the candidate cannot be compared "
                "with production; the model was not registered"
            )
    comparison = ProductionComparison(
        version=version,
        candidate=float(metrics[COMPARED_METRIC]),
        production=float(production_metrics[COMPARED_METRIC]),
        tolerance=gate.production_tolerance,
        rows=rows,
    )
    if not comparison.passed:
        raise GateFailedError(comparison.failure())
    return comparison


def production_measured(metrics: Mapping[str, float]) -> dict[str, float]:
    """Production's metrics a training job reported (``production:test:auc`` -> ``test:auc``)."""
    return {k.removeprefix(PRODUCTION_PREFIX): v for k, v in metrics.items() if k.startswith(PRODUCTION_PREFIX)}


def candidate_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The candidate's own metrics (what the registry records as its ``Metrics``)."""
    return {k: v for k, v in metrics.items() if not k.startswith(PRODUCTION_PREFIX)}
