"""Adversarial requests to a deployed model's REST API: raw sockets, any framing, any header, any body.

Every request (a few hundred in ``make test``, 2,500 in ``make chaos``) must get an answer below 500; afterwards
the runtime and every serving instance are the same processes (none crashed), each instance answers ``/ping``
and the endpoint counted no 5XX. Counts by status and framing go to ``build/chaos/fuzz_rest.json``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safedeploy import constants as C
from tests.chaos import payloads, wire
from tests.chaos.figures import record, size
from tests.serving import Live, health, http, signed

EXAMPLES = size(400, 2_500)
TIME_BUDGET_S = size(60, 600)
"""Examples drawn after this long are skipped (the count says how many ran)."""
ENDPOINT = "customerchurn-dev"


def _instances(live: Live) -> dict[str, list[Any]]:
    described = health(live.info)["endpoints"][ENDPOINT]
    return {"pids": described["Instances"][C.DEFAULT_VARIANT], "urls": described["InstanceUrls"][C.DEFAULT_VARIANT]}


def server_errors_since(live: Live, endpoint: str, start: datetime) -> float:
    """Invocation5XXErrors of ``endpoint`` since ``start`` (the runtime's GetMetricStatistics)."""
    query = urlencode(
        {
            "EndpointName": endpoint,
            "MetricName": "Invocation5XXErrors",
            "Period": 86_400,
            "StartTime": start.isoformat(),
            "EndTime": (datetime.now(UTC) + timedelta(seconds=2)).isoformat(),
        }
    )
    points = signed(live.info, f"/_local/metrics?{query}", method="GET").json()["Datapoints"]
    return float(sum(p["Sum"] for p in points))


def _layer(status: int, body: bytes) -> str:
    """Which layer answered: the model (through the handler), the handler, the gateway, or the HTTP server."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if status == 200:
        return "model: 200"
    if isinstance(document, dict) and "error" in document:  # lambdas/api/app.py's error shape
        who = "model" if document["error"] == "InvalidRequest" else "handler"
        return f"{who}: {status} {document['error']}"
    if status == 400 and isinstance(document, dict):  # the HTTP server refused the framing: say why, briefly
        return f"gateway: 400 {str(document.get('message', ''))[:48]}"
    return f"gateway: {status}"


def test_the_rest_api_answers_every_adversarial_request_below_500(live: Live) -> None:
    url = urlsplit(live.outputs["DevApiUrl"])
    assert url.hostname == "127.0.0.1" and url.port is not None
    port, route = url.port, url.path
    key = live.outputs["ApiKey"].encode()
    valid_csv = live.csv_rows[0].encode()
    runtime_pid, before, started = health(live.info)["pid"], _instances(live), datetime.now(UTC)
    deadline = time.monotonic() + TIME_BUDGET_S
    statuses: Counter[str] = Counter()
    framings: Counter[str] = Counter()
    failures: list[str] = []

    # Each request makes one kind of mistake (most often in the body, which the model itself must refuse) on
    # an otherwise correct request, so every layer is exercised: HTTP server, gateway, handler, model.
    kinds = ["body"] * 10 + ["framing"] * 3 + ["key", "route", "headers", "everything"]
    bad_keys = [None, b"", b"wrong", b"\xe9" * 8, "ключ".encode(), key + b"x", key[:-1], b"k" * 4000, key + b"," + key]
    bad_paths = [route + "/", route + "?a=1&b=%ff&b=2", route + "%00", "/nope", "/", route + "/../x", "/" + "p" * 8000]
    methods = ["GET", "PUT", "DELETE", "OPTIONS", "PATCH", "POSTX"]
    answered_by: Counter[str] = Counter()
    kinds_sent: Counter[str] = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(
        kind=st.sampled_from(kinds),
        body_and_type=payloads.bodies(live.records[0], valid_csv),
        accept=st.sampled_from(payloads.ACCEPTS),
        half_close=st.booleans(),
        data=st.data(),
    )
    def fuzz(
        kind: str,
        body_and_type: tuple[bytes, bytes | None],
        accept: bytes | None,
        half_close: bool,
        data: st.DataObject,
    ) -> None:
        if time.monotonic() > deadline:
            return
        everything = kind == "everything"
        method, path, framing = "POST", route, "content-length"
        api_key: bytes | None = key
        extra: list[tuple[bytes, bytes]] = []
        if kind == "framing" or everything:
            framing = data.draw(st.sampled_from(wire.FRAMINGS))
        if kind == "key" or everything:
            api_key = data.draw(st.sampled_from(bad_keys))
        if kind == "route" or everything:
            method = data.draw(st.sampled_from(["POST", *methods]))
            path = data.draw(st.sampled_from(bad_paths)) if method == "POST" else path
        if kind == "headers" or everything:
            extra = data.draw(
                st.lists(st.tuples(payloads.header_name(), payloads.header_value()), min_size=1, max_size=3)
            )
        if kind != "body":  # the body of a valid request
            body_and_type = (valid_csv, b"text/csv") if not everything else body_and_type
        body, content_type = body_and_type
        framing_headers = (b"content-length", b"transfer-encoding", b"host", b"expect")
        headers = [(name, value) for name, value in extra if name.lower() not in framing_headers]
        if api_key is not None:
            headers.append((b"x-api-key", api_key))
        if content_type is not None:
            headers.append((b"Content-Type", content_type))
        if accept is not None:
            headers.append((b"Accept", accept))
        request, expected = wire.frame(method, path, headers, body, framing)
        answers = wire.exchange(port, request, expected, half_close or framing in wire.CUT_SHORT)
        framings[framing] += 1
        kinds_sent[kind] += 1
        if not answers.statuses:
            statuses["no answer"] += 1
            failures.append(f"no answer ({answers.error}) to {framing} {method} {path} {request[:300]!r}")
        for status, answer in zip(answers.statuses, answers.bodies, strict=True):
            statuses[str(status)] += 1
            answered_by[_layer(status, answer)] += 1
            if status >= 500:
                failures.append(f"{status} to {framing} {method} {path} {request[:300]!r}: {answers.bodies}")

    began = time.monotonic()
    fuzz()
    elapsed = time.monotonic() - began
    after = _instances(live)
    pings = [http(f"{instance}/ping", method="GET").status for instance in after["urls"]]
    five_xx = server_errors_since(live, ENDPOINT, started)
    sent = sum(framings.values())
    record(
        "fuzz_rest",
        {
            "requests": sent,
            "seconds": round(elapsed, 1),
            "statuses": dict(sorted(statuses.items())),
            "mistakes": dict(sorted(kinds_sent.items())),
            "framings": dict(sorted(framings.items())),
            "answered_by": dict(sorted(answered_by.items())),
            "failures": failures[:20],
            "endpoint_5xx": five_xx,
            "instances_unchanged": after["pids"] == before["pids"],
        },
    )
    assert sent >= min(EXAMPLES, 200), f"only {sent} requests within {TIME_BUDGET_S} s"
    assert not failures, "\n".join(failures[:10])
    assert health(live.info)["pid"] == runtime_pid  # the runtime never died
    assert after["pids"] == before["pids"]  # no instance died (a dead one is replaced with a new pid)
    assert pings and all(status == 200 for status in pings)
    assert five_xx == 0
