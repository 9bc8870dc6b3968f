"""Blue/green production deployment: shift traffic step by step, watch alarms, roll back without a human.

The controller (:class:`BlueGreenDeployment`) runs one deployment against a :class:`ProdHost` (the local
runtime, or AWS):

1. green gets its own endpoint, namespaced by model, environment and version (blue keeps serving), and the
   pre-traffic hook (CodeDeploy ``BeforeAllowTraffic``) must report Succeeded before it takes any traffic;
2. traffic moves from blue to green per the :class:`~safedeploy.traffic.Schedule`: the REST API's alias sends
   each step's share to green (CodeDeploy's Lambda traffic shifting), and each step's wait runs on the scalable
   clock, in alarm periods;
3. after every period the alarms are evaluated on that step's windows only: green's 5XX/model-error rate, and
   green's p99 model latency against blue's over the same window (during the bake, against blue's last window;
   against an absolute budget when blue's latency was never seen). Too few requests in a window is
   INSUFFICIENT_DATA, never healthy: a step whose alarms never saw enough data to be OK fails the deployment
   ("no evidence"), so quiet traffic cannot wave a model through;
4. at 100 % green a final bake (termination wait) keeps watching; the post-traffic hook (``AfterAllowTraffic``)
   must report Succeeded; then blue is torn down;
5. any alarm in ALARM, a failed hook, a failed green, or missing evidence: the alias goes back to 100 % blue,
   green is torn down, and :class:`RolledBackError` carries the reason.

When no client traffic is flowing, a synthetic feeder (held-out rows, marked as synthetic in their inference
ids) keeps every window above the minimum request count, as CloudWatch Synthetics canaries do. Every step,
alarm transition and outcome goes to the append-only :class:`~safedeploy.ledger.DeploymentLedger`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from safedeploy.alarms import AlarmRule, AlarmState, AlarmTracker, TreatMissing
from safedeploy.clock import ScaledClock
from safedeploy.errors import DeploymentError, SafeDeployError
from safedeploy.ledger import (
    EVENT_ALARM,
    EVENT_HOOK,
    EVENT_ROLLED_BACK,
    EVENT_SHIFTED,
    EVENT_STARTED,
    EVENT_SUCCEEDED,
    DeploymentLedger,
    ServedModel,
)
from safedeploy.progress import PlainProgress, ProgressReporter
from safedeploy.reserve import is_disk_full
from safedeploy.traffic import Schedule, TrafficStep

LOG = logging.getLogger(__name__)
PRE_TRAFFIC = "BeforeAllowTraffic"
POST_TRAFFIC = "AfterAllowTraffic"
ERROR_RATE_ALARM = "green-error-rate"
LATENCY_ALARM = "green-p99-latency"
SYNTHETIC_HEADROOM = 3.0
"""Green's expected synthetic requests per alarm period, as a multiple of the alarms' minimum. Which requests
reach green is random (binomial in its share), and a one-period step (Linear...Every1Minute) has one window to
show healthy: at 1.5x the minimum (15 expected for 10) a window falls short 4-7 % of the time, at 3x (30) once
in 10^5-10^6 windows."""
PREDICTION_ALARM = "green-prediction-shift"
LEASE_HANG_TIMEOUT_S = 30.0
MAX_WINDOW_EXTENSIONS = 5
"""How many more periods a window starved by a stalled machine may stay open to gather its evidence."""


class RolledBackError(DeploymentError):
    """The deployment was rolled back to blue; the message says why."""


@dataclass(frozen=True)
class AlarmSettings:
    """How the deployment's alarms judge green (CloudWatch semantics: period, evaluation periods, datapoints).

    The pipeline builds it from the spec's alarm catalog (``spec.alarms.deployment``, through
    :func:`safedeploy.alarm_catalog.local_alarm_settings`), which gives :attr:`catalog`: the three rules exactly
    as the catalog defines them (and as the AWS stacks render them). Without a catalog (tests), the rules are
    uniform, from the fields below.
    """

    period_seconds: float = 60.0
    evaluation_periods: int = 2
    datapoints_to_alarm: int = 1
    min_requests: int = 10
    """Fewer requests than this to green in a period leave that datapoint missing (insufficient data)."""
    max_error_rate: float = 0.02
    """Green's share of requests answered 5XX (model errors included) above which it is in ALARM."""
    latency_ratio: float = 2.0
    latency_slack_ms: float = 25.0
    """Green's p99 may be at most ``latency_ratio`` x blue's p99 + ``latency_slack_ms``."""
    max_latency_ms: float = 100.0
    """Green's p99 budget when there is no blue to compare with (the first deployment)."""
    max_prediction_shift: float = 0.2
    """Largest mean |green score - blue score| on the same held-out rows in a window."""
    treat_missing_data: TreatMissing = "missing"
    catalog: tuple[AlarmRule, AlarmRule, AlarmRule] | None = None
    """Error rate, latency, prediction shift rules from the spec's catalog (their names may differ from the
    module's defaults); when set, :meth:`rules` returns them and the thresholds above are theirs."""

    def __post_init__(self) -> None:
        if self.catalog is not None and len({rule.period_seconds for rule in self.catalog}) != 1:
            raise ValueError("the deployment alarms must share one period (windows are judged per period)")

    @property
    def names(self) -> tuple[str, str, str]:
        """The error-rate, latency and prediction-shift alarms' names."""
        if self.catalog is None:
            return (ERROR_RATE_ALARM, LATENCY_ALARM, PREDICTION_ALARM)
        errors, latency, shift = self.catalog
        return (errors.name, latency.name, shift.name)

    def rules(self, compare_predictions: bool = False) -> list[AlarmRule]:
        """The alarm rules: error rate, latency excess over what blue allows, and (with a blue) prediction shift.

        The latency datapoint is green's p99 minus what blue allows, in ms, alarming above 0.
        """
        if self.catalog is not None:
            return list(self.catalog if compare_predictions else self.catalog[:2])
        thresholds = [(ERROR_RATE_ALARM, self.max_error_rate), (LATENCY_ALARM, 0.0)]
        if compare_predictions:
            thresholds.append((PREDICTION_ALARM, self.max_prediction_shift))
        return [
            AlarmRule(
                name,
                threshold,
                "GreaterThanThreshold",
                period_seconds=self.period_seconds,
                evaluation_periods=self.evaluation_periods,
                datapoints_to_alarm=self.datapoints_to_alarm,
                treat_missing_data=self.treat_missing_data,
            )
            for name, threshold in thresholds
        ]


@dataclass(frozen=True)
class SyntheticAnswer:
    """One synthetic request's answer: status, which held-out row, who served it, the score."""

    status: int
    row: int
    endpoint: str
    score: float | None


@dataclass(frozen=True)
class WindowStats:
    """One endpoint's traffic in one alarm period."""

    invocations: float
    errors_5xx: float
    p99_ms: float | None
    max_ms: float | None = None
    """The slowest request's model latency: what the machine itself cost in that window."""


class ProdHost(Protocol):
    """What the controller needs from where production runs."""

    def start_green(self, endpoint_name: str) -> ServedModel:
        """Create green's endpoint (serving the new version) and wait until it is InService."""
        ...

    def delete_endpoint(self, served: ServedModel) -> None:
        """Tear an endpoint down (and its config and model)."""
        ...

    def route(self, primary: ServedModel | None, canary: ServedModel | None, weight: float) -> None:
        """Point the production REST API's alias at ``primary``, sending ``weight`` of requests to ``canary``."""
        ...

    def window(self, endpoint: str, start: datetime, end: datetime) -> WindowStats:
        """Traffic statistics of ``endpoint`` in ``[start, end)``."""
        ...

    def send_synthetic(self) -> SyntheticAnswer:
        """Send one synthetic request (a held-out row) through the production REST API; return its answer."""
        ...

    def reference_scores(self, blue: ServedModel) -> dict[int, float]:
        """Blue's scores for the synthetic held-out rows (by row index), asked of blue's endpoint directly."""
        ...

    def run_hook(self, hook: str, deployment_id: str, green: ServedModel, since: datetime) -> tuple[str, str]:
        """Invoke a CodeDeploy lifecycle hook (``BeforeAllowTraffic`` / ``AfterAllowTraffic``) for green.

        Returns the status the hook reported (exactly once) and its message.
        """
        ...

    def acquire_lease(
        self, deployment_id: str, blue: ServedModel | None, green: ServedModel, hang_timeout_seconds: float
    ) -> None:
        """Hold production for this deployment: if this process is lost, the host rolls back to ``blue`` by itself.

        Route changes made afterwards are fenced by the lease. Raises :class:`DeploymentError` if another
        deployment holds production.
        """
        ...

    def renew_lease(self, deployment_id: str) -> bool:
        """Renew the lease; False once the host has rolled the deployment back for a lost controller."""
        ...

    def release_lease(self, deployment_id: str) -> None:
        """The deployment ended (recorded in the ledger); give production back."""
        ...


@dataclass
class LeaseHeartbeat:
    """Renews a deployment's lease from a daemon thread; ``lost`` is set once the host revoked it."""

    host: ProdHost
    deployment_id: str
    interval: float
    lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start renewing."""
        self._thread = threading.Thread(target=self._loop, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.host.renew_lease(self.deployment_id):
                    self.lost.set()
                    return
            except Exception:  # the host is briefly unreachable: the hang timeout is far longer than one beat
                LOG.warning("renewing the lease of %s failed; retrying", self.deployment_id, exc_info=True)

    def stop(self) -> None:
        """Stop renewing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


@dataclass
class SyntheticTraffic:
    """Background feeders sending ``rate`` requests per second in all through the REST API (0 pauses them).

    ``concurrency`` threads share the rate, so a slow green (the thing being caught) does not starve the
    windows of requests.
    """

    send: Callable[[], SyntheticAnswer]
    rate: float = 0.0
    concurrency: int = 8
    sent: int = 0
    failures: int = 0
    answers: list[tuple[float, SyntheticAnswer]] = field(default_factory=list)
    """(wall time, answer) of every request, for the prediction comparison."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Start feeding (daemon threads, bounded by :meth:`stop`)."""
        for number in range(self.concurrency):
            thread = threading.Thread(target=self._loop, name=f"synthetic-traffic-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            rate = self.rate / self.concurrency
            if rate <= 0:
                self._stop.wait(0.05)
                next_at = time.monotonic()
                continue
            try:
                answer = self.send()
            except Exception:  # a failed synthetic request is counted, the feeder goes on
                answer = SyntheticAnswer(0, -1, "", None)
            with self._lock:
                self.sent += 1
                self.failures += answer.status >= 500 or answer.status == 0
                self.answers.append((time.time(), answer))
            next_at += 1.0 / rate
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()

    def window(self, start: float, end: float) -> list[SyntheticAnswer]:
        """The answers received in ``[start, end)`` (wall time)."""
        with self._lock:
            return [answer for at, answer in self.answers if start <= at < end]

    def stop(self) -> None:
        """Stop and wait for the threads."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def _clock_text(seconds: float) -> str:
    """Model time as ``m:ss`` (``h:mm:ss`` from an hour)."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class BlueGreenDeployment:
    """One production deployment, run to success or rollback."""

    host: ProdHost
    ledger: DeploymentLedger
    schedule: Schedule
    alarms: AlarmSettings
    clock: ScaledClock
    synthetic: bool = True
    max_synthetic_rate: float = 400.0
    min_real_period: float = 1.0
    """Shortest alarm period on the wall (the local metrics have one-second resolution)."""
    lease_hang_timeout_seconds: float = LEASE_HANG_TIMEOUT_S
    """How long a live controller may go without renewing its lease before the host rolls back by itself
    (a dead controller is found at once: its process is gone)."""
    lease_renew_seconds: float = 1.0
    deployment_id: str = field(default_factory=lambda: f"d-{uuid.uuid4().hex[:12]}")
    progress: ProgressReporter = field(default_factory=PlainProgress)
    """Where the long sub-steps go (green starting, each traffic step and the bake on the model-time clock)."""
    transitions: list[str] = field(default_factory=list)
    _weights: str = ""
    _blue_p99_ms: float | None = None
    _blue_max_ms: float | None = None
    _blue_scores: dict[int, float] = field(default_factory=dict)
    _feeder: SyntheticTraffic | None = None
    _heartbeat: LeaseHeartbeat | None = None

    def run(
        self, blue: ServedModel | None, green_endpoint: str, *, version: int, details: dict[str, object] | None = None
    ) -> ServedModel:
        """Deploy green (``version``) beside ``blue`` (None: the first deployment); return green at 100 %.

        Raises:
            RolledBackError: an alarm fired, green failed, or the alarms never had enough data; traffic is back on
                blue (or, for a first deployment, the production API is unpublished) and green is gone.
        """
        schedule = self.schedule
        if blue is None:  # nothing to canary against: all at once, then the bake watches green alone
            schedule = Schedule("AllAtOnce (first deployment)", (TrafficStep(100, 0.0),), self.schedule.bake_seconds)
        hang_timeout = max(self.lease_hang_timeout_seconds, 10 * self._real_period())
        self.host.acquire_lease(self.deployment_id, blue, ServedModel(green_endpoint, version), hang_timeout)
        self._heartbeat = LeaseHeartbeat(self.host, self.deployment_id, self.lease_renew_seconds)
        self._heartbeat.start()
        try:
            return self._run(blue, green_endpoint, schedule, version=version, details=details)
        finally:
            self._release_lease()

    def _run(
        self,
        blue: ServedModel | None,
        green_endpoint: str,
        schedule: Schedule,
        *,
        version: int,
        details: dict[str, object] | None,
    ) -> ServedModel:
        self.ledger.append(
            self.deployment_id,
            EVENT_STARTED,
            blue=blue.as_dict() if blue else None,
            green={"endpoint": green_endpoint, "version": version},
            strategy=schedule.describe(),
            time_scale=self.clock.scale,
            **(details or {}),
        )
        green: ServedModel | None = None
        feeder = self._feeder = SyntheticTraffic(self.host.send_synthetic)
        try:
            since = datetime.now(UTC)
            failure: str | None = None
            try:
                self.progress.step(f"green {green_endpoint} (v{version}): starting, waiting for InService")
                green = self.host.start_green(green_endpoint)
                self._record("GreenReady", green=green.as_dict())
            except DeploymentError as exc:  # the pre-traffic hook is what judges it, as CodeDeploy's would
                green, failure = ServedModel(green_endpoint, version), str(exc)
                self._record("GreenFailed", green=green.as_dict(), reason=failure)
            self.progress.step(f"{PRE_TRAFFIC} hook")
            self._hook(PRE_TRAFFIC, green, since, failure)
            if failure is not None:
                raise DeploymentError(f"green failed to start: {failure}")
            if blue is not None and self.synthetic:
                self._blue_scores = self.host.reference_scores(blue)
            if self.synthetic:
                feeder.start()
            for step in schedule.steps:
                self._shift(blue, green, step.green_percent, feeder)
                self._watch(blue, green, step.wait_seconds, f"{step.green_percent}% step")
            self._watch(blue, green, schedule.bake_seconds, "bake at 100%")
            self.progress.step(f"{POST_TRAFFIC} hook")
            self._hook(POST_TRAFFIC, green, since)
            feeder.stop()
            if self._lease_lost():  # the host rolled back while the post-traffic hook ran
                raise DeploymentError("the lease on production was lost during the post-traffic hook")
            self._record(
                EVENT_SUCCEEDED,
                green=green.as_dict(),
                blue_removed=blue.endpoint if blue else None,
                synthetic_requests=feeder.sent,
            )
        except SafeDeployError as exc:
            feeder.stop()
            reason = str(exc)
            if self._lease_lost():  # the host already rolled back and recorded it; this process may not route
                raise RolledBackError(f"the controller lost its lease and the runtime rolled back: {reason}") from None
            problems = self._roll_back(blue, green or ServedModel(green_endpoint, version), reason)
            restored = blue.endpoint if blue else "no production model (first deployment)"
            trouble = f" (rollback problems: {'; '.join(problems)})" if problems else ""
            raise RolledBackError(f"rolled back to {restored}: {reason}{trouble}") from None
        except BaseException:
            feeder.stop()
            if not self._lease_lost():
                self._roll_back(blue, green or ServedModel(green_endpoint, version), "interrupted")
            raise
        self._release_lease()  # production is green's now: blue goes after, so a crash cannot route back to it
        if blue is not None:
            self.host.delete_endpoint(blue)
        return green

    def _release_lease(self) -> None:
        heartbeat = self._heartbeat
        if heartbeat is None or heartbeat.lost.is_set():
            return
        heartbeat.stop()
        self._heartbeat = None
        try:
            self.host.release_lease(self.deployment_id)
        except Exception:  # the runtime sees the Succeeded/RolledBack record and drops the lease itself
            LOG.warning("releasing the lease of %s failed", self.deployment_id, exc_info=True)

    def _record(self, event: str, **fields: object) -> None:
        """Append a progress event; a full disk stops the deployment (and the rollback's record uses the reserve)."""
        try:
            self.ledger.append(self.deployment_id, event, **fields)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            raise DeploymentError(f"the disk is full: cannot record {event} in {self.ledger.path} ({exc})") from None

    def _lease_lost(self) -> bool:
        return self._heartbeat is not None and self._heartbeat.lost.is_set()

    def _hook(self, hook: str, green: ServedModel, since: datetime, cause: str | None = None) -> None:
        status, message = self.host.run_hook(hook, self.deployment_id, green, since)
        self._record(EVENT_HOOK, hook=hook, status=status, message=message)
        if status != "Succeeded":
            detail = f" ({cause})" if cause else ""
            raise DeploymentError(f"the {hook} hook reported {status}: {message}{detail}")

    def _shift(self, blue: ServedModel | None, green: ServedModel, percent: int, feeder: SyntheticTraffic) -> None:
        weight = percent / 100.0
        if blue is None or percent >= 100:
            self.host.route(green, None, 0.0)
            weights = {green.endpoint: 1.0}
        else:
            self.host.route(blue, green, weight)
            weights = {blue.endpoint: round(1.0 - weight, 4), green.endpoint: weight}
        real_period = self._real_period()
        # Enough requests that green alone expects SYNTHETIC_HEADROOM x the minimum per period, whatever its share.
        needed = SYNTHETIC_HEADROOM * self.alarms.min_requests / (max(weight, 0.01) * real_period)
        feeder.rate = min(math.ceil(needed), self.max_synthetic_rate)
        self._record(
            EVENT_SHIFTED,
            weights=weights,
            synthetic_rate=feeder.rate,
        )
        self._weights = ", ".join(f"{name} {share:.0%}" for name, share in weights.items())
        LOG.info("traffic: %d%% to %s", percent, green.endpoint)

    def _real_period(self) -> float:
        """An alarm period on the wall."""
        return max(self.clock.real_seconds(self.alarms.period_seconds), self.min_real_period)

    def _watch(self, blue: ServedModel | None, green: ServedModel, model_seconds: float, what: str) -> None:
        """Hold for ``model_seconds``, evaluating the alarms after each full period of this step.

        A period is judged on model time, not on the machine's luck: when the machine stalls (the controller wakes
        late, or the synthetic feeder could not send half of what it was asked to in the window), a window short
        of requests is held open for up to :data:`MAX_WINDOW_EXTENSIONS` more periods until it has its
        evidence, instead of counting as missing data. A quiet but unstalled window stays missing data.
        """
        if model_seconds <= 0:
            return
        rules = self.alarms.rules(compare_predictions=blue is not None and self.synthetic)
        tracker = AlarmTracker(rules, unseen_missing=False)  # the periods before this step were judged already
        real_period = self._real_period()
        start = math.ceil(self.clock.wall() / real_period) * real_period  # whole windows, as the metrics are kept
        periods = max(1, round(self.clock.real_seconds(model_seconds) / real_period))
        datapoints: dict[str, list[float | None]] = {rule.name: [] for rule in rules}
        seen_ok: set[str] = set()
        window_start = start
        for index in range(periods):
            self.progress.step(
                f"{what}: {self._weights}; alarm period {index + 1}/{periods}, model time "
                f"{_clock_text(index * model_seconds / periods)} of {_clock_text(model_seconds)}"
            )
            end = max(window_start + real_period, start + (index + 1) * real_period)
            values, end = self._judge_window(blue, green, window_start, end, what)
            window_start = end
            for name in datapoints:
                value = values.get(name)
                datapoints[name].append(value)
                transition = tracker.update(name, datapoints[name])
                if transition is not None:
                    self.transitions.append(transition.reason)
                    self._record(
                        EVENT_ALARM, alarm=name, old=transition.old, new=transition.new,
                        reason=transition.reason, during=what, period=index + 1,
                    )  # fmt: skip
                if tracker.states[name] == AlarmState.OK:
                    seen_ok.add(name)
            firing = tracker.in_alarm()
            starved = [name for name in firing if self._only_missing(tracker.rules[name], datapoints[name])]
            if firing and starved == firing:  # breaching missing data: no evidence, not a measured fault
                raise DeploymentError(self._insufficient(what, starved, green))
            if firing:
                reasons = "; ".join(t for t in self.transitions if any(t.startswith(f"{a}:") for a in firing))
                raise DeploymentError(f"alarm {', '.join(firing)} in ALARM during the {what}: {reasons}")
        missing = [name for name in datapoints if name not in seen_ok]
        if missing:
            raise DeploymentError(self._insufficient(what, missing, green))

    def _insufficient(self, what: str, alarms: list[str], green: ServedModel) -> str:
        return (
            f"insufficient data during the {what}: {', '.join(alarms)} never had {self.alarms.min_requests} "
            f"requests to {green.endpoint} in a {self.alarms.period_seconds:g}s period: never shown healthy"
        )

    @staticmethod
    def _only_missing(rule: AlarmRule, datapoints: list[float | None]) -> bool:
        """Whether an alarm in ALARM is there only through missing datapoints treated as breaching."""
        recent = datapoints[-rule.evaluation_periods :]
        return not any(value is not None and rule.breaches(value) for value in recent)

    def _judge_window(
        self, blue: ServedModel | None, green: ServedModel, start: float, end: float, what: str
    ) -> tuple[dict[str, float | None], float]:
        """Wait for the window ``[start, end)`` to close and return its datapoints and where it really ended.

        A window short of requests because the machine stalled is extended by whole periods (see :meth:`_watch`).
        """
        real_period = end - start
        for extension in range(MAX_WINDOW_EXTENSIONS + 1):
            delay = end - self.clock.wall() + 0.05  # let the last second's requests land
            if delay > 0 and not self.clock.sleep(delay * self.clock.scale):
                raise DeploymentError(f"interrupted during the {what}")
            if self._lease_lost():
                raise DeploymentError(f"the lease on production was lost during the {what}")
            late = self.clock.wall() - end
            window = (datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC))
            values = self._datapoints(blue, green, *window)
            short = any(values.get(name) is None for name in self.alarms.names[:2])
            if not short or extension == MAX_WINDOW_EXTENSIONS or not self._stalled(start, end, late, real_period):
                return values, end
            LOG.warning("the %s window %s-%s was starved by a stalled machine (%.1f s late); extending it",
                        what, window[0].time(), window[1].time(), late)  # fmt: skip
            end += real_period
        raise AssertionError("unreachable")  # pragma: no cover

    def _stalled(self, start: float, end: float, late: float, real_period: float) -> bool:
        """Whether the machine, not the traffic, kept the window short.

        Stalled: the controller woke a period late, or the synthetic feeder sent less than half of what its rate
        asked for.
        """
        if late > real_period:
            return True
        feeder = self._feeder
        if feeder is None or not self.synthetic or feeder.rate <= 0:
            return False
        asked = feeder.rate * (end - start)
        return len(feeder.window(start, end)) < 0.5 * asked

    def _datapoints(
        self, blue: ServedModel | None, green: ServedModel, start: datetime, end: datetime
    ) -> dict[str, float | None]:
        error_name, latency_name, shift_name = self.alarms.names
        values: dict[str, float | None] = {shift_name: self._prediction_shift(blue, green, start, end)}
        stats = self.host.window(green.endpoint, start, end)
        if stats.invocations < self.alarms.min_requests:
            return values
        error_rate = stats.errors_5xx / stats.invocations
        values[error_name] = error_rate
        if stats.p99_ms is None:
            return values
        if blue is not None:
            reference = self.host.window(blue.endpoint, start, end)
            if reference.p99_ms is not None and reference.invocations >= self.alarms.min_requests:
                self._blue_p99_ms = reference.p99_ms  # the same window: the fairest comparison
                self._blue_max_ms = reference.max_ms
            else:
                self._blue_max_ms = None  # a stall of another window says nothing about this one
        if self._blue_p99_ms is None:  # no blue, or none of its traffic seen yet (all at once)
            allowed = self.alarms.max_latency_ms
        else:  # blue's latest window (during the bake blue takes no traffic: its last canary window)
            allowed = self.alarms.latency_ratio * self._blue_p99_ms + self.alarms.latency_slack_ms
            if self._blue_max_ms is not None:
                # With few requests green's p99 is its slowest one; if blue's own slowest request in the same
                # window was nearly as slow (within latency_ratio), the machine stalled both: a slower model is
                # slower for every request.
                allowed = max(allowed, self.alarms.latency_ratio * self._blue_max_ms)
        values[latency_name] = stats.p99_ms - allowed
        return values

    def _prediction_shift(
        self, blue: ServedModel | None, green: ServedModel, start: datetime, end: datetime
    ) -> float | None:
        """Mean |green - blue| score on the held-out rows green answered in the window (blue's reference scores)."""
        if blue is None or self._feeder is None:
            return None
        answers = [a for a in self._feeder.window(start.timestamp(), end.timestamp()) if a.score is not None]
        shifts = [
            abs(answer.score - self._blue_scores[answer.row])
            for answer in answers
            if answer.endpoint == green.endpoint and answer.score is not None and answer.row in self._blue_scores
        ]
        return sum(shifts) / len(shifts) if len(shifts) >= self.alarms.min_requests else None

    def _roll_back(self, blue: ServedModel | None, green: ServedModel | None, reason: str) -> list[str]:
        """Traffic back to blue and green removed; return what went wrong doing so (also in the ledger)."""
        problems: list[str] = []
        try:
            self.host.route(blue, None, 0.0)
        except Exception as exc:
            problems.append(f"restoring the route failed: {exc}")
        if green is not None:
            try:
                self.host.delete_endpoint(green)
            except Exception as exc:
                problems.append(f"deleting {green.endpoint} failed: {exc}")
        self.ledger.append(
            self.deployment_id,
            EVENT_ROLLED_BACK,
            reason=reason,
            restored=blue.as_dict() if blue else None,
            problems=problems,
        )
        LOG.error("deployment %s rolled back: %s", self.deployment_id, reason)
        return problems
