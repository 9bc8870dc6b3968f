"""aiohttp's server for the runtime API, with two things AWS's endpoints do that aiohttp does not.

* **A body the client framed badly is its 400, not a 500.** aiohttp reports a body it cannot decode (bad
  gzip, a chunk cut short) by raising ``RequestPayloadError`` from ``request.read()``; unhandled, that is a 500
  with a traceback in the log. :func:`client_framing_errors` answers it 400, in the same JSON shape as the
  runtime's other errors.
* **A client that half-closes after sending still gets its answer.** A client may ``shutdown(SHUT_WR)`` once
  its request is sent and read the answer until the server closes. aiohttp's protocol lets asyncio close the
  transport at that EOF, so the answer being computed is lost. :class:`RuntimeAppRunner` serves with a request
  handler that keeps the connection open until every request already received is answered (a body the EOF
  cut short is a 400), then closes it.

Both lean on aiohttp internals (``RequestHandler``'s queue and current request); ``tests/test_runtime_server.py``
pins the behaviour, so an aiohttp upgrade that changes them fails there first.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import StreamReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from safedeploy.ids import random_uuid

CUT_SHORT = "the request body ended before it was complete (the client closed its side first)"
_CLOSE_POLL_S = 0.005


@web.middleware
async def client_framing_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer a request body aiohttp cannot read (bad encoding or framing) 400, as AWS does."""
    try:
        return await handler(request)
    except (RequestPayloadError, HttpProcessingError) as exc:
        message = str(getattr(exc, "message", "") or exc) or type(exc).__name__
        return web.Response(
            status=400,
            body=json.dumps({"__type": "SerializationException", "message": f"unreadable body: {message}"}).encode(),
            headers={
                "Content-Type": "application/json",
                "x-amzn-ErrorType": "SerializationException",
                "x-amzn-RequestId": random_uuid(),
            },
        )


class _HalfCloseAwareHandler(RequestHandler):
    """aiohttp's request handler, answering what it received before a client's EOF, then closing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bodies: list[StreamReader] = []
        """Bodies of the requests received and not yet complete (a popped request may not be handled yet)."""
        self._closer: asyncio.Task[None] | None = None

    def data_received(self, data: bytes) -> None:
        queued = len(self._messages)
        super().data_received(data)
        if len(self._messages) > queued:
            self._bodies = [body for body in self._bodies if not body.is_eof()]
            self._bodies.extend(body for _, body in itertools.islice(self._messages, queued, None))

    def eof_received(self) -> bool:  # type: ignore[override]  # asyncio's contract: True keeps the transport
        unfinished = [body for body in self._bodies if not body.is_eof()]
        self._bodies = []
        if self._idle() and not unfinished:
            return False  # nothing to answer: let asyncio close the connection
        for body in unfinished:  # it will never be complete: reading it raises, which is answered 400
            body.set_exception(RequestPayloadError(CUT_SHORT))
            body.feed_eof()
        self._closer = asyncio.get_running_loop().create_task(self._close_when_answered())
        return True

    def _idle(self) -> bool:
        """No request queued or being handled: the loop in ``start()`` waits for the next one."""
        return not self._messages and not self._request_in_progress and self._waiter is not None

    async def _close_when_answered(self) -> None:
        while self.transport is not None and not self._idle():
            await asyncio.sleep(_CLOSE_POLL_S)
        self.force_close()


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _HalfCloseAwareHandler(self, loop=self._loop, **self._kwargs)


class RuntimeAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer clients that half-close (see the module's docstring)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # the app's server, with the handler above for each connection
        return server
