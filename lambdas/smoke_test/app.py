"""DeployDev's smoke test on AWS: a CloudFormation custom resource the deploy-dev stack creates with each version.

As the local DeployDev stage does (``safedeploy/smoke.py``): held-out rows through ``InvokeEndpoint`` (the first
alone, then in batches of 10) must equal the model's offline predictions within the tolerance. The rows and the
offline predictions are the ones the training job put in the version's ``model.tar.gz``
(``pre-traffic-checks.json``). A difference, a refused request or a wrong number of scores makes the resource
FAILED: the stack rolls back to the version before, CodePipeline's DeployDev action fails, and the approval is
never asked. Deleting the resource always succeeds (there is nothing to undo).

The answer goes to CloudFormation's pre-signed ``ResponseURL`` exactly once, whatever happens (``try``/``finally``);
the HTTP ``put`` and the clients are injected (:func:`handle`); :data:`handler` builds boto3's on its first call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.custom_resource import Put, ResourceError, answer_once, http_put
from lambdas.hooks.common import ObjectStore
from lambdas.hooks.pre_traffic import read_checks
from safedeploy.store import S3Uri

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

BATCH = 10


class SmokeTestError(ResourceError):
    """The endpoint did not answer as the model does; the message says where."""


@dataclass(frozen=True)
class SmokeTestProperties:
    """The custom resource's properties (CloudFormation passes them as strings)."""

    endpoint: str
    checks_uri: str
    rows: int
    tolerance: float

    @classmethod
    def parse(cls, properties: Mapping[str, Any]) -> SmokeTestProperties:
        """Read the properties; raise ``ValueError`` naming a missing or invalid one."""
        endpoint, checks = properties.get("EndpointName"), properties.get("ChecksUri")
        if not isinstance(endpoint, str) or not endpoint or not isinstance(checks, str) or not checks:
            raise ValueError("the smoke test needs EndpointName and ChecksUri")
        rows, tolerance = int(properties.get("Rows", 50)), float(properties.get("Tolerance", 1e-6))
        if rows < 1 or not 0 < tolerance <= 0.01:
            raise ValueError(f"Rows={rows} must be >= 1 and Tolerance={tolerance:g} within (0, 0.01]")
        return cls(endpoint, checks, rows, tolerance)


@dataclass(frozen=True)
class SmokeTestClients:
    """What the smoke test talks to."""

    runtime: SageMakerRuntimeClient
    store: ObjectStore


def smoke_test(properties: SmokeTestProperties, clients: SmokeTestClients) -> str:
    """Compare the endpoint's scores with the offline predictions; return a summary or raise :class:`SmokeTestError`."""
    checks = read_checks(clients.store.get_bytes(S3Uri.parse(properties.checks_uri)), properties.checks_uri)
    rows = [str(row) for row in checks.get("rows", ())][: properties.rows]
    expected = [float(v) for v in checks.get("expected", ())][: properties.rows]
    if not rows or len(rows) != len(expected):
        raise SmokeTestError(f"the held-out rows at {properties.checks_uri} are empty or do not match their scores")
    batches = [slice(0, 1), *(slice(i, min(i + BATCH, len(rows))) for i in range(0, len(rows), BATCH))]
    worst, worst_row, differing = 0.0, 0, set[int]()
    for part in batches:
        try:
            reply = clients.runtime.invoke_endpoint(
                EndpointName=properties.endpoint, ContentType="text/csv", Accept="text/csv", Body="\n".join(rows[part])
            )
            lines = reply["Body"].read().decode("utf-8").split()
        except (ClientError, BotoCoreError) as exc:
            raise SmokeTestError(
                f"{properties.endpoint} refused held-out rows {part.start}-{part.stop}: {exc}"
            ) from None
        if len(lines) != part.stop - part.start:
            raise SmokeTestError(
                f"{properties.endpoint} answered {len(lines)} scores for {part.stop - part.start} rows"
            )
        for offset, line in enumerate(lines):
            try:
                difference = abs(float(line) - expected[part.start + offset])
            except ValueError:
                raise SmokeTestError(f"{properties.endpoint} answered a non-numeric score: {line[:40]!r}") from None
            if not difference <= properties.tolerance:  # NaN too
                differing.add(part.start + offset)
            if not difference <= worst:
                worst, worst_row = difference, part.start + offset
    if differing:
        raise SmokeTestError(
            f"{properties.endpoint} differs from the offline predictions on held-out row {worst_row} "
            f"(|diff| {worst:.3g} > {properties.tolerance:g}); {len(differing)} of {len(rows)} rows differ"
        )
    return f"{len(rows)} held-out rows equal offline predictions on {properties.endpoint} (max |diff| {worst:.1g})"


def handle(event: Mapping[str, Any], clients: Callable[[], SmokeTestClients], put: Put) -> dict[str, str]:
    """Run the smoke test for Create/Update (Delete: nothing), and answer CloudFormation exactly once."""
    return answer_once(event, lambda request: smoke_test(SmokeTestProperties.parse(request.properties), clients()), put)


def _default_clients() -> SmokeTestClients:
    import boto3

    from lambdas.hooks.aws import CLIENT_CONFIG, S3ObjectStore

    session = boto3.Session()
    return SmokeTestClients(
        runtime=session.client("sagemaker-runtime", config=CLIENT_CONFIG),
        store=S3ObjectStore(session.client("s3", config=CLIENT_CONFIG)),
    )


@dataclass
class SmokeTestHandler:
    """Lambda's entry point: boto3 clients built on the first request that needs them, then reused."""

    build: Callable[[], SmokeTestClients] = _default_clients
    put: Put = http_put
    _clients: SmokeTestClients | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _get(self) -> SmokeTestClients:
        with self._lock:
            if self._clients is None:
                self._clients = self.build()
            return self._clients

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, str]:
        """CloudFormation's request."""
        return handle(event, self._get, self.put)


handler = SmokeTestHandler()
"""``lambdas.smoke_test.app.handler``: nothing is created at import."""
