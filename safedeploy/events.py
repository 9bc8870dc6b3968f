"""The pipeline's event bus: EventBridge-shaped events in an append-only log that components subscribe to.

Alarm state changes are published as CloudWatch publishes them to EventBridge (``source: aws.cloudwatch``,
``detail-type: CloudWatch Alarm State Change``, ``detail.alarmName``, ``detail.state`` / ``previousState`` with
``value``, ``reason``, ``timestamp``). A subscriber (retraining, a notebook) keeps the offset it has read up
to and asks :meth:`EventLog.read` for what came after, with an EventBridge-style pattern match on
``source`` / ``detail-type`` / ``detail.alarmName``. Appends are locked and fsynced; a torn line is skipped.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safedeploy.locking import exclusive_lock

ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"
CLOUDWATCH_SOURCE = "aws.cloudwatch"


class EventLog:
    """``<root>/events.jsonl``."""

    def __init__(self, root: Path, region: str, account_id: str) -> None:
        self.path = root / "events.jsonl"
        self.region = region
        self.account_id = account_id

    def put(
        self, source: str, detail_type: str, detail: Mapping[str, Any], resources: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Publish one event (PutEvents); return it as stored."""
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": source,
            "account": self.account_id,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": list(resources),
            "detail": dict(detail),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.path.with_suffix(".lock"), wait=True), self.path.open("ab") as handle:
            if handle.tell() > 0:
                with self.path.open("rb") as reader:
                    reader.seek(-1, os.SEEK_END)
                    if reader.read(1) != b"\n":  # a writer died mid-line: end that line, never glue onto it
                        handle.write(b"\n")
            handle.write(json.dumps(event).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        return event

    def read(self, after: int = 0, pattern: Mapping[str, Any] | None = None) -> tuple[list[dict[str, Any]], int]:
        """Events after byte offset ``after`` that match ``pattern``; and the offset to read from next time."""
        if not self.path.is_file():
            return [], after
        with self.path.open("rb") as handle:
            handle.seek(after)
            content = handle.read()
        complete = content.rfind(b"\n") + 1  # a line still being written is read next time
        events = []
        for raw in content[:complete].splitlines():
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if pattern is None or matches(event, pattern):
                events.append(event)
        return events, after + complete


def matches(event: Mapping[str, Any], pattern: Mapping[str, Any]) -> bool:
    """EventBridge's pattern rule for the fields used here.

    Each key's value is a list of allowed values, or a nested pattern.
    """
    for key, allowed in pattern.items():
        value = event.get(key)
        if isinstance(allowed, Mapping):
            if not isinstance(value, Mapping) or not matches(value, allowed):
                return False
        elif value not in allowed:
            return False
    return True


def alarm_state_change(
    log: EventLog, alarm: str, arn: str, old: str, new: str, reason: str, configuration: Mapping[str, Any]
) -> dict[str, Any]:
    """Publish CloudWatch's alarm state-change event."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    return log.put(
        CLOUDWATCH_SOURCE,
        ALARM_STATE_CHANGE,
        {
            "alarmName": alarm,
            "state": {"value": new, "reason": reason, "timestamp": now},
            "previousState": {"value": old},
            "configuration": dict(configuration),
        },
        resources=[arn],
    )
