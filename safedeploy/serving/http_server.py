"""A small HTTP/1.1 server for the two hot hops: the serving instance (``/invocations``) and the API gateway.

Every REST API request crosses two HTTP servers on this machine. aiohttp's server costs about 85 µs of CPU
per request here, a framework's worth of routing, middleware and stream objects; this one, with httptools
(llhttp, Node.js's parser) doing all the parsing, costs about 25 µs. It keeps only what those hops need:

* keep-alive (HTTP/1.1 by default, HTTP/1.0 on request), pipelined requests answered in order;
* request bodies with ``Content-Length`` or chunked, ``Expect: 100-continue`` answered;
* limits: the body (413) and the request head (431), both answered before the connection closes;
* a malformed request answered 400 and the connection closed; an exception in the handler answered 500,
  logged, and the connection kept;
* connections idle (or stuck mid-request) longer than ``idle_timeout`` closed by a periodic sweep, and a
  request head not complete within ``header_timeout`` (a slow-loris client) closed too;
* at most ``max_connections`` open: a new connection beyond it closes the least recently active idle one
  (kept in an insertion-ordered dict, so this is O(1)), or is itself closed if every one is busy; so a flood
  of idle connections cannot exhaust the process's file descriptors, which the runtime's control plane shares;
* graceful shutdown: stop accepting, let in-flight requests finish (up to a deadline), close the rest.

The handler is ``async def handler(request: Request) -> Response``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import parse_qsl

import httptools

LOG = logging.getLogger(__name__)
MAX_HEAD_BYTES = 64 * 1024
HEADER_TIMEOUT_S = 10.0
"""How long a request head may take to arrive in full."""
LINGER_S = 1.0
"""After refusing a request, how long the client may stay quiet before the connection is closed."""
LINGER_MAX_BYTES = 64 * 1024 * 1024
_REASONS = {status.value: status.phrase for status in http.HTTPStatus}


@dataclass
class Request:
    """One request: method, target, headers as received (and lower-cased for lookup), the whole body."""

    method: str
    path: str
    query_string: str
    version: str
    header_list: list[tuple[str, str]]
    body: bytes
    remote: str | None
    headers: dict[str, str] = field(default_factory=dict)
    """Lower-cased names; a repeated header's values joined with ``,`` (RFC 9110)."""

    def __post_init__(self) -> None:
        for name, value in self.header_list:
            key = name.lower()
            self.headers[key] = f"{self.headers[key]},{value}" if key in self.headers else value

    @property
    def query(self) -> list[tuple[str, str]]:
        """The query string's parameters, in order."""
        return parse_qsl(self.query_string, keep_blank_values=True)


@dataclass
class Response:
    """What the handler answers; ``Content-Length`` is added."""

    status: int
    body: bytes = b""
    headers: Iterable[tuple[str, str]] = ()

    def encode(self, keep_alive: bool) -> bytes:
        """The response on the wire."""
        lines = [f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Unknown')}\r\n"]
        for name, value in self.headers:
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} contains a line break")
            lines.append(f"{name}: {value}\r\n")
        lines.append(f"Content-Length: {len(self.body)}\r\n")
        if not keep_alive:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1") + self.body


Handler = Callable[[Request], Awaitable[Response]]


def text_response(status: int, message: str) -> Response:
    """A plain-text answer (the server's own errors)."""
    return Response(status, message.encode(), [("Content-Type", "text/plain; charset=utf-8")])


class _RefusedError(Exception):
    """A request the server answers itself (400, 413, 431) before closing the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.last_active = time.monotonic()
        self.busy = False
        self.closing = False
        self._queue: list[tuple[Request, bool]] = []
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._head_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._in_message = False
        self._lingering = False
        self._discarded = 0
        self.head_started: float | None = None
        """When the request head now arriving began (None between heads)."""

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server.admit(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.connections.pop(self, None)

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        if self._lingering:
            self._discarded += len(data)
            if self._discarded > LINGER_MAX_BYTES:
                self.close()
            return
        if self.closing:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            refused = exc.__context__  # httptools wraps what a callback raised
            if isinstance(refused, _RefusedError):
                self._refuse(refused.status, str(refused))
            else:
                self._refuse(400, f"malformed HTTP request: {exc}")

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._url, self._headers, self._head_bytes, self._body, self._body_bytes = b"", [], 0, [], 0
        self._in_message = True
        self.head_started = time.monotonic()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value))
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.head_started = None
        declared = next((v for n, v in self._headers if n.lower() == "content-length"), None)
        if declared is not None and declared.strip().isdigit() and int(declared) > self.server.max_body:
            raise _RefusedError(413, f"request body of {declared} bytes exceeds the {self.server.max_body}-byte limit")
        expect = next((v for n, v in self._headers if n.lower() == "expect"), None)
        if expect is not None and expect.lower() == "100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.server.max_body:
            raise _RefusedError(413, f"request body exceeds the {self.server.max_body}-byte limit")
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        target = self._url.decode("latin-1")
        path, _, query = target.partition("?")
        peer = self.transport.get_extra_info("peername") if self.transport else None
        request = Request(
            method=self.parser.get_method().decode("ascii", "replace"),
            path=path,
            query_string=query,
            version=self.parser.get_http_version(),
            header_list=self._headers,
            body=b"".join(self._body),
            remote=peer[0] if peer else None,
        )
        self._queue.append((request, self.parser.should_keep_alive()))
        if not self.busy:
            self.busy = True
            self.server.spawn(self._serve_queue())

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _RefusedError(431, f"request head exceeds {MAX_HEAD_BYTES} bytes")

    async def _serve_queue(self) -> None:
        try:
            while self._queue and not self.closing:
                request, keep_alive = self._queue.pop(0)
                response = await self.server.respond(request)
                keep_alive = keep_alive and not self.server.stopping
                self._write(response, keep_alive)
                if not keep_alive:
                    self.close()
        finally:
            self.busy = False
            self.last_active = time.monotonic()
            self.server.touch(self)

    def _write(self, response: Response, keep_alive: bool) -> None:
        try:
            data = response.encode(keep_alive)
        except ValueError as exc:
            LOG.error("invalid response from the handler: %s", exc)
            data = text_response(500, "the server built an invalid response").encode(keep_alive)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _refuse(self, status: int, message: str) -> None:
        """Answer, then close "lingering": the client may still be sending the body the answer refuses.

        Closing at once would reset the connection before the client reads the answer, so the rest of what
        it sends is read and dropped (up to LINGER_MAX_BYTES, until it has been quiet for LINGER_S).
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(self.server.refusal(status, message).encode(keep_alive=False))
        self.closing = self._lingering = True
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_S, self._linger_check, self._discarded)

    def _linger_check(self, seen: int) -> None:
        if self._discarded == seen or self._discarded > LINGER_MAX_BYTES:
            self.close()
        else:
            asyncio.get_running_loop().call_later(LINGER_S, self._linger_check, self._discarded)

    def close(self) -> None:
        self.closing = True
        self._lingering = False
        if self.transport is not None:
            self.transport.close()

    def idle_for(self, now: float) -> float:
        return 0.0 if self.busy else now - self.last_active


class HttpServer:
    """Serves ``handler`` on listening sockets until :meth:`shutdown`."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_body: int,
        idle_timeout: float = 60.0,
        refusal: Callable[[int, str], Response] = text_response,
        max_connections: int | None = None,
        header_timeout: float = HEADER_TIMEOUT_S,
    ) -> None:
        self.handler = handler
        self.max_body = max_body
        self.refusal = refusal
        """Builds the answer to a request the server refuses itself (400, 413, 431)."""
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.connections: dict[_Connection, None] = {}
        """Open connections, least recently active first."""
        self.shed = 0
        """Connections closed to stay within ``max_connections``."""
        self.stopping = False
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, sock: socket.socket | None = None, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``sock`` (already bound) or on ``host:port``; return the port."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            server = await loop.create_server(lambda: _Connection(self), sock=sock, backlog=1024)
        else:
            server = await loop.create_server(lambda: _Connection(self), host, port, backlog=1024)
        self._servers.append(server)
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep())
        return int(server.sockets[0].getsockname()[1])

    def admit(self, connection: _Connection) -> None:
        """Register a new connection, making room within ``max_connections`` first."""
        limit = self.max_connections
        if limit is not None and len(self.connections) >= limit:
            victim = next((c for c in self.connections if not c.busy and not c._in_message), None)
            self.shed += 1
            if victim is None:  # every connection is working: this one waits for another day
                connection.close()
                return
            victim.close()
            self.connections.pop(victim, None)
        self.connections[connection] = None

    def touch(self, connection: _Connection) -> None:
        """Mark a connection as the most recently active."""
        if self.connections.pop(connection, 0) is None:
            self.connections[connection] = None

    def spawn(self, work: Awaitable[None]) -> None:
        """Run a connection's request loop as a task the shutdown waits for."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def respond(self, request: Request) -> Response:
        """Run the handler; an exception is a logged 500, never a dropped connection."""
        try:
            return await self.handler(request)
        except Exception:
            LOG.exception("handler failed on %s %s", request.method, request.path)
            return text_response(500, "internal error")

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(self.idle_timeout / 2, self.header_timeout / 2, 5.0))
            now = time.monotonic()
            for connection in list(self.connections):
                started = connection.head_started
                if connection.idle_for(now) > self.idle_timeout:
                    connection.close()
                elif started is not None and now - started > self.header_timeout and not connection.busy:
                    connection.close()  # a request head trickling in: a slow-loris client

    async def shutdown(self, timeout: float = 15.0) -> None:
        """Stop accepting, wait up to ``timeout`` s for in-flight requests, then close every connection."""
        self.stopping = True
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            if not connection.busy and not connection._in_message:
                connection.close()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        for connection in list(self.connections):
            connection.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for server in self._servers:
            await server.wait_closed()
