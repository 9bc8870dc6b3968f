"""Uploading ground-truth labels: every line checked first, then one object under the hour they were collected.

``safedeploy monitor ground-truth --file labels.jsonl`` calls :func:`upload_labels`. A file with any bad line is
refused as a whole, naming ``file:line`` and the problem (nothing is uploaded); a good file becomes one object
``naming.ground_truth_uri(spec)/yyyy/mm/dd/hh/labels-<yyyymmddTHHMMSSffffff>-<sha256[:8]>.jsonl`` (the current
hour, as SageMaker expects labels by collection time). The name sorts by upload time within the hour, which is
the order the merge uses to decide that a later label of the same id wins. The store writes the object
atomically with its checksum.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from safedeploy import naming
from safedeploy.errors import ConfigError
from safedeploy.monitoring.analyzer.ground_truth import GroundTruthError, parse_label
from safedeploy.spec import PipelineSpec
from safedeploy.store import ArtifactStore, S3Uri

MAX_PROBLEMS_SHOWN = 10


@dataclass(frozen=True)
class UploadedLabels:
    """Where the labels went and how many there were."""

    uri: S3Uri
    labels: int
    duplicates_in_file: int


def validate_labels(path: Path) -> tuple[bytes, int, int]:
    """The file's bytes, its label count and repeated ids; raise :class:`ConfigError` naming every bad line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the labels file: {exc}") from None
    problems: list[str] = []
    seen: set[str] = set()
    count = repeated = 0
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            label = parse_label(line)
        except GroundTruthError as exc:
            problems.append(f"{path}:{number}: {exc.kind}: {exc}")
            continue
        count += 1
        if label.event_id in seen:
            repeated += 1
        seen.add(label.event_id)
    if problems:
        shown = "\n  ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = f"\n  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        raise ConfigError(f"{len(problems)} bad ground-truth line(s); nothing was uploaded:\n  {shown}{more}")
    if not count:
        raise ConfigError(f"{path}: no ground-truth records; nothing was uploaded")
    return data, count, repeated


def upload_labels(spec: PipelineSpec, store: ArtifactStore, path: Path, now: datetime | None = None) -> UploadedLabels:
    """Validate ``path`` and upload it under the ground-truth prefix's hour folder of ``now``."""
    data, count, repeated = validate_labels(path)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    digest = hashlib.sha256(data).hexdigest()
    key = f"{moment:%Y/%m/%d/%H}/labels-{moment:%Y%m%dT%H%M%S%f}-{digest[:8]}.jsonl"
    uri = naming.ground_truth_uri(spec).join(key)
    store.put_bytes(uri, data, "application/jsonlines")
    return UploadedLabels(uri, count, repeated)
