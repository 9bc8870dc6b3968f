"""The quality gate as Step Functions states (JSONata), with the local gate's conditions and messages.

The training task's output carries ``Metrics``: the job's ``FinalMetricDataList`` (what ``MetricDefinitions``
parsed from ``#metric test:auc=...`` lines) as a name -> value object. Then:

* ``CheckMetricsReported`` (Choice): every gated metric present, else ``MetricsNotReported`` (Fail) listing the
  missing ones and what was reported, as :func:`safedeploy.training.gate.check_gate` says it;
* ``Gate1`` ... ``GateN`` (Choice), one per condition in the spec's order: met goes on, else ``GateNFailed``
  (Fail) naming the metric, its value, the threshold and the condition;
* ``CompareWithProduction`` (Choice), when a version serves production and ``gate.compare_with_production``: the
  job scored the test channel with production's model too (its ``production`` channel), so the candidate's
  ``test:auc`` must be at least ``production:test:auc - gate.production_tolerance``, else
  ``ProductionGateFailed`` (Fail) naming both values as :class:`safedeploy.training.gate.ProductionComparison` does;
* then the ``next_state`` (registration).

JSONata (not JSONPath) because a JSONPath filter on a metric the job did not report is a ``States.Runtime``
error that no ``Catch`` can turn into a named gate failure; JSONata's ``$lookup``/``$exists`` can.
"""

from __future__ import annotations

import json
from typing import Any

from safedeploy.errors import ConfigError
from safedeploy.sagemaker_requests.training import reported_metrics
from safedeploy.spec import GateCondition, GateSpec
from safedeploy.training.gate import COMPARED_METRIC, PRODUCTION_PREFIX
from safedeploy.training.production import Production

Json = dict[str, Any]
GATE_ERROR = "QualityGateFailed"
CHECK_REPORTED = "CheckMetricsReported"
NOT_REPORTED = "MetricsNotReported"
NOT_REGISTERED = "; the model was not registered"
COMPARE_STATE = "CompareWithProduction"
COMPARE_FAILED = "ProductionGateFailed"


def _expr(body: str) -> str:
    return "{% " + body + " %}"


def _text(value: str) -> str:
    """A JSONata string literal."""
    return json.dumps(value)


def _metric(name: str) -> str:
    return f"$lookup($states.input.Metrics, {_text(name)})"


def metrics_output() -> str:
    """The training task's ``Output``: job name, model artifact and the metrics as ``{name: value}``."""
    return _expr(
        '{"TrainingJobName": $states.result.TrainingJobName, '
        '"ModelDataUrl": $states.result.ModelArtifacts.S3ModelArtifacts, '
        '"Metrics": $merge($append([{}], $states.result.FinalMetricDataList.{MetricName: Value}))}'
    )


def gate_state_name(index: int) -> str:
    """The Choice state of the ``index``-th condition (1-based)."""
    return f"Gate{index}"


def failed_state_name(index: int) -> str:
    """The Fail state of the ``index``-th condition."""
    return f"Gate{index}Failed"


def _failure_cause(condition: GateCondition) -> str:
    side = "below" if condition.op == ">=" else "above"
    return _expr(
        f"{_text(f'quality gate failed: {condition.metric} = ')} & "
        f"$formatNumber({_metric(condition.metric)}, '0.0000') & "
        f"{_text(f' is {side} the threshold {condition.threshold:g} (required {condition})' + NOT_REGISTERED)}"
    )


def _not_reported_cause(metrics: list[str]) -> str:
    names = "[" + ", ".join(_text(m) for m in metrics) + "]"
    missing = f"$join($filter({names}, function($m) {{ $not($exists($lookup($states.input.Metrics, $m))) }}), ', ')"
    reported = "($k := $keys($states.input.Metrics); $count($k) > 0 ? $join($sort($k), ', ') : 'none')"
    return _expr(
        f"'quality gate failed: metric(s) ' & {missing} & ' not reported by training (reported: ' & {reported} & "
        f"{_text(')' + NOT_REGISTERED)}"
    )


def _comparison_cause(gate: GateSpec, production: Production) -> str:
    candidate = f"$formatNumber({_metric(COMPARED_METRIC)}, '0.0000')"
    served = f"$formatNumber({_metric(PRODUCTION_PREFIX + COMPARED_METRIC)}, '0.0000')"
    return _expr(
        f"{_text(f'quality gate failed: {COMPARED_METRIC} ')} & {candidate} & "
        f"{_text(f' is below production v{production.version}' + chr(39) + 's ')} & {served} & "
        f"{_text(f' on the same held-out rows (tolerance {gate.production_tolerance:g})' + NOT_REGISTERED)}"
    )


def comparison_states(gate: GateSpec, production: Production, next_state: str) -> Json:
    """``CompareWithProduction`` and its Fail state: candidate >= production - tolerance, both from this job."""
    candidate, served = _metric(COMPARED_METRIC), _metric(PRODUCTION_PREFIX + COMPARED_METRIC)
    return {
        COMPARE_STATE: {
            "Type": "Choice",
            "Comment": f"Not worse than production v{production.version} on the same held-out rows "
            f"({COMPARED_METRIC}, tolerance {gate.production_tolerance:g})",
            "Choices": [
                {"Condition": _expr(f"{candidate} >= {served} - {gate.production_tolerance!r}"), "Next": next_state}
            ],
            "Default": COMPARE_FAILED,
        },
        COMPARE_FAILED: {"Type": "Fail", "Error": GATE_ERROR, "Cause": _comparison_cause(gate, production)},
    }


def gate_states(gate: GateSpec, next_state: str, production: Production | None = None) -> tuple[str, Json]:
    """The gate's states and the name of the first; a met gate continues to ``next_state``.

    With ``production`` (the version serving it, whose archive is the job's ``production`` channel) and
    ``gate.compare_with_production``, the absolute conditions are followed by the comparison with production.

    Raises:
        ConfigError: a condition asks for a metric the training job does not report.
    """
    reported = set(reported_metrics())
    unknown = sorted({c.metric for c in gate.conditions} - reported)
    if unknown:
        raise ConfigError(
            f"gate.conditions: the training job does not report {', '.join(unknown)} "
            f"(it reports {', '.join(reported_metrics())})"
        )
    compare = production is not None and gate.compare_with_production
    after_conditions = COMPARE_STATE if compare else next_state
    metrics = list(dict.fromkeys(c.metric for c in gate.conditions))
    if compare:
        metrics = list(dict.fromkeys([*metrics, COMPARED_METRIC, PRODUCTION_PREFIX + COMPARED_METRIC]))
    present = " and ".join(f"$exists({_metric(m)})" for m in metrics)
    states: Json = {
        CHECK_REPORTED: {
            "Type": "Choice",
            "Comment": "Every metric the gate needs was reported by the training job",
            "Choices": [{"Condition": _expr(present), "Next": gate_state_name(1)}],
            "Default": NOT_REPORTED,
        },
        NOT_REPORTED: {"Type": "Fail", "Error": GATE_ERROR, "Cause": _not_reported_cause(metrics)},
    }
    count = len(gate.conditions)
    for index, condition in enumerate(gate.conditions, start=1):
        states[gate_state_name(index)] = {
            "Type": "Choice",
            "Comment": f"Quality gate: {condition}",
            "Choices": [
                {
                    "Condition": _expr(f"{_metric(condition.metric)} {condition.op} {condition.threshold!r}"),
                    "Next": gate_state_name(index + 1) if index < count else after_conditions,
                }
            ],
            "Default": failed_state_name(index),
        }
        states[failed_state_name(index)] = {"Type": "Fail", "Error": GATE_ERROR, "Cause": _failure_cause(condition)}
    if compare:
        assert production is not None  # noqa: S101 - compare implies it
        states.update(comparison_states(gate, production, next_state))
    return CHECK_REPORTED, states
