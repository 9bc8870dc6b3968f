"""The synthetic canary and the DeployDev smoke test on AWS (botocore Stubber; SSM, S3 and CloudWatch on moto),
and the post-traffic hook recording green as production (what stops the canary and names the next blue)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from moto import mock_aws

from lambdas.canary import app as canary
from lambdas.hooks import aws as hooks_aws
from lambdas.hooks import post_traffic
from lambdas.hooks.common import HookClients
from lambdas.smoke_test import app as smoke
from tests.test_hooks_aws import (
    BUCKET,
    CAPTURE,
    ENDPOINT,
    EVENT,
    _expect_verdict,
    _put_capture,
    _put_metrics,
    _session,
    _Stubs,
)

GREEN, BLUE, DEV = ENDPOINT, "customerchurn-prd-v1-0a0b0c0d", "customerchurn-dev"
PARAMETER = "/safedeploy/customerchurn-dev/production-endpoint"
CHECKS_URI = "s3://artifacts/customerchurn/checks.json"
ROWS = {"rows": ["1,2", "3,4", "5,6"], "expected": [0.25, 0.5, 0.75], "tolerance": 1e-6}
SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "id": "e-1", "time": "2026-12-03T17:00:00Z"}


class _Store:
    def __init__(self, documents: dict[str, bytes]) -> None:
        self.documents = documents

    def get_bytes(self, uri: Any) -> bytes:
        return self.documents[str(uri)]

    def list_objects(self, prefix: Any) -> list[Any]:
        return []


class _Parameters:
    def __init__(self, value: str) -> None:
        self.value = value

    def get_parameter(self, *, Name: str) -> dict[str, Any]:  # noqa: N803
        assert Name == PARAMETER
        return {"Parameter": {"Name": Name, "Value": self.value}}


def _body(text: str) -> StreamingBody:
    return StreamingBody(io.BytesIO(text.encode()), len(text.encode()))


def _expect_score(stub: Stubber, endpoint: str, row: str, score: str) -> None:
    stub.add_response(
        "invoke_endpoint",
        {"Body": _body(score), "ContentType": "text/csv"},
        {"EndpointName": endpoint, "ContentType": "text/csv", "Accept": "text/csv", "Body": row, "InferenceId": ANY},
    )


@pytest.fixture
def aws() -> Iterator[tuple[canary.CanaryClients, Stubber, Stubber]]:
    session = _session()
    runtime, cloudwatch = session.client("sagemaker-runtime"), session.client("cloudwatch")
    built = canary.CanaryClients(
        runtime=runtime,
        cloudwatch=cloudwatch,
        ssm=_Parameters(BLUE),
        store=_Store({CHECKS_URI: json.dumps(ROWS).encode()}),
    )
    with Stubber(runtime) as runtime_stub, Stubber(cloudwatch) as cloudwatch_stub:
        yield built, runtime_stub, cloudwatch_stub
        runtime_stub.assert_no_pending_responses()
        cloudwatch_stub.assert_no_pending_responses()


def _settings(blue: str | None = BLUE, rows: int = 3) -> canary.CanarySettings:
    return canary.CanarySettings(
        endpoint=GREEN,
        blue_endpoint=blue,
        checks_uri=CHECKS_URI,
        production_parameter=PARAMETER,
        namespace="SafeDeploy/Canary",
        rows_per_run=rows,
        spread_seconds=3.0,
    )


def _expect_shifts(stub: Stubber, values: list[float], counts: list[float]) -> None:
    stub.add_response(
        "put_metric_data",
        {},
        {
            "Namespace": "SafeDeploy/Canary",
            "MetricData": [
                {
                    "MetricName": "PredictionShift",
                    "Dimensions": [{"Name": "EndpointName", "Value": GREEN}],
                    "Values": values,
                    "Counts": counts,
                    "Unit": "None",
                }
            ],
        },
    )


def test_the_canary_scores_each_row_on_blue_and_green_and_publishes_one_shift_per_row(
    aws: tuple[canary.CanaryClients, Stubber, Stubber],
) -> None:
    clients, runtime, cloudwatch = aws
    rows = canary.HeldOutRows.load(clients.store, CHECKS_URI)
    for row, blue, green in (("1,2", "0.2", "0.5"), ("3,4", "0.4", "0.7"), ("5,6", "0.6", "0.9")):
        _expect_score(runtime, BLUE, row, blue)
        _expect_score(runtime, GREEN, row, green)
    _expect_shifts(cloudwatch, [0.3], [3.0])  # |green - blue| per row, each row one sample
    pauses: list[float] = []
    result = canary.run_canary(_settings(), clients, rows, sleep=pauses.append)
    assert (result.sent, result.answered, result.failed) == (3, 3, 0)
    assert result.as_dict()["mean_shift"] == pytest.approx(0.3)
    assert pauses == [1.0, 1.0]  # spread over the run, as the local feeder spreads its rate


def test_without_blue_the_reference_is_the_offline_scores_and_failures_are_counted(
    aws: tuple[canary.CanaryClients, Stubber, Stubber],
) -> None:
    clients, runtime, cloudwatch = aws
    rows = canary.HeldOutRows.load(clients.store, CHECKS_URI)
    _expect_score(runtime, GREEN, "3,4", "0.5")  # starts at row 1, cyclically
    runtime.add_client_error("invoke_endpoint", "ModelError", "boom", 424)
    _expect_score(runtime, GREEN, "1,2", "0.35")
    _expect_shifts(cloudwatch, [0.0, 0.1], [1.0, 1.0])
    result = canary.run_canary(_settings(blue=None), clients, rows, start=1, sleep=lambda s: None)
    assert (result.answered, result.failed) == (2, 1) and "offline scores" in result.reason


def test_the_canary_stops_once_green_is_production(aws: tuple[canary.CanaryClients, Stubber, Stubber]) -> None:
    clients, _, _ = aws
    production = canary.CanaryClients(clients.runtime, clients.cloudwatch, _Parameters(GREEN), clients.store)
    result = canary.run_canary(_settings(), production, canary.HeldOutRows.load(clients.store, CHECKS_URI))
    assert result.sent == 0 and "is production" in result.reason  # no call at all (the stubs expect none)


def test_the_handler_builds_nothing_at_import_and_refuses_other_events(
    aws: tuple[canary.CanaryClients, Stubber, Stubber],
) -> None:
    assert canary.handler._built is None
    clients, runtime, cloudwatch = aws
    environ = {
        "ENDPOINT_NAME": GREEN,
        "BLUE_ENDPOINT": "none",
        "CHECKS_URI": CHECKS_URI,
        "PRODUCTION_PARAMETER": PARAMETER,
        "CANARY_NAMESPACE": "SafeDeploy/Canary",
        "ROWS_PER_RUN": "2",
        "SPREAD_SECONDS": "0",
    }
    built: list[int] = []

    def build() -> canary.CanaryClients:
        built.append(1)
        return clients

    handler = canary.CanaryHandler(clients=build, environ=environ, sleep=lambda s: None)
    with pytest.raises(ValueError, match="scheduled event"):
        handler({"DeploymentId": "d-1"}, None)
    assert not built
    _expect_score(runtime, GREEN, "1,2", "0.25")
    _expect_score(runtime, GREEN, "3,4", "0.5")
    _expect_shifts(cloudwatch, [0.0], [2.0])
    _expect_score(runtime, GREEN, "5,6", "0.75")  # the next run goes on from the next row
    _expect_score(runtime, GREEN, "1,2", "0.25")
    _expect_shifts(cloudwatch, [0.0], [2.0])
    assert handler(SCHEDULED, None)["published"] == 2
    assert handler(SCHEDULED, None)["published"] == 2
    assert built == [1]


def _canary_environ() -> dict[str, str]:
    return {
        "ENDPOINT_NAME": GREEN,
        "BLUE_ENDPOINT": BLUE,
        "CHECKS_URI": CHECKS_URI,
        "PRODUCTION_PARAMETER": PARAMETER,
        "CANARY_NAMESPACE": "SafeDeploy/Canary",
        "ROWS_PER_RUN": "1",
        "SPREAD_SECONDS": "0",
    }


def test_the_warm_up_feeds_green_run_by_run_before_the_alias_moves(
    aws: tuple[canary.CanaryClients, Stubber, Stubber],
) -> None:
    clients, runtime, cloudwatch = aws
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    answers: list[dict[str, Any]] = []
    handler = canary.CanaryHandler(
        clients=lambda: clients,
        environ=_canary_environ(),
        sleep=sleep,
        clock=lambda: now[0],
        put=lambda url, body: answers.append(json.loads(body)),
    )
    for row, blue, green in (("1,2", "0.2", "0.2"), ("3,4", "0.4", "0.5")):
        _expect_score(runtime, BLUE, row, blue)
        _expect_score(runtime, GREEN, row, green)
    _expect_shifts(cloudwatch, [0.0], [1.0])
    _expect_shifts(cloudwatch, [0.1], [1.0])
    result = handler(
        {**_request(), "ResourceType": "Custom::CanaryWarmUp", "ResourceProperties": {"WarmUpRuns": "2"}}, None
    )
    assert result["Status"] == "SUCCESS" and sleeps == [60.0]  # one run a minute, as the schedule
    assert answers[0]["Data"]["Summary"] == "warmed up green: 2 runs, 2 of 2 synthetic rows answered"


def test_a_green_that_answers_nothing_fails_the_warm_up(aws: tuple[canary.CanaryClients, Stubber, Stubber]) -> None:
    clients, runtime, _ = aws
    answers: list[dict[str, Any]] = []
    handler = canary.CanaryHandler(
        clients=lambda: clients, environ=_canary_environ(), put=lambda url, body: answers.append(json.loads(body))
    )
    _expect_score(runtime, BLUE, "1,2", "0.2")
    runtime.add_client_error("invoke_endpoint", "ModelError", "boom", 424)
    result = handler({**_request(), "ResourceProperties": {"WarmUpRuns": "1"}}, None)
    assert result["Status"] == "FAILED" and "green answered none of 1 synthetic held-out rows" in result["Reason"]
    deleted = handler({**_request("Delete"), "PhysicalResourceId": "CanaryWarmUp-1"}, None)
    assert deleted["Status"] == "SUCCESS" and len(answers) == 2


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "ENDPOINT_NAME is not set"),
        ({"ENDPOINT_NAME": GREEN, "CHECKS_URI": CHECKS_URI, "PRODUCTION_PARAMETER": PARAMETER}, "CANARY_NAMESPACE"),
        ({"ROWS_PER_RUN": "0"}, "ROWS_PER_RUN=0"),
    ],
)
def test_canary_settings_name_what_is_missing(environ: dict[str, str], message: str) -> None:
    with pytest.raises(canary.CanaryError, match=message):
        canary.CanarySettings.from_environ(environ)


def test_canary_settings_read_no_blue_as_none() -> None:
    environ = {
        "ENDPOINT_NAME": GREEN,
        "BLUE_ENDPOINT": "none",
        "CHECKS_URI": CHECKS_URI,
        "PRODUCTION_PARAMETER": PARAMETER,
        "CANARY_NAMESPACE": "SafeDeploy/Canary",
    }
    assert canary.CanarySettings.from_environ(environ).blue_endpoint is None
    assert canary.CanarySettings.from_environ({**environ, "BLUE_ENDPOINT": BLUE}).blue_endpoint == BLUE


# --- the DeployDev smoke test (a CloudFormation custom resource) ------------------------------------------------


def _request(request_type: str = "Create", **properties: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-custom-resource-response.s3.amazonaws.com/x?sig",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/customerchurn-deploy-dev/1",
        "RequestId": "r-1",
        "LogicalResourceId": "SmokeTest",
        "ResourceType": "Custom::SmokeTest",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:customerchurn-dev-smoke-test",
            "EndpointName": DEV,
            "ChecksUri": CHECKS_URI,
            "Rows": "3",
            "Tolerance": "1e-06",
            **properties,
        },
    }


def _expect_batch(stub: Stubber, rows: str, scores: str) -> None:
    stub.add_response(
        "invoke_endpoint",
        {"Body": _body(scores), "ContentType": "text/csv"},
        {"EndpointName": DEV, "ContentType": "text/csv", "Accept": "text/csv", "Body": rows},
    )


@pytest.fixture
def dev() -> Iterator[tuple[smoke.SmokeTestClients, Stubber]]:
    runtime = _session().client("sagemaker-runtime")
    with Stubber(runtime) as stub:
        yield smoke.SmokeTestClients(runtime, _Store({CHECKS_URI: json.dumps(ROWS).encode()})), stub
        stub.assert_no_pending_responses()


def _run(event: dict[str, Any], clients: smoke.SmokeTestClients) -> tuple[dict[str, str], list[dict[str, Any]]]:
    answers: list[dict[str, Any]] = []

    def put(url: str, body: bytes) -> None:
        assert url == event["ResponseURL"]
        answers.append(json.loads(body))

    return smoke.handle(event, lambda: clients, put), answers


def test_the_smoke_test_succeeds_when_the_endpoint_scores_as_offline(
    dev: tuple[smoke.SmokeTestClients, Stubber],
) -> None:
    clients, stub = dev
    _expect_batch(stub, "1,2", "0.25")  # the first row alone, then the batches, as safedeploy/smoke.py
    _expect_batch(stub, "1,2\n3,4\n5,6", "0.25\n0.5000001\n0.75")
    result, answers = _run(_request(), clients)
    assert result["Status"] == "SUCCESS" and len(answers) == 1
    assert answers[0]["Status"] == "SUCCESS" and answers[0]["RequestId"] == "r-1"
    assert answers[0]["Data"]["Summary"].startswith("3 held-out rows equal offline predictions on customerchurn-dev")


def test_the_smoke_test_fails_the_stack_when_the_endpoint_disagrees(
    dev: tuple[smoke.SmokeTestClients, Stubber],
) -> None:
    clients, stub = dev
    _expect_batch(stub, "1,2", "0.25")
    _expect_batch(stub, "1,2\n3,4\n5,6", "0.25\n0.6\n0.75")
    result, answers = _run(_request("Update"), clients)
    assert result["Status"] == "FAILED" and [a["Status"] for a in answers] == ["FAILED"]
    assert "differs from the offline predictions on held-out row 1" in answers[0]["Reason"]
    assert "1 of 3 rows differ" in answers[0]["Reason"]


def test_a_refused_request_or_a_wrong_count_fails_too(dev: tuple[smoke.SmokeTestClients, Stubber]) -> None:
    clients, stub = dev
    stub.add_client_error("invoke_endpoint", "ValidationError", "Endpoint customerchurn-dev not found", 400)
    assert "refused held-out rows 0-1" in _run(_request(), clients)[1][0]["Reason"]
    _expect_batch(stub, "1,2", "0.25\n0.3")
    assert "answered 2 scores for 1 rows" in _run(_request(), clients)[1][0]["Reason"]


def test_delete_always_succeeds_and_bad_properties_still_get_one_answer(
    dev: tuple[smoke.SmokeTestClients, Stubber],
) -> None:
    clients, _ = dev
    result, answers = _run({**_request("Delete"), "PhysicalResourceId": "SmokeTest-smoke-test"}, clients)
    assert result["Status"] == "SUCCESS" and answers[0]["PhysicalResourceId"] == "SmokeTest-smoke-test"
    result, answers = _run(_request(Rows="0"), clients)
    assert result["Status"] == "FAILED" and len(answers) == 1 and "Rows=0" in answers[0]["Reason"]
    with pytest.raises(ValueError, match="not a CloudFormation custom-resource request"):
        smoke.handle({"RequestType": "Create"}, lambda: clients, lambda url, body: None)
    assert smoke.handler._clients is None  # nothing built at import


# --- the post-traffic hook records green as production -----------------------------------------------------------


@pytest.fixture
def hook_clients() -> Iterator[HookClients]:
    """The hooks' boto3 clients (:func:`build_hook_clients`), S3, CloudWatch and SSM on moto."""
    with mock_aws():
        built = hooks_aws.build_hook_clients(_session())
        built.store.s3.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
        yield built


def test_a_passing_post_traffic_hook_records_green_as_production(hook_clients: HookClients) -> None:
    clients = hook_clients
    ssm = boto3.client("ssm", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    ssm.put_parameter(Name=PARAMETER, Value="none", Type="String")  # the base infrastructure's
    started = datetime.now(UTC) - timedelta(minutes=5)
    _put_capture(clients, "capture.jsonl")
    _put_metrics(clients, 200, 0, datetime.now(UTC) - timedelta(minutes=1))
    environ = {
        "ENDPOINT_NAME": ENDPOINT,
        "CAPTURE_URI": str(CAPTURE),
        "DEPLOYMENT_STARTED": started.isoformat(),
        "MIN_REQUESTS": "10",
        "PRODUCTION_PARAMETER": PARAMETER,
    }
    handler = hooks_aws.LazyHookHandler(post_traffic.check_served, clients=lambda: clients, environ=environ)
    with _Stubs(clients) as stubs:
        _expect_verdict(stubs.codedeploy, "Succeeded")
        result = handler(EVENT, None)
    assert result["status"] == "Succeeded" and f"recorded as production in {PARAMETER}" in result["message"]
    assert ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"] == ENDPOINT


def test_a_failing_post_traffic_hook_leaves_production_as_it_was(hook_clients: HookClients) -> None:
    clients = hook_clients
    ssm = boto3.client("ssm", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    ssm.put_parameter(Name=PARAMETER, Value=BLUE, Type="String")
    environ = {
        "ENDPOINT_NAME": ENDPOINT,
        "CAPTURE_URI": str(CAPTURE),
        "DEPLOYMENT_STARTED": datetime.now(UTC).isoformat(),
        "PRODUCTION_PARAMETER": PARAMETER,
    }
    handler = hooks_aws.LazyHookHandler(post_traffic.check_served, clients=lambda: clients, environ=environ)
    with _Stubs(clients) as stubs:
        _expect_verdict(stubs.codedeploy, "Failed")
        assert handler(EVENT, None)["status"] == "Failed"
    assert ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"] == BLUE
