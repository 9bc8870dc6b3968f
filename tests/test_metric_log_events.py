"""The published-metric log (PutMetricData / GetMetricStatistics) and the event log (EventBridge-shaped)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from safedeploy.events import ALARM_STATE_CHANGE, EventLog, alarm_state_change, matches
from safedeploy.metric_log import Datum, MetricLog, statistics

T = datetime(2026, 12, 3, 10, tzinfo=UTC)
DIMS = (("Endpoint", "ep"), ("MonitoringSchedule", "s"))


def _datum(value: float, at: datetime, dims: tuple[tuple[str, str], ...] = DIMS) -> Datum:
    return Datum("/aws/sagemaker/Endpoints/data-metric", "feature_baseline_drift_x", dims, at, value)


def test_put_and_query_by_exact_dimensions_and_time(tmp_path: Path) -> None:
    log = MetricLog(tmp_path)
    log.put([_datum(0.1, T), _datum(0.5, T + timedelta(hours=1)), _datum(0.9, T, (("Endpoint", "other"),))])
    dims = dict(DIMS)
    assert log.query("/aws/sagemaker/Endpoints/data-metric", "feature_baseline_drift_x", dims) == [
        (T, 0.1),
        (T + timedelta(hours=1), 0.5),
    ]
    assert log.query(
        "/aws/sagemaker/Endpoints/data-metric", "feature_baseline_drift_x", dims, start=T + timedelta(minutes=1)
    ) == [(T + timedelta(hours=1), 0.5)]
    assert log.query("/aws/sagemaker/Endpoints/data-metric", "feature_baseline_drift_x", {"Endpoint": "ep"}) == []
    assert len(log.metrics("/aws/sagemaker/Endpoints/data-metric")) == 2


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_afresh(tmp_path: Path) -> None:
    log = MetricLog(tmp_path)
    log.put([_datum(0.1, T)])
    path = next(tmp_path.glob("*.jsonl"))
    with path.open("ab") as handle:  # a writer killed mid-append
        handle.write(b'{"Namespace": "/aws/sagemaker/Endp')
    log.put([_datum(0.2, T + timedelta(hours=1))])
    values = [v for _, v in log.query("/aws/sagemaker/Endpoints/data-metric", "feature_baseline_drift_x", dict(DIMS))]
    assert values == [0.1, 0.2]


def test_statistics_per_period() -> None:
    points = [(T, 1.0), (T + timedelta(minutes=10), 3.0), (T + timedelta(hours=1, minutes=5), 5.0)]
    first, second = statistics(points, T, 3600, ("Sum", "SampleCount", "Average", "Minimum", "Maximum"))
    assert (first["Sum"], first["SampleCount"], first["Average"], first["Minimum"], first["Maximum"]) == (
        4.0, 2.0, 2.0, 1.0, 3.0,
    )  # fmt: skip
    assert second["Timestamp"] == (T + timedelta(hours=1)).isoformat() and second["Sum"] == 5.0
    with pytest.raises(ValueError, match="unknown statistic"):
        statistics(points, T, 60, ("p99",))


def test_events_are_read_after_an_offset_and_filtered_by_pattern(tmp_path: Path) -> None:
    log = EventLog(tmp_path, "us-east-1", "000000000000")
    alarm_state_change(log, "m-drift", "arn:a", "INSUFFICIENT_DATA", "ALARM", "because", {})
    log.put("safedeploy", "Something Else", {"x": 1})
    events, offset = log.read(pattern={"detail-type": [ALARM_STATE_CHANGE], "detail": {"alarmName": ["m-drift"]}})
    assert [e["detail"]["state"]["value"] for e in events] == ["ALARM"]
    assert events[0]["source"] == "aws.cloudwatch" and events[0]["resources"] == ["arn:a"]
    with log.path.open("ab") as handle:  # a line still being written is not consumed
        handle.write(b'{"version": "0", "id": ')
    assert log.read(after=offset) == ([], offset)
    alarm_state_change(log, "m-drift", "arn:a", "ALARM", "OK", "cleared", {})  # after a writer died mid-line
    later, _ = EventLog(tmp_path, "us-east-1", "000000000000").read(after=offset)
    assert [e["detail"]["state"]["value"] for e in later] == ["OK"]
    assert not matches({"detail": "x"}, {"detail": {"alarmName": ["m"]}})
