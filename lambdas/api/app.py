"""REST API handler: API Gateway (REST, v1) proxy event -> SageMaker ``InvokeEndpoint`` -> proxy response.

Fixes the seed's handler: headers are read case-insensitively, the body goes to the endpoint as bytes (base64
bodies decoded), client mistakes come back as 4xx with a JSON body naming the problem, and model errors are
surfaced (logged as errors and answered 502) instead of swallowed. A request the model refuses (``ModelError``
with a 4xx ``OriginalStatusCode``: 400 for a bad record, 406/415 for a type it cannot use) is answered with the
model's status and the model's own message (the first line of ``OriginalMessage``: SageMaker's inference toolkit
appends a traceback, which stays in the logs); a 5xx from the model is 502. Every answer says who served it:
``X-SageMaker-Endpoint``, ``x-Amzn-Invoked-Production-Variant`` (when InvokeEndpoint reports it) and
``X-Model-Version``.

Configuration (the function's environment): ``ENDPOINT_NAME`` (required), ``MODEL_VERSION`` (the registry
version deployed behind it). The SageMaker Runtime client is injected (boto3's, or the local
gateway's in-process one with the same call and response shape): :func:`create_handler` takes it, and
:func:`lambda_handler` builds a boto3 one on its first call (never at import).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient as RuntimeClient

LOGGER = Logger(service="churn-api")
MAX_BODY_BYTES = 6 * 1024 * 1024
SUPPORTED_TYPES = ("text/csv", "application/json")
MAX_HEADER_CHARS = 1024
"""InvokeEndpoint's ``ContentType`` and ``Accept``: ASCII, at most 1,024 characters (SageMaker Runtime's model)."""
MAX_MESSAGE_CHARS = 1024
"""The longest model message passed on to the client."""
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True)
class ApiSettings:
    """The function's configuration."""

    endpoint_name: str
    model_version: str | None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ApiSettings:
        """Read ``ENDPOINT_NAME`` and ``MODEL_VERSION``."""
        endpoint = environ.get("ENDPOINT_NAME", "").strip()
        if not endpoint:
            raise ValueError("ENDPOINT_NAME is not set: the API does not know which endpoint to call")
        return cls(endpoint, environ.get("MODEL_VERSION") or None)


@dataclass(frozen=True)
class ApiResponse:
    """An API answer before it becomes a proxy response."""

    status: int
    body: bytes
    content_type: str = "application/json"
    variant: str | None = None

    @classmethod
    def error(cls, status: int, message: str, code: str, variant: str | None = None) -> ApiResponse:
        """A JSON error body: ``{"message": ..., "error": ...}``."""
        return cls(status, json.dumps({"message": message, "error": code}).encode(), variant=variant)


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _request_body(event: APIGatewayProxyEvent) -> bytes:
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the body is marked base64 but is not valid base64") from None
    return body.encode("utf-8")


SYNTHETIC_HEADER = "x-synthetic-canary"


def _inference_id(event: APIGatewayProxyEvent, headers: Mapping[str, str]) -> str:
    """The API request id, as the inference id.

    A deployment's synthetic canary requests get ``synthetic-`` in front, so captured data (and drift
    monitoring) can tell them from clients' requests.
    """
    request_id = event.request_context.request_id or str(uuid.uuid4())
    return (f"synthetic-{request_id}" if headers.get(SYNTHETIC_HEADER) else request_id)[:64]


def invoke(event: APIGatewayProxyEvent, settings: ApiSettings, runtime: RuntimeClient) -> ApiResponse:
    """Validate the request, call the endpoint and translate its answer."""
    headers = event.headers  # case-insensitive; built on each access, so read once
    content_type = headers.get("content-type")
    if _media_type(content_type) not in SUPPORTED_TYPES:
        return ApiResponse.error(
            415,
            f"unsupported Content-Type {content_type!r}: send {' or '.join(SUPPORTED_TYPES)}",
            "UnsupportedMediaType",
        )
    accept = headers.get("accept") or "application/json"
    for name, value in (("Content-Type", str(content_type)), ("Accept", accept)):
        if not value.isascii() or len(value) > MAX_HEADER_CHARS:  # SageMaker Runtime's rule for both headers
            return ApiResponse.error(
                400, f"the {name} header must be ASCII, at most {MAX_HEADER_CHARS} characters", "BadRequest"
            )
    try:
        body = _request_body(event)
    except ValueError as exc:
        return ApiResponse.error(400, str(exc), "BadRequest")
    if not body.strip():
        return ApiResponse.error(400, "the request body is empty: send one or more rows or records", "BadRequest")
    if len(body) > MAX_BODY_BYTES:
        return ApiResponse.error(413, f"the body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}", "TooLarge")
    try:
        reply = runtime.invoke_endpoint(
            EndpointName=settings.endpoint_name,
            Body=body,
            ContentType=str(content_type),
            Accept=accept,
            InferenceId=_inference_id(event, headers),
        )
    except ClientError as exc:
        return _client_error(exc, settings, event.request_context.request_id)
    except BotoCoreError as exc:
        LOGGER.error(
            "endpoint unreachable",
            extra={
                "endpoint": settings.endpoint_name,
                "reason": str(exc),
                "request_id": event.request_context.request_id,
            },
        )
        return ApiResponse.error(503, f"the model endpoint is unreachable: {exc}", "ServiceUnavailable")
    return ApiResponse(
        200,
        reply["Body"].read(),
        str(reply.get("ContentType", "application/json")),
        reply.get("InvokedProductionVariant"),
    )


def _client_error(exc: ClientError, settings: ApiSettings, request_id: str | None) -> ApiResponse:
    error = exc.response.get("Error", {})
    code, message = error.get("Code", "Unknown"), error.get("Message", str(exc))
    where = {"endpoint": settings.endpoint_name, "request_id": request_id}
    if code == "ModelError":
        original = exc.response.get("OriginalStatusCode")
        original_message = str(exc.response.get("OriginalMessage") or message)
        if isinstance(original, int) and 400 <= original < 500:
            LOGGER.info("request refused by the model", extra={**where, "status": original, "reason": original_message})
            return ApiResponse.error(original, model_message(original_message), "InvalidRequest")
        LOGGER.error("model error", extra={**where, "status": original, "reason": original_message})
        return ApiResponse.error(502, f"the model failed: {model_message(original_message)}", "ModelError")
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500))
    if status == 413:
        return ApiResponse.error(413, message, "TooLarge")
    LOGGER.error("endpoint call failed", extra={**where, "code": code, "reason": message})
    if code in ("ThrottlingException", "ModelNotReadyException"):
        return ApiResponse.error(429, message, code)
    return ApiResponse.error(503, f"the model endpoint is unavailable: {message}", code)


def model_message(original: str) -> str:
    """The model's own words in a container's error body, without what follows them.

    SageMaker's inference toolkit answers the message, then a traceback on the following lines;
    sagemaker-containers' Flask worker a JSON document (``error-message``); the local instance and
    ``model/inference.py``'s Flask response the message alone.
    """
    text = original.strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if isinstance(document, dict):
            for key in ("message", "error-message", "errorMessage"):
                value = document.get(key)
                if isinstance(value, str) and value.strip():
                    return value.strip().splitlines()[0][:MAX_MESSAGE_CHARS]
    first = text.splitlines()[0].strip() if text else ""
    return (first or "the model gave no reason")[:MAX_MESSAGE_CHARS]


def to_proxy_response(response: ApiResponse, settings: ApiSettings) -> dict[str, Any]:
    """The Lambda proxy integration's response document."""
    headers = {"Content-Type": response.content_type, "X-SageMaker-Endpoint": settings.endpoint_name}
    if response.variant:
        headers["x-Amzn-Invoked-Production-Variant"] = response.variant
    if settings.model_version:
        headers["X-Model-Version"] = settings.model_version
    try:
        return {"statusCode": response.status, "headers": headers, "body": response.body.decode("utf-8")}
    except UnicodeDecodeError:
        encoded = base64.b64encode(response.body).decode("ascii")
        return {"statusCode": response.status, "headers": headers, "body": encoded, "isBase64Encoded": True}


def create_handler(environ: Mapping[str, str], runtime: RuntimeClient) -> Handler:
    """Build the handler for a function configuration and an injected SageMaker Runtime client."""
    settings = ApiSettings.from_environ(environ)

    # Each log line carries its own request id (``extra``) instead of Logger.inject_lambda_context's global
    # keys: the local gateway interleaves concurrent invocations in one process, where global keys would mix
    # requests up, and the decorator's per-call work was a tenth of the REST path's CPU.
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return to_proxy_response(invoke(APIGatewayProxyEvent(event), settings, runtime), settings)

    return handler


_handler: Handler | None = None


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda's entry point: builds the boto3 client and the handler on the first call."""
    global _handler
    if _handler is None:
        import boto3

        _handler = create_handler(os.environ, boto3.client("sagemaker-runtime"))
    return _handler(event, context)
