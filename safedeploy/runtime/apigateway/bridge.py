"""Run synchronous code on the event loop, letting it wait for coroutines without blocking the loop.

Lambda handlers are synchronous: they call ``client.invoke_endpoint(...)`` and block until the answer comes.
The gateway runs each handler in its own greenlet on the event loop thread (:func:`call_sync`). When the
handler's injected client needs the loop (:func:`await_coroutine`), the greenlet switches back to the loop,
which awaits the coroutine and switches back in with its result or exception. No thread handoffs and no GIL
contention: on two cores this halves the REST path's CPU cost per request compared with a thread pool.

The price is the usual one for cooperative code: a handler must not block outside its injected clients (no
``time.sleep``, no direct sockets). The handlers in ``lambdas/`` reach AWS only through injected clients.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import greenlet

T = TypeVar("T")


class _Bridged(greenlet.greenlet):
    """A greenlet started by :func:`call_sync` (so :func:`await_coroutine` knows it may switch out)."""


async def call_sync(function: Callable[..., T], *args: Any) -> T:
    """Call ``function(*args)`` on this thread; awaits it requests through :func:`await_coroutine` run here."""
    child = _Bridged(function)
    request: Any = child.switch(*args)
    while not child.dead:
        try:
            value = await cast(Awaitable[Any], request)
        except BaseException as exc:  # handed to the synchronous code, which may handle it
            request = child.throw(exc)
        else:
            request = child.switch(value)
    return cast(T, request)


def await_coroutine(awaitable: Awaitable[T]) -> T:
    """From synchronous code running under :func:`call_sync`: wait for ``awaitable`` and return its result."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Bridged):
        raise RuntimeError("await_coroutine() works only in code started by bridge.call_sync()")
    parent = current.parent
    assert parent is not None  # noqa: S101 - call_sync's greenlet always has the loop's as parent
    return cast(T, parent.switch(awaitable))
