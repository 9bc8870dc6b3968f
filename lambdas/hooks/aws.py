"""The hooks' AWS wiring: boto3 clients, an S3 object store and CloudWatch variant metrics, built on first call.

Each hook module's ``handler`` is a :class:`LazyHookHandler`: importing the module creates nothing; the first
invocation builds :class:`~lambdas.hooks.common.HookClients` from a ``boto3.Session`` (the function's role and
region) and the handler from the function's environment, and later invocations of the same container reuse them.

* :class:`S3ObjectStore` reads the hook's inputs (the known rows, checked against their recorded sha256 when the
  pipeline recorded one) and lists data capture (SageMaker writes it, with no such metadata).
* :class:`CloudWatchVariantMetrics` sums ``Invocations`` and ``Invocation5XXErrors`` of an endpoint variant
  (``AWS/SageMaker``, dimensions ``EndpointName`` and ``VariantName``) with one ``GetMetricData`` call per page.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from botocore.config import Config

from lambdas.hooks.common import Check, Handler, HookClients, ParameterWriter, hook_handler
from safedeploy.aws.s3_store import S3Object, list_s3_objects, read_object
from safedeploy.store import S3Uri

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import DimensionTypeDef, MetricDataQueryTypeDef, MetricStatTypeDef
    from mypy_boto3_s3 import S3Client

NAMESPACE = "AWS/SageMaker"
INVOCATIONS = "Invocations"
ERRORS_5XX = "Invocation5XXErrors"
MAX_DATAPOINTS = 1440
"""Datapoints per metric a query asks for at most: the period grows with the window (always a multiple of 60 s)."""
CLIENT_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30)


class S3ObjectStore:
    """The hooks' :class:`~lambdas.hooks.common.ObjectStore` on S3."""

    def __init__(self, s3: S3Client) -> None:
        self.s3 = s3

    def get_bytes(self, uri: S3Uri) -> bytes:
        """One object's content; checked against its recorded sha256 if the pipeline recorded one."""
        return read_object(self.s3, uri, require_checksum=False)

    def list_objects(self, prefix: S3Uri) -> list[S3Object]:
        """Every object under ``prefix`` with its ``uri`` and ``last_modified``."""
        return list_s3_objects(self.s3, prefix)


def metric_period(start: datetime, end: datetime) -> int:
    """The period (seconds, a multiple of 60) that keeps ``[start, end)`` within :data:`MAX_DATAPOINTS`."""
    seconds = max((end - start).total_seconds(), 60.0)
    return 60 * max(1, math.ceil(seconds / 60 / MAX_DATAPOINTS))


class CloudWatchVariantMetrics:
    """The hooks' :class:`~lambdas.hooks.common.VariantMetrics` from CloudWatch."""

    def __init__(self, cloudwatch: CloudWatchClient) -> None:
        self.cloudwatch = cloudwatch

    @staticmethod
    def queries(endpoint: str, variant: str, period: int) -> list[MetricDataQueryTypeDef]:
        """The two Sum queries (``invocations``, ``errors``) for one variant."""
        dimensions: list[DimensionTypeDef] = [
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": variant},
        ]
        queries: list[MetricDataQueryTypeDef] = []
        for query_id, metric in (("invocations", INVOCATIONS), ("errors", ERRORS_5XX)):
            stat: MetricStatTypeDef = {
                "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
                "Period": period,
                "Stat": "Sum",
            }
            queries.append({"Id": query_id, "MetricStat": stat, "ReturnData": True})
        return queries

    def totals(self, endpoint: str, variant: str, start: datetime, end: datetime) -> tuple[float, float]:
        """(Invocations, Invocation5XXErrors) of the variant in ``[start, end)``; no datapoints count as zero."""
        sums = {"invocations": 0.0, "errors": 0.0}
        request: dict[str, Any] = {
            "MetricDataQueries": self.queries(endpoint, variant, metric_period(start, end)),
            "StartTime": start,
            "EndTime": end,
        }
        while True:
            page = self.cloudwatch.get_metric_data(**request)
            for result in page.get("MetricDataResults", []):
                if result.get("Id") in sums:
                    sums[result["Id"]] += sum(result.get("Values", []))
            token = page.get("NextToken")
            if not token:
                return sums["invocations"], sums["errors"]
            request["NextToken"] = token


def build_hook_clients(session: boto3.Session) -> HookClients:
    """The hooks' clients from one session: boto3's CodeDeploy, SageMaker and Runtime, S3, CloudWatch and SSM."""
    return HookClients(
        codedeploy=session.client("codedeploy", config=CLIENT_CONFIG),
        sagemaker=session.client("sagemaker", config=CLIENT_CONFIG),
        runtime=session.client("sagemaker-runtime", config=CLIENT_CONFIG),
        store=S3ObjectStore(session.client("s3", config=CLIENT_CONFIG)),
        metrics=CloudWatchVariantMetrics(session.client("cloudwatch", config=CLIENT_CONFIG)),
        # boto3's typed PutParameter takes the protocol's keywords (and more): the same call
        parameters=cast("ParameterWriter", session.client("ssm", config=CLIENT_CONFIG)),
    )


def _default_clients() -> HookClients:
    import boto3

    return build_hook_clients(boto3.Session())


class LazyHookHandler:
    """A hook's Lambda entry point: builds its clients and handler on the first invocation, then reuses them."""

    def __init__(
        self,
        check: Check,
        clients: Callable[[], HookClients] = _default_clients,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        """Run ``check`` with the clients ``clients()`` builds and the configuration in ``environ``, both read late."""
        self.check = check
        self.build_clients = clients
        self.environ = environ
        self._handler: Handler | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        """Whether the clients exist yet."""
        return self._handler is not None

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, str]:
        """Lambda calls this with CodeDeploy's event."""
        if self._handler is None:
            with self._lock:
                if self._handler is None:
                    self._handler = hook_handler(self.check, self.environ, self.build_clients())
        return self._handler(event, context)
