"""The runtime's HTTP/1.1 client for serving instances: the hop every invocation makes.

Every ``InvokeEndpoint`` becomes one ``POST /invocations`` to an instance on 127.0.0.1. aiohttp's general
client spends about 100 µs of the runtime's CPU on each (cookies, tracing, redirects, decompression), a
third of the runtime's share of a single-row request on two cores. This client does only what the hop needs:
a pool of keep-alive connections per instance address, the request written in one go, and the answer parsed by
httptools (llhttp, Node.js's parser), which handles ``Content-Length``, chunked and close-delimited bodies.

Connections idle longer than ``idle_timeout`` (below the instance server's own keep-alive timeout) are
dropped rather than reused, so the runtime never writes into a connection the instance is closing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import httptools


class InstanceUnreachableError(Exception):
    """No complete answer: the connection was refused, reset or closed early, or the answer was not HTTP."""


class InstanceNotConnectedError(InstanceUnreachableError):
    """The request was not taken, so another instance may take it.

    No connection could be made, or a reused keep-alive connection turned out to be dead before any answer
    began (the instance was gone: inference is a pure function, so the request is safe to send again).
    """


@dataclass(frozen=True)
class InstanceReply:
    """An instance's answer; header names are lower-cased."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; it carries one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[tuple[InstanceReply, bool]] | None = None
        self._headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._headers_done = False
        self.answering = False
        """Whether any byte of an answer has arrived on this connection's current request."""

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self.answering = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(InstanceUnreachableError(f"the instance's answer is not valid HTTP: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        delimited = "content-length" in self._headers or "transfer-encoding" in self._headers
        if self._headers_done and not delimited:  # the body ends where the connection does
            self._finish(keep_alive=False)
        else:
            reason = f": {exc}" if exc else ""
            self._fail(InstanceUnreachableError(f"the instance closed the connection before answering{reason}"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._headers, self._chunks, self._headers_done = {}, [], False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        self._finish(keep_alive=self._parser.should_keep_alive())

    def _finish(self, keep_alive: bool) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            reply = InstanceReply(self._parser.get_status_code(), self._headers, b"".join(self._chunks))
            waiter.set_result((reply, keep_alive))

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def exchange(self, request: bytes, body: bytes, timeout: float) -> tuple[InstanceReply, bool]:
        """Send one request and wait up to ``timeout`` s for its answer and whether the connection may be reused.

        The deadline is a plain timer on the answer's future (``asyncio.timeout`` costs several times more on a
        path taken by every invocation).
        """
        if self.transport is None or self.closed:
            raise InstanceUnreachableError("the connection is closed")
        self.answering = False
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[InstanceReply, bool]] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(timeout, self._time_out, waiter, timeout)
        if len(body) <= 65536:
            self.transport.write(request + body)
        else:
            self.transport.write(request)
            self.transport.write(body)
        try:
            return await waiter
        finally:
            timer.cancel()

    def _time_out(self, waiter: asyncio.Future[tuple[InstanceReply, bool]], timeout: float) -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError(f"no answer within {timeout:g} s"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _header_line(name: str, value: str) -> bytes:
    if any(c in value for c in "\r\n\x00"):
        raise ValueError(f"the {name} header contains a line break or NUL")
    return f"{name}: {value}\r\n".encode()


class InstanceClient:
    """Keep-alive connection pools to serving instances on this machine."""

    def __init__(self, idle_timeout: float = 30.0) -> None:
        self.idle_timeout = idle_timeout
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    def _acquire(self, address: tuple[str, int]) -> _Connection | None:
        pool = self._idle.get(address)
        now = time.monotonic()
        while pool:
            connection = pool.pop()
            if not connection.closed and now - connection.idle_since < self.idle_timeout:
                return connection
            connection.close()
        return None

    async def post(
        self, host: str, port: int, path: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> InstanceReply:
        """``POST`` ``body`` to ``http://host:port/path``.

        Raises:
            ValueError: a header value would break the request (line break or NUL).
            InstanceNotConnectedError: no connection could be made (nothing was sent).
            InstanceUnreachableError: no complete answer came back.
            TimeoutError: none within ``timeout`` seconds.
        """
        head = b"".join(_header_line(name, value) for name, value in headers.items())
        request = b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: %d\r\n%s\r\n" % (
            path.encode("ascii"), host.encode("ascii"), port, len(body), head
        )  # fmt: skip
        address = (host, port)
        connection = self._acquire(address)
        loop = asyncio.get_running_loop()
        if connection is None:
            try:
                async with asyncio.timeout(timeout):
                    _, connection = await loop.create_connection(_Connection, host, port)
            except OSError as exc:
                raise InstanceNotConnectedError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
        reused = connection.idle_since > 0
        try:
            reply, keep_alive = await connection.exchange(request, body, timeout)
        except InstanceUnreachableError as exc:
            connection.close()
            if reused and not connection.answering:  # a stale pooled connection, as HTTP clients retry
                raise InstanceNotConnectedError(f"stale keep-alive connection to {host}:{port}: {exc}") from None
            raise
        except BaseException:
            connection.close()
            raise
        if keep_alive and not connection.closed:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(address, []).append(connection)
        else:
            connection.close()
        return reply

    def close(self) -> None:
        """Close every idle connection."""
        for pool in self._idle.values():
            for connection in pool:
                connection.close()
        self._idle.clear()
