"""Odd framing is the client's 4xx on both HTTP servers (the hot hops' and the runtime API's aiohttp), and a
client that half-closes after sending (``shutdown(SHUT_WR)``) still reads its answer."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from safedeploy.http.server import HttpServer, Request, Response
from safedeploy.runtime.apigateway.gateway import Gateway
from safedeploy.runtime.server import CUT_SHORT, RuntimeAppRunner, client_framing_errors
from safedeploy.runtime.state import RestApiRoute

HEAD = b"POST /x HTTP/1.1\r\nHost: x\r\n"
Serving = Callable[[], AbstractAsyncContextManager[int]]


async def _small_handler(request: Request) -> Response:
    await asyncio.sleep(0.05)  # the answer is still being computed when the client's EOF arrives
    return Response(200, b"len=%d" % len(request.body))


@asynccontextmanager
async def _small_server() -> AsyncIterator[int]:
    server = HttpServer(_small_handler, max_body=1024 * 1024)
    port = await server.start()
    try:
        yield port
    finally:
        await server.shutdown(timeout=2)


async def _aiohttp_handler(request: web.Request) -> web.Response:
    body = await request.read()
    await asyncio.sleep(0.05)
    return web.Response(body=b"len=%d" % len(body))


@asynccontextmanager
async def _runtime_server() -> AsyncIterator[int]:
    app = web.Application(middlewares=[client_framing_errors])
    app.router.add_post("/x", _aiohttp_handler)
    runner = RuntimeAppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


SERVERS: dict[str, Serving] = {"http_server": _small_server, "aiohttp runtime": _runtime_server}


def _send(port: int, data: bytes, half_close: bool = True) -> bytes:
    """Send raw bytes, half-close, read until the server closes (5 s at most)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def _exchange(serving: Serving, *payloads: bytes) -> list[bytes]:
    async def scenario() -> list[bytes]:
        async with serving() as port:
            return [await asyncio.to_thread(_send, port, payload) for payload in payloads]

    return asyncio.run(scenario())


@pytest.mark.parametrize("server", SERVERS)
def test_a_client_that_half_closes_after_sending_reads_its_answer(server: str) -> None:
    (answer,) = _exchange(SERVERS[server], HEAD + b"Content-Length: 3\r\n\r\nabc")
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"len=3")


@pytest.mark.parametrize("server", SERVERS)
def test_pipelined_requests_then_a_half_close_are_all_answered(server: str) -> None:
    (answer,) = _exchange(SERVERS[server], (HEAD + b"Content-Length: 1\r\n\r\na") * 3)
    assert answer.count(b"HTTP/1.1 200") == 3 and answer.endswith(b"len=1")


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize(
    "payload",
    [HEAD + b"Content-Length: 10\r\n\r\nabc", HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nab"],
    ids=["content-length short", "chunk short"],
)
def test_a_body_cut_short_by_the_clients_eof_is_a_400(server: str, payload: bytes) -> None:
    (answer,) = _exchange(SERVERS[server], payload)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"ended before it was complete" in answer


def test_a_head_cut_short_is_a_400_on_the_hot_hops() -> None:
    (answer,) = _exchange(_small_server, b"POST /x HTTP/1.1\r\nHost: x\r\nConte")
    assert answer.startswith(b"HTTP/1.1 400")


@pytest.mark.parametrize("server", SERVERS)
def test_an_idle_half_close_just_closes(server: str) -> None:
    assert _exchange(SERVERS[server], b"") == [b""]


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize(
    "payload",
    [
        HEAD + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        HEAD + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\nzz\r\n",
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\nabcdef\r\n0\r\n\r\n",
        HEAD + b"Content-Length: -1\r\n\r\n",
        HEAD + b"Content-Length: 99999999999999999999999\r\n\r\n",
        HEAD + b"X-Big: " + b"h" * 70_000 + b"\r\n\r\n",
        b"POST /x HTTP/1.1\nHost: x\nContent-Length: 0\n\n",
    ],
    ids=["conflicting length", "length and chunked", "bad chunk size", "bad second chunk", "chunk overrun",
         "negative length", "length overflow", "huge header", "bare LF"],
)  # fmt: skip
def test_odd_framing_is_a_400_family_answer(server: str, payload: bytes) -> None:
    for half_close in (True, False):

        async def scenario(half: bool = half_close) -> bytes:
            async with SERVERS[server]() as port:
                return await asyncio.to_thread(_send, port, payload, half)

        answer = asyncio.run(scenario())
        assert answer[:12] in (b"HTTP/1.1 400", b"HTTP/1.0 400", b"HTTP/1.1 431", b"HTTP/1.1 413"), answer[:200]


def test_an_undecodable_body_is_a_400_json_error_on_the_runtime_api() -> None:
    (answer,) = _exchange(
        _runtime_server,
        HEAD + b"Content-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",  # not gzip: aiohttp's 500 before
    )
    assert answer.startswith(b"HTTP/1.1 400") and b'"SerializationException"' in answer
    good = gzip.compress(b"abcdef")
    (answer,) = _exchange(
        _runtime_server, HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(good) + good
    )
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"len=6")


def test_cut_short_names_the_cause() -> None:
    assert "client closed its side first" in CUT_SHORT


@pytest.mark.parametrize("key", ["é", "ключ", "\x00", "k" * 5000])
def test_a_non_ascii_or_odd_api_key_is_forbidden_not_a_500(tmp_path: Path, key: str) -> None:
    handler_file = tmp_path / "ok.py"
    handler_file.write_text("def create(environ, runtime):\n    return lambda event, context: {'statusCode': 200}\n")

    async def scenario() -> bytes:
        gateway = Gateway(invoker=None, region="us-east-1")  # type: ignore[arg-type]  # the handler never invokes
        gateway.configure({"api": RestApiRoute(Path="/api", Handler=f"{handler_file}:create")}, {"api": "the-key"})
        server = gateway.server()
        port = await server.start()
        try:
            header = b"x-api-key: " + key.encode("utf-8") + b"\r\n"
            request = b"POST /api HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"Content-Length: 0\r\n\r\n"
            return await asyncio.to_thread(_send, port, request)
        finally:
            await server.shutdown(timeout=1)

    answer = asyncio.run(scenario())
    if "\x00" in key:  # llhttp refuses a NUL in a header value
        assert answer.startswith(b"HTTP/1.1 400")
    else:
        assert answer.startswith(b"HTTP/1.1 403") and b"Forbidden" in answer
