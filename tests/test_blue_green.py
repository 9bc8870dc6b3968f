"""The blue/green controller against a simulated production host: shifts, alarms, rollback, ledger.

The host simulates endpoints answering the synthetic feeder's requests (green may be slow or failing), and
computes each window's statistics from what it served, so the controller's real loop, clock, alarm evaluation
and feeder run unchanged; only the serving is simulated.
"""

from __future__ import annotations

import errno
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from safedeploy.blue_green import (
    ERROR_RATE_ALARM,
    LATENCY_ALARM,
    PREDICTION_ALARM,
    AlarmSettings,
    BlueGreenDeployment,
    LeaseHeartbeat,
    RolledBackError,
    SyntheticAnswer,
    SyntheticTraffic,
    WindowStats,
)
from safedeploy.clock import ScaledClock
from safedeploy.errors import DeploymentError
from safedeploy.ledger import EVENT_ROLLED_BACK, EVENT_SHIFTED, DeploymentLedger, ServedModel
from safedeploy.traffic import build_schedule

BLUE = ServedModel("churn-prd-v1", 1)


@dataclass
class SimulatedHost:
    green_error_rate: float = 0.0
    green_latency_ms: float = 1.0
    green_fails_to_start: bool = False
    feed: bool = True
    green_score_shift: float = 0.0
    failing_hook: str | None = None
    hooks: list[str] = field(default_factory=list)
    routes: list[tuple[str | None, str | None, float]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    served: list[tuple[float, str, int, float]] = field(default_factory=list)
    windows: list[str] = field(default_factory=list)
    leases: list[tuple[str, str]] = field(default_factory=list)
    lease_lost: bool = False
    stall_until: float = 0.0
    stall_at: float = float("inf")
    stall_ms: float = 0.0
    stall_hits: dict[str, int] = field(default_factory=dict)
    """How many of each endpoint's next requests after ``stall_at`` take ``stall_ms`` longer (a stalled machine)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _random: random.Random = field(default_factory=lambda: random.Random(7))

    def start_green(self, endpoint_name: str) -> ServedModel:
        if self.green_fails_to_start:
            raise DeploymentError(f"endpoint {endpoint_name} failed: model load failed: weights are corrupt")
        return ServedModel(endpoint_name, 2)

    def delete_endpoint(self, served: ServedModel) -> None:
        self.deleted.append(served.endpoint)

    def route(self, primary: ServedModel | None, canary: ServedModel | None, weight: float) -> None:
        self.routes.append((primary.endpoint if primary else None, canary.endpoint if canary else None, weight))

    def send_synthetic(self) -> SyntheticAnswer:
        stalled = self.stall_until - time.time()
        if stalled > 0:  # the machine froze: nothing is sent or answered meanwhile
            time.sleep(stalled)
        if not self.feed or not self.routes:
            return SyntheticAnswer(0, -1, "", None)
        primary, canary, weight = self.routes[-1]
        target = canary if canary is not None and self._random.random() < weight else primary
        if target is None:
            return SyntheticAnswer(404, -1, "", None)
        green = target != BLUE.endpoint
        status = 500 if green and self._random.random() < self.green_error_rate else 200
        latency = self.green_latency_ms if green else 1.0
        with self._lock:
            if self.stall_hits.get(target) and time.time() >= self.stall_at:  # the machine froze on this request
                self.stall_hits[target] -= 1
                latency += self.stall_ms / 1.2
        row = self._random.randrange(50)
        score = row / 100 + (self.green_score_shift if green else 0.0)
        with self._lock:
            self.served.append((time.time(), target, status, latency * self._random.uniform(0.8, 1.2)))
        return SyntheticAnswer(status, row, target, score if status == 200 else None)

    def reference_scores(self, blue: ServedModel) -> dict[int, float]:
        return {row: row / 100 for row in range(50)}

    def run_hook(self, hook: str, deployment_id: str, green: ServedModel, since: datetime) -> tuple[str, str]:
        self.hooks.append(hook)
        failing = self.failing_hook == hook
        return ("Failed", f"{hook} check failed") if failing else ("Succeeded", f"{hook} ok")

    def acquire_lease(
        self, deployment_id: str, blue: ServedModel | None, green: ServedModel, hang_timeout_seconds: float
    ) -> None:
        self.leases.append(("acquire", deployment_id))

    def renew_lease(self, deployment_id: str) -> bool:
        return not self.lease_lost

    def release_lease(self, deployment_id: str) -> None:
        self.leases.append(("release", deployment_id))

    def window(self, endpoint: str, start: datetime, end: datetime) -> WindowStats:
        self.windows.append(endpoint)
        with self._lock:
            rows = [r for r in self.served if r[1] == endpoint and start.timestamp() <= r[0] < end.timestamp()]
        if not rows:
            return WindowStats(0, 0, None)
        latencies = sorted(r[3] for r in rows)
        p99 = latencies[int(0.99 * (len(latencies) - 1))]
        return WindowStats(len(rows), sum(r[2] >= 500 for r in rows), p99, latencies[-1])


def _deployment(
    host: SimulatedHost, tmp_path: Path, strategy: str = "Canary10Percent5Minutes", bake_seconds: float = 120
) -> BlueGreenDeployment:
    # Model time: 5-minute canary, 2-minute bake, 60 s alarm periods; at scale 120 a period is 0.5 s on the wall,
    # long enough for the synthetic feeder to fill a 10 % window even when a parallel test worker loads the CPU.
    schedule = build_schedule(strategy, bake_seconds=bake_seconds)
    return BlueGreenDeployment(
        host=host,
        ledger=DeploymentLedger(tmp_path / "ledger", "churn"),
        schedule=schedule,
        alarms=AlarmSettings(min_requests=10),
        clock=ScaledClock(scale=120),
        min_real_period=0.5,
        max_synthetic_rate=2000,
    )


def test_a_healthy_green_shifts_to_100_percent_and_blue_is_torn_down(tmp_path: Path) -> None:
    host = SimulatedHost()
    deployment = _deployment(host, tmp_path)
    green = deployment.run(BLUE, "churn-prd-v2", version=2)
    assert green.endpoint == "churn-prd-v2"
    assert host.routes == [("churn-prd-v1", "churn-prd-v2", 0.1), ("churn-prd-v2", None, 0.0)]
    assert host.deleted == ["churn-prd-v1"]
    summary = deployment.ledger.deployments()[-1]
    assert summary["outcome"] == "Succeeded" and summary["blue"]["endpoint"] == "churn-prd-v1"
    assert [step["weights"] for step in summary["steps"]] == [
        {"churn-prd-v1": 0.9, "churn-prd-v2": 0.1},
        {"churn-prd-v2": 1.0},
    ]
    assert deployment.ledger.live() == ServedModel("churn-prd-v2", 2)
    assert host.hooks == ["BeforeAllowTraffic", "AfterAllowTraffic"]
    hooks = [e for e in deployment.ledger.events() if e["event"] == "HookResult"]
    assert [(e["hook"], e["status"]) for e in hooks] == [
        ("BeforeAllowTraffic", "Succeeded"),
        ("AfterAllowTraffic", "Succeeded"),
    ]
    greens = {r[1] for r in host.served}
    assert greens == {"churn-prd-v1", "churn-prd-v2"}  # both served during the canary
    _assert_ledger(deployment, "Canary10Percent5Minutes: 10% 300s -> 100% 0s, bake 120s", BLUE, [600, 60])


def _assert_ledger(deployment: BlueGreenDeployment, strategy: str, blue: ServedModel | None, rates: list[int]) -> None:
    """The ledger of a deployment that succeeded: every event, with what it says."""
    events = deployment.ledger.events()
    green = events[0]["green"]["endpoint"]
    names = [e["event"] for e in events]
    assert names[:3] == ["DeploymentStarted", "GreenReady", "HookResult"]
    assert names[-2:] == ["HookResult", "DeploymentSucceeded"]
    assert set(names[3:-2]) == {"TrafficShifted", "AlarmTransition"}
    started = events[0]
    assert started["strategy"] == strategy and started["time_scale"] == 120
    assert started["blue"] == (blue.as_dict() if blue else None)
    assert events[1]["green"] == ServedModel(green, 2).as_dict()  # what the simulated host started
    hooks = [(e["hook"], e["status"], e["message"]) for e in events if e["event"] == "HookResult"]
    assert hooks == [("BeforeAllowTraffic", "Succeeded", "BeforeAllowTraffic ok"),
                     ("AfterAllowTraffic", "Succeeded", "AfterAllowTraffic ok")]  # fmt: skip
    assert [e["synthetic_rate"] for e in events if e["event"] == "TrafficShifted"] == rates
    done = events[-1]
    assert done["green"] == events[1]["green"] and done["blue_removed"] == (blue.endpoint if blue else None)
    assert deployment._feeder is not None and done["synthetic_requests"] == deployment._feeder.sent > 0


def test_green_answering_5xx_is_rolled_back_during_the_canary(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    host = SimulatedHost(green_error_rate=0.2)
    deployment = _deployment(host, tmp_path)
    with (
        caplog.at_level(logging.INFO, logger="safedeploy.blue_green"),
        pytest.raises(RolledBackError, match=f"rolled back to churn-prd-v1: alarm {ERROR_RATE_ALARM} in ALARM"),
    ):
        deployment.run(BLUE, "churn-prd-v2", version=2)
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "safedeploy.blue_green"]
    assert logged[0] == ("INFO", "traffic: 10% to churn-prd-v2")
    assert logged[-1][0] == "ERROR"
    assert logged[-1][1].startswith(f"deployment {deployment.deployment_id} rolled back: alarm {ERROR_RATE_ALARM}")
    assert host.routes[-1] == ("churn-prd-v1", None, 0.0)  # 100 % blue
    assert host.deleted == ["churn-prd-v2"]
    assert all(weight < 1 for _, canary, weight in host.routes if canary)  # green never got more than the canary
    summary = deployment.ledger.deployments()[-1]
    assert summary["outcome"] == "RolledBack" and ERROR_RATE_ALARM in summary["reason"]
    alarms = [e for e in deployment.ledger.events() if e["event"] == "AlarmTransition"]
    fired = [e for e in alarms if e["alarm"] == ERROR_RATE_ALARM and e["new"] == "ALARM"]
    assert len(fired) == 1 and fired[0]["during"] == "10% step"
    assert fired[0]["period"] <= 2  # within two alarm periods of green taking traffic (the canary has five)
    assert deployment.ledger.live() is None  # nothing succeeded: blue (deployed before the ledger) still serves


def test_green_much_slower_than_blue_is_rolled_back(tmp_path: Path) -> None:
    host = SimulatedHost(green_latency_ms=200.0)
    deployment = _deployment(host, tmp_path)
    with pytest.raises(RolledBackError, match=LATENCY_ALARM):
        deployment.run(BLUE, "churn-prd-v2", version=2)
    assert host.routes[-1] == ("churn-prd-v1", None, 0.0) and host.deleted == ["churn-prd-v2"]


def test_no_traffic_is_insufficient_data_never_healthy(tmp_path: Path) -> None:
    host = SimulatedHost(feed=False)
    deployment = _deployment(host, tmp_path)
    with pytest.raises(RolledBackError, match="insufficient data during the 10% step"):
        deployment.run(BLUE, "churn-prd-v2", version=2)
    assert host.routes[-1] == ("churn-prd-v1", None, 0.0)


def test_a_green_that_fails_to_start_never_takes_traffic(tmp_path: Path) -> None:
    host = SimulatedHost(green_fails_to_start=True)
    deployment = _deployment(host, tmp_path)
    with pytest.raises(RolledBackError, match="weights are corrupt"):
        deployment.run(BLUE, "churn-prd-v2", version=2)
    assert host.routes == [("churn-prd-v1", None, 0.0)]  # only the rollback's restatement of 100 % blue
    assert host.deleted == ["churn-prd-v2"]  # the failed green is removed too
    assert not any(r[1] == "churn-prd-v2" for r in host.served)
    [failed] = [e for e in deployment.ledger.events() if e["event"] == "GreenFailed"]
    assert failed["green"] == ServedModel("churn-prd-v2", 2).as_dict()
    assert failed["reason"] == "endpoint churn-prd-v2 failed: model load failed: weights are corrupt"


def test_the_first_deployment_goes_all_at_once_and_still_bakes_with_alarms(tmp_path: Path) -> None:
    healthy = SimulatedHost()
    first = _deployment(healthy, tmp_path)
    green = first.run(None, "churn-prd-v9", version=9)
    assert healthy.routes == [("churn-prd-v9", None, 0.0)] and healthy.deleted == []
    assert green.endpoint == "churn-prd-v9"
    _assert_ledger(first, "AllAtOnce (first deployment): 100% 0s, bake 120s", None, [60])

    failing = SimulatedHost(green_error_rate=0.5)
    deployment = _deployment(failing, tmp_path / "second")
    with pytest.raises(RolledBackError, match=r"no production model .*during the bake"):
        deployment.run(None, "churn-prd-v9", version=9)
    assert failing.routes[-1] == (None, None, 0.0) and failing.deleted == ["churn-prd-v9"]


@pytest.mark.parametrize(
    ("strategy", "weights"),
    [
        ("AllAtOnce", []),
        ("Linear10PercentEvery1Minute", [round(0.1 * i, 1) for i in range(1, 10)]),
    ],
)
def test_strategies_drive_the_alias_weights(tmp_path: Path, strategy: str, weights: list[float]) -> None:
    host = SimulatedHost()
    deployment = _deployment(host, tmp_path, strategy)
    deployment.run(BLUE, "churn-prd-v2", version=2)
    assert [round(w, 1) for _, canary, w in host.routes if canary] == weights
    assert host.routes[-1] == ("churn-prd-v2", None, 0.0)
    # Each one-period step has a single window to show healthy: the feeder sends enough that green falls short
    # of the minimum in a window (binomial in its share) less than once in 10,000 windows, whatever its share.
    shifts = [e for e in deployment.ledger.events() if e["event"] == EVENT_SHIFTED and len(e["weights"]) == 2]
    assert len(shifts) == len(weights)
    for shift in shifts:
        share = shift["weights"]["churn-prd-v2"]
        sent = math.floor(shift["synthetic_rate"] * deployment._real_period())
        assert binomial_below(deployment.alarms.min_requests, sent, share) < 1e-4, shift


def binomial_below(k: int, n: int, p: float) -> float:
    """P(X < k) for X ~ Binomial(n, p)."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(min(k, n + 1)))


def test_binomial_below() -> None:
    assert binomial_below(1, 10, 0.5) == pytest.approx(0.5**10)
    assert binomial_below(11, 10, 0.3) == pytest.approx(1.0)
    assert binomial_below(10, 50, 0.3) == pytest.approx(0.0402, abs=1e-4)  # the old 1.5x headroom at 30 %


@pytest.mark.parametrize("hook", ["BeforeAllowTraffic", "AfterAllowTraffic"])
def test_a_failing_hook_rolls_back(tmp_path: Path, hook: str) -> None:
    host = SimulatedHost(failing_hook=hook)
    deployment = _deployment(host, tmp_path)
    with pytest.raises(RolledBackError, match=f"the {hook} hook reported Failed: {hook} check failed"):
        deployment.run(BLUE, "churn-prd-v2", version=2)
    assert host.routes[-1] == ("churn-prd-v1", None, 0.0) and host.deleted == ["churn-prd-v2"]
    if hook == "BeforeAllowTraffic":  # green never took traffic
        assert not any(r[1] == "churn-prd-v2" for r in host.served) and len(host.routes) == 1


def test_green_predicting_differently_from_blue_on_the_same_rows_is_rolled_back(tmp_path: Path) -> None:
    host = SimulatedHost(green_score_shift=0.3)  # healthy HTTP, fast, but its scores moved by 0.3
    deployment = _deployment(host, tmp_path)
    with pytest.raises(RolledBackError, match=f"alarm {PREDICTION_ALARM} in ALARM during the 10% step"):
        deployment.run(BLUE, "churn-prd-v2", version=2)
    assert host.routes[-1] == ("churn-prd-v1", None, 0.0)


def test_green_scoring_lower_than_blue_is_rolled_back_too(tmp_path: Path) -> None:
    """The shift is |green - blue|: a model that lowers every score is as wrong as one that raises them."""
    host = SimulatedHost(green_score_shift=-0.3)
    deployment = _deployment(host, tmp_path)
    with pytest.raises(RolledBackError, match=f"alarm {PREDICTION_ALARM} in ALARM during the 10% step"):
        deployment.run(BLUE, "churn-prd-v2", version=2)
    assert host.routes[-1] == ("churn-prd-v1", None, 0.0) and host.deleted == ["churn-prd-v2"]
    fired = [e for e in deployment.ledger.events() if e["event"] == "AlarmTransition" and e["new"] == "ALARM"]
    assert [e["alarm"] for e in fired] == [PREDICTION_ALARM]


def _shift_of(answers: list[SyntheticAnswer], tmp_path: Path, min_requests: int = 10) -> float | None:
    """The prediction-shift datapoint of one window holding ``answers`` (blue scored row r as r / 100)."""
    deployment = _deployment(SimulatedHost(), tmp_path)
    deployment.alarms = AlarmSettings(min_requests=min_requests)
    feeder = SyntheticTraffic(send=lambda: SyntheticAnswer(0, -1, "", None))
    feeder.answers = [(100.0, answer) for answer in answers]
    deployment._feeder, deployment._blue_scores = feeder, {row: row / 100 for row in range(50)}
    window = (datetime.fromtimestamp(99.5, UTC), datetime.fromtimestamp(100.5, UTC))
    return deployment._datapoints(BLUE, ServedModel("churn-prd-v2", 2), *window)[PREDICTION_ALARM]


def _green(row: int, shift: float) -> SyntheticAnswer:
    return SyntheticAnswer(200, row, "churn-prd-v2", row / 100 + shift)


def test_the_prediction_shift_is_the_mean_absolute_difference(tmp_path: Path) -> None:
    ups_and_downs = [_green(row, 0.25 if row % 2 else -0.25) for row in range(10, 20)]
    assert _shift_of(ups_and_downs, tmp_path / "a") == pytest.approx(0.25)  # signed, they would cancel to 0
    assert _shift_of([_green(row, -0.3) for row in range(10, 20)], tmp_path / "b") == pytest.approx(0.3)
    blue_and_failures = [SyntheticAnswer(200, 5, BLUE.endpoint, 0.9), SyntheticAnswer(500, 6, "churn-prd-v2", None)]
    assert _shift_of([_green(row, 0.1) for row in range(10, 20)] + blue_and_failures, tmp_path / "c") == (
        pytest.approx(0.1)
    )  # only green's answered rows count


def test_the_prediction_shift_needs_the_minimum_number_of_green_answers(tmp_path: Path) -> None:
    answers = [_green(row, 0.5) for row in range(10)]
    assert _shift_of(answers, tmp_path / "a", min_requests=10) == pytest.approx(0.5)
    assert _shift_of(answers[:9], tmp_path / "b", min_requests=10) is None  # missing, not healthy


def test_a_shift_exactly_at_the_limit_is_not_an_alarm() -> None:
    rules = {rule.name: rule for rule in AlarmSettings().rules(compare_predictions=True)}
    assert set(rules) == {ERROR_RATE_ALARM, LATENCY_ALARM, PREDICTION_ALARM}
    shift = rules[PREDICTION_ALARM]
    assert shift.threshold == 0.2 and not shift.breaches(0.2) and shift.breaches(0.2000001)
    assert set(AlarmSettings().rules()) == {rules[ERROR_RATE_ALARM], rules[LATENCY_ALARM]}


def test_a_small_prediction_difference_passes(tmp_path: Path) -> None:
    host = SimulatedHost(green_score_shift=0.05)
    assert _deployment(host, tmp_path).run(BLUE, "churn-prd-v2", version=2).endpoint == "churn-prd-v2"


@dataclass
class _Windows:
    """A host whose endpoints' window statistics are set by the test (the alarm datapoints' only input)."""

    stats: dict[str, WindowStats]

    def window(self, endpoint: str, start: datetime, end: datetime) -> WindowStats:
        return self.stats.get(endpoint, WindowStats(0, 0, None))


GREEN = ServedModel("churn-prd-v2", 2)
WINDOW = (datetime.fromtimestamp(99.0, UTC), datetime.fromtimestamp(100.0, UTC))


def _values(
    tmp_path: Path, stats: dict[str, WindowStats], settings: AlarmSettings, blue: ServedModel | None = BLUE
) -> dict[str, float | None]:
    deployment = _deployment(SimulatedHost(), tmp_path)
    deployment.host = _Windows(stats)  # type: ignore[assignment]
    deployment.alarms = settings
    return deployment._datapoints(blue, GREEN, *WINDOW)


def test_error_rate_and_latency_datapoints_need_the_minimum_requests(tmp_path: Path) -> None:
    short = {GREEN.endpoint: WindowStats(9, 9, 500.0), BLUE.endpoint: WindowStats(100, 0, 10.0)}
    assert _values(tmp_path / "a", short, AlarmSettings(min_requests=10)) == {
        PREDICTION_ALARM: None
    }  # missing, never healthy
    enough = {GREEN.endpoint: WindowStats(10, 1, 40.0), BLUE.endpoint: WindowStats(100, 0, 10.0)}
    assert _values(tmp_path / "b", enough, AlarmSettings(min_requests=10)) == {
        PREDICTION_ALARM: None,
        ERROR_RATE_ALARM: pytest.approx(0.1),
        LATENCY_ALARM: pytest.approx(40.0 - (2.0 * 10.0 + 25.0)),  # green p99 - (ratio x blue p99 + slack)
    }
    no_latency = {GREEN.endpoint: WindowStats(10, 0, None)}
    assert _values(tmp_path / "c", no_latency, AlarmSettings(min_requests=10)) == {
        PREDICTION_ALARM: None,
        ERROR_RATE_ALARM: 0.0,
    }


def test_latency_is_judged_against_blue_in_the_same_window_or_the_budget_without_blue(tmp_path: Path) -> None:
    green = WindowStats(50, 0, 130.0)
    settings = AlarmSettings(min_requests=10, latency_ratio=3.0, latency_slack_ms=5.0, max_latency_ms=100.0)
    same_window = {GREEN.endpoint: green, BLUE.endpoint: WindowStats(10, 0, 40.0)}
    assert _values(tmp_path / "a", same_window, settings)[LATENCY_ALARM] == pytest.approx(130.0 - 125.0)
    quiet_blue = {GREEN.endpoint: green, BLUE.endpoint: WindowStats(9, 0, 40.0)}  # too few requests to judge by
    assert _values(tmp_path / "b", quiet_blue, settings)[LATENCY_ALARM] == pytest.approx(130.0 - 100.0)
    first = {GREEN.endpoint: green}
    assert _values(tmp_path / "c", first, settings, blue=None)[LATENCY_ALARM] == pytest.approx(30.0)


def test_during_the_bake_blues_last_window_stays_the_reference(tmp_path: Path) -> None:
    deployment = _deployment(SimulatedHost(), tmp_path)
    host = _Windows({GREEN.endpoint: WindowStats(50, 0, 60.0), BLUE.endpoint: WindowStats(50, 0, 20.0)})
    deployment.host = host  # type: ignore[assignment]
    assert deployment._datapoints(BLUE, GREEN, *WINDOW)[LATENCY_ALARM] == pytest.approx(60.0 - 65.0)
    host.stats[BLUE.endpoint] = WindowStats(0, 0, None)  # at 100 % green blue takes no traffic
    host.stats[GREEN.endpoint] = WindowStats(50, 0, 70.0)
    assert deployment._datapoints(BLUE, GREEN, *WINDOW)[LATENCY_ALARM] == pytest.approx(70.0 - 65.0)


def test_the_alarm_rules_carry_the_settings() -> None:
    settings = AlarmSettings(period_seconds=30, evaluation_periods=3, datapoints_to_alarm=2, max_error_rate=0.05)
    rules = settings.rules(compare_predictions=True)
    assert [(r.name, r.threshold, r.comparison) for r in rules] == [
        (ERROR_RATE_ALARM, 0.05, "GreaterThanThreshold"),
        (LATENCY_ALARM, 0.0, "GreaterThanThreshold"),
        (PREDICTION_ALARM, 0.2, "GreaterThanThreshold"),
    ]
    assert {(r.period_seconds, r.evaluation_periods, r.datapoints_to_alarm, r.treat_missing_data) for r in rules} == {
        (30, 3, 2, "missing")
    }


def test_the_feeder_runs_its_threads_at_the_rate_and_counts_failures(tmp_path: Path) -> None:
    statuses = iter([200, 500, 499, 0] + [200] * 10_000)
    lock = threading.Lock()

    def send() -> SyntheticAnswer:
        with lock:
            status = next(statuses)
        if status == 0:
            raise ConnectionError("refused")
        return SyntheticAnswer(status, 1, "churn-prd-v2", 0.5 if status == 200 else None)

    feeder = SyntheticTraffic(send, rate=40.0, concurrency=2)
    feeder.start()
    started = time.monotonic()
    try:
        assert [t.name for t in feeder._threads] == ["synthetic-traffic-0", "synthetic-traffic-1"]
        assert all(t.daemon and t.is_alive() for t in feeder._threads)
        deadline = started + 10
        while feeder.sent < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        elapsed = time.monotonic() - started
    finally:
        feeder.stop()
    assert not any(t.is_alive() for t in feeder._threads)
    assert feeder.sent >= 10 and elapsed >= 0.15  # 2 threads x 20/s: the 10th request is due after 0.2 s
    assert feeder.failures == 2  # the 500 and the refused request; a 4XX is not the feeder's failure
    first = sorted((answer for _, answer in feeder.answers[:4]), key=lambda a: a.status)
    assert first == [
        SyntheticAnswer(0, -1, "", None),  # the refused request, recorded as such
        SyntheticAnswer(200, 1, "churn-prd-v2", 0.5),
        SyntheticAnswer(499, 1, "churn-prd-v2", None),
        SyntheticAnswer(500, 1, "churn-prd-v2", None),
    ]


def test_a_paused_feeder_sends_nothing_and_the_window_is_half_open() -> None:
    feeder = SyntheticTraffic(lambda: SyntheticAnswer(200, 0, "g", 0.1), rate=0.0)
    feeder.start()
    feeder.stop()
    assert feeder.sent == 0
    feeder.answers = [(at, SyntheticAnswer(200, int(at), "g", 0.1)) for at in (9.999, 10.0, 10.5, 11.0)]
    assert [a.row for a in feeder.window(10.0, 11.0)] == [10, 10]
    assert [at for at, _ in feeder.answers if 10.0 <= at < 11.0] == [10.0, 10.5]


@dataclass
class _BrokenRollback(SimulatedHost):
    """Green fails to start, and putting blue back fails too: the reason names both."""

    green_fails_to_start: bool = True

    def route(self, primary: ServedModel | None, canary: ServedModel | None, weight: float) -> None:
        raise RuntimeError("alias update refused")

    def delete_endpoint(self, served: ServedModel) -> None:
        raise RuntimeError("endpoint busy")


def test_rollback_problems_are_named_and_recorded(tmp_path: Path) -> None:
    deployment = _deployment(_BrokenRollback(), tmp_path)
    with pytest.raises(RolledBackError) as failure:
        deployment.run(BLUE, "churn-prd-v2", version=2)
    problems = ["restoring the route failed: alias update refused", "deleting churn-prd-v2 failed: endpoint busy"]
    assert str(failure.value).endswith(f" (rollback problems: {'; '.join(problems)})")
    assert str(failure.value).startswith("rolled back to churn-prd-v1: green failed to start: endpoint churn-prd-v2")
    [rolled_back] = [e for e in deployment.ledger.events() if e["event"] == EVENT_ROLLED_BACK]
    assert rolled_back["problems"] == problems and rolled_back["restored"] == BLUE.as_dict()
    assert rolled_back["reason"].startswith("green failed to start: endpoint churn-prd-v2 failed")


def test_a_one_second_bake_is_still_watched_for_one_period(tmp_path: Path) -> None:
    """The shortest bake still evaluates the alarms once (a whole period), never zero times and never two."""
    healthy = SimulatedHost()
    _deployment(healthy, tmp_path / "a", bake_seconds=1).run(None, "churn-prd-v9", version=9)
    assert healthy.windows == ["churn-prd-v9"]  # one period, green alone
    failing = SimulatedHost(green_error_rate=0.5)
    with pytest.raises(RolledBackError, match="during the bake at 100%"):
        _deployment(failing, tmp_path / "b", bake_seconds=1).run(None, "churn-prd-v9", version=9)


@dataclass
class _VirtualClock(ScaledClock):
    """Scaled time that moves only when the controller sleeps (``late`` extra wall seconds per sleep)."""

    now: float = 1_000_000.2
    late: float = 0.0
    interrupted_after: int | None = None
    slept: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.wall = lambda: self.now

    def sleep(self, model_seconds: float) -> bool:
        if self.interrupted_after is not None and len(self.slept) >= self.interrupted_after:
            return False
        self.slept.append(model_seconds)
        self.now += self.real_seconds(model_seconds) + self.late
        return True


@dataclass
class _Recorded:
    """Window statistics per call (green's ``errors`` in the periods listed), and the windows asked for."""

    failing_periods: tuple[int, ...] = ()
    slow_periods: tuple[int, ...] = ()
    quiet_calls: int = 0
    """Green's first windows without traffic."""
    asked: list[tuple[str, datetime, datetime]] = field(default_factory=list)

    def window(self, endpoint: str, start: datetime, end: datetime) -> WindowStats:
        self.asked.append((endpoint, start, end))
        period = len([a for a in self.asked if a[0] == endpoint])
        if endpoint == GREEN.endpoint and period <= self.quiet_calls:
            return WindowStats(0, 0, None)
        errors = 25 if endpoint == GREEN.endpoint and period in self.failing_periods else 0
        p99 = 900.0 if endpoint == GREEN.endpoint and period in self.slow_periods else 1.0
        return WindowStats(50, errors, p99)


def _watcher(tmp_path: Path, clock: _VirtualClock, host: _Recorded) -> BlueGreenDeployment:
    deployment = _deployment(SimulatedHost(), tmp_path)
    deployment.host, deployment.clock, deployment.synthetic = host, clock, False  # type: ignore[assignment]
    return deployment


def test_a_step_is_watched_in_whole_aligned_periods_of_utc_windows(tmp_path: Path) -> None:
    clock, host = _VirtualClock(scale=120), _Recorded()
    _watcher(tmp_path, clock, host)._watch(BLUE, GREEN, 300, "10% step")  # 5 model minutes, 60 s periods
    green = [(start.timestamp(), end.timestamp()) for who, start, end in host.asked if who == GREEN.endpoint]
    assert green == [(1_000_000.5 + 0.5 * k, 1_000_001.0 + 0.5 * k) for k in range(5)]  # 0.5 s on the wall each
    assert [(s, e) for who, s, e in host.asked if who == BLUE.endpoint] == [
        (s, e) for who, s, e in host.asked if who == GREEN.endpoint
    ]  # blue over the same windows
    assert all(t.tzinfo is UTC for _, start, end in host.asked for t in (start, end))
    assert clock.slept == pytest.approx([(0.8 + 0.05) * 120] + [0.5 * 120] * 4)  # to each window's end + 50 ms


def test_no_wait_is_no_watch_and_the_shortest_wait_one_period(tmp_path: Path) -> None:
    clock, host = _VirtualClock(scale=120), _Recorded()
    _watcher(tmp_path, clock, host)._watch(BLUE, GREEN, 0, "0% step")
    assert host.asked == [] and clock.slept == []
    _watcher(tmp_path, clock, host)._watch(None, GREEN, 1, "bake at 100%")
    assert [who for who, _, _ in host.asked] == [GREEN.endpoint] and len(clock.slept) == 1


def test_a_late_controller_does_not_sleep_for_windows_already_over(tmp_path: Path) -> None:
    clock, host = _VirtualClock(scale=120, late=2.0), _Recorded()  # every sleep overruns by 2 s
    _watcher(tmp_path, clock, host)._watch(None, GREEN, 300, "10% step")
    assert len(clock.slept) == 1 and len(host.asked) == 5  # the other four windows were over already


def test_an_interrupted_watch_fails_naming_the_step(tmp_path: Path) -> None:
    clock, host = _VirtualClock(scale=120, interrupted_after=2), _Recorded()
    with pytest.raises(DeploymentError, match=r"^interrupted during the 10% step$"):
        _watcher(tmp_path, clock, host)._watch(BLUE, GREEN, 300, "10% step")
    assert len(host.asked) == 2 * 2  # two periods watched (green and blue), the third never evaluated


def test_an_alarm_in_a_later_period_fails_the_step_and_is_recorded(tmp_path: Path) -> None:
    clock, host = _VirtualClock(scale=120), _Recorded(failing_periods=(3,))
    deployment = _watcher(tmp_path, clock, host)
    with pytest.raises(DeploymentError, match=f"^alarm {ERROR_RATE_ALARM} in ALARM during the 10% step: "):
        deployment._watch(BLUE, GREEN, 300, "10% step")
    events = [e for e in deployment.ledger.events() if e["event"] == "AlarmTransition"]
    assert {e["deployment_id"] for e in events} == {deployment.deployment_id}
    fired = [e for e in events if e["new"] == "ALARM"]
    assert [(e["alarm"], e["old"], e["period"], e["during"]) for e in fired] == [
        (ERROR_RATE_ALARM, "OK", 3, "10% step")
    ]
    assert fired[0]["reason"] == (
        f"{ERROR_RATE_ALARM}: ALARM ([0, 0.5] vs threshold GreaterThanThreshold 0.02, 1 of 2 x 60s)"
    )
    assert len({e for _, e, _ in host.asked}) == 3  # nothing after the failing period


def _frozen_feeder_at_the_first_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BlueGreenDeployment:
    """A linear deployment whose feeder freezes for 3 periods as soon as traffic moves to its 10 % step."""
    host = SimulatedHost()
    deployment = _deployment(host, tmp_path, "Linear10PercentEvery1Minute")
    real_route = host.route

    def route_then_stall(primary: ServedModel | None, canary: ServedModel | None, weight: float) -> None:
        real_route(primary, canary, weight)
        if weight == 0.1:
            host.stall_until = time.time() + 3 * deployment._real_period()

    monkeypatch.setattr(host, "route", route_then_stall)
    return deployment


def test_a_window_starved_by_a_stalled_machine_is_extended_not_counted_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feeder freezes for 3 periods of the 10 % step: the window waits for its evidence; green is healthy."""
    deployment = _frozen_feeder_at_the_first_step(tmp_path, monkeypatch)
    deployment.run(BLUE, "churn-prd-v2", version=2)
    assert deployment.ledger.deployments()[-1]["outcome"] == "Succeeded"


def test_without_extensions_the_same_stall_rolls_a_healthy_model_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control experiment: the stall above is what starves the window."""
    monkeypatch.setattr("safedeploy.blue_green.MAX_WINDOW_EXTENSIONS", 0)
    deployment = _frozen_feeder_at_the_first_step(tmp_path, monkeypatch)
    with pytest.raises(RolledBackError, match="insufficient data during the 10% step"):
        deployment.run(BLUE, "churn-prd-v2", version=2)


@pytest.mark.parametrize(("stalled", "outcome"), [({"blue": 1, "green": 3}, "Succeeded"), ({"green": 3}, "RolledBack")])
def test_one_slow_request_that_blue_also_suffered_is_the_machine_not_the_model(
    tmp_path: Path, stalled: dict[str, int], outcome: str
) -> None:
    """A 200 ms stall hits three of green's ~30 requests in a window (its p99) and one of blue's ~270 (its slowest,
    not its p99): the machine, no latency alarm. The control: the same stall on green alone fires."""
    host = SimulatedHost()
    deployment = _deployment(host, tmp_path, "Canary10Percent5Minutes")
    real_route = host.route

    def route_then_stall(primary: ServedModel | None, canary: ServedModel | None, weight: float) -> None:
        real_route(primary, canary, weight)
        if weight == 0.1:
            names = {"blue": BLUE.endpoint, "green": canary.endpoint if canary else ""}
            host.stall_ms, host.stall_hits = 200.0, {names[which]: n for which, n in stalled.items()}
            host.stall_at = time.time() + 1.5 * deployment._real_period()

    host.route = route_then_stall  # type: ignore[method-assign]
    if outcome == "Succeeded":
        deployment.run(BLUE, "churn-prd-v2", version=2)
    else:
        with pytest.raises(RolledBackError, match="green-p99-latency"):
            deployment.run(BLUE, "churn-prd-v2", version=2)
    assert deployment.ledger.deployments()[-1]["outcome"] == outcome


def _stalled(
    tmp_path: Path, answers: int, rate: float = 20.0, late: float = 0.0, feeder: bool = True, synthetic: bool = True
) -> bool:
    """Whether the window [100, 102) with ``answers`` synthetic answers in it counts as starved by a stall."""
    deployment = _deployment(SimulatedHost(), tmp_path)
    deployment.synthetic = synthetic
    if feeder:
        deployment._feeder = SyntheticTraffic(send=lambda: SyntheticAnswer(0, -1, "", None), rate=rate)
        deployment._feeder.answers = [(100.0 + i * 1.9 / max(answers, 1), _green(1, 0.0)) for i in range(answers)]
        deployment._feeder.answers.append((102.0, _green(1, 0.0)))  # the next window's
    return deployment._stalled(100.0, 102.0, late, real_period=2.0)


def test_a_window_is_stalled_when_the_controller_woke_a_period_late(tmp_path: Path) -> None:
    assert not _stalled(tmp_path, 40, late=2.0, feeder=False)  # exactly one period late: not yet
    assert _stalled(tmp_path, 40, late=2.001, feeder=False)


def test_a_window_is_stalled_when_the_feeder_sent_less_than_half_its_rate(tmp_path: Path) -> None:
    assert not _stalled(tmp_path, 20)  # 20 /s x 2 s asked 40: exactly half is not a stall
    assert _stalled(tmp_path, 19)
    assert _stalled(tmp_path, 0, rate=1.0)  # a slow rate still counts
    assert not _stalled(tmp_path, 0, rate=0.0)  # a paused feeder asked for nothing
    assert not _stalled(tmp_path, 0, synthetic=False)  # no synthetic traffic: quiet is quiet
    assert not _stalled(tmp_path, 0, feeder=False)


@dataclass
class _LeaseHost:
    """Renewals answered from a script: True (renewed), False (revoked), or an exception (host unreachable)."""

    answers: list[bool | Exception]
    renewed: list[float] = field(default_factory=list)

    def renew_lease(self, deployment_id: str) -> bool:
        assert deployment_id == "d-1"
        self.renewed.append(time.monotonic())
        answer = self.answers.pop(0) if self.answers else True
        if isinstance(answer, Exception):
            raise answer
        return answer


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_lease_heartbeat_renews_every_interval_through_errors_until_revoked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = _LeaseHost([True, RuntimeError("runtime restarting"), True, False])
    heartbeat = LeaseHeartbeat(host, "d-1", interval=0.05)  # type: ignore[arg-type]
    started = time.monotonic()
    heartbeat.start()
    assert heartbeat._thread is not None and heartbeat._thread.name == "lease-heartbeat" and heartbeat._thread.daemon
    assert heartbeat.lost.wait(10)  # the fourth renewal was refused
    assert len(host.renewed) == 4 and host.renewed[0] - started >= 0.04  # one interval before the first renewal
    assert all(b - a >= 0.04 for a, b in zip(host.renewed, host.renewed[1:], strict=False))
    _wait_until(lambda: not heartbeat._thread.is_alive())  # type: ignore[union-attr]  # a revoked lease stops it
    [retry] = [r for r in caplog.records if "renewing" in r.getMessage()]
    assert retry.getMessage() == "renewing the lease of d-1 failed; retrying" and retry.levelname == "WARNING"
    assert retry.exc_info is not None and str(retry.exc_info[1]) == "runtime restarting"  # with its traceback
    heartbeat.stop()


def test_a_stopped_heartbeat_renews_no_more() -> None:
    host = _LeaseHost([])
    heartbeat = LeaseHeartbeat(host, "d-1", interval=0.02)  # type: ignore[arg-type]
    heartbeat.start()
    _wait_until(lambda: len(host.renewed) >= 2)
    heartbeat.stop()
    assert heartbeat._thread is not None and not heartbeat._thread.is_alive() and not heartbeat.lost.is_set()
    count = len(host.renewed)
    time.sleep(0.1)  # several intervals: a stopped heartbeat stays silent
    assert len(host.renewed) == count


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_stops_the_deployment_naming_the_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    deployment = _deployment(SimulatedHost(), tmp_path)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(code, "No space left on device")

    monkeypatch.setattr(deployment.ledger, "append", full)
    with pytest.raises(DeploymentError) as failure:
        deployment._record("GreenReady", green=GREEN.as_dict())
    assert str(failure.value) == (
        f"the disk is full: cannot record GreenReady in {deployment.ledger.path} ([Errno {code}] No space left on device)"
    )


def test_other_ledger_write_errors_are_not_called_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = _deployment(SimulatedHost(), tmp_path)
    denied = PermissionError(errno.EACCES, "Permission denied")

    def refuse(*args: object, **kwargs: object) -> None:
        raise denied

    monkeypatch.setattr(deployment.ledger, "append", refuse)
    with pytest.raises(PermissionError) as failure:
        deployment._record("GreenReady", green=GREEN.as_dict())
    assert failure.value is denied
    deployment = _deployment(SimulatedHost(), tmp_path / "ok")
    deployment._record("GreenReady", green=GREEN.as_dict())
    [event] = deployment.ledger.events()
    assert (event["event"], event["deployment_id"], event["green"]) == (
        "GreenReady",
        deployment.deployment_id,
        GREEN.as_dict(),
    )


@dataclass
class _HookCalls(SimulatedHost):
    calls: list[tuple[str, str, ServedModel, datetime]] = field(default_factory=list)

    def run_hook(self, hook: str, deployment_id: str, green: ServedModel, since: datetime) -> tuple[str, str]:
        self.calls.append((hook, deployment_id, green, since))
        return super().run_hook(hook, deployment_id, green, since)


@pytest.mark.parametrize(
    ("cause", "suffix"),
    [(None, ""), ("", ""), ("endpoint failed: weights are corrupt", " (endpoint failed: weights are corrupt)")],
)
def test_a_failed_hook_names_its_report_and_the_cause(tmp_path: Path, cause: str | None, suffix: str) -> None:
    host = _HookCalls(failing_hook="BeforeAllowTraffic")
    deployment = _deployment(host, tmp_path)
    since = datetime.now(UTC)
    with pytest.raises(DeploymentError) as failure:
        deployment._hook("BeforeAllowTraffic", GREEN, since, cause)
    assert host.calls == [("BeforeAllowTraffic", deployment.deployment_id, GREEN, since)]
    assert str(failure.value) == f"the BeforeAllowTraffic hook reported Failed: BeforeAllowTraffic check failed{suffix}"
    deployment._hook("AfterAllowTraffic", GREEN, datetime.now(UTC), "ignored when it passes")
    hooks = [(e["hook"], e["status"], e["message"]) for e in deployment.ledger.events() if e["event"] == "HookResult"]
    assert hooks == [
        ("BeforeAllowTraffic", "Failed", "BeforeAllowTraffic check failed"),
        ("AfterAllowTraffic", "Succeeded", "AfterAllowTraffic ok"),
    ]


@dataclass
class _ReleaseFails(SimulatedHost):
    def release_lease(self, deployment_id: str) -> None:
        super().release_lease(deployment_id)
        raise ConnectionError("runtime down")


def _held(deployment: BlueGreenDeployment) -> LeaseHeartbeat | None:
    return deployment._heartbeat


def test_the_lease_is_released_once_and_never_after_it_was_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host = SimulatedHost()
    deployment = _deployment(host, tmp_path)
    deployment._release_lease()  # no lease held: nothing to do
    deployment._heartbeat = LeaseHeartbeat(host, deployment.deployment_id, interval=60)
    deployment._heartbeat.start()
    assert not deployment._lease_lost()
    heartbeat = deployment._heartbeat
    deployment._release_lease()
    deployment._release_lease()
    assert host.leases == [("release", deployment.deployment_id)] and _held(deployment) is None
    assert heartbeat._thread is not None and not heartbeat._thread.is_alive()

    lost = LeaseHeartbeat(host, deployment.deployment_id, interval=60)
    lost.lost.set()
    deployment._heartbeat = lost
    assert deployment._lease_lost()
    deployment._release_lease()  # the host rolled back and owns production: nothing to give back
    assert host.leases == [("release", deployment.deployment_id)] and _held(deployment) is lost

    failing = _ReleaseFails()
    deployment = _deployment(failing, tmp_path / "b")
    deployment._heartbeat = LeaseHeartbeat(failing, deployment.deployment_id, interval=60)
    deployment._release_lease()  # a failed release is logged, not raised: the runtime drops the lease itself
    assert failing.leases == [("release", deployment.deployment_id)]
    [warning] = [r for r in caplog.records if r.getMessage().startswith("releasing the lease")]
    assert warning.getMessage() == f"releasing the lease of {deployment.deployment_id} failed"
    assert warning.exc_info is not None and isinstance(warning.exc_info[1], ConnectionError)  # with its traceback


def test_a_window_starved_by_a_late_controller_is_extended_and_the_next_starts_where_it_ended(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock, host = _VirtualClock(scale=120, late=0.6), _Recorded(quiet_calls=1)  # every wake-up over a period late
    _watcher(tmp_path, clock, host)._watch(None, GREEN, 300, "10% step")
    s = 1_000_000.5
    assert [(a.timestamp() - s, b.timestamp() - s) for _, a, b in host.asked] == [
        (0.0, 0.5),  # no requests: starved, the machine was late
        (0.0, 1.0),  # the same window, one period longer
        (1.0, 1.5),
        (1.5, 2.0),
        (2.0, 2.5),
        (2.5, 3.0),  # five judged windows of the five periods
    ]
    [warning] = [r.getMessage() for r in caplog.records if "starved" in r.getMessage()]
    assert warning == (  # 1970-01-12 13:46:40.5 UTC, woken 0.65 s after the window's end
        "the 10% step window 13:46:40.500000-13:46:41 was starved by a stalled machine (0.7 s late); extending it"
    )


def test_a_quiet_window_of_a_punctual_controller_is_missing_data_not_extended(tmp_path: Path) -> None:
    clock, host = _VirtualClock(scale=120), _Recorded(quiet_calls=1)
    _watcher(tmp_path, clock, host)._watch(None, GREEN, 300, "10% step")
    assert [b.timestamp() - a.timestamp() for _, a, b in host.asked] == [0.5] * 5


def test_alarms_firing_together_are_all_named_with_their_reasons(tmp_path: Path) -> None:
    clock, host = _VirtualClock(scale=120), _Recorded(failing_periods=(2,), slow_periods=(2,))
    deployment = _watcher(tmp_path, clock, host)
    with pytest.raises(DeploymentError) as failure:
        deployment._watch(BLUE, GREEN, 300, "10% step")
    assert str(failure.value) == (
        f"alarm {ERROR_RATE_ALARM}, {LATENCY_ALARM} in ALARM during the 10% step: "
        f"{ERROR_RATE_ALARM}: OK ([0] vs threshold GreaterThanThreshold 0.02, 1 of 2 x 60s); "
        f"{LATENCY_ALARM}: OK ([-26] vs threshold GreaterThanThreshold 0, 1 of 2 x 60s); "
        f"{ERROR_RATE_ALARM}: ALARM ([0, 0.5] vs threshold GreaterThanThreshold 0.02, 1 of 2 x 60s); "
        f"{LATENCY_ALARM}: ALARM ([-26, 873] vs threshold GreaterThanThreshold 0, 1 of 2 x 60s)"
    )  # each firing alarm's transitions so far, in order


def test_a_step_that_never_saw_traffic_names_every_alarm_never_shown_healthy(tmp_path: Path) -> None:
    clock, host = _VirtualClock(scale=120), _Recorded(quiet_calls=99)
    with pytest.raises(DeploymentError) as failure:
        _watcher(tmp_path, clock, host)._watch(BLUE, GREEN, 300, "10% step")
    assert str(failure.value) == (
        f"insufficient data during the 10% step: {ERROR_RATE_ALARM}, {LATENCY_ALARM} never had 10 requests to "
        "churn-prd-v2 in a 60s period: never shown healthy"
    )


def test_a_starved_window_is_extended_at_most_five_times(tmp_path: Path) -> None:
    clock, host = _VirtualClock(scale=120), _Recorded(quiet_calls=99)
    deployment = _watcher(tmp_path, clock, host)
    deployment.synthetic = True  # a feeder asked for 20 requests a second and sent none: the machine stalls
    deployment._feeder = SyntheticTraffic(send=lambda: SyntheticAnswer(0, -1, "", None), rate=20.0)
    with pytest.raises(DeploymentError, match="insufficient data"):
        deployment._watch(None, GREEN, 60, "bake at 100%")  # one period
    s = 1_000_000.5
    assert [(a.timestamp() - s, b.timestamp() - s) for _, a, b in host.asked] == [
        (0.0, 0.5 * n) for n in range(1, 7)
    ]  # the window, then 5 extensions, then it counts as missing


def test_a_lost_lease_stops_the_watch(tmp_path: Path) -> None:
    clock, host = _VirtualClock(scale=120), _Recorded()
    deployment = _watcher(tmp_path, clock, host)
    deployment._heartbeat = LeaseHeartbeat(SimulatedHost(), deployment.deployment_id, interval=60)
    deployment._heartbeat.lost.set()
    with pytest.raises(DeploymentError) as failure:
        deployment._watch(BLUE, GREEN, 300, "10% step")
    assert str(failure.value) == "the lease on production was lost during the 10% step"
    assert host.asked == []  # nothing judged once production is not this deployment's


def test_a_paused_feeder_resumes_and_a_slow_rate_still_sends() -> None:
    sent: list[float] = []

    def send() -> SyntheticAnswer:
        sent.append(time.monotonic())
        return SyntheticAnswer(200, 0, "g", 0.1)

    feeder = SyntheticTraffic(send, concurrency=2)
    feeder.start()
    try:
        time.sleep(0.1)  # paused: nothing may be sent meanwhile
        assert sent == []
        feeder.rate = 2.0  # one request a second per thread
        _wait_until(lambda: len(sent) >= 2, timeout=5)
        feeder.rate = 0.0
        assert all(t.is_alive() for t in feeder._threads)  # pausing again keeps the threads
    finally:
        feeder.stop()


@dataclass
class _LeaseCalls(SimulatedHost):
    """Records what the controller asks of the lease."""

    acquired: list[tuple[str, ServedModel | None, ServedModel, float]] = field(default_factory=list)
    renewals: list[str] = field(default_factory=list)

    def acquire_lease(
        self, deployment_id: str, blue: ServedModel | None, green: ServedModel, hang_timeout_seconds: float
    ) -> None:
        self.acquired.append((deployment_id, blue, green, hang_timeout_seconds))
        super().acquire_lease(deployment_id, blue, green, hang_timeout_seconds)

    def renew_lease(self, deployment_id: str) -> bool:
        self.renewals.append(deployment_id)
        return super().renew_lease(deployment_id)


def test_a_deployment_holds_renews_and_releases_its_lease(tmp_path: Path) -> None:
    host = _LeaseCalls()
    deployment = _deployment(host, tmp_path, bake_seconds=60)  # one bake period: 0.5 s on the wall
    deployment.lease_hang_timeout_seconds, deployment.lease_renew_seconds = 1.0, 0.05
    deployment.run(None, "churn-prd-v9", version=9)
    # The hang timeout is at least ten alarm periods on the wall (10 x 0.5 s), whatever the setting below that.
    assert host.acquired == [(deployment.deployment_id, None, ServedModel("churn-prd-v9", 9), 5.0)]
    assert len(host.renewals) >= 3 and set(host.renewals) == {deployment.deployment_id}
    assert host.leases == [("acquire", deployment.deployment_id), ("release", deployment.deployment_id)]


def test_the_hooks_judge_green_since_the_deployment_started_and_details_are_recorded(tmp_path: Path) -> None:
    host = _HookCalls()
    deployment = _deployment(host, tmp_path, bake_seconds=60)
    before = datetime.now(UTC)
    deployment.run(None, "churn-prd-v9", version=9, details={"rehearsal": True, "fault": "slow"})
    [(_, _, _, pre_since), (_, _, _, post_since)] = host.calls
    assert pre_since == post_since and pre_since.tzinfo is UTC and before <= pre_since <= datetime.now(UTC)
    started = deployment.ledger.events()[0]
    assert (started["rehearsal"], started["fault"]) == (True, "slow")


@dataclass
class _ShiftsAtFullTraffic(SimulatedHost):
    """Green's scores move only once it takes all the traffic (the bake), and blue's reference is recorded."""

    references: list[ServedModel] = field(default_factory=list)

    def reference_scores(self, blue: ServedModel) -> dict[int, float]:
        self.references.append(blue)
        return super().reference_scores(blue)

    def send_synthetic(self) -> SyntheticAnswer:
        answer = super().send_synthetic()
        full = bool(self.routes) and self.routes[-1][1] is None
        if full and answer.score is not None and answer.endpoint != BLUE.endpoint:
            return SyntheticAnswer(answer.status, answer.row, answer.endpoint, answer.score + 0.3)
        return answer


def test_the_bake_still_compares_green_with_blue(tmp_path: Path) -> None:
    host = _ShiftsAtFullTraffic()
    deployment = _deployment(host, tmp_path, "AllAtOnce", bake_seconds=120)
    with pytest.raises(RolledBackError, match=f"alarm {PREDICTION_ALARM} in ALARM during the bake at 100%"):
        deployment.run(BLUE, "churn-prd-v2", version=2)
    assert host.references == [BLUE]  # blue's scores asked of blue, once


def test_a_first_deployment_asks_no_reference_scores(tmp_path: Path) -> None:
    host = _ShiftsAtFullTraffic()
    _deployment(host, tmp_path, bake_seconds=60).run(None, "churn-prd-v9", version=9)
    assert host.references == []


def test_a_green_that_failed_to_start_is_judged_by_the_pre_traffic_hook_with_the_cause(tmp_path: Path) -> None:
    host = _HookCalls(green_fails_to_start=True, failing_hook="BeforeAllowTraffic")
    deployment = _deployment(host, tmp_path)
    before = datetime.now(UTC)
    with pytest.raises(RolledBackError) as failure:
        deployment.run(BLUE, "churn-prd-v2", version=2)
    assert str(failure.value) == (
        "rolled back to churn-prd-v1: the BeforeAllowTraffic hook reported Failed: BeforeAllowTraffic check failed "
        "(endpoint churn-prd-v2 failed: model load failed: weights are corrupt)"
    )
    [(hook, deployment_id, green, since)] = host.calls
    assert (hook, deployment_id, green) == (
        "BeforeAllowTraffic",
        deployment.deployment_id,
        ServedModel("churn-prd-v2", 2),
    )
    assert before <= since <= datetime.now(UTC)


def test_a_feeder_that_falls_behind_its_rate_keeps_sending() -> None:
    """Sends slower than the rate asks put the schedule behind: the feeder starts afresh from now and goes on."""

    def slow() -> SyntheticAnswer:
        time.sleep(0.02)
        return SyntheticAnswer(200, 0, "green", 0.5)

    feeder = SyntheticTraffic(slow, rate=200.0, concurrency=1)
    feeder.start()
    try:
        deadline = time.monotonic() + 10
        while feeder.sent < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert feeder.sent >= 10 and all(thread.is_alive() for thread in feeder._threads)
    finally:
        feeder.stop()
