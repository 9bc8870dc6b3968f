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
