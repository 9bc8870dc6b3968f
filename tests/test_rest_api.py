"""The REST API: the local API gateway, real proxy events, the Lambda handler and its answers."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from lambdas.api import app
from safedeploy.lambda_invoke import LambdaContext
from tests.serving import Live, http

CONTEXT: Any = LambdaContext("api")


def _post(live: Live, body: bytes, headers: dict[str, str] | None = None, key: bool = True) -> Any:
    sent = {"x-api-key": live.outputs["ApiKey"]} if key else {}
    return http(live.outputs["DevApiUrl"], body, sent | (headers or {}))


def test_outputs_name_everything_a_client_needs(live: Live) -> None:
    outputs = live.outputs
    assert outputs["DevApiUrl"] == f"{live.info.gateway_url}/customerchurn/dev/api"
    assert "ApiUrl" not in outputs  # production is off in this fixture: no prod API yet
    assert outputs["RuntimeUrl"] == live.info.runtime_url
    assert outputs["DevEndpointName"] == "customerchurn-dev"
    assert outputs["DevModelVersion"] == "1"
    assert len(outputs["ApiKey"]) >= 30


def test_a_raw_record_gets_a_probability_and_says_who_served_it(live: Live) -> None:
    reply = _post(live, json.dumps(live.records[0]).encode(), {"Content-Type": "application/json"})
    assert reply.status == 200, reply.body
    (prediction,) = reply.json()["predictions"]
    assert 0.0 < prediction["score"] < 1.0
    assert reply.headers["x-sagemaker-endpoint"] == "customerchurn-dev"
    assert reply.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
    assert reply.headers["x-model-version"] == "1"


def test_csv_in_csv_out_with_lowercase_headers(live: Live) -> None:
    body = "\n".join(live.csv_rows[:3]).encode()
    reply = _post(live, body, {"content-type": "text/csv", "accept": "text/csv"})
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/csv")
    assert len(reply.body.decode().split()) == 3


MISTAKE_IDS = [
    "xml", "form", "empty", "width", "json", "unknown-field", "missing-field", "nan", "non-numeric", "accept",
    "non-ascii-type", "long-accept", "5000-digits", "nested-1000", "1e309",
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"{}", {"Content-Type": "application/xml"}, 415, "unsupported Content-Type 'application/xml'"),
        (b"a=b", {}, 415, "unsupported Content-Type"),
        (b"", {"Content-Type": "text/csv"}, 400, "the request body is empty"),
        (b"1,2,3", {"Content-Type": "text/csv"}, 400, "expected 69 features per row, found 3"),
        (b"{", {"Content-Type": "application/json"}, 400, "malformed JSON"),
        (b'{"Referrer": 1}', {"Content-Type": "application/json"}, 400, "unknown field"),
        (b'{"State": "NJ"}', {"Content-Type": "application/json"}, 400, "missing field"),
        (b",".join([b"1"] * 68 + [b"nan"]), {"Content-Type": "text/csv"}, 400, "not a finite number"),
        (b",".join([b"1"] * 68 + [b"x"]), {"Content-Type": "text/csv"}, 400, "'x' is not a number"),
        (b"1,2", {"Content-Type": "text/csv", "Accept": "image/png"}, 400, "expected 69 features"),
        (b"1,2", {"Content-Type": "text/csv; charset=\u00e9"}, 400, "the Content-Type header must be ASCII"),
        (b"1,2", {"Content-Type": "text/csv", "Accept": "text/csv" + ", */*" * 300}, 400, "at most 1024 characters"),
        (b"[[" + b"1" * 5000 + b"]]", {"Content-Type": "application/json"}, 400, "malformed JSON"),
        (b"[" * 1000 + b"]" * 1000, {"Content-Type": "application/json"}, 400, "nested too deeply"),
        (b"[[" + b"1e309," * 68 + b"1]]", {"Content-Type": "application/json"}, 400, "not a finite number"),
    ],
    ids=MISTAKE_IDS,
)
def test_client_mistakes_are_4xx_with_a_message(
    live: Live, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    reply = _post(live, body, headers)
    assert reply.status == status, reply.body
    assert message in reply.json()["message"]
    assert reply.headers["x-sagemaker-endpoint"] == "customerchurn-dev"
    assert reply.headers["x-model-version"] == "1"


def test_unacceptable_accept_is_406(live: Live) -> None:
    reply = _post(live, live.csv_rows[0].encode(), {"Content-Type": "text/csv", "Accept": "image/png"})
    assert reply.status == 406
    assert "cannot answer in 'image/png'" in reply.json()["message"]


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_the_api_key_is_required(live: Live, key: str | None) -> None:
    headers = {"Content-Type": "text/csv"} | ({"x-api-key": key} if key else {})
    reply = http(live.outputs["DevApiUrl"], live.csv_rows[0].encode(), headers)
    assert reply.status == 403  # API Gateway's own answer: nothing more is said
    assert reply.json() == {"message": "Forbidden"} and reply.headers["x-amzn-errortype"] == "ForbiddenException"


def test_gateway_routing_errors(live: Live) -> None:
    unknown = http(f"{live.info.gateway_url}/nowhere", b"x", {"x-api-key": live.outputs["ApiKey"]})
    assert unknown.status == 404 and "this API serves: POST /customerchurn/dev/api" in unknown.json()["message"]
    get = http(live.outputs["DevApiUrl"], None, {"x-api-key": live.outputs["ApiKey"]}, method="GET")
    assert get.status == 405 and get.headers["allow"] == "POST"
    huge = _post(live, b"1" * (10 * 1024 * 1024 + 1), {"Content-Type": "text/csv"})
    assert huge.status == 413
    over_lambda_limit = _post(live, b"1" * (6 * 1024 * 1024 + 1), {"Content-Type": "text/csv"})
    assert over_lambda_limit.status == 413 and "limit" in over_lambda_limit.json()["message"]


# --- The handler alone: proxy events in, proxy responses out ---------------------------------------------


def _event(body: str, headers: dict[str, str], base64: bool = False) -> dict[str, Any]:
    return {
        "resource": "/api",
        "path": "/api",
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "requestContext": {"requestId": "req-1", "stage": "prod", "identity": {"sourceIp": "127.0.0.1"}},
        "body": body,
        "isBase64Encoded": base64,
    }


def _stubbed() -> tuple[Any, Stubber]:
    client = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return client, Stubber(client)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_handler_reports_model_server_errors_as_502_not_swallowed() -> None:
    seen = _Records()
    logging.getLogger(app.LOGGER.service).addHandler(seen)
    client, stubber = _stubbed()
    stubber.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        service_message="Received server error (500) from AllTraffic",
        http_status_code=424,
        response_meta={"RequestId": "x"},
    )
    with stubber:
        handler = app.create_handler({"ENDPOINT_NAME": "churn-prd", "MODEL_VERSION": "7"}, client)
        response = handler(_event("1,2", {"CONTENT-TYPE": "text/csv"}), CONTEXT)
    assert response["statusCode"] == 502
    assert "the model failed" in json.loads(response["body"])["message"]
    assert response["headers"]["X-SageMaker-Endpoint"] == "churn-prd"
    assert response["headers"]["X-Model-Version"] == "7"
    logging.getLogger(app.LOGGER.service).removeHandler(seen)
    errors = [r for r in seen.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == ["model error"]
    assert vars(errors[0])["request_id"] == "req-1" and vars(errors[0])["endpoint"] == "churn-prd"


TOOLKIT_TRACEBACK = (
    'Traceback (most recent call last):\n  File "/opt/venv/lib/python3.12/site-packages/sagemaker_inference/'
    'transformer.py", line 128, in transform\n    result = self._transform_fn(...)\n'
)


def _model_error(stubber: Stubber, status: int, original: str) -> None:
    """InvokeEndpoint's ModelError as SageMaker Runtime sends it (HTTP 424, the container's status and body)."""
    kind = "client" if status < 500 else "server"
    stubber.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        service_message=f'Received {kind} error ({status}) from primary with message "{original}". See logs.',
        http_status_code=424,
        modeled_fields={
            "OriginalStatusCode": status,
            "OriginalMessage": original,
            "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/churn-prd",
        },
    )


@pytest.mark.parametrize(
    ("original", "status", "message"),
    [
        # sagemaker-inference's Transformer: the message, then the traceback
        (f"row 1: 'abc' is not a number\n{TOOLKIT_TRACEBACK}", 400, "row 1: 'abc' is not a number"),
        # model/inference.py's Flask response under sagemaker-containers, and the local instance: the message
        ("record 0: missing field 'State'\n", 400, "record 0: missing field 'State'"),
        # sagemaker-containers' own error document
        (
            '{"error": "UnsupportedFormatError", "error-message": "Content type x", "stack-trace": "..."}',
            415,
            "Content type x",
        ),
        ("cannot answer in 'application/xml'; use one of text/csv, application/json", 406, "cannot answer in"),
    ],
)
def test_a_request_the_model_refuses_is_a_4xx_with_the_models_message(original: str, status: int, message: str) -> None:
    client, stubber = _stubbed()
    _model_error(stubber, status, original)
    with stubber:
        response = app.create_handler({"ENDPOINT_NAME": "churn-prd", "MODEL_VERSION": "7"}, client)(
            _event("1,2,abc", {"Content-Type": "text/csv"}), CONTEXT
        )
    stubber.assert_no_pending_responses()
    assert response["statusCode"] == status
    document = json.loads(response["body"])
    assert document["error"] == "InvalidRequest"
    assert document["message"].startswith(message)
    assert "Traceback" not in response["body"] and "stack-trace" not in response["body"]
    assert response["headers"]["X-Model-Version"] == "7"


def test_a_model_failure_is_502_without_the_containers_traceback() -> None:
    client, stubber = _stubbed()
    _model_error(stubber, 500, f"the booster is gone\n{TOOLKIT_TRACEBACK}")
    with stubber:
        response = app.create_handler({"ENDPOINT_NAME": "churn-prd"}, client)(
            _event("1,2", {"Content-Type": "text/csv"}), CONTEXT
        )
    assert response["statusCode"] == 502
    assert json.loads(response["body"]) == {"message": "the model failed: the booster is gone", "error": "ModelError"}


def test_handler_passes_bytes_and_decodes_base64_bodies() -> None:
    client, stubber = _stubbed()
    stubber.add_response(
        "invoke_endpoint",
        {
            "Body": StreamingBody(io.BytesIO(b"0.5\n"), 4),
            "ContentType": "text/csv",
            "InvokedProductionVariant": "Green",
        },
        {
            "EndpointName": "churn-prd",
            "Body": b"1,2",
            "ContentType": "text/csv",
            "Accept": "text/csv",
            "InferenceId": "req-1",
        },
    )
    with stubber:
        handler = app.create_handler({"ENDPOINT_NAME": "churn-prd"}, client)
        response = handler(
            _event("MSwy", {"content-type": "text/csv", "Accept": "text/csv"}, base64=True), LambdaContext("api")
        )
    stubber.assert_no_pending_responses()
    assert response["statusCode"] == 200 and response["body"] == "0.5\n"
    assert response["headers"]["x-Amzn-Invoked-Production-Variant"] == "Green"
    assert "X-Model-Version" not in response["headers"]


def test_handler_maps_an_unknown_endpoint_to_503() -> None:
    client, stubber = _stubbed()
    stubber.add_client_error("invoke_endpoint", "ValidationError", "Endpoint x of account 1 not found.", 400)
    with stubber:
        response = app.create_handler({"ENDPOINT_NAME": "x"}, client)(
            _event("1", {"Content-Type": "text/csv"}), LambdaContext("api")
        )
    assert response["statusCode"] == 503
    assert "not found" in json.loads(response["body"])["message"]


def test_handler_requires_its_endpoint_setting() -> None:
    client, _ = _stubbed()
    with pytest.raises(ValueError, match="ENDPOINT_NAME is not set"):
        app.create_handler({}, client)


def test_lambda_entry_point_with_a_real_boto3_client_against_the_runtime(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENDPOINT_NAME", "customerchurn-dev")
    monkeypatch.setenv("MODEL_VERSION", "1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", live.info.runtime_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", live.outputs["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", live.outputs["SecretAccessKey"])
    monkeypatch.setattr(app, "_handler", None)
    ok = app.lambda_handler(_event(json.dumps(live.records[:2]), {"Content-Type": "application/json"}), CONTEXT)
    assert ok["statusCode"] == 200 and len(json.loads(ok["body"])["predictions"]) == 2
    bad = app.lambda_handler(_event("1,2", {"Content-Type": "text/csv"}), CONTEXT)
    assert bad["statusCode"] == 400 and "expected 69 features" in json.loads(bad["body"])["message"]
    monkeypatch.setattr(app, "_handler", None)
