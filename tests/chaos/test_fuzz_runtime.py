"""Adversarial requests to the runtime's APIs: the control plane (documents built from botocore's SageMaker
model, then broken), CodeDeploy's hook status, InvokeEndpoint and ``/_local/*``, some with odd framing.

Every request (a few hundred in ``make test``, 1,500 in ``make chaos``) must be answered below 500; the runtime
and the serving instances are the same processes afterwards, the served endpoint kept its weights and counted no
5XX, and a runtime started from the saved state comes up cleanly and serves. Figures: ``build/chaos/fuzz_runtime.json``.

Every request goes through :func:`send`: once the runtime API requires SigV4, signing is added there alone.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safedeploy import constants as C
from safedeploy.http.sigv4 import sign
from safedeploy.local import daemon
from safedeploy.runtime.paths import RuntimePaths
from safedeploy.runtime.state_file import load_state
from tests.chaos import payloads, wire
from tests.chaos.aws_documents import Raw, broken_document, operation_input, to_json
from tests.chaos.figures import record, size
from tests.chaos.test_fuzz_rest import server_errors_since
from tests.serving import Live, health, http, wait_in_service

pytestmark = pytest.mark.slow
EXAMPLES = size(300, 1_500)
TIME_BUDGET_S = size(60, 600)
ENDPOINT = "customerchurn-dev"
JSON_11 = b"application/x-amz-json-1.1"
OPERATIONS = [
    "CreateModel", "DescribeModel", "DeleteModel", "CreateEndpointConfig", "DescribeEndpointConfig",
    "DeleteEndpointConfig", "CreateEndpoint", "DescribeEndpoint", "UpdateEndpoint",
    "UpdateEndpointWeightsAndCapacities", "ListEndpoints", "DeleteEndpoint",
]  # fmt: skip
READ_ONLY = frozenset(("DescribeModel", "DescribeEndpointConfig", "DescribeEndpoint", "ListEndpoints"))
FUZZ_NAMES = ["fuzz-a", "fuzz-b", "fuzz-c", "no-such-thing"]
"""What mutating operations may name: never the served endpoint, its config or its model."""
Headers = list[tuple[bytes, bytes]]


def send(
    live: Live,
    method: str,
    path: str,
    headers: Headers,
    body: bytes,
    framing: str = "content-length",
    half_close: bool = False,
) -> wire.Answers:
    """Send one request to the runtime API, signed (SigV4, the runtime's credentials), framed as told.

    Every runtime-API request of this module goes through this function, the one place that signs. A repeated
    header name is sent once (the last value): the signature covers what is sent.
    """
    port = urlsplit(live.info.runtime_url).port
    assert port is not None
    text = {name.decode("latin-1"): value.decode("latin-1") for name, value in headers}
    url = f"{live.info.runtime_url}{path}"
    signed = sign(live.info.signing_credentials(), live.info.region, method, url, body, text)
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in signed.items()]
    request, expected = wire.frame(method, path, headers, body, framing)
    return wire.exchange(port, request, expected, half_close or framing in wire.CUT_SHORT)


def control(live: Live, operation: str, document: Any, target: str = "SageMaker.") -> wire.Answers:
    """A JSON 1.1 control-plane call (``document`` may hold :class:`Raw` text)."""
    headers = [(b"X-Amz-Target", f"{target}{operation}".encode()), (b"Content-Type", JSON_11)]
    return send(live, "POST", "/", headers, to_json(document))


def _answer(answers: wire.Answers) -> tuple[int, dict[str, Any]]:
    assert len(answers.statuses) == 1, answers
    return answers.statuses[0], json.loads(answers.bodies[0])


def _live_names(live: Live) -> dict[str, str]:
    _, endpoint = _answer(control(live, "DescribeEndpoint", {"EndpointName": ENDPOINT}))
    _, config = _answer(control(live, "DescribeEndpointConfig", {"EndpointConfigName": endpoint["EndpointConfigName"]}))
    return {
        "EndpointName": ENDPOINT,
        "EndpointConfigName": endpoint["EndpointConfigName"],
        "ModelName": config["ProductionVariants"][0]["ModelName"],
        "VariantName": C.DEFAULT_VARIANT,
    }


def _served(live: Live) -> list[tuple[str, float, int]]:
    _, endpoint = _answer(control(live, "DescribeEndpoint", {"EndpointName": ENDPOINT}))
    return [(v["VariantName"], v["CurrentWeight"], v["DesiredInstanceCount"]) for v in endpoint["ProductionVariants"]]


WEIGHT_ATTACKS = [
    Raw("1e309"), Raw("-1e309"), Raw("NaN"), Raw("Infinity"), Raw("1" * 5000), Raw("9" * 400), -1, -1e-300, "1",
    True, [], {}, 0,
]  # fmt: skip
COUNT_ATTACKS: list[Any] = [0, -1, C.MAX_LOCAL_INSTANCES + 1, 2**31, 1.5, "2", True, Raw("NaN"), Raw("1e309")]


def test_weights_and_capacities_the_model_refuses_change_nothing(live: Live) -> None:
    """UpdateEndpointWeightsAndCapacities on the served endpoint with every bad weight and count: 400, unchanged."""
    before = _served(live)
    state_file = RuntimePaths(live.state_dir).state
    for member, attacks in (("DesiredWeight", WEIGHT_ATTACKS), ("DesiredInstanceCount", COUNT_ATTACKS)):
        for value in attacks:
            item = {"VariantName": C.DEFAULT_VARIANT, member: value}
            status, error = _answer(
                control(
                    live,
                    "UpdateEndpointWeightsAndCapacities",
                    {"EndpointName": ENDPOINT, "DesiredWeightsAndCapacities": [item]},
                )
            )
            assert status == 400, (member, value, error)
            assert error["__type"] in ("ValidationException", "SerializationException") and error["message"]
    assert _served(live) == before
    loaded = load_state(state_file, keep_aside=False)
    assert loaded.recovery is None  # what was saved still loads
    # The same call with a weight SageMaker takes is applied (and changes nothing here: one variant, weight 1).
    item = {"VariantName": C.DEFAULT_VARIANT, "DesiredWeight": 1.0}
    status, _ = _answer(
        control(
            live,
            "UpdateEndpointWeightsAndCapacities",
            {"EndpointName": ENDPOINT, "DesiredWeightsAndCapacities": [item]},
        )
    )
    assert status == 200 and _served(live) == before


def _names(pool: list[str]) -> dict[str, st.SearchStrategy[str]]:
    return {kind: st.sampled_from(pool) for kind in ("ModelName", "EndpointName", "EndpointConfigName", "VariantName")}


TIMES = [
    "2026-01-01T00:00:00+00:00", "0001-01-01T00:00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59", "x", "", "2026-13-01", "2026-01-01T00:00:00+99:00",
]  # fmt: skip
DIMENSIONS = [
    "[]", '[{"Name":"a","Value":"b"}]', "[1]", '{"a":1}', "[" * 1000 + "]" * 1000, "1e309", "NaN", "x",
    '[{"Name":[],"Value":1}]', "1" * 5000,
]  # fmt: skip
METRIC_QUERY = st.fixed_dictionaries(
    {},
    optional={
        "EndpointName": st.sampled_from([ENDPOINT, "x", ""]),
        "VariantName": st.sampled_from([C.DEFAULT_VARIANT, "x"]),
        "MetricName": st.sampled_from([*C.INVOCATION_METRICS, "Bogus", ""]),
        "StartTime": st.sampled_from(TIMES),
        "EndTime": st.sampled_from(TIMES),
        "Period": st.sampled_from(["60", "0", "-1", "1" * 5000, "9" * 30, "x", "1.5", ""]),
        "Statistics": st.sampled_from(["Sum", "Bogus", "", ",", "Sum,Average,Minimum,Maximum,SampleCount"]),
        "ExtendedStatistics": st.sampled_from(["p99", "p100", "p100.5", "p-1", "pp", "p99.9999", "p1" + "0" * 400]),
        "Namespace": st.sampled_from([C.METRICS_NAMESPACE, "/aws/sagemaker/Endpoints/data-metric", "x"]),
        "Dimensions": st.sampled_from(DIMENSIONS),
    },
)


def _route_document() -> st.SearchStrategy[Any]:
    base = st.fixed_dictionaries(
        {"Path": st.text("abc/-_", max_size=10).map(lambda s: "/fuzz/" + s), "Handler": st.text(max_size=20)},
        optional={
            "Environment": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
            "ApiKeyRequired": st.booleans(),
            "Canary": st.fixed_dictionaries({"Environment": st.just({}), "Weight": st.floats(-1, 2)}),
        },
    )

    @st.composite
    def broken(draw: st.DrawFn) -> Any:
        document = draw(base)
        if draw(st.booleans()):
            document[draw(st.sampled_from(["Path", "Handler", "Environment", "ApiKeyRequired", "Canary"]))] = draw(
                st.sampled_from(
                    [Raw("1e309"), Raw("NaN"), Raw("[" * 1000 + "]" * 1000), Raw("1" * 5000), 1, None, [], "x"]
                )
            )
        return document

    return broken()


def test_the_runtime_apis_answer_every_adversarial_request_below_500(live: Live, tmp_path: Path) -> None:
    live_names = _live_names(live)
    runtime_pid = health(live.info)["pid"]
    before = health(live.info)["endpoints"][ENDPOINT]
    served_before = _served(live)
    started = datetime.now(UTC)
    deadline = time.monotonic() + TIME_BUDGET_S
    read_pool = [*FUZZ_NAMES, *{live_names[k] for k in ("EndpointName", "EndpointConfigName", "ModelName")}]
    documents = {
        operation: broken_document(
            operation_input("sagemaker", operation), _names(read_pool if operation in READ_ONLY else FUZZ_NAMES)
        )
        for operation in OPERATIONS
    }
    hook_document = broken_document(
        operation_input("codedeploy", "PutLifecycleEventHookExecutionStatus"),
        {
            "DeploymentId": st.sampled_from(["d-fuzz1", "d-fuzz2"]),
            "LifecycleEventHookExecutionId": st.sampled_from(["h1", "h2"]),
        },
    )
    valid_csv = live.csv_rows[0].encode()
    statuses: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    failures: list[str] = []
    routes: set[str] = set()

    def request_for(kind: str, draw: Callable[[st.SearchStrategy[Any]], Any]) -> tuple[str, str, Headers, bytes]:
        if kind == "control":
            operation = draw(st.sampled_from(OPERATIONS))
            headers = [(b"X-Amz-Target", f"SageMaker.{operation}".encode()), (b"Content-Type", JSON_11)]
            return "POST", "/", headers, to_json(draw(documents[operation]))
        if kind == "hook":
            target = b"CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus"
            return "POST", "/", [(b"X-Amz-Target", target)], to_json(draw(hook_document))
        if kind == "target":
            target = draw(
                st.sampled_from(
                    [
                        None,
                        b"",
                        b"SageMaker.Nope",
                        b"SageMaker.",
                        b"CodeDeploy_20141006.X",
                        b"\xe9",
                        b"sagemaker.DescribeEndpoint",
                    ]
                )
            )
            headers = [] if target is None else [(b"X-Amz-Target", target)]
            return "POST", "/", headers, draw(st.sampled_from([b"", b"{}", b"[]", b"\xff", b"[" * 1000]))
        if kind == "invoke":
            name = draw(st.sampled_from([ENDPOINT] * 6 + ["fuzz-a", "x" * 300, "%00", quote("é")]))
            body, content_type = draw(payloads.bodies(live.records[0], valid_csv))
            headers = [] if content_type is None else [(b"Content-Type", content_type)]
            for header in (
                b"Accept",
                b"X-Amzn-SageMaker-Custom-Attributes",
                b"X-Amzn-SageMaker-Target-Variant",
                b"X-Amzn-SageMaker-Inference-Id",
            ):
                if draw(st.booleans()):
                    value = draw(
                        st.one_of(payloads.header_value(), st.sampled_from([b"AllTraffic", b"text/csv", b"x" * 2000]))
                    )
                    headers.append((header, value))
            return "POST", f"/endpoints/{name}/invocations", headers, body
        if kind == "metrics":
            query = urlencode(draw(METRIC_QUERY)) if draw(st.integers(0, 9)) else "%zz&&=&a=%ff"
            return "GET", f"/_local/metrics?{query}", [], b""
        if kind == "routes":
            name = "fuzz-" + draw(st.text("abcxyz-", max_size=6))
            if draw(st.integers(0, 3)) == 0:
                return "DELETE", f"/_local/routes/{quote(name)}", [], b""
            routes.add(name)
            return (
                "PUT",
                f"/_local/routes/{quote(name)}",
                [(b"Content-Type", b"application/json")],
                to_json(draw(_route_document())),
            )
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
        path = draw(
            st.sampled_from(
                [
                    "/_local/health",
                    "/_local/codedeploy/d-fuzz1/h1",
                    "/_local/codedeploy/x",
                    "/_local/nope",
                    "/nope",
                    "/endpoints/x",
                    "/" + "p" * 5000,
                ]
            )
        )
        return method, path, [], draw(st.sampled_from([b"", b"{}", b"\xff" * 10]))

    kind_pool = ["control"] * 8 + ["invoke"] * 4 + ["metrics"] * 2 + ["routes"] * 2 + ["hook", "target", "other"]

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(kind_pool), odd_framing=st.integers(0, 9), half_close=st.booleans(), data=st.data())
    def fuzz(kind: str, odd_framing: int, half_close: bool, data: st.DataObject) -> None:
        if time.monotonic() > deadline:
            return
        method, path, headers, body = request_for(kind, data.draw)
        framing = data.draw(st.sampled_from(wire.FRAMINGS)) if odd_framing == 0 else "content-length"
        answers = send(live, method, path, headers, body, framing, half_close)
        kinds[kind] += 1
        if not answers.statuses and framing != "cut-head":  # aiohttp closes on a cut-short head without a word
            failures.append(f"no answer ({answers.error}) to {kind} {framing} {method} {path[:80]} {body[:200]!r}")
            statuses["no answer"] += 1
        for status, answer in zip(answers.statuses, answers.bodies, strict=True):
            statuses[str(status)] += 1
            with contextlib.suppress(ValueError, AttributeError):  # not every answer is a JSON object
                errors[json.loads(answer).get("__type", "-")] += 1
            if status >= 500:
                failures.append(
                    f"{status} to {kind} {framing} {method} {path[:80]} {headers} {body[:300]!r}: {answer[:300]!r}"
                )

    began = time.monotonic()
    fuzz()
    elapsed = time.monotonic() - began
    # Leave the live runtime as it was: the fuzz's own resources go.
    for name in FUZZ_NAMES:
        for operation, member in (
            ("DeleteEndpoint", "EndpointName"),
            ("DeleteEndpointConfig", "EndpointConfigName"),
            ("DeleteModel", "ModelName"),
        ):
            control(live, operation, {member: name})
    for name in routes:
        send(live, "DELETE", f"/_local/routes/{quote(name)}", [], b"")

    after = health(live.info)
    pings = [
        http(f"{url}/ping", method="GET").status
        for url in after["endpoints"][ENDPOINT]["InstanceUrls"][C.DEFAULT_VARIANT]
    ]
    five_xx = server_errors_since(live, ENDPOINT, started)
    sent = sum(kinds.values())
    record(
        "fuzz_runtime",
        {
            "requests": sent,
            "seconds": round(elapsed, 1),
            "statuses": dict(sorted(statuses.items())),
            "requests_by_kind": dict(sorted(kinds.items())),
            "error_types": dict(sorted(errors.items())),
            "failures": failures[:20],
            "endpoint_5xx": five_xx,
        },
    )
    assert sent >= min(EXAMPLES, 200), f"only {sent} requests within {TIME_BUDGET_S} s"
    assert not failures, "\n".join(failures[:10])
    assert after["pid"] == runtime_pid and "stateRecovery" not in after
    assert after["endpoints"][ENDPOINT]["Instances"] == before["Instances"]
    assert pings and all(status == 200 for status in pings)
    assert five_xx == 0
    assert _served(live) == served_before
    _restarts_cleanly_from_its_state(live, tmp_path)


def _restarts_cleanly_from_its_state(live: Live, tmp_path: Path) -> None:
    """A runtime started from a copy of the fuzzed runtime's state comes up without recovery and serves."""
    source, copy = RuntimePaths(live.state_dir), RuntimePaths(tmp_path / "restart")
    copy.root.mkdir(parents=True)
    shutil.copy2(source.state, copy.state)  # the state alone (no good copy to fall back on)
    # The artifact store the models come from (their digests are checked), without the captured data.
    shutil.copytree(source.store_root, copy.store_root, ignore=shutil.ignore_patterns("datacapture"))
    try:
        info = daemon.ensure_running(copy.state_dir, live.info.region, live.info.account_id)
        assert "stateRecovery" not in health(info)
        assert wait_in_service(info, ENDPOINT)["EndpointStatus"] == "InService"
        reply = daemon.runtime_client(info).invoke_endpoint(
            EndpointName=ENDPOINT, Body=live.csv_rows[0], ContentType="text/csv"
        )
        assert 0.0 <= float(reply["Body"].read()) <= 1.0
    finally:
        daemon.stop(copy.state_dir)
