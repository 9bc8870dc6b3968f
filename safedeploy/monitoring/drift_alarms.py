"""Drift alarms: one per configured feature on ``feature_baseline_drift_<name>``, and the combined drift alarm.

The rules come from ``spec.monitoring.drift_alarms`` (feature -> threshold) through :func:`drift_alarm_rules`,
the one definition the local evaluation here and the AWS rendering both read. Each monitoring execution is one
period's datapoint: the feature's drift metric, or missing when the execution had too little data for that
feature (the power-aware verdict) or failed. States follow CloudWatch's rules (``safedeploy/alarms.py``:
``missing`` data leaves an alarm ``INSUFFICIENT_DATA``, never OK by default). The combined alarm
(``naming.drift_alarm_name(spec)``, what retraining subscribes to) is ALARM when any feature's is, OK when all
are OK, INSUFFICIENT_DATA otherwise, as a CloudWatch composite alarm ``ALARM(a) OR ALARM(b)`` behaves.
Every state change is kept (``<state>/alarms/<name>.json``) and published as CloudWatch's state-change event.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safedeploy import naming
from safedeploy.alarms import AlarmRule, AlarmState, evaluate
from safedeploy.atomic import atomic_write_text
from safedeploy.events import EventLog, alarm_state_change
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.records import MonitoringExecution
from safedeploy.monitoring.schedule import parse_schedule
from safedeploy.spec import PipelineSpec


@dataclass(frozen=True)
class DriftAlarmRule:
    """One feature's drift alarm: the metric it watches and its CloudWatch settings."""

    feature: str
    metric: str
    rule: AlarmRule


def drift_alarm_rules(spec: PipelineSpec) -> list[DriftAlarmRule]:
    """The drift alarms the spec configures (defined once: rendered locally and to CloudWatch)."""
    monitoring = spec.monitoring
    period = parse_schedule(monitoring.schedule_expression).every_hours * 3600
    return [
        DriftAlarmRule(
            feature=feature,
            metric=f"{F.DRIFT_METRIC_PREFIX}{feature}",
            rule=AlarmRule(
                name=naming.drift_alarm_name(spec, feature),
                threshold=threshold,
                comparison="GreaterThanThreshold",
                period_seconds=float(period),
                evaluation_periods=monitoring.alarm_evaluation_periods,
                datapoints_to_alarm=monitoring.alarm_datapoints_to_alarm,
                treat_missing_data="missing",
            ),
        )
        for feature, threshold in sorted(monitoring.drift_alarms.items())
    ]


class AlarmStates:
    """``DescribeAlarms``-shaped state per alarm under ``<root>/<name>.json``."""

    def __init__(self, root: Path, region: str, account_id: str) -> None:
        self.root = root
        self.region = region
        self.account_id = account_id

    def arn(self, name: str) -> str:
        """The alarm's ARN."""
        return f"arn:aws:cloudwatch:{self.region}:{self.account_id}:alarm:{name}"

    def get(self, name: str) -> dict[str, Any]:
        """The alarm's record (INSUFFICIENT_DATA before its first evaluation)."""
        path = self.root / f"{name}.json"
        if path.is_file():
            record: dict[str, Any] = json.loads(path.read_text("utf-8"))
            return record
        return {"AlarmName": name, "StateValue": AlarmState.INSUFFICIENT_DATA.value, "StateReason": "not evaluated yet"}

    def set(self, record: dict[str, Any]) -> None:
        """Save the alarm's record."""
        atomic_write_text(self.root / f"{record['AlarmName']}.json", json.dumps(record, indent=2, default=str))


def evaluate_drift_alarms(
    spec: PipelineSpec, executions: Sequence[MonitoringExecution], states: AlarmStates, events: EventLog
) -> dict[str, str]:
    """Re-evaluate every drift alarm on the executions (oldest first); return alarm name -> state."""
    periods = [e for e in executions if e.MonitoringExecutionStatus != "InProgress"]
    result: dict[str, str] = {}
    children: list[AlarmState] = []
    for alarm in drift_alarm_rules(spec):
        datapoints = [e.Metrics.get(alarm.metric) for e in periods]
        record = states.get(alarm.rule.name)
        old = AlarmState(record["StateValue"])
        new = evaluate(alarm.rule, datapoints, old)
        recent = datapoints[-alarm.rule.evaluation_periods :]
        shown = ", ".join("-" if v is None else f"{v:.4g}" for v in recent) or "no executions"
        reason = (
            f"{alarm.metric} [{shown}] vs threshold {alarm.rule.comparison} {alarm.rule.threshold:g} "
            f"({alarm.rule.datapoints_to_alarm} of {alarm.rule.evaluation_periods} executions)"
        )
        _transition(states, events, alarm.rule.name, old, new, reason, alarm, record)
        children.append(new)
        result[alarm.rule.name] = new.value
    if children:
        combined_name = naming.drift_alarm_name(spec)
        if AlarmState.ALARM in children:
            combined = AlarmState.ALARM
        elif all(state == AlarmState.OK for state in children):
            combined = AlarmState.OK
        else:
            combined = AlarmState.INSUFFICIENT_DATA
        record = states.get(combined_name)
        firing = [name for name, state in result.items() if state == AlarmState.ALARM.value]
        reason = f"features in ALARM: {', '.join(firing)}" if firing else f"{len(children)} feature alarms: none firing"
        _transition(states, events, combined_name, AlarmState(record["StateValue"]), combined, reason, None, record)
        result[combined_name] = combined.value
    return result


def _transition(
    states: AlarmStates,
    events: EventLog,
    name: str,
    old: AlarmState,
    new: AlarmState,
    reason: str,
    alarm: DriftAlarmRule | None,
    record: dict[str, Any],
) -> None:
    now = datetime.now(UTC)
    configuration: dict[str, Any] = {"description": "data drift"}
    if alarm is not None:
        configuration.update(
            {
                "metrics": [
                    {"metricStat": {"metric": {"namespace": F.METRIC_NAMESPACE_ENDPOINT, "name": alarm.metric}}}
                ],
                "threshold": alarm.rule.threshold,
                "comparisonOperator": alarm.rule.comparison,
                "evaluationPeriods": alarm.rule.evaluation_periods,
                "datapointsToAlarm": alarm.rule.datapoints_to_alarm,
                "treatMissingData": alarm.rule.treat_missing_data,
            }
        )
    updated = {
        **record,
        "AlarmName": name,
        "AlarmArn": states.arn(name),
        "StateValue": new.value,
        "StateReason": reason,
        "StateUpdatedTimestamp": record.get("StateUpdatedTimestamp") if new == old else now.isoformat(),
        "LastEvaluated": now.isoformat(),
        **({"MetricName": alarm.metric, "Threshold": alarm.rule.threshold} if alarm else {}),
    }
    states.set(updated)
    if new != old:
        alarm_state_change(events, name, states.arn(name), old.value, new.value, reason, configuration)
