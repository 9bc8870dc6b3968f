"""Answer only requests addressed to this machine's loopback name: the guard against DNS rebinding.

A web page can make a browser send requests to 127.0.0.1 under a name the page controls (``attacker.example``
re-resolved to 127.0.0.1): the browser then treats the answers as the page's own. Such requests still carry
the attacker's name in ``Host``, so every server here (the runtime API, the API gateway, serving instances)
refuses a ``Host`` other than ``127.0.0.1``, ``[::1]`` or ``localhost``, with or without a port, with
421 Misdirected Request.
"""

from __future__ import annotations

import json

from safedeploy.serving.http_server import Handler, Request, Response

LOOPBACK_NAMES = frozenset(("127.0.0.1", "[::1]", "localhost"))
MISDIRECTED = 421


def host_problem(host: str | None) -> str | None:
    """Why a request with this ``Host`` header is refused, or ``None`` if it names the loopback interface."""
    if not host:
        return "refused: the request has no Host header; address it to 127.0.0.1"
    value = host.strip().lower()
    split_at = value.rfind(":") if not value.startswith("[") else value.find("]:") + 1  # IPv6: [::1]:port
    name, port = (value[:split_at], value[split_at + 1 :]) if split_at > 0 else (value, None)
    if name in LOOPBACK_NAMES and (port is None or port.isdigit()):
        return None
    return (
        f"refused: Host {host!r} is not this machine's loopback address; this server answers only requests "
        "addressed to 127.0.0.1, [::1] or localhost (a guard against DNS rebinding)"
    )


def loopback_only(handler: Handler) -> Handler:
    """Wrap an :class:`~safedeploy.serving.http_server.HttpServer` handler with the ``Host`` check."""

    async def guarded(request: Request) -> Response:
        problem = host_problem(request.headers.get("host"))
        if problem is not None:
            body = json.dumps({"message": problem}).encode()
            return Response(MISDIRECTED, body, [("Content-Type", "application/json")])
        return await handler(request)

    return guarded
