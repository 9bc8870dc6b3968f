"""The runtime API's front door: the loopback ``Host`` check, then AWS Signature Version 4 on every request.

The control plane (``sagemaker``), InvokeEndpoint (``sagemaker``, SageMaker Runtime's signing name),
``PutLifecycleEventHookExecutionStatus`` (``codedeploy``) and the runtime's own ``/_local/*`` calls
(``safedeploy``) all require a request signed with the state directory's credentials
(:mod:`safedeploy.http.credentials`) for the runtime's region. Refusals are answered in the shape the
service's protocol uses, so botocore raises a ``ClientError`` with AWS's code; nothing behind this door runs
for a request that fails it, whatever its path.

One exception: requests the router sends to a handler that authenticates by other means (``own_auth``: the
console's routes, which a browser calls with a session cookie, :mod:`safedeploy.runtime.console.handlers`) skip
the signature check. The ``Host`` check applies to them too.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.typedefs import Middleware

from safedeploy.http.errors import ApiError
from safedeploy.http.loopback import MISDIRECTED, host_problem
from safedeploy.http.sigv4 import SignedRequest, Verifier, service_for
from safedeploy.ids import random_uuid

_JSON_11 = "application/x-amz-json-1.1"


def _refusal(request: web.Request, error: ApiError) -> web.Response:
    json_protocol = request.path == "/" and "X-Amz-Target" in request.headers
    return web.Response(
        status=error.status,
        body=json.dumps(error.body()).encode(),
        headers={
            "Content-Type": _JSON_11 if json_protocol else "application/json",
            "x-amzn-ErrorType": error.code,
            "x-amzn-RequestId": random_uuid(),
        },
    )


def authenticator(
    verifier: Verifier,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    own_auth: Callable[[web.Request], bool] = lambda _: False,
) -> Middleware:
    """An aiohttp middleware admitting only loopback-addressed requests signed with ``verifier``'s key.

    ``own_auth``: whether a request goes to a handler that authenticates it itself (no signature needed).
    """

    @web.middleware
    async def authenticate(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        problem = host_problem(request.headers.get("Host"))
        if problem is not None:
            return _refusal(request, ApiError(MISDIRECTED, "MisdirectedRequestException", problem))
        if own_auth(request):
            return await handler(request)
        try:
            body = await request.read()  # kept by aiohttp: the handler reads the same bytes
        except web.HTTPRequestEntityTooLarge as exc:
            return _refusal(request, ApiError(413, "RequestEntityTooLargeException", exc.text or "request too large"))
        signed = SignedRequest(
            request.method,
            request.raw_path,
            [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.raw_headers],
            body,
        )
        try:
            verifier.verify(signed, service_for(request.path, request.headers.get("X-Amz-Target")), clock())
        except ApiError as error:
            return _refusal(request, error)
        return await handler(request)

    return authenticate
