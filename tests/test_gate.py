"""Quality gate: a model below the bar fails Train with metric, value and threshold, and is never registered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from safedeploy.errors import GateFailedError
from safedeploy.pipeline import Pipeline
from safedeploy.runner import Status
from safedeploy.spec import GateCondition, GateSpec, PipelineSpec
from safedeploy.training.gate import check_gate
from tests.conftest import REPO_ROOT


def _gate(*conditions: tuple[str, Any, float]) -> GateSpec:
    return GateSpec(conditions=tuple(GateCondition(metric=m, op=op, threshold=t) for m, op, t in conditions))


def test_passing_gate_reports_each_check() -> None:
    checks = check_gate(
        _gate(("test:auc", ">=", 0.9), ("test:log_loss", "<=", 0.4)), {"test:auc": 0.93, "test:log_loss": 0.2}
    )
    assert [c.passed for c in checks] == [True, True]


def test_failing_gate_names_metric_value_and_threshold() -> None:
    with pytest.raises(GateFailedError) as info:
        check_gate(_gate(("test:auc", ">=", 0.9)), {"test:auc": 0.8712})
    assert "test:auc = 0.8712 is below the threshold 0.9" in str(info.value)
    assert "not registered" in str(info.value)


@pytest.mark.parametrize(
    ("op", "threshold", "value", "passed"),
    [
        (">=", 0.9, 0.9, True),  # exactly the threshold meets ">="
        (">=", 0.9, 0.8999999999, False),
        ("<=", 0.4, 0.4, True),  # exactly the threshold meets "<="
        ("<=", 0.4, 0.4000000001, False),
    ],
)
def test_a_metric_exactly_at_its_threshold_passes(op: Any, threshold: float, value: float, passed: bool) -> None:
    gate = _gate(("test:auc", op, threshold))
    if passed:
        [check] = check_gate(gate, {"test:auc": value})
        assert check.passed and str(check) == f"test:auc = {value:.4f} (required {check.condition})"
    else:
        side = "below" if op == ">=" else "above"
        with pytest.raises(GateFailedError, match=f"is {side} the threshold {threshold:g}"):
            check_gate(gate, {"test:auc": value})


def test_the_default_gate_admits_a_model_exactly_at_0_90() -> None:
    gate = GateSpec()
    assert [str(c) for c in gate.conditions] == ["test:auc >= 0.9"]
    assert [c.passed for c in check_gate(gate, {"test:auc": 0.9})] == [True]
    with pytest.raises(GateFailedError):
        check_gate(gate, {"test:auc": 0.8999})


def test_upper_bound_and_missing_metric() -> None:
    with pytest.raises(GateFailedError, match=r"test:log_loss = 0\.5000 is above the threshold 0\.4"):
        check_gate(_gate(("test:log_loss", "<=", 0.4)), {"test:log_loss": 0.5})
    with pytest.raises(GateFailedError, match=r"metric\(s\) test:auc not reported"):
        check_gate(_gate(("test:auc", ">=", 0.9)), {"validation:auc": 0.95})


def test_the_failure_names_every_failed_condition_and_only_those() -> None:
    gate = _gate(("test:auc", ">=", 0.9), ("test:log_loss", "<=", 0.4), ("test:f1", ">=", 0.5))
    with pytest.raises(GateFailedError) as info:
        check_gate(gate, {"test:auc": 0.8, "test:log_loss": 0.5, "test:f1": 0.6})
    assert str(info.value) == (
        "quality gate failed: test:auc = 0.8000 is below the threshold 0.9 (required test:auc >= 0.9); "
        "test:log_loss = 0.5000 is above the threshold 0.4 (required test:log_loss <= 0.4); "
        "the model was not registered"
    )


def test_unreported_metrics_are_all_named_with_what_was_reported() -> None:
    gate = _gate(("test:auc", ">=", 0.9), ("test:f1", ">=", 0.5))
    with pytest.raises(GateFailedError) as info:
        check_gate(gate, {"validation:f1": 0.7, "validation:auc": 0.95})
    assert str(info.value) == (
        "quality gate failed: metric(s) test:auc, test:f1 not reported by training "
        "(reported: validation:auc, validation:f1); the model was not registered"
    )
    with pytest.raises(GateFailedError) as nothing:
        check_gate(gate, {})
    assert "(reported: none); the model was not registered" in str(nothing.value)


@pytest.mark.slow
def test_forced_high_threshold_fails_train_and_registers_nothing(make_spec: Callable[..., PipelineSpec]) -> None:
    spec = make_spec(**{"gate.conditions": [{"metric": "test:auc", "op": ">=", "threshold": 0.9999}]})
    pipeline = Pipeline(spec, project_root=REPO_ROOT)
    execution = pipeline.run()
    assert execution.status == Status.FAILED
    train = execution.stage("Train")
    assert train.status == Status.FAILED
    assert train.error is not None and "quality gate failed: test:auc = " in train.error
    assert "is below the threshold 0.9999" in train.error
    assert execution.stage("Register").status is None
    assert pipeline.model_packages() == []


@pytest.mark.slow
def test_default_gate_passes_and_registers(pipeline: Pipeline) -> None:
    execution = pipeline.run()
    assert execution.status == Status.SUCCEEDED, execution.error
    assert execution.stage("Train").outputs["metrics"]["test:auc"] >= 0.90
    [package] = pipeline.model_packages()
    assert package.ModelApprovalStatus == "PendingManualApproval"
