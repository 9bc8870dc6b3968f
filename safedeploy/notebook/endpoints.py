"""Calling what the pipeline serves: the dev endpoint through SageMaker Runtime, production through its REST API."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safedeploy.data.raw_table import read_raw_table
from safedeploy.errors import SafeDeployError

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

    from safedeploy.pipeline import Pipeline


def customer_records(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The raw table's customers as the REST API takes them (typed values, keyed by column, no label).

    Raises:
        DataValidationError: the table is not in the seed's format (every problem named by line and column).
    """
    records = read_raw_table(path).records
    return [dict(record) for record in records[:limit]]


def sagemaker_runtime(pipeline: Pipeline) -> SageMakerRuntimeClient:
    """boto3's ``sagemaker-runtime`` client for the pipeline's target.

    Locally it points at the runtime's ``RuntimeUrl`` and signs with the state directory's keys (``make outputs``);
    on AWS it is the default credential chain in the spec's region.
    """
    if pipeline.target == "aws":
        from safedeploy.aws.clients import session_for

        return session_for(pipeline.spec).client("sagemaker-runtime")
    import boto3

    outputs = pipeline.outputs()
    client: SageMakerRuntimeClient = boto3.client(
        "sagemaker-runtime",
        endpoint_url=outputs["RuntimeUrl"],
        region_name=outputs["Region"],
        aws_access_key_id=outputs["AccessKeyId"],
        aws_secret_access_key=outputs["SecretAccessKey"],
    )
    return client


@dataclass(frozen=True)
class Answer:
    """One REST API call: when it was answered, by which endpoint and model version, and what it said."""

    seconds: float
    """Since the traffic started (wall clock)."""
    status: int
    version: str | None
    endpoint: str | None
    score: float | None
    message: str | None = None


class RestApi:
    """A client of the model's REST API (``ApiUrl`` with its ``x-api-key``), one kept-alive connection."""

    def __init__(self, url: str, api_key: str, timeout_s: float = 10.0) -> None:
        """Point the client at ``url``.

        Raises:
            SafeDeployError: ``url`` is not an http(s) URL with a host.
        """
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise SafeDeployError(f"the REST API's URL must be http(s)://host/path, not {url!r}")
        self.url = url
        self._parsed = parsed
        self._headers = {"x-api-key": api_key, "Content-Type": "application/json", "Accept": "application/json"}
        self._timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None

    @classmethod
    def production(cls, pipeline: Pipeline) -> RestApi:
        """The production REST API of the local runtime (``ApiUrl``, ``ApiKey`` from the pipeline's outputs).

        Raises:
            SafeDeployError: production serves nothing yet.
        """
        outputs = pipeline.outputs()
        if "ApiUrl" not in outputs or "ApiKey" not in outputs:
            raise SafeDeployError("production has no REST API yet: approve a version first")
        return cls(outputs["ApiUrl"], outputs["ApiKey"])

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._parsed.scheme == "https" else http.client.HTTPConnection
            self._connection = kind(self._parsed.hostname or "", self._parsed.port, timeout=self._timeout_s)
        return self._connection

    def close(self) -> None:
        """Close the connection (the next call opens another)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def predict(self, record: dict[str, Any], started: float | None = None) -> Answer:
        """POST one customer record; the answer names the version that served it (``X-Model-Version``)."""
        body = json.dumps(record).encode()
        path = self._parsed.path or "/"
        for attempt in (1, 2):  # a kept-alive connection the server closed meanwhile is opened again, once
            connection = self._connect()
            try:
                connection.request("POST", path, body, self._headers)
                response = connection.getresponse()
                payload = response.read()
                break
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt == 2:
                    raise
        seconds = time.monotonic() - (started if started is not None else time.monotonic())
        score: float | None = None
        message: str | None = None
        try:
            document = json.loads(payload)
        except ValueError:
            document = None
        if response.status == 200 and isinstance(document, dict):
            score = float(document["predictions"][0]["score"])
        elif isinstance(document, dict):
            message = str(document.get("message"))
        return Answer(
            seconds=seconds,
            status=response.status,
            version=response.getheader("X-Model-Version"),
            endpoint=response.getheader("X-SageMaker-Endpoint"),
            score=score,
            message=message,
        )
