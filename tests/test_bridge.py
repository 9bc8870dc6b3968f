"""The greenlet bridge that runs synchronous Lambda handlers on the gateway's event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from safedeploy.runtime.apigateway.bridge import await_coroutine, call_sync


async def _double_later(value: int, delay: float = 0.01) -> int:
    await asyncio.sleep(delay)
    return value * 2


async def _fail_later() -> None:
    await asyncio.sleep(0)
    raise KeyError("from the coroutine")


def test_sync_code_awaits_coroutines_on_the_calling_loop_thread() -> None:
    loop_thread: list[int] = []

    def handler(a: int, b: int) -> tuple[int, int]:
        loop_thread.append(threading.get_ident())
        return await_coroutine(_double_later(a)), await_coroutine(_double_later(b))

    async def main() -> tuple[int, int]:
        result = await call_sync(handler, 2, 5)
        assert loop_thread == [threading.get_ident()]
        return result

    assert asyncio.run(main()) == (4, 10)


def test_concurrent_calls_interleave_while_they_wait() -> None:
    order: list[str] = []

    def handler(name: str, delay: float) -> str:
        order.append(f"{name} start")
        await_coroutine(asyncio.sleep(delay))
        order.append(f"{name} end")
        return name

    async def main() -> list[str]:
        return list(await asyncio.gather(call_sync(handler, "slow", 0.05), call_sync(handler, "fast", 0.0)))

    assert asyncio.run(main()) == ["slow", "fast"]
    assert order == ["slow start", "fast start", "fast end", "slow end"]


def test_a_coroutine_error_is_raised_in_the_sync_code_which_may_handle_it() -> None:
    def handler() -> str:
        try:
            await_coroutine(_fail_later())
        except KeyError as exc:
            return f"handled {exc}"
        return "not raised"

    assert asyncio.run(call_sync(handler)) == "handled 'from the coroutine'"


def test_an_unhandled_error_propagates_to_the_caller() -> None:
    def handler() -> None:
        await_coroutine(_fail_later())

    with pytest.raises(KeyError, match="from the coroutine"):
        asyncio.run(call_sync(handler))

    def broken() -> None:
        raise ValueError("handler bug")

    with pytest.raises(ValueError, match="handler bug"):
        asyncio.run(call_sync(broken))


def test_a_timeout_cancels_the_wait_inside_the_sync_code() -> None:
    reached: list[str] = []

    def handler() -> None:
        try:
            await_coroutine(asyncio.sleep(10))
        finally:
            reached.append("cleanup ran")

    async def main() -> None:
        await asyncio.wait_for(call_sync(handler), timeout=0.05)

    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert reached == ["cleanup ran"]


def test_await_coroutine_outside_the_bridge_is_refused() -> None:
    coroutine = _double_later(1)
    with pytest.raises(RuntimeError, match="call_sync"):
        await_coroutine(coroutine)
    coroutine.close()


def test_random_uuid_is_a_version_4_uuid_and_unique() -> None:
    import uuid

    from safedeploy.ids import random_uuid

    ids = [random_uuid() for _ in range(20000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:500]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
