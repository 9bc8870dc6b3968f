"""Data capture in SageMaker's JSONL format, partitioned like SageMaker's S3 layout.

Each captured invocation is one JSON line::

    {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                       "data": "...", "encoding": "CSV"},
                     "endpointOutput": {...}},
     "eventMetadata": {"eventId": "...", "inferenceTime": "2026-11-25T10:00:00Z", "inferenceId": "..."},
     "eventVersion": "0"}

Lines are buffered and flushed (by a background task, at least every ``flush_interval`` seconds, and on
close) to ``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-mss>-<uuid>.jsonl`` through the
artifact store, each file written atomically and checksummed. A graceful shutdown flushes everything; a
``kill -9`` loses at most the last interval's records.

The buffer is bounded (``max_pending`` records in all): while writes fail (a full disk) records are kept and
retried, but once the bound is reached new records are dropped and *counted* per endpoint and variant
(:attr:`CaptureWriter.dropped`), the writer's :meth:`~CaptureWriter.health` turns ``Full``, and a log line says so
once per episode, so nothing vanishes uncounted and the runtime's memory stays bounded.
"""

from __future__ import annotations

import base64
import functools
import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from safedeploy.serving.state import CaptureConfig
from safedeploy.store import ArtifactStore, S3Uri

LOG = logging.getLogger(__name__)
MAX_PENDING = 200_000
"""Records buffered at most (about 100-200 MB of CSV capture) before new ones are dropped and counted."""


@dataclass(frozen=True)
class CapturedPayload:
    """One side of an invocation as seen on the wire."""

    content_type: str
    data: bytes


@functools.lru_cache(maxsize=64)
def _encodings(csv_types: tuple[str, ...], json_types: tuple[str, ...]) -> dict[str, str]:
    """Media type -> capture encoding, for one config's ``CaptureContentTypeHeader``."""
    return {t.lower(): "JSON" for t in json_types} | {t.lower(): "CSV" for t in csv_types}


def _encode(payload: CapturedPayload, mode: str, config: CaptureConfig) -> dict[str, str]:
    media = payload.content_type.split(";", 1)[0].strip().lower()
    header = config.CaptureContentTypeHeader
    encoding = "BASE64"
    if header is not None:
        encoding = _encodings(tuple(header.CsvContentTypes), tuple(header.JsonContentTypes)).get(media, "BASE64")
    try:
        text = payload.data.decode("utf-8") if encoding != "BASE64" else None
    except UnicodeDecodeError:
        text = None
    if text is None:
        encoding, text = "BASE64", base64.b64encode(payload.data).decode("ascii")
    return {"observedContentType": payload.content_type, "mode": mode, "data": text, "encoding": encoding}


def _utc_millis(at: datetime) -> str:
    utc = at if at.tzinfo is None or at.tzinfo is UTC else at.astimezone(UTC)
    second = _utc_second(utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second)
    return f"{second}.{utc.microsecond // 1000:03d}Z"


@functools.lru_cache(maxsize=8)
def _utc_second(year: int, month: int, day: int, hour: int, minute: int, second: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS``, formatted once per second rather than once per record."""
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"


def capture_record(
    config: CaptureConfig,
    request: CapturedPayload,
    response: CapturedPayload,
    *,
    event_id: str,
    inference_time: datetime,
    inference_id: str | None,
) -> dict[str, object]:
    """Build one capture record in SageMaker's format."""
    data: dict[str, object] = {}
    modes = {option.CaptureMode for option in config.CaptureOptions}
    if modes & {"Input", "InputAndOutput"}:
        data["endpointInput"] = _encode(request, "INPUT", config)
    if modes & {"Output", "InputAndOutput"}:
        data["endpointOutput"] = _encode(response, "OUTPUT", config)
    metadata: dict[str, str] = {
        "eventId": event_id,
        "inferenceTime": _utc_millis(inference_time),
    }
    if inference_id:
        metadata["inferenceId"] = inference_id
    return {"captureData": data, "eventMetadata": metadata, "eventVersion": "0"}


@dataclass
class _Buffer:
    lines: list[bytes] = field(default_factory=list)
    first: datetime | None = None


class CaptureWriter:
    """Buffers capture lines per (destination, endpoint, variant, hour) and writes them as JSONL objects."""

    def __init__(self, store: ArtifactStore, max_buffered: int = 5000, max_pending: int = MAX_PENDING) -> None:
        self.store = store
        self.max_buffered = max_buffered
        self.max_pending = max_pending
        self._buffers: dict[tuple[str, str, str, str], _Buffer] = {}
        self._pending = 0
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.written_records = 0
        self.dropped: dict[tuple[str, str], int] = {}
        """Records dropped because the buffer was full, per (endpoint, variant)."""
        self.last_error: str | None = None
        self._full = False

    def add(self, destination: str, endpoint: str, variant: str, record: dict[str, object], at: datetime) -> bool:
        """Buffer one record (or count it dropped if the buffer is full); return True when it should be flushed now."""
        key = (destination.rstrip("/"), endpoint, variant, f"{at.year:04d}/{at.month:02d}/{at.day:02d}/{at.hour:02d}")
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        with self._lock:
            if self._pending >= self.max_pending:
                self.dropped[(endpoint, variant)] = self.dropped.get((endpoint, variant), 0) + 1
                if not self._full:
                    self._full = True
                    LOG.error("the capture buffer is full (%d records unwritten: %s); dropping new records and "
                              "counting them", self._pending, self.last_error or "writes are behind")  # fmt: skip
                return True
            buffer = self._buffers.setdefault(key, _Buffer())
            if buffer.first is None:
                buffer.first = at
            buffer.lines.append(line)
            self._pending += 1
            return len(buffer.lines) >= self.max_buffered

    def pending(self) -> int:
        """Records buffered and not yet written."""
        with self._lock:
            return self._pending

    def health(self) -> dict[str, object]:
        """``Ok``, ``Failing`` (writes fail, records kept) or ``Full`` (records dropped), with the counts."""
        with self._lock:
            state = "Full" if self._full else "Failing" if self.last_error else "Ok"
            return {
                "State": state,
                "Pending": self._pending,
                "MaxPending": self.max_pending,
                "Written": self.written_records,
                "Dropped": sum(self.dropped.values()),
                "DroppedByVariant": {f"{e}/{v}": n for (e, v), n in sorted(self.dropped.items())},
                "LastError": self.last_error,
            }

    def flush(self) -> list[S3Uri]:
        """Write every buffered record; return the objects written. Blocking: call it off the event loop."""
        with self._lock:
            buffers, self._buffers = self._buffers, {}
        written = []
        failed = False
        with self._write_lock:
            remaining = dict(sorted(buffers.items()))
            try:
                for key, buffer in list(remaining.items()):
                    destination, endpoint, variant, hour = key
                    assert buffer.first is not None  # noqa: S101 - set with the first line
                    stamp = buffer.first
                    name = f"{stamp:%M-%S}-{stamp.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
                    uri = S3Uri.parse(destination).join(endpoint, variant, hour, name)
                    self.store.put_bytes(uri, b"".join(buffer.lines), "application/jsonlines")
                    del remaining[key]
                    with self._lock:
                        self.written_records += len(buffer.lines)
                        self._pending -= len(buffer.lines)
                    written.append(uri)
            except Exception as exc:
                failed = True
                with self._lock:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                raise
            finally:  # a failed write (disk full...) puts its records back to be retried, not lost
                with self._lock:
                    for key, buffer in remaining.items():
                        current = self._buffers.setdefault(key, _Buffer(first=buffer.first))
                        current.lines[:0] = buffer.lines
                    if not failed and not remaining:
                        self._recovered()
        return written

    def _recovered(self) -> None:
        """Writes work again (called under the lock)."""
        if self._full:
            LOG.warning("the capture buffer drains again; %d records were dropped while it was full",
                        sum(self.dropped.values()))  # fmt: skip
        self._full = self._pending >= self.max_pending
        self.last_error = None
