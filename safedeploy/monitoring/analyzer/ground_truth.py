"""Ground-truth labels: read them, check them, and join them to the captured predictions (SageMaker's merge).

A label is SageMaker's ground-truth record, one JSON object a line::

    {"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "..."}, "eventVersion": "0"}

uploaded under ``<ground truth prefix>/yyyy/mm/dd/hh/<name>.jsonl`` by the hour it was *collected* (not the hour
of the inference). A captured record is joined to the label whose ``eventId`` equals the record's
``eventMetadata.inferenceId`` when the record has one, else its ``eventMetadata.eventId`` (as Model Monitor's
merge does). The merged record is the capture record with ``groundTruthData`` added.

Nothing is dropped silently: captured records without a label (coverage), labels matching no captured record
(``unknown_labels``) or a record outside the window (``labels_outside_window``), superseded duplicates (the
*latest upload* wins: the last in hour folder, file name, line order) and malformed lines (by kind, with a first
example) are all counted. The synthetic canary's and the hooks' records are excluded as in data quality.

Standard library and numpy only (the Processing job's image).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from safedeploy.monitoring.analyzer.capture import Problems, _normalized, _scores_batch, iso_millis

UTC = timezone.utc

LABEL_KINDS = ("invalid_json", "missing_fields", "bad_encoding", "bad_label")
"""Kinds of malformed ground-truth lines."""
CAPTURE_KINDS = ("invalid_json", "missing_fields", "no_prediction", "several_predictions")
"""Kinds of captured records the merge cannot use (model quality needs exactly one score per record)."""
_HOUR = re.compile(r"(\d{4})/(\d{2})/(\d{2})/(\d{2})$")

Json = dict[str, Any]


class GroundTruthError(ValueError):
    """A ground-truth record is not SageMaker's format; the message names the problem."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


@dataclass(frozen=True)
class Label:
    """One ground-truth record: the id it labels, the label (0/1) and where it was read."""

    event_id: str
    value: int
    record: Json
    where: str
    inference_time: str | None = None
    """``eventMetadata.inferenceTime`` when the label carries it (SageMaker's SDK fixtures do)."""


def parse_label(line: str | bytes) -> Label:
    """Validate one ground-truth line; raise :class:`GroundTruthError` naming what is wrong.

    The rules: a JSON object; ``groundTruthData.data`` a string ``"0"`` or ``"1"``; ``groundTruthData.encoding``
    ``"CSV"`` (the only encoding SageMaker accepts); ``eventMetadata.eventId`` a non-empty string;
    ``eventVersion`` present.
    """
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GroundTruthError("invalid_json", f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise GroundTruthError("invalid_json", f"a JSON {type(record).__name__}, not an object")
    truth, metadata = record.get("groundTruthData"), record.get("eventMetadata")
    if not isinstance(truth, dict) or "data" not in truth or "encoding" not in truth:
        raise GroundTruthError("missing_fields", "no groundTruthData with data and encoding")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("eventId"), str) or not metadata["eventId"]:
        raise GroundTruthError("missing_fields", "no eventMetadata.eventId (the captured record's inference id)")
    if "eventVersion" not in record:
        raise GroundTruthError("missing_fields", "no eventVersion")
    if truth["encoding"] != "CSV":
        raise GroundTruthError("bad_encoding", f"groundTruthData.encoding is {truth['encoding']!r}, not 'CSV'")
    data = truth["data"]
    if not isinstance(data, str) or data.strip() not in ("0", "1"):
        raise GroundTruthError("bad_label", f"groundTruthData.data is {data!r}: a binary label is '0' or '1'")
    stamp = metadata.get("inferenceTime")
    return Label(metadata["eventId"], int(data.strip()), record, "", stamp if isinstance(stamp, str) else None)


@dataclass
class LabelSet:
    """Every valid label by id (the latest upload of each), and what was counted on the way."""

    labels: dict[str, Label] = field(default_factory=dict)
    read: int = 0
    """Valid label lines read (duplicates included)."""
    duplicates: int = 0
    """Labels superseded by a later upload of the same id."""
    conflicting_duplicates: int = 0
    """Of those, the ones whose label differed from the one that won."""
    duplicate_example: str | None = None
    problems: Problems = field(default_factory=Problems)


def ground_truth_files(source: Path, start: datetime | None = None, until: datetime | None = None) -> list[Path]:
    """The ``*.jsonl`` under ``source`` in upload order, from the hour folder of ``start`` to that of ``until``.

    Labels arrive late: the job for a window reads every hour collected from the window's start until it runs
    (each label is credited to the window of its inference by the join, not by its folder). Files outside a
    ``yyyy/mm/dd/hh`` folder are read too (a hand-made input), after the dated ones.
    """
    dated: list[tuple[str, Path]] = []
    undated: list[Path] = []
    for path in sorted(source.rglob("*.jsonl")) if source.is_dir() else [source]:
        match = _HOUR.search(path.parent.as_posix())
        if match is None:
            undated.append(path)
            continue
        year, month, day, hh = (int(g) for g in match.groups())
        hour = datetime(year, month, day, hh, tzinfo=UTC)
        if start is not None and hour + timedelta(hours=1) <= start:
            continue
        if until is not None and hour > until:
            continue
        dated.append((match.group(0) + "/" + path.name, path))
    return [p for _, p in sorted(dated)] + undated


def read_labels(files: Iterable[Path]) -> LabelSet:
    """Read ground-truth files in upload order; a later label of the same id replaces an earlier one."""
    result = LabelSet()
    for path in files:
        try:
            content = path.read_bytes()
        except OSError as exc:
            result.problems.add("invalid_json", str(path), f"cannot read the file: {exc}")
            continue
        for number, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                label = parse_label(line)
            except GroundTruthError as exc:
                result.problems.add(exc.kind, where, str(exc))
                continue
            label = Label(label.event_id, label.value, label.record, where, label.inference_time)
            result.read += 1
            previous = result.labels.get(label.event_id)
            if previous is not None:
                result.duplicates += 1
                if previous.value != label.value:
                    result.conflicting_duplicates += 1
                if result.duplicate_example is None:
                    result.duplicate_example = (
                        f"{label.event_id!r} at {previous.where} (label {previous.value}) and again at {where} "
                        f"(label {label.value}); the later upload wins"
                    )
            result.labels[label.event_id] = label
    return result


@dataclass(frozen=True)
class Captured:
    """One captured invocation the merge can use: its join key, time, score and the record itself."""

    key: str
    inference_time: str
    score: float
    record: Json


@dataclass
class CaptureSet:
    """Captured records inside the window, the ids seen outside it, and what was counted."""

    records: list[Captured] = field(default_factory=list)
    outside_ids: set[str] = field(default_factory=set)
    outside_window: int = 0
    excluded: Counter[str] = field(default_factory=Counter)
    problems: Problems = field(default_factory=Problems)


def join_key(metadata: Mapping[str, Any]) -> str | None:
    """The id a label must carry: ``inferenceId`` when the caller supplied one, else the ``eventId``."""
    for name in ("inferenceId", "eventId"):
        value = metadata.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def read_captured(
    files: Iterable[Path],
    start: datetime | None,
    end: datetime | None,
    exclude_prefixes: Sequence[str] = (),
) -> CaptureSet:
    """The captured records of ``[start, end)`` (inference time) with one score each.

    Records outside the window keep only their id (a label for them is counted as belonging to another window,
    not as unknown).
    """
    lo = iso_millis(start) if start else None
    hi = iso_millis(end) if end else None
    exclude = tuple(exclude_prefixes)
    result = CaptureSet()
    pending: list[tuple[str, str, Json, str]] = []
    outputs: list[Any] = []
    for path in files:
        try:
            content = path.read_bytes()
        except OSError as exc:
            result.problems.add("invalid_json", str(path), f"cannot read the file: {exc}")
            continue
        for number, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                result.problems.add("invalid_json", where, str(exc))
                continue
            try:
                metadata = record["eventMetadata"]
                stamp = _normalized(metadata["inferenceTime"])
                key = join_key(metadata)
                if key is None:
                    raise KeyError("eventMetadata.eventId")
                output = record["captureData"]["endpointOutput"]
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                result.problems.add("missing_fields", where, f"no {exc} in the capture record")
                continue
            if (lo and stamp < lo) or (hi and stamp >= hi):
                result.outside_window += 1
                result.outside_ids.add(key)
                continue
            inference_id = metadata.get("inferenceId")
            if isinstance(inference_id, str) and exclude and inference_id.startswith(exclude):
                prefix = next(p for p in exclude if inference_id.startswith(p))
                result.excluded[prefix.rstrip("-")] += 1
                continue
            pending.append((key, stamp, record, where))
            outputs.append(output)
    for (key, stamp, record, where), scores in zip(pending, _scores_batch(outputs)):
        if not scores or not all(math.isfinite(s) for s in scores):
            result.problems.add("no_prediction", where, "the captured answer holds no readable, finite score")
        elif len(scores) > 1:
            result.problems.add(
                "several_predictions", where, f"{len(scores)} scores in one record: one label cannot label them"
            )
        else:
            result.records.append(Captured(key, stamp, scores[0], record))
    return result


@dataclass
class Merged:
    """The window's labelled records (scores and labels, in capture order) and every count of the merge."""

    records: list[Json]
    scores: Any
    labels: Any
    counts: Json


def merge(captured: CaptureSet, labels: LabelSet, start: datetime | None = None) -> Merged:
    """Join the window's captured records to their labels (SageMaker's merge) and count everything.

    A label whose id matched no record in the window is ``labels_outside_window`` when it matched a captured
    record outside it or carries an ``inferenceTime`` before ``start`` (a late label for an earlier window), else
    ``unknown_labels``.
    """
    merged: list[Json] = []
    scores: list[float] = []
    values: list[int] = []
    used: set[str] = set()
    for item in captured.records:
        label = labels.labels.get(item.key)
        if label is None:
            continue
        used.add(item.key)
        merged.append({**item.record, "groundTruthData": label.record["groundTruthData"]})
        scores.append(item.score)
        values.append(label.value)
    lo = iso_millis(start) if start else None
    outside = unknown = 0
    unknown_example: str | None = None
    for key, label in labels.labels.items():
        if key in used:
            continue
        earlier = bool(lo and label.inference_time and _safe_normalized(label.inference_time) < lo)
        if key in captured.outside_ids or earlier:
            outside += 1
        else:
            unknown += 1
            unknown_example = unknown_example or f"{label.where}: eventId {key!r} matches no captured record"
    window = len(captured.records)
    counts: Json = {
        "captured": window,
        "labelled": len(merged),
        "unlabelled": window - len(merged),
        "coverage": (len(merged) / window) if window else 0.0,
        "labels_read": labels.read,
        "labels_outside_window": outside,
        "unknown_labels": unknown,
        "unknown_label_example": unknown_example,
        "duplicate_labels": labels.duplicates,
        "conflicting_duplicate_labels": labels.conflicting_duplicates,
        "duplicate_label_example": labels.duplicate_example,
        "duplicate_rule": "the latest upload wins (hour folder, then file name, then line)",
        "malformed_labels": dict(labels.problems.counts),
        "malformed_label_examples": dict(labels.problems.examples),
        "capture_outside_window": captured.outside_window,
        "capture_excluded": dict(captured.excluded),
        "malformed_capture": dict(captured.problems.counts),
        "malformed_capture_examples": dict(captured.problems.examples),
    }
    return Merged(merged, np.asarray(scores, dtype=np.float64), np.asarray(values, dtype=np.int64), counts)


def _safe_normalized(stamp: str) -> str:
    try:
        return _normalized(stamp)
    except ValueError:
        return stamp


def merged_jsonl(records: Iterable[Json]) -> str:
    """The merged records as JSONL (one compact object a line, keys in the capture's order)."""
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
