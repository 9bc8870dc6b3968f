"""The deployment ledger: an append-only record of every production deployment, one JSON line per event.

Each deployment writes ``DeploymentStarted`` (blue and green, strategy, whether it is a rehearsal), then as it
goes ``TrafficShifted`` (weights and time), ``HookResult``, ``AlarmTransition``, and one closing event,
``DeploymentSucceeded`` or ``DeploymentRolledBack`` (with the reason). Lines are appended with ``O_APPEND``
and fsynced, never rewritten; a line cut short by a crash is skipped when reading, so the ledger stays
readable. What serves production now is derived from it: the green of the latest deployment that succeeded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EVENT_STARTED = "DeploymentStarted"
EVENT_SHIFTED = "TrafficShifted"
EVENT_HOOK = "HookResult"
EVENT_ALARM = "AlarmTransition"
EVENT_SUCCEEDED = "DeploymentSucceeded"
EVENT_ROLLED_BACK = "DeploymentRolledBack"


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
    """``<root>/<pipeline>.jsonl``."""

    def __init__(self, root: Path, pipeline_name: str) -> None:
        self.path = root / f"{pipeline_name}.jsonl"

    def append(self, deployment_id: str, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event (durably) and return it."""
        record = {"deployment_id": deployment_id, "event": event, "time": datetime.now(UTC).isoformat(), **fields}
        line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(descriptor, line)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        return record

    def events(self, deployment_id: str | None = None) -> list[dict[str, Any]]:
        """Every event, oldest first (of one deployment, if given); a torn last line is skipped."""
        if not self.path.is_file():
            return []
        events = []
        for line in self.path.read_text("utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
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
