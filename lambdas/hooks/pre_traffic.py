"""Pre-traffic hook (CodeDeploy ``BeforeAllowTraffic``): is green fit to take any traffic at all?

Checks, in order, each failing with the reason: green's endpoint is InService; its data capture is enabled;
a real inference on known held-out rows returns the expected scores (within the tolerance) inside the latency
budget. The verdict goes to CodeDeploy exactly once (:func:`~lambdas.hooks.common.report_once`).

Configuration: ``ENDPOINT_NAME`` (green), ``CHECKS_URI`` (an object with ``rows`` - encoded CSV lines - and
``expected`` scores, and optionally ``tolerance``; or a ``model.tar.gz`` whose ``pre-traffic-checks.json`` member,
written by the training job, holds them: what the AWS stack passes), ``LATENCY_BUDGET_MS`` (default 500).

On AWS, Lambda calls :data:`handler` (``lambdas.hooks.pre_traffic.handler``), which builds boto3 clients
on its first call (:mod:`lambdas.hooks.aws`); locally the deployment
controller uses :func:`create_handler` with injected ones.
"""

from __future__ import annotations

import functools
import io
import json
import tarfile
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from lambdas.hooks.aws import LazyHookHandler
from lambdas.hooks.common import Handler, HookCheckError, HookClients, hook_handler, require
from safedeploy.store import S3Uri

CHECKS_MEMBER = "pre-traffic-checks.json"
"""The member of a model archive holding the known rows and their scores (model/train.py writes it)."""
KNOWN_ROWS_PREFIX = "known-rows-"
"""Inference-id prefix of the known-row check: data-quality monitoring keeps these rows out of its windows."""


def read_checks(content: bytes, uri: str) -> dict[str, Any]:
    """The checks document: the object itself, or the training job's member of a model archive."""
    if not uri.endswith(".tar.gz"):
        return dict(json.loads(content))
    try:
        with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
            member = archive.extractfile(CHECKS_MEMBER)
            if member is None:
                raise KeyError(CHECKS_MEMBER)
            return dict(json.loads(member.read()))
    except (KeyError, tarfile.TarError) as exc:
        raise HookCheckError(f"{uri} has no {CHECKS_MEMBER} the hook can read ({exc})") from None


def check_green(
    environ: Mapping[str, str], clients: HookClients, timer: Callable[[], float] = time.perf_counter
) -> str:
    """Run the checks; return a summary or raise :class:`HookCheckError`.

    ``timer`` (seconds) times the known-row inference against the latency budget.
    """
    endpoint = require(environ, "ENDPOINT_NAME")
    budget_ms = float(environ.get("LATENCY_BUDGET_MS", "500"))
    described = clients.sagemaker.describe_endpoint(EndpointName=endpoint)
    if described["EndpointStatus"] != "InService":
        raise HookCheckError(f"{endpoint} is {described['EndpointStatus']}, not InService")
    capture = described.get("DataCaptureConfig")
    if capture is None or not capture.get("EnableCapture"):
        raise HookCheckError(f"{endpoint} has data capture disabled: its traffic could not be monitored")
    checks = read_checks(clients.store.get_bytes(S3Uri.parse(require(environ, "CHECKS_URI"))), environ["CHECKS_URI"])
    rows, expected = list(checks["rows"]), [float(v) for v in checks["expected"]]
    tolerance = float(checks.get("tolerance", 1e-6))
    if not rows or len(rows) != len(expected):
        raise HookCheckError(f"the known rows at {environ['CHECKS_URI']} are empty or do not match their scores")
    started = timer()
    reply = clients.runtime.invoke_endpoint(
        EndpointName=endpoint,
        ContentType="text/csv",
        Accept="text/csv",
        Body="\n".join(rows),
        InferenceId=f"{KNOWN_ROWS_PREFIX}{uuid.uuid4()}",  # kept out of monitoring windows, counted apart
    )
    elapsed_ms = (timer() - started) * 1000
    scores = [float(line) for line in reply["Body"].read().decode("utf-8").split()]
    if len(scores) != len(expected):
        raise HookCheckError(f"{endpoint} answered {len(scores)} scores for {len(expected)} known rows")
    worst = max(abs(a - b) for a, b in zip(scores, expected, strict=True))
    if worst > tolerance:
        raise HookCheckError(f"{endpoint} scores known rows differently from the model (max |diff| {worst:.3g})")
    if elapsed_ms > budget_ms:
        raise HookCheckError(
            f"{endpoint} took {elapsed_ms:.0f} ms for {len(rows)} known rows (budget {budget_ms:g} ms)"
        )
    return f"{endpoint} InService, capture on, {len(rows)} known rows correct in {elapsed_ms:.1f} ms"


def create_handler(
    environ: Mapping[str, str], clients: HookClients, timer: Callable[[], float] = time.perf_counter
) -> Handler:
    """The hook for a function configuration and injected clients (and the timer of the latency budget)."""
    return hook_handler(functools.partial(check_green, timer=timer), environ, clients)


handler = LazyHookHandler(check_green)
"""Lambda's entry point: boto3 clients (S3 store, CloudWatch metrics) and configuration built on the first call."""
