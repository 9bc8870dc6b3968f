"""Generated bad requests (over 1,000) against the runtime API and the REST API: never a 5xx, never a dead worker."""

from __future__ import annotations

import http.client as httpclient
import json
import math
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safedeploy.data.raw_table import HEADER
from safedeploy.serving.daemon import RuntimeInfo
from safedeploy.serving.sigv4 import sign
from tests.serving import Live, health, signed

EXAMPLES = 600
CONTENT_TYPES = [
    "text/csv",
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "",
    "application/x-npy",
    "text/csv; header=present",
]
ACCEPTS = ["", "*/*", "text/csv", "application/json", "image/png", "application/json, text/csv"]
FIELDS = [c for c in HEADER if c != "Churn?"]

cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["", " ", "x", "nan", "-inf", "1e999", "0x1F", '"', "1,2", "\u00e9"]),
)
csv_bodies = st.lists(st.lists(cells, min_size=0, max_size=80).map(",".join), min_size=0, max_size=4).map(
    lambda rows: "\n".join(rows).encode()
)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)
records = st.dictionaries(st.sampled_from([*FIELDS, "Referrer", "state", ""]), json_values, max_size=22)
json_bodies = st.one_of(json_values, records, st.lists(records, max_size=3)).map(
    lambda doc: json.dumps(doc, allow_nan=True).encode()
)
bodies = st.one_of(st.binary(max_size=400), st.text(max_size=400).map(str.encode), csv_bodies, json_bodies)


class Client:
    """One keep-alive connection to 127.0.0.1 (requests signed for the runtime API when ``signer`` is given)."""

    def __init__(self, url: str, signer: RuntimeInfo | None = None) -> None:
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1"
        self.url = url
        self.path = parts.path
        self.signer = signer
        self.connection = httpclient.HTTPConnection("127.0.0.1", parts.port, timeout=30)

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.signer is not None:
            headers = sign(self.signer.signing_credentials(), self.signer.region, "POST", self.url, body, headers)
        self.connection.request("POST", self.path, body=body, headers=headers)
        reply = self.connection.getresponse()
        return reply.status, reply.read()


def _instances(live: Live) -> list[int]:
    return sorted(health(live.info)["endpoints"]["customerchurn-dev"]["Instances"]["AllTraffic"])


def _server_errors_since(live: Live, start: datetime) -> float:
    end = (datetime.now(UTC) + timedelta(seconds=2)).isoformat().replace("+", "%2B")
    query = f"EndpointName=customerchurn-dev&MetricName=Invocation5XXErrors&Period=86400&StartTime={start.isoformat().replace('+', '%2B')}&EndTime={end}"
    points = signed(live.info, f"/_local/metrics?{query}", method="GET").json()["Datapoints"]
    return float(sum(p["Sum"] for p in points))


def _fuzz(live: Live, url: str, extra_headers: dict[str, str], signer: RuntimeInfo | None = None) -> list[int]:
    statuses: list[int] = []
    client = Client(url, signer)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies, content_type=st.sampled_from(CONTENT_TYPES), accept=st.sampled_from(ACCEPTS))
    def send(body: bytes, content_type: str, accept: str) -> None:
        headers = dict(extra_headers)
        if content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        status, payload = client.post(body, headers)
        statuses.append(status)
        assert status < 500, (status, payload, body, headers)
        if status >= 400:
            message = json.loads(payload)["message"]
            assert isinstance(message, str) and message.strip()
        else:
            assert status == 200
            assert math.isfinite(float(payload.split()[0])) if payload[:1].isdigit() else json.loads(payload)

    send()
    return statuses


def test_runtime_api_answers_generated_garbage_with_client_errors(live: Live) -> None:
    before, start = _instances(live), datetime.now(UTC)
    statuses = _fuzz(live, f"{live.info.runtime_url}/endpoints/customerchurn-dev/invocations", {}, live.info)
    assert len(statuses) >= EXAMPLES
    assert sum(400 <= s < 500 for s in statuses) >= EXAMPLES * 0.9  # the generator rarely builds a valid request
    assert _instances(live) == before  # no worker died
    assert _server_errors_since(live, start) == 0


def test_rest_api_answers_generated_garbage_with_client_errors(live: Live) -> None:
    before, start = _instances(live), datetime.now(UTC)
    statuses = _fuzz(live, live.outputs["DevApiUrl"], {"x-api-key": live.outputs["ApiKey"]})
    assert len(statuses) >= EXAMPLES
    assert sum(400 <= s < 500 for s in statuses) >= EXAMPLES * 0.9
    assert _instances(live) == before
    assert _server_errors_since(live, start) == 0
