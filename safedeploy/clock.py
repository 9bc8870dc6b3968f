"""The deployment's scalable clock: waits are written in model time and run ``scale`` times faster.

A canary interval of 5 minutes, a bake of 10 minutes and a 60-second alarm period keep their values in the
spec; a local run with ``scale=60`` waits 5 s, 10 s and 1 s for them, and the logic (step order, alarm
evaluation, timeouts) is unchanged. On AWS the scale is 1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class ScaledClock:
    """Wall time, and model-time waits compressed by ``scale``."""

    scale: float = 1.0
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        if not self.scale >= 1.0:
            raise ValueError(f"the time scale must be >= 1 (1 = real time), got {self.scale}")

    def real_seconds(self, model_seconds: float) -> float:
        """How long ``model_seconds`` lasts on the wall."""
        return model_seconds / self.scale

    def sleep(self, model_seconds: float) -> bool:
        """Wait ``model_seconds`` of model time; return False early if :meth:`interrupt` was called."""
        return not self._stop.wait(self.real_seconds(model_seconds))

    def interrupt(self) -> None:
        """Wake every sleeper (on shutdown)."""
        self._stop.set()
