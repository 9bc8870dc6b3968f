"""Post-traffic hook (CodeDeploy ``AfterAllowTraffic``): did green really serve, and well?

Checks: data capture wrote records for green's endpoint **since this deployment started** (the seed accepted
any old capture file); green's variant served at least ``MIN_REQUESTS`` requests since then with a 5XX share
(model errors included) at most ``MAX_ERROR_RATE``. The verdict goes to CodeDeploy exactly once.

Configuration: ``ENDPOINT_NAME``, ``VARIANT_NAME`` (default AllTraffic), ``CAPTURE_URI`` (the capture
destination), ``DEPLOYMENT_STARTED`` (ISO 8601), ``MAX_ERROR_RATE`` (default 0.02), ``MIN_REQUESTS`` (default 1),
``BAKE_SECONDS`` (default 0: on AWS, CodeDeploy has no bake step after traffic reaches 100 %, so the hook waits
this long first; its checks then cover the bake, and the deployment rolls back if they fail),
``PRODUCTION_PARAMETER`` (AWS: the SSM parameter ``naming.production_endpoint_parameter``; once the checks pass,
green is recorded there as production: the next deployment's blue, and the synthetic canary stops feeding it).

On AWS, Lambda calls :data:`handler` (``lambdas.hooks.post_traffic.handler``), which builds boto3 clients
on its first call (:mod:`lambdas.hooks.aws`); locally the deployment
controller uses :func:`create_handler` with injected ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from lambdas.hooks.aws import LazyHookHandler
from lambdas.hooks.common import Handler, HookCheckError, HookClients, hook_handler, require
from safedeploy.store import S3Uri

MAX_BAKE_SECONDS = 840
"""A Lambda runs at most 15 minutes: the bake plus the checks must fit in it."""


def check_served(
    environ: Mapping[str, str],
    clients: HookClients,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Bake (``BAKE_SECONDS``), then run the checks; return a summary or raise :class:`HookCheckError`."""
    endpoint = require(environ, "ENDPOINT_NAME")
    bake = float(environ.get("BAKE_SECONDS", "0"))
    if not 0 <= bake <= MAX_BAKE_SECONDS:
        raise HookCheckError(f"BAKE_SECONDS={bake:g} is outside 0..{MAX_BAKE_SECONDS} (a Lambda runs 15 minutes)")
    if bake:
        sleep(bake)
    variant = environ.get("VARIANT_NAME", "AllTraffic")
    started = datetime.fromisoformat(require(environ, "DEPLOYMENT_STARTED"))
    max_error_rate = float(environ.get("MAX_ERROR_RATE", "0.02"))
    min_requests = int(environ.get("MIN_REQUESTS", "1"))
    prefix = S3Uri.parse(require(environ, "CAPTURE_URI")).join(endpoint, variant)
    objects = [o for o in clients.store.list_objects(prefix) if o.last_modified and o.last_modified >= started]
    if not objects:
        raise HookCheckError(f"no data capture for {endpoint}/{variant} since {started:%H:%M:%S} under {prefix}")
    invocations, errors = clients.metrics.totals(endpoint, variant, started, now or datetime.now(UTC))
    if invocations < min_requests:
        raise HookCheckError(f"{endpoint} served {invocations:.0f} requests since the deployment (need {min_requests})")
    rate = errors / invocations
    if rate > max_error_rate:
        raise HookCheckError(
            f"{endpoint} answered {rate:.1%} of {invocations:.0f} requests with 5XX (limit {max_error_rate:.1%})"
        )
    summary = (
        f"{endpoint}: {len(objects)} capture objects since the deployment; {invocations:.0f} requests, {rate:.2%} 5XX"
    )
    parameter = environ.get("PRODUCTION_PARAMETER", "").strip()
    if parameter:  # green passed: it is production now (the next deployment's blue; the canary stops feeding it)
        if clients.parameters is None:
            raise HookCheckError(f"the hook has no SSM client to record {endpoint} in {parameter}")
        clients.parameters.put_parameter(Name=parameter, Value=endpoint, Type="String", Overwrite=True)
        summary += f"; recorded as production in {parameter}"
    return summary


def create_handler(environ: Mapping[str, str], clients: HookClients) -> Handler:
    """The hook for a function configuration and injected clients."""
    return hook_handler(check_served, environ, clients)


handler = LazyHookHandler(check_served)
"""Lambda's entry point: boto3 clients (S3 store, CloudWatch metrics) and configuration built on the first call."""
