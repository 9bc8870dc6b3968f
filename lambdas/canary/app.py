"""The synthetic canary: held-out rows to green (and blue) while CodeDeploy shifts traffic; the prediction shift.

The AWS side of the local controller's synthetic feeder (``safedeploy/blue_green.py``, ``SyntheticTraffic``):
the same row source (the held-out rows the training job put in green's ``model.tar.gz`` as
``pre-traffic-checks.json``), the same contract (CSV rows through ``InvokeEndpoint``, inference ids prefixed
``synthetic-`` so data-quality monitoring leaves them out), and the same judgement: the prediction shift is
|green's score - blue's score| for the same row. Each run (an EventBridge schedule, every minute) sends
``ROWS_PER_RUN`` rows to green and to blue, spread over ``SPREAD_SECONDS``, so that both fleets' alarm windows
have evidence (green's error rate and p99, and blue's p99 that green's latency alarm is judged against), and
publishes one ``PredictionShift`` value per row green answered (``put_metric_data``, namespace
``CANARY_NAMESPACE``, dimension ``EndpointName`` = green): the alarm takes the period's Average when its
SampleCount reaches the minimum. With no blue (the first deployment) the reference is the model's own offline
scores for the rows.

The stack also runs it as a custom resource (``CanaryWarmUp``) before the API function's alias moves: a few
runs, one a minute, so that the deployment alarms (missing data breaching) have green's evidence before CodeDeploy
watches them. It feeds only while green is not production yet: the SSM parameter ``PRODUCTION_PARAMETER`` names
production's endpoint, and the post-traffic hook records green there once the deployment passed; from then on a
run returns at once.

Configuration: ``ENDPOINT_NAME`` (green), ``BLUE_ENDPOINT`` (``none`` without a blue), ``CHECKS_URI`` (green's
``model.tar.gz``), ``PRODUCTION_PARAMETER``, ``CANARY_NAMESPACE``, ``ROWS_PER_RUN`` (default 30),
``SPREAD_SECONDS`` (default 45).

Clients are injected (:func:`run_canary`); :data:`handler`, Lambda's entry point, builds boto3's on its first call.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.custom_resource import CustomResourceEvent, Put, ResourceError, answer_once, http_put
from lambdas.hooks.common import ObjectStore
from lambdas.hooks.pre_traffic import read_checks
from safedeploy.store import S3Uri

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

SYNTHETIC_PREFIX = "synthetic-"
"""Inference-id prefix of synthetic requests (``safedeploy.monitoring.analyzer.formats.SYNTHETIC_INFERENCE_PREFIX``)."""
PREDICTION_SHIFT_METRIC = "PredictionShift"
NO_BLUE = "none"
RUN_EVERY_SECONDS = 60.0
"""The schedule's rate (``rate(1 minute)``): the warm-up paces its runs the same way."""
MAX_WARM_UP_RUNS = 13
"""Runs that fit in one Lambda invocation (15 minutes)."""
MAX_VALUES_PER_DATUM = 150
"""``PutMetricData`` takes at most 150 distinct values per datum."""


class CanaryError(Exception):
    """The canary is misconfigured or its rows are unreadable; the message says which."""


@dataclass(frozen=True)
class CanarySettings:
    """The function's configuration."""

    endpoint: str
    blue_endpoint: str | None
    checks_uri: str
    production_parameter: str
    namespace: str
    rows_per_run: int = 30
    spread_seconds: float = 45.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> CanarySettings:
        """Read the environment; raise :class:`CanaryError` naming a missing or invalid variable."""

        def required(name: str) -> str:
            value = environ.get(name, "").strip()
            if not value:
                raise CanaryError(f"the canary is misconfigured: {name} is not set")
            return value

        blue = environ.get("BLUE_ENDPOINT", NO_BLUE).strip()
        try:
            rows, spread = int(environ.get("ROWS_PER_RUN", "30")), float(environ.get("SPREAD_SECONDS", "45"))
        except ValueError as exc:
            raise CanaryError(f"the canary is misconfigured: {exc}") from None
        if rows < 1 or not 0 <= spread <= 600:
            raise CanaryError(f"ROWS_PER_RUN={rows} must be >= 1 and SPREAD_SECONDS={spread:g} within 0..600")
        endpoint = required("ENDPOINT_NAME")
        return cls(
            endpoint=endpoint,
            blue_endpoint=None if blue in ("", NO_BLUE, endpoint) else blue,
            checks_uri=required("CHECKS_URI"),
            production_parameter=required("PRODUCTION_PARAMETER"),
            namespace=required("CANARY_NAMESPACE"),
            rows_per_run=rows,
            spread_seconds=spread,
        )


@dataclass(frozen=True)
class ScheduledEvent:
    """EventBridge's scheduled event (``detail-type`` ``Scheduled Event``); anything else is refused."""

    id: str
    time: str

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> ScheduledEvent:
        """Read the event; raise ``ValueError`` if it is not a scheduled event."""
        if event.get("detail-type") != "Scheduled Event" or event.get("source") != "aws.events":
            raise ValueError(f"not an EventBridge scheduled event: {sorted(event)[:6]}")
        return cls(str(event.get("id", "")), str(event.get("time", "")))


class ParameterStore(Protocol):
    """SSM's ``GetParameter`` (boto3's ``ssm`` client; no type stubs are installed for it)."""

    def get_parameter(self, *, Name: str) -> Mapping[str, Any]:  # noqa: N803 - boto3's parameter name
        """``{"Parameter": {"Value": ...}}``."""
        ...


@dataclass(frozen=True)
class CanaryClients:
    """What the canary talks to."""

    runtime: SageMakerRuntimeClient
    cloudwatch: CloudWatchClient
    ssm: ParameterStore
    store: ObjectStore


@dataclass(frozen=True)
class HeldOutRows:
    """The held-out rows (encoded CSV lines) and the model's offline scores for them."""

    rows: tuple[str, ...]
    expected: tuple[float, ...]

    @classmethod
    def load(cls, store: ObjectStore, uri: str) -> HeldOutRows:
        """From ``pre-traffic-checks.json`` (in the model archive, or the document itself)."""
        checks = read_checks(store.get_bytes(S3Uri.parse(uri)), uri)
        rows, expected = tuple(str(r) for r in checks.get("rows", ())), tuple(float(v) for v in checks["expected"])
        if not rows or len(rows) != len(expected):
            raise CanaryError(f"the held-out rows at {uri} are empty or do not match their scores")
        return cls(rows, expected)


@dataclass(frozen=True)
class CanaryResult:
    """One run: how many rows green was sent, answered, failed, and the shifts published."""

    sent: int
    answered: int
    failed: int
    shifts: tuple[float, ...]
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """The handler's answer."""
        mean = sum(self.shifts) / len(self.shifts) if self.shifts else None
        return {
            "sent": self.sent,
            "answered": self.answered,
            "failed": self.failed,
            "published": len(self.shifts),
            "mean_shift": mean,
            "reason": self.reason,
        }


def _score(runtime: SageMakerRuntimeClient, endpoint: str, row: str) -> float | None:
    """One row's score from ``endpoint``; None when it fails or answers something that is not one score."""
    try:
        reply = runtime.invoke_endpoint(
            EndpointName=endpoint,
            ContentType="text/csv",
            Accept="text/csv",
            Body=row,
            InferenceId=f"{SYNTHETIC_PREFIX}{uuid.uuid4()}",
        )
        lines = reply["Body"].read().decode("utf-8").split()
        return float(lines[0]) if len(lines) == 1 else None
    except (ClientError, BotoCoreError, ValueError):
        return None


def publish_shifts(cloudwatch: CloudWatchClient, namespace: str, endpoint: str, shifts: Sequence[float]) -> None:
    """One ``PredictionShift`` value per row (as Values/Counts, at most 150 distinct values per datum)."""
    counts = sorted(Counter(round(value, 9) for value in shifts).items())
    for start in range(0, len(counts), MAX_VALUES_PER_DATUM):
        part = counts[start : start + MAX_VALUES_PER_DATUM]
        cloudwatch.put_metric_data(
            Namespace=namespace,
            MetricData=[
                {
                    "MetricName": PREDICTION_SHIFT_METRIC,
                    "Dimensions": [{"Name": "EndpointName", "Value": endpoint}],
                    "Values": [value for value, _ in part],
                    "Counts": [float(count) for _, count in part],
                    "Unit": "None",
                }
            ],
        )


def run_canary(
    settings: CanarySettings,
    clients: CanaryClients,
    rows: HeldOutRows,
    *,
    start: int = 0,
    sleep: Callable[[float], None] = time.sleep,
) -> CanaryResult:
    """One run: feed ``rows_per_run`` held-out rows (from index ``start``, cyclically) and publish the shifts."""
    production = clients.ssm.get_parameter(Name=settings.production_parameter)["Parameter"].get("Value", "")
    if production == settings.endpoint:
        return CanaryResult(0, 0, 0, (), f"{settings.endpoint} is production: nothing to canary")
    pause = settings.spread_seconds / settings.rows_per_run
    shifts: list[float] = []
    answered = failed = 0
    for number in range(settings.rows_per_run):
        index = (start + number) % len(rows.rows)
        row = rows.rows[index]
        if settings.blue_endpoint is None:
            reference: float | None = rows.expected[index]
        else:
            reference = _score(clients.runtime, settings.blue_endpoint, row)
        green = _score(clients.runtime, settings.endpoint, row)
        if green is None:
            failed += 1
        else:
            answered += 1
            if reference is not None:
                shifts.append(abs(green - reference))
        if pause > 0 and number + 1 < settings.rows_per_run:
            sleep(pause)
    if shifts:
        publish_shifts(clients.cloudwatch, settings.namespace, settings.endpoint, shifts)
    against = settings.blue_endpoint or "the offline scores (no blue)"
    return CanaryResult(settings.rows_per_run, answered, failed, tuple(shifts), f"{settings.endpoint} vs {against}")


def _default_clients() -> CanaryClients:
    import boto3

    from lambdas.hooks.aws import CLIENT_CONFIG, S3ObjectStore

    session: boto3.Session = boto3.Session()
    return CanaryClients(
        runtime=session.client("sagemaker-runtime", config=CLIENT_CONFIG),
        cloudwatch=session.client("cloudwatch", config=CLIENT_CONFIG),
        ssm=session.client("ssm", config=CLIENT_CONFIG),
        store=S3ObjectStore(session.client("s3", config=CLIENT_CONFIG)),
    )


@dataclass
class CanaryHandler:
    """Lambda's entry point: settings, clients and rows built on the first call, then reused by the container.

    Two events: EventBridge's scheduled event (one run), and CloudFormation's custom-resource request of the
    stack's ``CanaryWarmUp`` (``WarmUpRuns`` runs, one a minute, before the API function's alias moves: the
    deployment alarms, whose missing data is breaching, have green's evidence for their evaluation periods by the
    time CodeDeploy starts watching them).
    """

    clients: Callable[[], CanaryClients] = _default_clients
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    put: Put = http_put
    _built: tuple[CanarySettings, CanaryClients, HeldOutRows] | None = None
    _next_row: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """One run per scheduled event; the warm-up's runs for a custom-resource request."""
        if CustomResourceEvent.matches(event):
            return dict(answer_once(event, self._warm_up, self.put))
        ScheduledEvent.parse(event)
        return self._run().as_dict()

    def _run(self) -> CanaryResult:
        with self._lock:
            if self._built is None:
                settings = CanarySettings.from_environ(self.environ)
                clients = self.clients()
                self._built = (settings, clients, HeldOutRows.load(clients.store, settings.checks_uri))
            settings, clients, rows = self._built
            result = run_canary(settings, clients, rows, start=self._next_row, sleep=self.sleep)
            self._next_row = (self._next_row + result.sent) % len(rows.rows)
        return result

    def _warm_up(self, request: CustomResourceEvent) -> str:
        runs = int(request.properties.get("WarmUpRuns", 1))
        if not 1 <= runs <= MAX_WARM_UP_RUNS:
            raise ResourceError(f"WarmUpRuns={runs} must be within 1..{MAX_WARM_UP_RUNS} (a Lambda runs 15 minutes)")
        answered = sent = 0
        for number in range(runs):
            started = self.clock()
            result = self._run()
            if result.sent == 0:  # green is production already: nothing to warm up
                return result.reason
            answered, sent = answered + result.answered, sent + result.sent
            if number + 1 < runs:
                self.sleep(max(0.0, RUN_EVERY_SECONDS - (self.clock() - started)))
        if answered == 0:
            raise ResourceError(f"green answered none of {sent} synthetic held-out rows: it cannot take traffic")
        return f"warmed up green: {runs} runs, {answered} of {sent} synthetic rows answered"


handler = CanaryHandler()
"""``lambdas.canary.app.handler``: nothing is created at import."""
