"""Shared helpers for serving tests: a trained model served by a real local runtime."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safedeploy.serving import daemon
from safedeploy.serving.daemon import RuntimeInfo
from safedeploy.serving.sigv4 import sign

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import ModelDataSourceTypeDef

LOAD_DEADLINE_S = 60.0
"""Every request loop in these tests stops after this long, whatever its count."""


@dataclass(frozen=True)
class Live:
    """A pipeline run with DeployDev: the runtime it started and what it deployed."""

    state_dir: Path
    info: RuntimeInfo
    outputs: dict[str, str]
    model_data_url: str
    model_data_sha256: str
    source_uri: str
    records: list[dict[str, Any]]
    csv_rows: list[str]


@dataclass(frozen=True)
class Reply:
    """An HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(url: str, body: bytes | None = None, headers: dict[str, str] | None = None, method: str = "POST") -> Reply:
    """One request to 127.0.0.1; HTTP errors are returned, not raised."""
    assert url.startswith("http://127.0.0.1:"), url
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return Reply(reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())


def model_data_source(live: Live) -> ModelDataSourceTypeDef:
    """``ModelDataSource`` of the live model: its archive and that archive's sha256 as ETag (the runtime requires it)."""
    return {
        "S3DataSource": {
            "S3Uri": live.model_data_url,
            "S3DataType": "S3Object",
            "CompressionType": "Gzip",
            "ETag": live.model_data_sha256,
        }
    }


def signed(
    info: RuntimeInfo, path: str, body: bytes | None = None, headers: dict[str, str] | None = None, method: str = "POST"
) -> Reply:
    """One request to the runtime API at ``path``, signed (SigV4) with the runtime's credentials."""
    url = f"{info.runtime_url}{path}"
    return http(url, body, sign(info.signing_credentials(), info.region, method, url, body, headers), method)


def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_in_service(info: RuntimeInfo, endpoint: str, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until the endpoint leaves Creating/Updating; return its description."""
    sagemaker = daemon.sagemaker_client(info)

    def settled() -> dict[str, Any] | None:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
        return None if described["EndpointStatus"] in ("Creating", "Updating") else dict(described)

    return wait_for(settled, timeout, f"{endpoint} to settle")  # type: ignore[no-any-return]


def health(info: RuntimeInfo) -> dict[str, Any]:
    """The runtime's health document."""
    return signed(info, "/_local/health", method="GET").json()  # type: ignore[no-any-return]
