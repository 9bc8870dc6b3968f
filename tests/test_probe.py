"""The standing synthetic probe: spec, name, schedule, alarm periods, and the Lambda handler with injected fakes."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from lambdas.probe.app import (
    HttpAnswer,
    ProbeClients,
    ProbeError,
    ProbeHandler,
    ProbeSettings,
    create_handler,
)
from safedeploy import constants as C
from safedeploy import naming
from safedeploy.errors import ConfigError
from safedeploy.local import probe_run
from safedeploy.monitoring import probe
from safedeploy.spec import load_spec, rate_seconds
from safedeploy.store import LocalArtifactStore, S3Uri

SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "id": "e-1", "time": "2026-01-01T00:00:00Z"}


# --- spec and name ----------------------------------------------------------------------------------------------


def test_spec_defaults_are_synthetics_metric_with_its_alarm() -> None:
    canary = load_spec().monitoring.synthetic_canary
    assert canary.enabled and canary.schedule_expression == "rate(5 minutes)" and canary.every_seconds == 300
    assert (canary.rows, canary.tolerance, canary.timeout_seconds) == (C.PROBE_ROWS, 1e-6, 60)
    alarm = canary.alarm
    assert (alarm.metric.namespace, alarm.metric.name, alarm.metric.dimensions) == (
        "CloudWatchSynthetics",
        "SuccessPercent",
        ("CanaryName",),
    )
    assert (alarm.comparison, alarm.threshold, alarm.statistic) == ("LessThanThreshold", 90.0, "Average")
    assert alarm.treat_missing_data == "notBreaching"


def test_partial_overrides_keep_the_alarm_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEDEPLOY_MONITORING__SYNTHETIC_CANARY__ALARM__EVALUATION_PERIODS", "3")
    spec = load_spec(
        overrides={
            "monitoring.synthetic_canary.alarm.threshold": 75,
            "monitoring.synthetic_canary.schedule_expression": "rate(1 minute)",
            "monitoring.synthetic_canary.rows": 4,
        }
    )
    canary = spec.monitoring.synthetic_canary
    assert canary.every_seconds == 60 and canary.rows == 4
    assert (canary.alarm.threshold, canary.alarm.evaluation_periods) == (75.0, 3)
    assert canary.alarm.metric.name == "SuccessPercent" and canary.alarm.comparison == "LessThanThreshold"


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("schedule_expression", "rate(1 minutes)", "rate(1 minute)"),
        ("schedule_expression", "cron(0 * * * ? *)", "rate(N minutes"),
        ("alarm.threshold", 150, "SuccessPercent"),
        ("rows", 0, "rows"),
        ("alarm.metric.dimensions", ["EndpointName"], "CanaryName"),
    ],
)
def test_bad_settings_name_the_problem(setting: str, value: Any, named: str) -> None:
    with pytest.raises(ConfigError, match="synthetic_canary") as error:
        load_spec(overrides={f"monitoring.synthetic_canary.{setting}": value})
    assert named in str(error.value)


def test_rate_expressions_as_eventbridge_takes_them() -> None:
    assert [rate_seconds(e) for e in ("rate(1 minute)", "rate(10 minutes)", "rate(2 hours)", "rate(1 day)")] == [
        60,
        600,
        7200,
        86400,
    ]
    with pytest.raises(ConfigError, match="rate\\(1 hour\\)"):
        rate_seconds("rate(1 hours)")


@pytest.mark.parametrize(("model", "environment"), [("customerchurn", "dev"), ("abc", "prd"), ("a" * 15, "x" * 8)])
def test_canary_name_fits_synthetics(model: str, environment: str) -> None:
    spec = load_spec(overrides={"model_name": model, "environment": environment})
    name = naming.probe_canary_name(spec)
    assert len(name) <= 21 and name == name.lower() and name.endswith("-probe")
    assert all(ch.isalnum() or ch in "-_" for ch in name)
    other = naming.probe_canary_name(load_spec(overrides={"model_name": model, "environment": "prod"}))
    assert other != name


# --- schedule and alarm periods ---------------------------------------------------------------------------------


def test_schedule_fires_on_model_time_without_back_filling(tmp_path: Path) -> None:
    spec = load_spec(overrides={"monitoring.time_scale": 60, "state_dir": str(tmp_path)})
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    schedule = probe.ensure_schedule(spec, tmp_path, now=anchor)
    assert schedule is not None and schedule.EverySeconds == 300
    assert probe.due(schedule, None, anchor + timedelta(seconds=4)) is None  # 4 s wall = 4 model minutes
    first = probe.due(schedule, None, anchor + timedelta(seconds=5))
    assert first == anchor + timedelta(minutes=5)
    assert probe.due(schedule, first, anchor + timedelta(seconds=9)) is None
    assert probe.due(schedule, first, anchor + timedelta(seconds=31)) == anchor + timedelta(minutes=30)
    again = probe.ensure_schedule(spec, tmp_path, now=anchor + timedelta(hours=1))
    assert again is not None and again.Anchor == anchor  # a redeploy keeps the clock
    alarm = tmp_path / "alarms" / f"{spec.pipeline_name}-probe-success.json"
    alarm.parent.mkdir()
    alarm.write_text('{"StateValue": "ALARM"}', "utf-8")  # two failed runs before the probe was turned off
    disabled = load_spec(overrides={"monitoring.synthetic_canary.enabled": False, "state_dir": str(tmp_path)})
    assert probe.ensure_schedule(disabled, tmp_path) is None
    assert probe.schedules(tmp_path) == []
    assert not alarm.exists()  # as the stack update deletes ProbeAlarm: nothing left in ALARM that nothing evaluates


def _run(at: datetime, percent: float | None) -> probe.ProbeRunRecord:
    status = probe.SKIPPED if percent is None else probe.PASSED if percent == 100 else probe.FAILED
    return probe.ProbeRunRecord("c-probe", at, at, status, "test", SuccessPercent=percent)


def test_period_datapoints_average_runs_and_leave_skipped_ones_missing() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    runs = [_run(base, 100), _run(base + timedelta(minutes=1), 0), _run(base + timedelta(minutes=5), None)]
    points = probe.period_datapoints(runs, 300, 3, base + timedelta(minutes=5))
    assert points == [None, 50.0, None]


def test_no_production_skips_without_a_datapoint_and_the_alarm_stays_ok(tmp_path: Path) -> None:
    spec = load_spec(overrides={"state_dir": str(tmp_path)})
    schedule = probe.ensure_schedule(spec, tmp_path)
    assert schedule is not None
    fire = schedule.Anchor + timedelta(minutes=5)
    assert probe_run.run_scheduled(tmp_path, schedule.CanaryName, fire) == 0
    (run,) = probe.latest_runs(tmp_path, spec)
    assert run.Status == "Skipped" and run.SuccessPercent is None and "no production yet" in run.Reason
    assert probe.probe_status(tmp_path, spec).count("no datapoint") == 1
    assert not (tmp_path / "metrics").exists()  # nothing published
    assert probe.last_fire(tmp_path, schedule.CanaryName) == fire


def test_failed_periods_alarm_and_the_transition_is_an_event(tmp_path: Path) -> None:
    spec = load_spec(overrides={"state_dir": str(tmp_path)})
    canary = naming.probe_canary_name(spec)
    runs = tmp_path / "probes" / canary / "runs.jsonl"
    runs.parent.mkdir(parents=True)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    states = []
    for minutes, percent in ((0, 100.0), (5, 0.0), (10, 0.0), (15, 100.0)):
        at = base + timedelta(minutes=minutes)
        with runs.open("ab") as handle:
            handle.write(_run(at, percent).line())
        states.append(probe.evaluate_alarm(spec, tmp_path, at))
    assert states == ["OK", "OK", "ALARM", "OK"]  # 2 of 2 periods below 90 %
    events = [json.loads(line) for line in (tmp_path / "events" / "events.jsonl").read_text().splitlines()]
    changes = [(e["detail"]["previousState"]["value"], e["detail"]["state"]["value"]) for e in events]
    assert changes == [("INSUFFICIENT_DATA", "OK"), ("OK", "ALARM"), ("ALARM", "OK")]
    assert events[1]["detail"]["alarmName"] == f"{spec.pipeline_name}-probe-success"


# --- the Lambda handler with injected fakes ---------------------------------------------------------------------


@dataclass
class FakeCloudWatch:
    data: list[dict[str, Any]] = field(default_factory=list)

    def put_metric_data(self, *, Namespace: str, MetricData: list[dict[str, Any]]) -> None:  # noqa: N803
        self.data.extend({"Namespace": Namespace, **datum} for datum in MetricData)


@dataclass
class FakeApi:
    """Answers each row with a score from ``scores`` (by body), or the given status."""

    scores: Mapping[str, str]
    status: int = 200
    seconds: float = 0.01
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpAnswer:
        self.seen.append((url, dict(headers)))
        if self.status != 200:
            return HttpAnswer(self.status, b'{"message": "boom"}', self.seconds)
        return HttpAnswer(200, self.scores[body.decode()].encode(), self.seconds)


ROWS = {"rows": ["1,2,3", "4,5,6", "7,8,9"], "expected": [0.25, 0.5, 0.75]}


def _clients(tmp_path: Path, api: FakeApi, cloudwatch: FakeCloudWatch) -> ProbeClients:
    store = LocalArtifactStore(tmp_path / "s3")
    store.put_bytes(S3Uri.parse("s3://bucket/known-rows.json"), json.dumps(ROWS).encode())
    return ProbeClients(cloudwatch=cloudwatch, store=store, post=api)  # type: ignore[arg-type]


ENVIRON = {
    "API_URL": "https://abc.execute-api.us-east-1.amazonaws.com/prd/customerchurn/api",
    "API_KEY": "the-key",
    "CHECKS_URI": "s3://bucket/known-rows.json",
    "CANARY_NAME": "customerch-c19e-probe",
    "METRICS_NAMESPACE": "CloudWatchSynthetics",
    "ROWS": "3",
    "TOLERANCE": "1e-6",
    "LATENCY_BUDGET_MS": "500",
}


def test_a_healthy_api_passes_and_publishes_synthetics_metrics(tmp_path: Path) -> None:
    api, cloudwatch = FakeApi({"1,2,3": "0.25", "4,5,6": "0.5000000001", "7,8,9": "0.75"}), FakeCloudWatch()
    result = create_handler(ENVIRON, _clients(tmp_path, api, cloudwatch))(SCHEDULED, None)
    assert result["passed"] and result["successPercent"] == 100.0 and result["rows"] == 3
    assert len(api.seen) == 3
    url, headers = api.seen[0]
    assert url == ENVIRON["API_URL"] and headers["x-api-key"] == "the-key" and headers[C.SYNTHETIC_HEADER] == "1"
    (success, duration) = cloudwatch.data
    dimensions = [{"Name": "CanaryName", "Value": "customerch-c19e-probe"}]
    assert success == {
        "Namespace": "CloudWatchSynthetics",
        "MetricName": "SuccessPercent",
        "Dimensions": dimensions,
        "Value": 100.0,
        "Unit": "Percent",
    }
    assert duration["MetricName"] == "Duration" and duration["Unit"] == "Milliseconds" and duration["Value"] >= 0


@pytest.mark.parametrize(
    ("api", "named"),
    [
        (FakeApi({"1,2,3": "0.25", "4,5,6": "0.9", "7,8,9": "0.75"}), "row 1: score 0.9 vs offline 0.5"),
        (FakeApi({}, status=502), "status 502"),
        (FakeApi({"1,2,3": "0.25", "4,5,6": "0.5", "7,8,9": "0.75"}, seconds=0.9), "ms > budget 500 ms"),
        (FakeApi({"1,2,3": "0.25\n0.3", "4,5,6": "0.5", "7,8,9": "0.75"}), "row 0: not one score"),
    ],
)
def test_a_wrong_slow_or_failing_answer_fails_the_run(tmp_path: Path, api: FakeApi, named: str) -> None:
    cloudwatch = FakeCloudWatch()
    result = create_handler(ENVIRON, _clients(tmp_path, api, cloudwatch))(SCHEDULED, None)
    assert not result["passed"] and result["successPercent"] == 0.0
    assert named in result["reason"]
    assert cloudwatch.data[0]["Value"] == 0.0


def test_only_scheduled_events_and_a_complete_configuration(tmp_path: Path) -> None:
    handler = create_handler(ENVIRON, _clients(tmp_path, FakeApi({}), FakeCloudWatch()))
    with pytest.raises(ValueError, match="scheduled event"):
        handler({"httpMethod": "POST"}, None)
    broken = create_handler({**ENVIRON, "CANARY_NAME": ""}, _clients(tmp_path, FakeApi({}), FakeCloudWatch()))
    with pytest.raises(ProbeError, match="CANARY_NAME is not set"):
        broken(SCHEDULED, None)
    with pytest.raises(ProbeError, match="ROWS=0"):
        ProbeSettings.from_environ({**ENVIRON, "ROWS": "0"})


def test_the_api_key_is_read_once_with_get_api_key(tmp_path: Path) -> None:
    client = boto3.client("apigateway", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    stubber = Stubber(client)
    stubber.add_response(
        "get_api_key", {"id": "k123", "value": "secret-value"}, {"apiKey": "k123", "includeValue": True}
    )
    api = FakeApi({"1,2,3": "0.25", "4,5,6": "0.5", "7,8,9": "0.75"})
    clients = _clients(tmp_path, api, FakeCloudWatch())
    environ = {k: v for k, v in ENVIRON.items() if k != "API_KEY"} | {"API_KEY_ID": "k123"}
    with stubber:
        handler = ProbeHandler(
            clients=lambda: ProbeClients(clients.cloudwatch, clients.store, api, client), environ=environ
        )
        handler(SCHEDULED, None)
        handler(SCHEDULED, None)  # the key (and the rows) are kept by the container
    assert {headers["x-api-key"] for _, headers in api.seen} == {"secret-value"}
    stubber.assert_no_pending_responses()


def test_the_local_cloudwatch_writes_the_metric_log(tmp_path: Path) -> None:
    from safedeploy.metric_log import MetricLog

    log = MetricLog(tmp_path)
    probe_run.MetricLogCloudWatch(log).put_metric_data(
        Namespace="CloudWatchSynthetics",
        MetricData=[{"MetricName": "SuccessPercent", "Dimensions": [{"Name": "CanaryName", "Value": "c"}], "Value": 0}],
    )
    ((_, value),) = log.query("CloudWatchSynthetics", "SuccessPercent", {"CanaryName": "c"})
    assert value == 0.0


def test_a_run_that_crashes_before_recording_waits_for_the_next_fire(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The runtime's scheduler starts a crashed run's fire once, not again every tick until the next fire."""
    from safedeploy.runtime.main import _run_probe_schedules
    from safedeploy.runtime.paths import RuntimePaths

    spec = load_spec(overrides={"state_dir": str(tmp_path)})
    schedule = probe.ensure_schedule(spec, tmp_path, now=datetime.now(UTC) - timedelta(minutes=6))
    assert schedule is not None  # its first fire (anchor + 5 min) is due, the next one is 4 minutes away
    path = probe.probe_dir(tmp_path, schedule.CanaryName) / "schedule.json"
    broken = {**json.loads(path.read_text("utf-8")), "Spec": {"model_name": "Not A Name"}}
    path.write_text(json.dumps(broken), "utf-8")  # the child cannot read its spec: it exits 1, recording nothing

    async def scenario() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(_run_probe_schedules(RuntimePaths(tmp_path), stop))
        await asyncio.sleep(6.0)  # ticks every second: a crash re-read from disk would start it again and again
        stop.set()
        await asyncio.wait_for(loop, 30)

    with caplog.at_level(logging.INFO, logger="safedeploy.runtime"):
        asyncio.run(scenario())
    started = [r for r in caplog.records if "started (pid" in r.getMessage()]
    exited = [r for r in caplog.records if "exited 1" in r.getMessage()]
    assert len(started) == 1 and len(exited) == 1, [r.getMessage() for r in caplog.records]
    assert probe.latest_runs(tmp_path, spec) == []
