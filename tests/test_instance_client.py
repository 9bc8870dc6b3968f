"""The runtime's keep-alive HTTP client for serving instances, against a scripted server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from safedeploy.runtime.sagemaker_runtime.instance_client import InstanceClient, InstanceUnreachableError

ANSWERS: dict[str, bytes | None] = {
    "/length": b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: 6\r\n\r\n0.125\n",
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Amzn-SageMaker-Custom-Attributes: a=1\r\n\r\n"
    b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
    "/error": b"HTTP/1.1 415 Unsupported Media Type\r\nContent-Length: 4\r\n\r\nnope",
    "/until-close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it",
    "/not-http": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    "/hang-up": None,
}


class ScriptedServer:
    """Answers each request by its path with canned bytes; counts connections and requests."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                path = head.split(b" ", 2)[1].decode()
                if path == "/slow":
                    await asyncio.sleep(5)
                answer = ANSWERS.get(path)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if b"Connection: close" in answer or path == "/not-http":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def scripted() -> AsyncIterator[tuple[ScriptedServer, int]]:
    script = ScriptedServer()
    server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield script, port
    finally:
        server.close()


def run(test: Callable[[ScriptedServer, int, InstanceClient], Any]) -> Any:
    async def main() -> Any:
        client = InstanceClient()
        async with scripted() as (script, port):
            try:
                return await test(script, port, client)
            finally:
                client.close()

    return asyncio.run(main())


def test_answers_are_parsed_and_one_connection_is_kept_alive() -> None:
    async def test(script: ScriptedServer, port: int, client: InstanceClient) -> None:
        headers = {"Content-Type": "text/csv", "Accept": "text/csv"}
        first = await client.post("127.0.0.1", port, "/length", b"1,2,3", headers, 5)
        second = await client.post("127.0.0.1", port, "/chunked", b"", {}, 5)
        third = await client.post("127.0.0.1", port, "/error", b"x" * 100_000, {}, 5)
        assert (first.status, first.headers["content-type"], first.body) == (200, "text/csv", b"0.125\n")
        assert (second.status, second.body, second.headers["x-amzn-sagemaker-custom-attributes"]) == (
            200,
            b"abcdefg",
            "a=1",
        )
        assert (third.status, third.body) == (415, b"nope")
        assert script.connections == 1
        assert script.requests[0].startswith(b"POST /length HTTP/1.1\r\n")
        assert b"\r\nContent-Type: text/csv\r\n" in script.requests[0]
        assert script.requests[0].endswith(b"\r\n\r\n1,2,3")
        assert len(script.requests[2]) > 100_000

    run(test)


def test_a_close_delimited_body_ends_with_the_connection_and_is_not_reused() -> None:
    async def test(script: ScriptedServer, port: int, client: InstanceClient) -> None:
        reply = await client.post("127.0.0.1", port, "/until-close", b"", {}, 5)
        assert (reply.status, reply.body) == (200, b"all of it")
        again = await client.post("127.0.0.1", port, "/length", b"", {}, 5)
        assert again.body == b"0.125\n"
        assert script.connections == 2

    run(test)


def test_broken_instances_are_reported_not_hung_on() -> None:
    async def test(script: ScriptedServer, port: int, client: InstanceClient) -> None:
        with pytest.raises(InstanceUnreachableError, match="closed the connection before answering"):
            await client.post("127.0.0.1", port, "/hang-up", b"", {}, 5)
        with pytest.raises(InstanceUnreachableError, match="not valid HTTP"):
            await client.post("127.0.0.1", port, "/not-http", b"", {}, 5)
        with pytest.raises(TimeoutError):
            await client.post("127.0.0.1", port, "/slow", b"", {}, 0.1)
        assert (await client.post("127.0.0.1", port, "/length", b"", {}, 5)).status == 200

    run(test)


def test_a_refused_connection_names_the_address() -> None:
    async def test(script: ScriptedServer, port: int, client: InstanceClient) -> None:
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        closed_port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        with pytest.raises(InstanceUnreachableError, match=f"cannot connect to 127.0.0.1:{closed_port}"):
            await client.post("127.0.0.1", closed_port, "/length", b"", {}, 5)

    run(test)


def test_header_values_cannot_inject_lines() -> None:
    async def test(script: ScriptedServer, port: int, client: InstanceClient) -> None:
        with pytest.raises(ValueError, match="Content-Type header contains a line break"):
            await client.post("127.0.0.1", port, "/length", b"", {"Content-Type": "text/csv\r\nX-Evil: 1"}, 5)
        assert script.requests == []

    run(test)


def test_idle_connections_past_the_timeout_are_not_reused() -> None:
    async def test(script: ScriptedServer, port: int, client: InstanceClient) -> None:
        client.idle_timeout = 0.0
        await client.post("127.0.0.1", port, "/length", b"", {}, 5)
        await client.post("127.0.0.1", port, "/length", b"", {}, 5)
        assert script.connections == 2

    run(test)
