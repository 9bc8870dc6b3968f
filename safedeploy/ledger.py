"""The deployment ledger: an append-only record of every production deployment, one JSON line per event.

Each deployment writes ``DeploymentStarted`` (blue and green, strategy, whether it is a rehearsal), then as it
goes ``TrafficShifted`` (weights and time), ``HookResult``, ``AlarmTransition``, and one closing event,
``DeploymentSucceeded`` or ``DeploymentRolledBack`` (with the reason). What serves production now is derived
from it: the green of the latest deployment that succeeded.

Lines are appended under an exclusive ``flock`` (the deployment controller and the runtime's lease watchdog
both write), fsynced, never rewritten. The ledger never keeps a torn line: a write that fails part-way (a full
disk) is cut back to where it started, and a torn tail left by a crash (``kill -9`` mid-write, power loss) is
detected before the next append, set aside to ``<ledger>.torn-<time>`` with a ``LedgerTailSetAside`` event
saying so, and the append starts on a fresh line. A rollback's record draws on the state directory's
disk reserve (:mod:`safedeploy.reserve`) when the disk is full: it must not fail for want of space, while
progress records fail and so stop the deployment.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safedeploy.reserve import critical_write

LOG = logging.getLogger(__name__)
EVENT_STARTED = "DeploymentStarted"
EVENT_SHIFTED = "TrafficShifted"
EVENT_HOOK = "HookResult"
EVENT_ALARM = "AlarmTransition"
EVENT_SUCCEEDED = "DeploymentSucceeded"
EVENT_ROLLED_BACK = "DeploymentRolledBack"
EVENT_TAIL_SET_ASIDE = "LedgerTailSetAside"
CONTROLLER_LOST = "controller lost"
"""The reason the runtime records when a deployment's controller died (or stopped renewing its lease)."""
_TAIL_CHUNK = 64 * 1024
_CRITICAL = frozenset((EVENT_ROLLED_BACK,))
"""Events that may draw on the disk reserve when the disk is full."""


@dataclass(frozen=True)
class ServedModel:
    """A model version behind an endpoint."""

    endpoint: str
    version: int
    config: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"endpoint": self.endpoint, "version": self.version, "config": self.config}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServedModel:
        """From JSON."""
        return cls(str(data["endpoint"]), int(data["version"]), str(data.get("config", "")))


class DeploymentLedger:
    """``<root>/<pipeline>.jsonl``; ``reserve`` is the state directory's disk reserve, if any."""

    def __init__(self, root: Path, pipeline_name: str, reserve: Path | None = None) -> None:
        self.path = root / f"{pipeline_name}.jsonl"
        self.reserve = reserve

    def append(self, deployment_id: str, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event (durably, on a fresh line) and return it."""
        record = {"deployment_id": deployment_id, "event": event, "time": datetime.now(UTC).isoformat(), **fields}
        line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if event in _CRITICAL:  # recording a rollback must not fail for want of space; progress may
            critical_write(self.reserve, lambda: self._append_line(line))
        else:
            self._append_line(line)
        return record

    def _append_line(self, line: bytes) -> None:
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            size = os.fstat(descriptor).st_size
            if size and os.pread(descriptor, 1, size - 1) != b"\n":
                size = self._set_aside_tail(descriptor, size)
            try:
                written = os.write(descriptor, line)
                if written != len(line):
                    raise OSError(errno.ENOSPC, f"only {written} of {len(line)} bytes written", str(self.path))
                os.fsync(descriptor)
            except BaseException:
                os.ftruncate(descriptor, size)  # never leave a torn line behind
                raise
        finally:
            os.close(descriptor)

    def _set_aside_tail(self, descriptor: int, size: int) -> int:
        """Move the bytes after the last newline to ``<ledger>.torn-<time>``; return the new size."""
        start = size
        while start > 0:
            begin = max(0, start - _TAIL_CHUNK)
            newline = os.pread(descriptor, start - begin, begin).rfind(b"\n")
            if newline >= 0:
                start = begin + newline + 1
                break
            start = begin
        tail = os.pread(descriptor, size - start, start)
        aside = self.path.with_name(f"{self.path.name}.torn-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}")
        aside.write_bytes(tail)
        os.ftruncate(descriptor, start)
        note = {
            "deployment_id": "",
            "event": EVENT_TAIL_SET_ASIDE,
            "time": datetime.now(UTC).isoformat(),
            "bytes": len(tail),
            "set_aside": str(aside),
        }
        os.write(descriptor, (json.dumps(note, sort_keys=True) + "\n").encode("utf-8"))
        os.fsync(descriptor)
        LOG.warning("the ledger %s ended in a torn line (%d bytes): set aside to %s", self.path, len(tail), aside)
        return os.fstat(descriptor).st_size

    def events(self, deployment_id: str | None = None) -> list[dict[str, Any]]:
        """Every event, oldest first (of one deployment, if given); a torn last line is skipped."""
        if not self.path.is_file():
            return []
        events = []
        lines = self.path.read_bytes().split(b"\n")
        for number, line in enumerate(lines, 1):
            if not line:
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                if number < len(lines):  # a complete line that does not parse: say so (the tail may be torn)
                    LOG.warning("%s line %d is not a JSON event; skipped", self.path, number)
                continue
            if deployment_id is None or record.get("deployment_id") == deployment_id:
                events.append(record)
        return events

    def deployments(self) -> list[dict[str, Any]]:
        """One summary per deployment, oldest first: its start event plus ``outcome`` and ``reason``."""
        summaries: dict[str, dict[str, Any]] = {}
        for record in self.events():
            if record["event"] == EVENT_STARTED:
                summaries[record["deployment_id"]] = {**record, "outcome": "InProgress", "reason": None, "steps": []}
            summary = summaries.get(record["deployment_id"])
            if summary is None:
                continue
            if record["event"] == EVENT_SHIFTED:
                summary["steps"].append(record)
            elif record["event"] in (EVENT_SUCCEEDED, EVENT_ROLLED_BACK):
                summary["outcome"] = "Succeeded" if record["event"] == EVENT_SUCCEEDED else "RolledBack"
                summary["reason"] = record.get("reason")
        return list(summaries.values())

    def live(self) -> ServedModel | None:
        """What production serves: the green of the latest deployment that succeeded."""
        for summary in reversed(self.deployments()):
            if summary["outcome"] == "Succeeded":
                return ServedModel.from_dict(summary["green"])
        return None
