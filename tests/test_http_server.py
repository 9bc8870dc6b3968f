"""The small HTTP/1.1 server of the serving hops: framing, keep-alive, pipelining, limits, errors, shutdown."""

from __future__ import annotations

import asyncio
import http.client
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from safedeploy.serving.gateway import Gateway
from safedeploy.serving.http_server import MAX_HEAD_BYTES, HttpServer, Request, Response
from safedeploy.serving.state import RestApiRoute, RouteCanary


async def _echo(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("handler bug")
    if request.path == "/slow":
        await asyncio.sleep(0.3)
    body = b"%s %s %s q=%s len=%d" % (
        request.method.encode(),
        request.path.encode(),
        request.headers.get("x-tag", "-").encode(),
        request.query_string.encode(),
        len(request.body),
    )
    return Response(200, body, [("Content-Type", "text/plain")])


@asynccontextmanager
async def _serving(handler: Callable[[Request], Awaitable[Response]] = _echo, **options: Any) -> AsyncIterator[int]:
    server = HttpServer(handler, max_body=options.pop("max_body", 1024 * 1024), **options)
    port = await server.start()
    try:
        yield port
    finally:
        await server.shutdown(timeout=5)


async def _exchange(port: int, data: bytes, until_close: bool = False, expect: int = 1) -> bytes:
    """Send raw bytes, then read until ``expect`` complete answers arrived (or the server closes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    received = b""
    try:
        async with asyncio.timeout(5):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                received += chunk
                if not until_close and _answers(received) >= expect:
                    break
    finally:
        writer.close()
    return received


def _answers(data: bytes) -> int:
    count, rest = 0, data
    while b"\r\n\r\n" in rest:
        head, _, rest = rest.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
        )
        if len(rest) < length:
            break
        rest = rest[length:]
        count += 1 if not head.startswith(b"HTTP/1.1 100") else 0
    return count


def test_keep_alive_and_content_length_with_a_real_client() -> None:
    async def scenario() -> list[tuple[int, bytes, str | None]]:
        async with _serving() as port:

            def client() -> list[tuple[int, bytes, str | None]]:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                answers = []
                for n in range(3):
                    connection.request("POST", f"/x?n={n}", body=b"a" * n, headers={"X-Tag": "t"})
                    reply = connection.getresponse()
                    answers.append((reply.status, reply.read(), reply.getheader("Connection")))
                connection.close()
                return answers

            return await asyncio.to_thread(client)

    answers = asyncio.run(scenario())
    assert answers == [(200, f"POST /x t q=n={n} len={n}".encode(), None) for n in range(3)]


def test_pipelined_requests_are_answered_in_order() -> None:
    async def scenario() -> bytes:
        async with _serving() as port:
            requests = b"".join(
                b"POST /p%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (i, i, b"z" * i) for i in range(3)
            )
            return await _exchange(port, requests, expect=3)

    data = asyncio.run(scenario())
    assert data.count(b"HTTP/1.1 200 OK") == 3
    assert data.index(b"/p0") < data.index(b"/p1") < data.index(b"/p2")


def test_chunked_bodies_and_expect_100_continue() -> None:
    async def scenario() -> bytes:
        async with _serving() as port:
            request = (
                b"POST /c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
            return await _exchange(port, request)

    data = asyncio.run(scenario())
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert b"len=11" in data


def test_http_1_0_closes_after_the_answer() -> None:
    async def scenario() -> bytes:
        async with _serving() as port:
            return await _exchange(port, b"GET /old HTTP/1.0\r\n\r\n", until_close=True)

    data = asyncio.run(scenario())
    assert data.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in data


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", b"413"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"100001\r\n" + b"a" * 0x100001 + b"\r\n", b"413"),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"h" * (MAX_HEAD_BYTES + 1) + b"\r\n\r\n", b"431"),
        (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", b"400"),
    ],
    ids=["malformed", "declared-too-large", "chunked-too-large", "head-too-large", "upgrade"],
)
def test_refused_requests_get_an_answer_then_the_connection_closes(request_bytes: bytes, status: bytes) -> None:
    async def scenario() -> tuple[bytes, bytes]:
        async with _serving(max_body=1024 * 1024) as port:
            refused = await _exchange(port, request_bytes, until_close=True)
            after = await _exchange(port, b"GET /still-up HTTP/1.1\r\nHost: x\r\n\r\n")
            return refused, after

    refused, after = asyncio.run(scenario())
    assert refused.startswith(b"HTTP/1.1 " + status) and b"Connection: close" in refused
    assert after.startswith(b"HTTP/1.1 200") and b"/still-up" in after


def test_a_client_still_sending_a_refused_body_reads_the_answer() -> None:
    """Lingering close: the server drains what the client sends after a 413 instead of resetting it."""

    async def scenario() -> int:
        async with _serving(max_body=1000) as port:

            def client() -> int:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("POST", "/", body=b"b" * 3_000_000)
                return connection.getresponse().status

            return await asyncio.to_thread(client)

    assert asyncio.run(scenario()) == 413


def test_a_handler_exception_is_a_500_and_the_connection_survives() -> None:
    async def scenario() -> bytes:
        async with _serving() as port:
            two = b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\nGET /fine HTTP/1.1\r\nHost: x\r\n\r\n"
            return await _exchange(port, two, expect=2)

    data = asyncio.run(scenario())
    assert data.startswith(b"HTTP/1.1 500") and b"HTTP/1.1 200" in data and b"/fine" in data


def test_idle_connections_are_swept() -> None:
    async def scenario() -> bytes:
        async with _serving(idle_timeout=0.2) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /half HTTP/1.1\r\nHost: x\r\n")  # never finished
            async with asyncio.timeout(5):
                data = await reader.read()  # the sweep closes it
            writer.close()
            return data

    assert asyncio.run(scenario()) == b""


def test_shutdown_lets_in_flight_requests_finish_and_stops_accepting() -> None:
    async def scenario() -> tuple[bytes, bool]:
        server = HttpServer(_echo, max_body=1024)
        port = await server.start()
        in_flight = asyncio.create_task(_exchange(port, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"))
        await asyncio.sleep(0.1)
        await server.shutdown(timeout=5)
        answer = await in_flight
        probe = socket.socket()
        refused = probe.connect_ex(("127.0.0.1", port)) != 0
        probe.close()
        return answer, refused

    answer, refused = asyncio.run(scenario())
    assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in answer and b"/slow" in answer
    assert refused


def test_gateway_answers_504_when_the_handler_outlives_the_integration_timeout(tmp_path: Path) -> None:
    handler_file = tmp_path / "slow.py"
    handler_file.write_text(
        "import asyncio\n"
        "from safedeploy.serving.bridge import await_coroutine\n"
        "def create(environ, runtime):\n"
        "    def handler(event, context):\n"
        "        await_coroutine(asyncio.sleep(5))\n"
        "        return {'statusCode': 200, 'body': 'late'}\n"
        "    return handler\n"
    )

    async def scenario() -> tuple[bytes, bytes]:
        gateway = Gateway(invoker=None, region="us-east-1")  # type: ignore[arg-type]  # the handler never invokes
        gateway.lambda_timeout = 0.2
        route = RestApiRoute(Path="/slow", Handler=f"{handler_file}:create", Environment={}, ApiKeyRequired=False)
        gateway.configure({"slow": route}, {})
        server = gateway.server()
        port = await server.start()
        try:
            late = await _exchange(port, b"POST /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
            missing = await _exchange(port, b"POST /nope HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
        finally:
            await server.shutdown(timeout=1)
        return late, missing

    late, missing = asyncio.run(scenario())
    assert late.startswith(b"HTTP/1.1 504") and b"Endpoint request timed out" in late
    assert missing.startswith(b"HTTP/1.1 404") and b"application/json" in missing


def test_gateway_splits_requests_between_the_alias_versions_by_weight(tmp_path: Path) -> None:
    """A route's canary version takes its weight of the requests, each version with its own environment."""
    handler_file = tmp_path / "who.py"
    handler_file.write_text(
        "def create(environ, runtime):\n"
        "    def handler(event, context):\n"
        "        return {'statusCode': 200, 'headers': {'X-Model-Version': environ['V']}, 'body': environ['V']}\n"
        "    return handler\n"
    )

    def route(weight: float | None) -> RestApiRoute:
        canary = None if weight is None else RouteCanary(Environment={"V": "green"}, Weight=weight)
        return RestApiRoute(
            Path="/api",
            Handler=f"{handler_file}:create",
            Environment={"V": "blue"},
            ApiKeyRequired=False,
            Canary=canary,
        )

    async def count(gateway: Gateway, port: int, weight: float | None, n: int) -> dict[bytes, int]:
        gateway.configure({"api": route(weight)}, {})
        request = b"POST /api HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
        answers = await _exchange(port, request * n, expect=n)
        return {who: answers.count(b"\r\n\r\n" + who) for who in (b"blue", b"green")}

    async def scenario() -> list[dict[bytes, int]]:
        gateway = Gateway(invoker=None, region="us-east-1")  # type: ignore[arg-type]  # the handler never invokes
        server = gateway.server()
        port = await server.start()
        try:
            return [await count(gateway, port, weight, 400) for weight in (None, 0.0, 0.25, 1.0)]
        finally:
            await server.shutdown(timeout=1)

    alone, zero, quarter, everything = asyncio.run(scenario())
    assert alone == {b"blue": 400, b"green": 0} and zero == {b"blue": 400, b"green": 0}
    assert everything == {b"blue": 0, b"green": 400}
    assert quarter[b"blue"] + quarter[b"green"] == 400 and 60 <= quarter[b"green"] <= 140  # 100 expected, sd 8.7


@pytest.mark.parametrize(
    ("returned", "status"),
    [
        ("{'statusCode': 201, 'headers': {'X-A': 'b', 'Content-Length': '999'}, 'body': 'ok'}", b"201"),
        ("{'statusCode': 200, 'headers': {'X-A': 'b\\r\\nSet-Cookie: x'}, 'body': 'ok'}", b"502"),
        ("{'body': 'no status'}", b"502"),
        ("{'statusCode': 200, 'body': '!!!', 'isBase64Encoded': True}", b"502"),
        ("'not a dict'", b"502"),
    ],
    ids=["framing-header-replaced", "header-injection", "no-status", "bad-base64", "not-a-mapping"],
)
def test_gateway_turns_malformed_proxy_responses_into_502(tmp_path: Path, returned: str, status: bytes) -> None:
    handler_file = tmp_path / "bad.py"
    handler_file.write_text(f"def create(environ, runtime):\n    return lambda event, context: {returned}\n")

    async def scenario() -> bytes:
        gateway = Gateway(invoker=None, region="us-east-1")  # type: ignore[arg-type]
        route = RestApiRoute(Path="/x", Handler=f"{handler_file}:create", Environment={}, ApiKeyRequired=False)
        gateway.configure({"x": route}, {})
        server = gateway.server()
        port = await server.start()
        try:
            return await _exchange(port, b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
        finally:
            await server.shutdown(timeout=1)

    answer = asyncio.run(scenario())
    assert answer.startswith(b"HTTP/1.1 " + status)
    assert b"Set-Cookie" not in answer
    if status == b"201":
        assert b"Content-Length: 2\r\n" in answer and b"999" not in answer and answer.endswith(b"ok")


def test_beyond_max_connections_the_least_recently_active_idle_connection_is_shed() -> None:
    """A flood of idle connections cannot grow past the limit; a working client still gets its answer."""

    async def scenario() -> tuple[list[bool], bytes]:
        async with _serving(max_connections=3) as port:
            idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            await asyncio.sleep(0.05)
            answer = await _exchange(port, b"GET /fresh HTTP/1.1\r\nHost: x\r\n\r\n")  # the 4th: sheds the oldest
            closed = []
            for reader, writer in idle:
                try:
                    async with asyncio.timeout(1):
                        closed.append(await reader.read(1) == b"")
                except TimeoutError:
                    closed.append(False)
                writer.close()
            return closed, answer

    closed, answer = asyncio.run(scenario())
    assert answer.startswith(b"HTTP/1.1 200")
    assert closed == [True, False, False]  # only the least recently active one


def test_a_request_head_trickling_in_is_cut_off_after_the_header_timeout() -> None:
    async def scenario() -> tuple[bool, float]:
        async with _serving(header_timeout=0.4, idle_timeout=30) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            loop = asyncio.get_running_loop()
            started = loop.time()
            writer.write(b"GET / HTTP/1.1\r\n")
            closed = False
            for _ in range(40):  # a header line every 0.1 s keeps it "active", but the head never ends
                writer.write(b"X-Slow: 1\r\n")
                try:
                    await writer.drain()
                    async with asyncio.timeout(0.1):
                        if await reader.read(1) == b"":
                            closed = True
                            break
                except TimeoutError:
                    continue
                except ConnectionError:
                    closed = True
                    break
            writer.close()
            return closed, loop.time() - started

    closed, after = asyncio.run(scenario())
    assert closed and after < 2.0
