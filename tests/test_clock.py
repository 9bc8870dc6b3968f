"""The scalable clock of deployments."""

from __future__ import annotations

import threading
import time

import pytest

from safedeploy.clock import ScaledClock


def test_model_time_is_compressed_by_the_scale() -> None:
    clock = ScaledClock(scale=60)
    assert clock.real_seconds(300) == 5.0
    started = time.monotonic()
    assert clock.sleep(6) is True  # 6 model seconds = 0.1 s
    assert 0.09 <= time.monotonic() - started < 1.0


def test_interrupt_wakes_sleepers_early() -> None:
    clock = ScaledClock(scale=1)
    threading.Timer(0.05, clock.interrupt).start()
    started = time.monotonic()
    assert clock.sleep(30) is False
    assert time.monotonic() - started < 5


def test_a_scale_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="time scale must be >= 1"):
        ScaledClock(scale=0.5)
