"""The hooks' AWS wiring: S3 (moto), CloudWatch (moto and Stubber), InvokeEndpoint and the CodeDeploy verdict
(Stubber: moto has no PutLifecycleEventHookExecutionStatus), and the lazily built module-level ``handler``."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto import mock_aws

from lambdas.hooks import aws as hooks_aws
from lambdas.hooks import post_traffic, pre_traffic
from lambdas.hooks.common import HookClients
from safedeploy.aws.s3_store import S3ArtifactStore
from safedeploy.errors import ArtifactError
from safedeploy.store import S3Uri

EVENT = {"DeploymentId": "d-ABC123", "LifecycleEventHookExecutionId": "hook-exec-1"}
ENDPOINT = "customerchurn-prd-v2-0f1e2d3c"
BUCKET = "customerchurn-dev-artifacts-123456789012-us-east-1"
CHECKS = S3Uri(BUCKET, "customerchurn/deployments/d-ABC123/checks.json")
CAPTURE = S3Uri(BUCKET, "customerchurn/datacapture")


def _session() -> boto3.Session:
    return boto3.Session(region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def clients() -> Iterator[HookClients]:
    """Real boto3 clients from :func:`build_hook_clients`, S3 and CloudWatch on moto."""
    with mock_aws():
        built = hooks_aws.build_hook_clients(_session())
        s3 = built.store.s3  # type: ignore[attr-defined]
        s3.create_bucket(Bucket=BUCKET)
        yield built


def _expect_verdict(stub: Stubber, status: str) -> None:
    stub.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": "hook-exec-1"},
        {"deploymentId": "d-ABC123", "lifecycleEventHookExecutionId": "hook-exec-1", "status": status},
    )


def _expect_describe(stub: Stubber, status: str = "InService") -> None:
    now = datetime.now(UTC)
    stub.add_response(
        "describe_endpoint",
        {
            "EndpointName": ENDPOINT,
            "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}",
            "EndpointConfigName": ENDPOINT,
            "EndpointStatus": status,
            "CreationTime": now,
            "LastModifiedTime": now,
            "DataCaptureConfig": {
                "EnableCapture": True,
                "CaptureStatus": "Started",
                "CurrentSamplingPercentage": 100,
                "DestinationS3Uri": str(CAPTURE),
                "KmsKeyId": "alias/customerchurn-dev",
            },
        },
        {"EndpointName": ENDPOINT},
    )


class _KnownRowsId(str):
    """Equal to any inference id the pre-traffic hook's known-row check sends."""

    def __eq__(self, other: object) -> bool:
        prefix = pre_traffic.KNOWN_ROWS_PREFIX
        return isinstance(other, str) and other.startswith(prefix) and len(other) > len(prefix)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = str.__hash__


ANY_KNOWN_ROWS_ID = _KnownRowsId("known-rows-*")


def _expect_invoke(stub: Stubber, scores: str) -> None:
    body = scores.encode()
    stub.add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "text/csv"},
        {
            "EndpointName": ENDPOINT,
            "ContentType": "text/csv",
            "Accept": "text/csv",
            "Body": "1,2\n3,4",
            # the known rows carry their own inference-id prefix: monitoring keeps them out of its windows
            "InferenceId": ANY_KNOWN_ROWS_ID,
        },
    )


def _pre_env() -> dict[str, str]:
    return {"ENDPOINT_NAME": ENDPOINT, "CHECKS_URI": str(CHECKS), "LATENCY_BUDGET_MS": "5000"}


def _write_checks(clients: HookClients) -> None:
    store = S3ArtifactStore(clients.store.s3)  # type: ignore[attr-defined]
    store.put_bytes(CHECKS, json.dumps({"rows": ["1,2", "3,4"], "expected": [0.25, 0.75]}).encode(), "application/json")


class _Stubs:
    def __init__(self, clients: HookClients) -> None:
        self.codedeploy = Stubber(clients.codedeploy)
        self.sagemaker = Stubber(clients.sagemaker)
        self.runtime = Stubber(clients.runtime)
        self.all = (self.codedeploy, self.sagemaker, self.runtime)

    def __enter__(self) -> _Stubs:
        for stub in self.all:
            stub.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        for stub in self.all:
            stub.deactivate()
        if exc[0] is None:
            for stub in self.all:
                stub.assert_no_pending_responses()  # every expected call, the verdict included, happened


# --- the module-level handlers --------------------------------------------------------------------------------


def test_importing_a_hook_builds_no_client() -> None:
    for module, check in ((pre_traffic, pre_traffic.check_green), (post_traffic, post_traffic.check_served)):
        assert isinstance(module.handler, hooks_aws.LazyHookHandler)
        assert module.handler.check is check and not module.handler.built


def test_the_default_clients_are_boto3_clients_in_the_functions_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    built = hooks_aws._default_clients()
    assert isinstance(built.store, hooks_aws.S3ObjectStore)
    assert isinstance(built.metrics, hooks_aws.CloudWatchVariantMetrics)
    assert {c.meta.region_name for c in (built.codedeploy, built.sagemaker, built.runtime)} == {"eu-west-1"}
    assert built.codedeploy.meta.service_model.service_name == "codedeploy"
    assert built.runtime.meta.service_model.service_name == "sagemaker-runtime"


def test_pre_traffic_handler_builds_its_clients_once_and_reports_succeeded(
    clients: HookClients, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_checks(clients)
    builds: list[int] = []

    def build() -> HookClients:
        builds.append(1)
        return clients

    handler = pre_traffic.handler
    monkeypatch.setattr(handler, "build_clients", build)
    monkeypatch.setattr(handler, "environ", _pre_env())
    monkeypatch.setattr(handler, "_handler", None)
    with _Stubs(clients) as stubs:
        for _ in range(2):
            _expect_describe(stubs.sagemaker)
            _expect_invoke(stubs.runtime, "0.25\n0.75\n")
            _expect_verdict(stubs.codedeploy, "Succeeded")
        first = handler(EVENT, None)
        second = handler(EVENT, None)
    assert first["status"] == second["status"] == "Succeeded"
    assert "2 known rows correct" in first["message"]
    assert builds == [1]  # built on the first invocation, reused by the second


@pytest.mark.parametrize(
    ("tamper", "scores", "message"),
    [
        (False, "0.25\n0.70\n", "scores known rows differently"),
        (True, None, "checksum mismatch for s3://"),  # the known rows were changed after the pipeline wrote them
    ],
)
def test_pre_traffic_handler_reports_failed(
    clients: HookClients, monkeypatch: pytest.MonkeyPatch, tamper: bool, scores: str | None, message: str
) -> None:
    _write_checks(clients)
    if tamper:
        s3 = clients.store.s3  # type: ignore[attr-defined]
        head = s3.head_object(Bucket=CHECKS.bucket, Key=CHECKS.key)
        s3.put_object(
            Bucket=CHECKS.bucket, Key=CHECKS.key, Body=b'{"rows": ["9,9"], "expected": [1]}', Metadata=head["Metadata"]
        )
    handler = hooks_aws.LazyHookHandler(pre_traffic.check_green, clients=lambda: clients, environ=_pre_env())
    with _Stubs(clients) as stubs:
        _expect_describe(stubs.sagemaker)
        if scores is not None:
            _expect_invoke(stubs.runtime, scores)
        _expect_verdict(stubs.codedeploy, "Failed")
        result = handler(EVENT, None)
    assert result["status"] == "Failed" and message in result["message"]


def _put_capture(clients: HookClients, name: str) -> None:
    s3 = clients.store.s3  # type: ignore[attr-defined]
    key = CAPTURE.join(ENDPOINT, "AllTraffic", "2026/12/01/10", name).key
    s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"captureData": {}}\n')  # as SageMaker writes it: no sha256


def _put_metrics(clients: HookClients, invocations: float, errors: float, at: datetime) -> None:
    cloudwatch = clients.metrics.cloudwatch  # type: ignore[attr-defined]
    dimensions = [{"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "VariantName", "Value": "AllTraffic"}]
    cloudwatch.put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {"MetricName": "Invocations", "Dimensions": dimensions, "Value": invocations, "Timestamp": at},
            {"MetricName": "Invocation5XXErrors", "Dimensions": dimensions, "Value": errors, "Timestamp": at},
        ],
    )


@pytest.mark.parametrize(
    ("invocations", "errors", "status", "message"),
    [
        (200, 2, "Succeeded", "1 capture objects since the deployment; 200 requests, 1.00% 5XX"),
        (100, 10, "Failed", "answered 10.0% of 100 requests with 5XX (limit 2.0%)"),
    ],
)
def test_post_traffic_handler_reads_capture_from_s3_and_metrics_from_cloudwatch(
    clients: HookClients, invocations: float, errors: float, status: str, message: str
) -> None:
    started = datetime.now(UTC) - timedelta(minutes=5)
    _put_capture(clients, "capture.jsonl")
    _put_metrics(clients, invocations, errors, datetime.now(UTC) - timedelta(minutes=1))
    environ = {
        "ENDPOINT_NAME": ENDPOINT,
        "CAPTURE_URI": str(CAPTURE),
        "DEPLOYMENT_STARTED": started.isoformat(),
        "MIN_REQUESTS": "10",
    }
    handler = hooks_aws.LazyHookHandler(post_traffic.check_served, clients=lambda: clients, environ=environ)
    with _Stubs(clients) as stubs:
        _expect_verdict(stubs.codedeploy, status)
        result = handler(EVENT, None)
    assert result["status"] == status and message in result["message"]


def test_post_traffic_handler_fails_without_capture_since_the_deployment(clients: HookClients) -> None:
    _put_capture(clients, "old.jsonl")
    environ = {
        "ENDPOINT_NAME": ENDPOINT,
        "CAPTURE_URI": str(CAPTURE),
        "DEPLOYMENT_STARTED": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
    }
    handler = hooks_aws.LazyHookHandler(post_traffic.check_served, clients=lambda: clients, environ=environ)
    with _Stubs(clients) as stubs:
        _expect_verdict(stubs.codedeploy, "Failed")
        result = handler(EVENT, None)
    assert result["status"] == "Failed" and f"no data capture for {ENDPOINT}/AllTraffic since" in result["message"]


# --- the object store and the metrics -------------------------------------------------------------------------


def test_the_object_store_checks_a_recorded_sha256_and_lists_any_writer(clients: HookClients) -> None:
    store = clients.store
    _write_checks(clients)
    assert json.loads(store.get_bytes(CHECKS))["expected"] == [0.25, 0.75]
    _put_capture(clients, "a.jsonl")
    _put_capture(clients, "b.jsonl")
    listed = store.list_objects(CAPTURE.join(ENDPOINT, "AllTraffic"))
    assert [o.uri.rsplit("/", 1)[1] for o in listed] == ["a.jsonl", "b.jsonl"]
    assert all(o.last_modified.tzinfo is not None and o.size > 0 for o in listed)
    assert store.get_bytes(S3Uri.parse(listed[0].uri)) == b'{"captureData": {}}\n'  # no sha256 recorded: as is
    with pytest.raises(ArtifactError, match="no such artifact"):
        store.get_bytes(S3Uri(BUCKET, "missing.json"))


def test_metric_period_keeps_the_window_within_the_datapoint_budget() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    assert hooks_aws.metric_period(start, start + timedelta(minutes=10)) == 60
    assert hooks_aws.metric_period(start, start + timedelta(hours=24)) == 60
    assert hooks_aws.metric_period(start, start + timedelta(hours=25)) == 120
    assert hooks_aws.metric_period(start, start) == 60


def test_metrics_query_sums_of_both_metrics_and_follow_pages() -> None:
    cloudwatch = _session().client("cloudwatch")
    metrics = hooks_aws.CloudWatchVariantMetrics(cloudwatch)
    start, end = datetime(2026, 12, 1, 10, 0, tzinfo=UTC), datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    dimensions = [{"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "VariantName", "Value": "blue"}]

    def query(query_id: str, metric: str) -> dict[str, Any]:
        return {
            "Id": query_id,
            "MetricStat": {
                "Metric": {"Namespace": "AWS/SageMaker", "MetricName": metric, "Dimensions": dimensions},
                "Period": 60,
                "Stat": "Sum",
            },
            "ReturnData": True,
        }

    request = {
        "MetricDataQueries": [query("invocations", "Invocations"), query("errors", "Invocation5XXErrors")],
        "StartTime": start,
        "EndTime": end,
    }
    with Stubber(cloudwatch) as stub:
        stub.add_response(
            "get_metric_data",
            {
                "MetricDataResults": [
                    {"Id": "invocations", "Values": [10.0, 20.0], "StatusCode": "PartialData"},
                    {"Id": "errors", "Values": [1.0], "StatusCode": "PartialData"},
                ],
                "NextToken": "more",
            },
            request,
        )
        stub.add_response(
            "get_metric_data",
            {"MetricDataResults": [{"Id": "invocations", "Values": [5.0]}, {"Id": "errors", "Values": []}]},
            {**request, "NextToken": "more"},
        )
        assert metrics.totals(ENDPOINT, "blue", start, end) == (35.0, 1.0)
        stub.assert_no_pending_responses()


def test_metrics_without_datapoints_are_zero(clients: HookClients) -> None:
    now = datetime.now(UTC)
    assert clients.metrics.totals(ENDPOINT, "AllTraffic", now - timedelta(minutes=5), now) == (0.0, 0.0)
