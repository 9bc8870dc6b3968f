"""Raw HTTP/1.1 on a socket, for requests no well-behaved client library would send.

:func:`exchange` frames a request as told (``Content-Length``, chunked, conflicting lengths, a body cut short,
pipelined, HTTP/1.0...), optionally half-closes (``shutdown(SHUT_WR)``), and parses every answer with httptools,
so a test sees each status the server sent, or that it sent none.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

import httptools

FRAMINGS = (
    "content-length",
    "chunked",
    "chunked-split",
    "http/1.0",
    "expect-100",
    "pipelined",
    "short-body",
    "long-body",
    "conflicting-length",
    "length-and-chunked",
    "bad-chunk-size",
    "chunk-overrun",
    "cut-chunk",
    "negative-length",
    "length-overflow",
    "huge-header",
    "many-headers",
    "bare-lf",
    "cut-head",
)
"""Ways to frame one request. The last ones are malformed: the server must answer 4xx, never 5xx or nothing."""
CUT_SHORT = frozenset(("short-body", "cut-chunk", "cut-head"))
"""Framings that leave a request incomplete: only a half-close tells the server no more is coming."""


@dataclass
class Answers:
    """What came back on one connection: each final answer's status and body (1xx answers are skipped)."""

    statuses: list[int] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    error: str | None = None
    """Why reading stopped early (a reset, a timeout, an answer that is not HTTP)."""
    parser: httptools.HttpResponseParser | None = None
    _informational: bool = False

    @property
    def complete(self) -> int:
        """Answers received in full."""
        return len(self.bodies) - (1 if self._open else 0)

    _open: bool = False

    # httptools callbacks
    def on_headers_complete(self) -> None:
        assert self.parser is not None
        status = self.parser.get_status_code()
        self._informational = 100 <= status < 200
        if not self._informational:
            self.statuses.append(status)
            self.bodies.append(b"")
            self._open = True

    def on_body(self, body: bytes) -> None:
        if not self._informational:
            self.bodies[-1] += body

    def on_message_complete(self) -> None:
        if not self._informational:
            self._open = False


def _head(method: str, target: str, version: str, headers: list[tuple[bytes, bytes]], newline: bytes) -> bytes:
    lines = [f"{method} {target} HTTP/{version}".encode("latin-1")]
    lines += [name + b": " + value for name, value in headers]
    return newline.join(lines) + newline + newline


def frame(method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes, framing: str) -> tuple[bytes, int]:
    """The request's bytes and how many answers a correct server sends back before it may close."""
    has_host = any(name.lower() == b"host" for name, _ in headers)
    base = list(headers) if has_host else [(b"Host", b"127.0.0.1"), *headers]
    length = [(b"Content-Length", str(len(body)).encode())]
    chunked = [(b"Transfer-Encoding", b"chunked")]
    one = _head(method, target, "1.1", base + length, b"\r\n") + body
    if framing == "content-length":
        return one, 1
    if framing in ("chunked", "chunked-split"):
        size = max(1, len(body) // 3) if framing == "chunked-split" else max(1, len(body))
        parts = [body[i : i + size] for i in range(0, len(body), size)]
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"
        return _head(method, target, "1.1", base + chunked, b"\r\n") + chunks, 1
    if framing == "http/1.0":
        return _head(method, target, "1.0", base + length, b"\r\n") + body, 1
    if framing == "expect-100":
        return _head(method, target, "1.1", [*base, *length, (b"Expect", b"100-continue")], b"\r\n") + body, 1
    if framing == "pipelined":
        return one + one, 2
    if framing == "short-body":
        declared = [(b"Content-Length", str(len(body) + 10).encode())]
        return _head(method, target, "1.1", base + declared, b"\r\n") + body, 1
    if framing == "long-body":  # the surplus is the start of a (malformed) next request
        return one + b"\x01garbage that is no request line\r\n\r\n", 2
    if framing == "conflicting-length":
        other = [(b"Content-Length", str(len(body) + 1).encode())]
        return _head(method, target, "1.1", base + length + other, b"\r\n") + body + b"x", 1
    if framing == "length-and-chunked":
        return _head(method, target, "1.1", base + length + chunked, b"\r\n") + body, 1
    if framing == "bad-chunk-size":
        return _head(method, target, "1.1", base + chunked, b"\r\n") + b"zz\r\n" + body + b"\r\n0\r\n\r\n", 1
    if framing == "chunk-overrun":
        return _head(method, target, "1.1", base + chunked, b"\r\n") + b"1\r\n" + body + b"xx\r\n0\r\n\r\n", 1
    if framing == "cut-chunk":
        return _head(method, target, "1.1", base + chunked, b"\r\n") + b"%x\r\n" % (len(body) + 5) + body, 1
    if framing == "negative-length":
        return _head(method, target, "1.1", [*base, (b"Content-Length", b"-1")], b"\r\n") + body, 1
    if framing == "length-overflow":
        return _head(method, target, "1.1", [*base, (b"Content-Length", b"9" * 30)], b"\r\n") + body, 1
    if framing == "huge-header":
        return _head(method, target, "1.1", [*base, *length, (b"X-Big", b"h" * 70_000)], b"\r\n") + body, 1
    if framing == "many-headers":
        many = [(b"X-H%d" % i, b"v") for i in range(300)]
        return _head(method, target, "1.1", base + length + many, b"\r\n") + body, 1
    if framing == "bare-lf":
        return _head(method, target, "1.1", base + length, b"\n") + body, 1
    if framing == "cut-head":
        return _head(method, target, "1.1", base + length, b"\r\n")[:-7], 1
    raise ValueError(f"unknown framing {framing!r}")


def exchange(port: int, data: bytes, expected: int, half_close: bool, timeout: float = 15.0) -> Answers:
    """Send ``data`` to 127.0.0.1:``port``; read until ``expected`` answers arrived or the server closed."""
    answers = Answers()
    answers.parser = httptools.HttpResponseParser(answers)
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            while half_close or answers.complete < expected:
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answers.parser.feed_data(chunk)
        except (OSError, httptools.HttpParserError) as exc:
            answers.error = f"{type(exc).__name__}: {exc}"
    return answers
