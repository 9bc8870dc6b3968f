"""A lean closed-loop HTTP/1.1 load generator for 127.0.0.1 (the job ``wrk`` does, in one Python thread).

Each of ``concurrency`` keep-alive connections sends a prebuilt request, waits for the whole response and sends
the next: a closed loop, so concurrency is exact and latency is request-to-last-byte. One thread drives every
connection through ``epoll`` and parses only the status line and ``Content-Length``, so the generator costs tens
of microseconds per request instead of the hundreds a thread per connection with ``http.client`` costs, and it
leaves the machine's cores to the servers being measured.
"""

from __future__ import annotations

import selectors
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    """Latencies of the completed requests (seconds), failures and the run's wall time."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0


@dataclass
class _Connection:
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    started: float = 0.0


def build_request(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """The port and the raw bytes of a POST to ``url`` (which must be on 127.0.0.1)."""
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1" or parts.port is None:
        raise ValueError(f"load tests target 127.0.0.1 with an explicit port only, not {url}")
    lines = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: 127.0.0.1:{parts.port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return parts.port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _complete(buffer: bytearray) -> tuple[int, int] | None:
    """``(status, response length)`` once ``buffer`` holds a whole response, else None."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).lower()
    marker = head.find(b"\ncontent-length:")
    if marker < 0:
        raise ValueError("the server answered without Content-Length; this generator needs it")
    line_end = head.find(b"\r\n", marker + 1)
    length = int(head[marker + 16 : line_end if line_end > 0 else len(head)])
    total = end + 4 + length
    return (int(head[9:12]), total) if len(buffer) >= total else None


def run(url: str, body: bytes, headers: dict[str, str], concurrency: int, total: int, max_s: float) -> LoadResult:
    """Send ``total`` requests over ``concurrency`` connections, stopping early after ``max_s`` seconds."""
    port, request = build_request(url, body, headers)
    result = LoadResult()
    selector = selectors.DefaultSelector()
    to_send = total
    in_flight = 0
    deadline = time.monotonic() + max_s

    def send(connection: _Connection) -> None:
        nonlocal to_send, in_flight
        to_send -= 1
        in_flight += 1
        connection.started = time.perf_counter()
        connection.sock.sendall(request)

    started = time.perf_counter()
    connections = []
    for _ in range(min(concurrency, total)):
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = _Connection(sock)
        connections.append(connection)
        selector.register(sock, selectors.EVENT_READ, connection)
    try:
        for connection in connections:
            send(connection)
        while in_flight:
            for key, _ in selector.select(timeout=max(deadline - time.monotonic(), 0) + 60):
                connection = key.data
                chunk = connection.sock.recv(262144)
                if not chunk:
                    raise ConnectionError("the server closed a keep-alive connection")
                connection.buffer += chunk
                done = _complete(connection.buffer)
                if done is None:
                    continue
                status, length = done
                result.latencies.append(time.perf_counter() - connection.started)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                result.errors += status != 200
                del connection.buffer[:length]
                in_flight -= 1
                if to_send > 0 and time.monotonic() < deadline:
                    send(connection)
    finally:
        for connection in connections:
            selector.unregister(connection.sock)
            connection.sock.close()
        selector.close()
    result.elapsed = time.perf_counter() - started
    return result
