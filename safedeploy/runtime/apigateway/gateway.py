"""The local API gateway: HTTP requests -> API Gateway (REST, v1) proxy events -> Lambda handlers.

Each route (see :class:`~safedeploy.runtime.state.RestApiRoute`) names a handler file and its environment, and
optionally a canary version (another environment) taking a share of the requests, as a Lambda alias's routing
configuration does while CodeDeploy shifts traffic.
A request gets the same treatment API Gateway gives it: a ``Host`` other than the loopback's is refused (421,
:mod:`~safedeploy.http.loopback`), the API key (``x-api-key``) is checked first (403 ``Forbidden``; each
model's APIs have their own key, as a usage plan per model gives on AWS), the body is limited to 10 MB (413),
and the handler receives a real proxy event (headers and multi-value headers, query strings,
``requestContext`` with request id, stage, identity and API key, body as text or base64) and a Lambda context.
A handler that raises, or returns something that is not a proxy response, is answered 502 ``Internal server
error``, as API Gateway does.

Each invocation runs the (synchronous) handler in its own greenlet on the event loop (see
:mod:`~safedeploy.runtime.apigateway.bridge`); its SageMaker Runtime client is :class:`LocalRuntimeClient`, which awaits
the runtime's :class:`Invoker` through the bridge and returns (or raises) exactly what boto3's client returns
(or raises) for the same call. Concurrent invocations interleave wherever they wait for an endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hmac
import io
import json
import logging
import random
import secrets
import time
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError
from botocore.response import StreamingBody

from safedeploy import constants as C
from safedeploy.http.errors import ApiError
from safedeploy.http.loopback import loopback_only
from safedeploy.http.server import HttpServer, Request, Response
from safedeploy.ids import random_uuid
from safedeploy.lambda_invoke import LAMBDA_TIMEOUT_S, Handler, LambdaContext, load_handler_factory
from safedeploy.runtime.apigateway.bridge import await_coroutine, call_sync
from safedeploy.runtime.sagemaker_runtime.invoke import Invoker, InvokeRequest
from safedeploy.runtime.state import RestApiRoute

LOG = logging.getLogger(__name__)
API_GATEWAY_MAX_BODY = 10 * 1024 * 1024
STAGE = "local"
_TIMED_OUT = "the Lambda integration timed out"


class LocalRuntimeClient:
    """A ``sagemaker-runtime`` client for handlers the gateway runs (through :func:`bridge.call_sync`)."""

    def __init__(self, invoker: Invoker) -> None:
        self.invoker = invoker

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        """``InvokeEndpoint`` with boto3's parameter names, response shape and ``ClientError``."""
        body = kwargs["Body"]
        request = InvokeRequest(
            endpoint_name=kwargs["EndpointName"],
            body=body.encode("utf-8") if isinstance(body, str) else bytes(body),
            content_type=kwargs.get("ContentType"),
            accept=kwargs.get("Accept"),
            custom_attributes=kwargs.get("CustomAttributes"),
            target_variant=kwargs.get("TargetVariant"),
            inference_id=kwargs.get("InferenceId"),
        )
        request_id = random_uuid()
        try:
            result = await_coroutine(self.invoker.invoke(request))
        except ApiError as exc:
            raise ClientError(exc.boto_response(request_id), "InvokeEndpoint") from None  # type: ignore[arg-type]
        response: dict[str, Any] = {
            "Body": StreamingBody(io.BytesIO(result.body), len(result.body)),
            "ContentType": result.content_type,
            "InvokedProductionVariant": result.invoked_variant,
            "ResponseMetadata": {"RequestId": request_id, "HTTPStatusCode": 200, "RetryAttempts": 0},
        }
        if result.custom_attributes:
            response["CustomAttributes"] = result.custom_attributes
        return response


@functools.lru_cache(maxsize=4)
def _request_time(second: int) -> str:
    """API Gateway's ``requestTime`` (CLF format) for a whole second; cached, as many requests share one."""
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))


def proxy_event(request: Request, route_path: str, api_key: str | None) -> dict[str, Any]:
    """The API Gateway REST (v1) proxy event for a request."""
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.header_list:
        headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    if request.query_string:
        for name, value in request.query:
            query[name] = value
            multi_query.setdefault(name, []).append(value)
    body = request.body
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode("ascii"), True
    request_id = random_uuid()
    peer = request.remote or "127.0.0.1"
    now = time.time()
    return {
        "resource": route_path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": route_path,
            "httpMethod": request.method,
            "path": f"/{STAGE}{request.path}",
            "stage": STAGE,
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": _request_time(int(now)),
            "requestTimeEpoch": int(now * 1000),
            "protocol": f"HTTP/{request.version}",
            "domainName": request.headers.get("host", "127.0.0.1"),
            "apiId": "local",
            "accountId": C.LOCAL_ACCOUNT_ID,
            "identity": {"sourceIp": peer, "userAgent": request.headers.get("user-agent"), "apiKey": api_key},
        },
        "body": text if body else None,
        "isBase64Encoded": is_base64,
    }


def _message(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        status,
        json.dumps({"message": message}).encode(),
        [("Content-Type", "application/json"), *(headers or {}).items()],
    )


class Gateway:
    """Routes, API keys and handler invocation."""

    def __init__(self, invoker: Invoker, region: str) -> None:
        self.invoker = invoker
        self.region = region
        self.lambda_timeout = LAMBDA_TIMEOUT_S
        self.routes: dict[str, RestApiRoute] = {}
        self.api_keys: dict[str, bytes] = {}
        """Each route's API key, by path."""
        self._handlers: dict[tuple[str, bool], tuple[RestApiRoute, Handler]] = {}
        self._random = random.Random()  # noqa: S311 - traffic split, not security

    def configure(self, routes: Mapping[str, RestApiRoute], api_keys: Mapping[str, str]) -> None:
        """Install routes (by name) and the API keys (by usage plan); handlers are (re)built on their next request."""
        self.routes = {route.Path: route for route in routes.values()}
        self.api_keys = {
            route.Path: api_keys.get(route.UsagePlan or name, "").encode() for name, route in routes.items()
        }
        self._handlers = {key: h for key, h in self._handlers.items() if self.routes.get(key[0]) == h[0]}

    def _handler(self, route: RestApiRoute, canary: bool) -> Handler:
        """The handler of the route's primary version, or of its canary version (each with its environment)."""
        key = (route.Path, canary)
        cached = self._handlers.get(key)
        if cached is not None and cached[0] is route:  # configure() installs new route objects when they change
            return cached[1]
        environment = route.Canary.Environment if canary and route.Canary is not None else route.Environment
        client = LocalRuntimeClient(self.invoker)
        handler = load_handler_factory(route.Handler)(dict(environment), client)
        self._handlers[key] = (route, handler)
        return handler

    def server(self, max_connections: int | None = None) -> HttpServer:
        """The gateway's HTTP server (API Gateway's 10 MB payload limit; its errors as JSON messages)."""
        return HttpServer(
            loopback_only(self.handle),
            max_body=API_GATEWAY_MAX_BODY,
            refusal=_refusal,
            max_connections=max_connections,
        )

    async def handle(self, request: Request) -> Response:
        """Serve one request like API Gateway's Lambda proxy integration."""
        route = self.routes.get(request.path.rstrip("/") or "/")
        if route is None:
            known = ", ".join(f"POST {path}" for path in sorted(self.routes)) or "none yet (run `make deploy`)"
            return _message(404, f"no resource at {request.path}; this API serves: {known}")
        if request.method != "POST":
            return _message(405, f"{request.method} is not allowed on {route.Path}; use POST", {"Allow": "POST"})
        presented = request.headers.get(C.API_KEY_HEADER)
        if route.ApiKeyRequired and not _key_matches(presented, self.api_keys.get(route.Path, b"")):
            # API Gateway's own answer for a missing or wrong key (another model's included): nothing more is said
            return _message(403, "Forbidden", {"x-amzn-ErrorType": "ForbiddenException"})
        event = proxy_event(request, route.Path, presented)
        canary = route.Canary is not None and self._random.random() < route.Canary.Weight
        try:
            handler = self._handler(route, canary)
        except Exception:
            LOG.exception("cannot load the handler of %s", route.Path)
            return _message(502, "Internal server error")
        context = LambdaContext(function_name=f"api{route.Path.replace('/', '-')}", region=self.region)
        # API Gateway's integration timeout, as a bare timer (asyncio.timeout costs more, on every request).
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - the server runs every request in a task
        timer = asyncio.get_running_loop().call_later(self.lambda_timeout, task.cancel, _TIMED_OUT)
        try:
            result = await call_sync(handler, event, context)
        except asyncio.CancelledError as exc:
            if exc.args != (_TIMED_OUT,):
                raise
            task.uncancel()
            return _message(504, "Endpoint request timed out")
        except Exception:
            LOG.exception("handler of %s raised", route.Path)
            return _message(502, "Internal server error")
        finally:
            timer.cancel()
        return _proxy_response(result)


def _key_matches(presented: str | None, expected: bytes) -> bool:
    """Constant-time comparison; a route without a key accepts none."""
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "replace"), expected)


def _refusal(status: int, message: str) -> Response:
    """The gateway's answer to a request its server refuses (413 over the payload limit, 400 malformed)."""
    if status == 413:
        message = f"Request too long: the limit is {API_GATEWAY_MAX_BODY} bytes"
    return _message(status, message)


_FRAMING = frozenset(("content-length", "transfer-encoding", "connection"))
"""Headers the server sets itself when it frames the answer."""
_BREAKS = frozenset("\r\n")


def _proxy_response(result: Any) -> Response:
    """Turn a Lambda proxy response into HTTP; anything malformed is a 502, as API Gateway answers."""
    if not isinstance(result, Mapping) or not isinstance(result.get("statusCode"), int):
        LOG.error("handler returned a malformed proxy response: %r", result)
        return _message(502, "Internal server error")
    body = result.get("body") or ""
    try:
        payload = base64.b64decode(body, validate=True) if result.get("isBase64Encoded") else str(body).encode("utf-8")
    except ValueError:
        return _message(502, "Internal server error")
    headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[str(name)] = ",".join(str(v) for v in values)
    answer = [(name, value) for name, value in headers.items() if name.lower() not in _FRAMING]
    if any(_BREAKS.intersection(name) or _BREAKS.intersection(value) for name, value in answer):
        LOG.error("handler returned a header with a line break")
        return _message(502, "Internal server error")
    return Response(result["statusCode"], payload, answer)


def new_api_key() -> str:
    """A fresh API key (40 URL-safe characters, as API Gateway's are)."""
    return secrets.token_urlsafe(30)
