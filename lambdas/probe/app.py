"""The standing probe: known rows through the production REST API on a schedule, as a Synthetics canary would.

The deployment's canary (``lambdas/canary/app.py``) feeds green only while a deployment runs; this one runs all
the time (EventBridge ``monitoring.synthetic_canary.schedule_expression`` on AWS; the runtime's monitoring clock
locally, where ``safedeploy/local/probe_run.py`` invokes this same handler in-process). Each run sends the known
rows (held-out test rows of the serving version and the model's offline scores for them: its
``pre-traffic-checks.json``, read with the deployment canary's :class:`~lambdas.canary.app.HeldOutRows`) one per
request to ``POST /<model>/api`` with the API key and the synthetic header (the API tags them ``synthetic-``, so
monitoring leaves them out). The run passes when every answer is 200, one score within ``TOLERANCE`` of the offline
score, within ``LATENCY_BUDGET_MS``. It publishes CloudWatch Synthetics' own metrics, ``SuccessPercent`` (100 or
0) and ``Duration`` (ms), namespace ``CloudWatchSynthetics``, dimension ``CanaryName``: the probe's alarm watches
them.

Configuration: ``API_URL``, ``API_KEY_ID`` (API Gateway's key id; its value is read once with ``GetApiKey``) or
``API_KEY`` (the value itself: the local runtime's in-process invocation), ``CHECKS_URI``, ``CANARY_NAME``,
``METRICS_NAMESPACE``, ``ROWS``, ``TOLERANCE``, ``LATENCY_BUDGET_MS``, ``TIMEOUT_SECONDS``.
Clients are injected (:func:`create_handler`); :data:`handler`, Lambda's entry point, builds boto3's on first use.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from lambdas.canary.app import HeldOutRows, ScheduledEvent
from lambdas.hooks.common import ObjectStore

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import DimensionTypeDef

SUCCESS_METRIC, DURATION_METRIC, CANARY_DIMENSION = "SuccessPercent", "Duration", "CanaryName"
"""CloudWatch Synthetics' names (``safedeploy.constants.SYNTHETICS_*``)."""
API_KEY_HEADER, SYNTHETIC_HEADER = "x-api-key", "x-synthetic-canary"
"""``safedeploy.constants.API_KEY_HEADER`` / ``SYNTHETIC_HEADER``."""


class ProbeError(Exception):
    """The probe is misconfigured; the message names the variable."""


@dataclass(frozen=True)
class HttpAnswer:
    """One HTTP answer (status 0: no answer at all) and how long it took."""

    status: int
    body: bytes
    seconds: float


class HttpPoster(Protocol):
    """Sends one POST (urllib on Lambda and locally)."""

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpAnswer:
        """The answer; never raises for a refused or failed request (status 0 and the error as body)."""
        ...


class ApiKeys(Protocol):
    """API Gateway's ``GetApiKey`` (boto3's ``apigateway`` client)."""

    def get_api_key(self, *, apiKey: str, includeValue: bool) -> Mapping[str, Any]:  # noqa: N803 - boto3's names
        """``{"value": ...}``."""
        ...


def urllib_post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpAnswer:
    """POST with the standard library; an HTTP error is an answer, a network failure is status 0."""
    if not url.startswith(("https://", "http://127.0.0.1:")):  # API Gateway, or the local runtime's gateway
        raise ProbeError(f"API_URL {url!r} must be https:// (or the local gateway on 127.0.0.1)")
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310 - checked
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - scheme checked above
            return HttpAnswer(reply.status, reply.read(), time.perf_counter() - started)
    except urllib.error.HTTPError as exc:
        return HttpAnswer(exc.code, exc.read(), time.perf_counter() - started)
    except (OSError, ValueError) as exc:
        return HttpAnswer(0, str(exc).encode(), time.perf_counter() - started)


@dataclass(frozen=True)
class ProbeSettings:
    """The function's configuration."""

    api_url: str
    checks_uri: str
    canary_name: str
    namespace: str
    api_key: str | None = None
    api_key_id: str | None = None
    rows: int = 10
    tolerance: float = 1e-6
    latency_budget_ms: float = 1000.0
    timeout_seconds: float = 60.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ProbeSettings:
        """Read the environment; raise :class:`ProbeError` naming a missing or invalid variable."""

        def required(name: str) -> str:
            value = environ.get(name, "").strip()
            if not value:
                raise ProbeError(f"the probe is misconfigured: {name} is not set")
            return value

        try:
            rows = int(environ.get("ROWS", "10"))
            tolerance = float(environ.get("TOLERANCE", "1e-6"))
            budget = float(environ.get("LATENCY_BUDGET_MS", "1000"))
            timeout = float(environ.get("TIMEOUT_SECONDS", "60"))
        except ValueError as exc:
            raise ProbeError(f"the probe is misconfigured: {exc}") from None
        if rows < 1 or not tolerance > 0 or not budget > 0 or not timeout > 0:
            raise ProbeError(
                f"ROWS={rows} must be >= 1, TOLERANCE={tolerance:g}, LATENCY_BUDGET_MS={budget:g} and "
                f"TIMEOUT_SECONDS={timeout:g} > 0"
            )
        key, key_id = environ.get("API_KEY", "").strip() or None, environ.get("API_KEY_ID", "").strip() or None
        return cls(
            api_url=required("API_URL"),
            checks_uri=required("CHECKS_URI"),
            canary_name=required("CANARY_NAME"),
            namespace=required("METRICS_NAMESPACE"),
            api_key=key,
            api_key_id=key_id,
            rows=rows,
            tolerance=tolerance,
            latency_budget_ms=budget,
            timeout_seconds=timeout,
        )


@dataclass(frozen=True)
class ProbeClients:
    """What the probe talks to."""

    cloudwatch: CloudWatchClient
    store: ObjectStore
    post: HttpPoster = urllib_post
    api_keys: ApiKeys | None = None


@dataclass(frozen=True)
class ProbeRun:
    """One run: passed or not, the rows checked, what failed, how long it took."""

    passed: bool
    rows: int
    failures: tuple[str, ...]
    duration_ms: float

    @property
    def success_percent(self) -> float:
        """Synthetics' ``SuccessPercent`` of one run: 100 if it passed, else 0."""
        return 100.0 if self.passed else 0.0

    @property
    def reason(self) -> str:
        """One line: what passed, or the first failures."""
        if self.passed:
            return f"{self.rows} known rows answered 200 within tolerance and budget"
        shown = "; ".join(self.failures[:3])
        more = f" (+{len(self.failures) - 3} more)" if len(self.failures) > 3 else ""
        return f"{len(self.failures)} of {self.rows} known rows failed: {shown}{more}"

    def as_dict(self) -> dict[str, Any]:
        """The handler's answer."""
        return {
            "passed": self.passed,
            "rows": self.rows,
            "successPercent": self.success_percent,
            "durationMs": round(self.duration_ms, 3),
            "failures": list(self.failures),
            "reason": self.reason,
        }


def judge(answer: HttpAnswer, expected: float, settings: ProbeSettings) -> str | None:
    """Why one answer fails the run, or None when it passes."""
    if answer.status != 200:
        text = answer.body[:120].decode("utf-8", "replace").strip()
        return f"status {answer.status or 'none'} ({text})" if text else f"status {answer.status or 'none'}"
    lines = answer.body.decode("utf-8", "replace").split()
    try:
        score = float(lines[0]) if len(lines) == 1 else None
    except ValueError:
        score = None
    if score is None:
        return f"not one score: {answer.body[:60]!r}"
    if not abs(score - expected) <= settings.tolerance:  # NaN fails too
        return f"score {score:.6g} vs offline {expected:.6g} (|diff| > {settings.tolerance:g})"
    if answer.seconds * 1000 > settings.latency_budget_ms:
        return f"{answer.seconds * 1000:.0f} ms > budget {settings.latency_budget_ms:g} ms"
    return None


def run_probe(
    settings: ProbeSettings,
    clients: ProbeClients,
    rows: HeldOutRows,
    api_key: str | None,
    *,
    timer: Callable[[], float] = time.perf_counter,
) -> ProbeRun:
    """Send the known rows (one request each), judge the answers, publish SuccessPercent and Duration."""
    headers = {"Content-Type": "text/csv", "Accept": "text/csv", SYNTHETIC_HEADER: "1"}
    if api_key:
        headers[API_KEY_HEADER] = api_key
    count = min(settings.rows, len(rows.rows))
    started = timer()
    failures: list[str] = []
    for index in range(count):
        answer = clients.post(settings.api_url, rows.rows[index].encode(), headers, settings.timeout_seconds)
        problem = judge(answer, rows.expected[index], settings)
        if problem is not None:
            failures.append(f"row {index}: {problem}")
    run = ProbeRun(not failures, count, tuple(failures), (timer() - started) * 1000)
    dimensions: list[DimensionTypeDef] = [{"Name": CANARY_DIMENSION, "Value": settings.canary_name}]
    clients.cloudwatch.put_metric_data(
        Namespace=settings.namespace,
        MetricData=[
            {"MetricName": SUCCESS_METRIC, "Dimensions": dimensions, "Value": run.success_percent, "Unit": "Percent"},
            {"MetricName": DURATION_METRIC, "Dimensions": dimensions, "Value": run.duration_ms, "Unit": "Milliseconds"},
        ],
    )
    return run


@dataclass
class ProbeHandler:
    """Lambda's entry point for EventBridge's scheduled events: settings, clients, rows and key built once."""

    clients: Callable[[], ProbeClients]
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    timer: Callable[[], float] = time.perf_counter
    _built: tuple[ProbeSettings, ProbeClients, HeldOutRows, str | None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """One run per scheduled event; anything else is refused (``ValueError``)."""
        ScheduledEvent.parse(event)
        with self._lock:
            if self._built is None:
                settings = ProbeSettings.from_environ(self.environ)
                clients = self.clients()
                rows = HeldOutRows.load(clients.store, settings.checks_uri)
                self._built = (settings, clients, rows, self._api_key(settings, clients))
            settings, clients, rows, key = self._built
        return run_probe(settings, clients, rows, key, timer=self.timer).as_dict()

    @staticmethod
    def _api_key(settings: ProbeSettings, clients: ProbeClients) -> str | None:
        if settings.api_key is not None:
            return settings.api_key
        if settings.api_key_id is None:
            return None  # the API requires no key (serving.api_key_required = false)
        if clients.api_keys is None:
            raise ProbeError("API_KEY_ID is set but no API Gateway client was given to read the key")
        return str(clients.api_keys.get_api_key(apiKey=settings.api_key_id, includeValue=True)["value"])


def create_handler(environ: Mapping[str, str], clients: ProbeClients) -> ProbeHandler:
    """The probe for a configuration and injected clients (the local runtime's in-process invocation, tests)."""
    return ProbeHandler(clients=lambda: clients, environ=environ)


def _default_clients() -> ProbeClients:
    import boto3

    from lambdas.hooks.aws import CLIENT_CONFIG, S3ObjectStore

    session: boto3.Session = boto3.Session()
    return ProbeClients(
        cloudwatch=session.client("cloudwatch", config=CLIENT_CONFIG),
        store=S3ObjectStore(session.client("s3", config=CLIENT_CONFIG)),
        api_keys=session.client("apigateway", config=CLIENT_CONFIG),
    )


handler = ProbeHandler(clients=_default_clients)
"""``lambdas.probe.app.handler``: nothing is created at import."""
