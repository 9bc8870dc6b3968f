"""Game-day faults: make one deployment's green serving instances misbehave, to rehearse (and test) rollback.

``make deploy AUTO_APPROVE=1 FAULT=<kind>`` sets ``production.fault``; DeployPrd passes it to green's model as
the container variable ``SAFEDEPLOY_FAULT`` (blue, dev and every other deployment never get it), and the
local serving instance acts it out:

* ``load-failure``: the model "fails to load": the instance exits at start-up with that reason, so the
  endpoint is Failed and green never takes traffic;
* ``errors:<share>``: that share of invocations answer 500 (``errors:0.2``: one in five);
* ``latency:<n>ms``: every invocation answers ``n`` ms later (without blocking the others);
* ``crash``: the instance kills itself (SIGKILL), and so does each replacement the runtime starts.

The last three act once traffic reaches the instance: from its ``FAULT_AFTER + 1``-th invocation, past the
pre-traffic hook's check, so the rehearsal exercises what watches live traffic (the alarms) mid-shift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FAULT_ENV = "SAFEDEPLOY_FAULT"
FAULT_AFTER = 20
"""Invocations an instance answers normally before its fault starts (the pre-traffic check uses one)."""
FAULT_PATTERN = r"^(load-failure|crash|errors:(0?\.\d+|1(\.0+)?)|latency:\d{1,6}ms)$"
_ERRORS = re.compile(r"^errors:(?P<share>[\d.]+)$")
_LATENCY = re.compile(r"^latency:(?P<ms>\d+)ms$")


class FaultSpecError(ValueError):
    """The fault is not one of the known kinds."""


@dataclass(frozen=True)
class Fault:
    """What one instance should do wrong."""

    kind: str
    error_share: float = 0.0
    latency_seconds: float = 0.0

    @classmethod
    def parse(cls, text: str | None) -> Fault | None:
        """``load-failure`` | ``crash`` | ``errors:0.2`` | ``latency:200ms``; None or empty: no fault."""
        if not text:
            return None
        if not re.match(FAULT_PATTERN, text):
            raise FaultSpecError(f"unknown fault {text!r}: use load-failure, crash, errors:<0..1> or latency:<n>ms")
        if match := _ERRORS.match(text):
            return cls("errors", error_share=float(match["share"]))
        if match := _LATENCY.match(text):
            return cls("latency", latency_seconds=int(match["ms"]) / 1000.0)
        return cls(text)

    def __str__(self) -> str:
        if self.kind == "errors":
            return f"errors:{self.error_share:g}"
        if self.kind == "latency":
            return f"latency:{round(self.latency_seconds * 1000)}ms"
        return self.kind
