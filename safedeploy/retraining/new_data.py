"""New data for a retraining: the configured raw table plus production's captured records that now have labels.

The labelled records are the ground-truth merge's output, a fixed contract: every object under
``naming.merged_ground_truth_uri(spec)``, JSONL, each line a SageMaker capture record with ``groundTruthData``
added (``{"data": "1", "encoding": "CSV"}``). Each becomes one row of the raw table the Data stage validates
(``data/raw_table.py``: the seed's 21 columns, the label ``Churn?`` ``True.``/``False.``):

* a JSON input (the REST API's raw record, or a list holding exactly one) gives its fields;
* a CSV input is one row of encoded features (what InvokeEndpoint takes): it is mapped back with the serving
  version's feature schema, numbers as they are and each one-hot group to its one category. A row of another
  width, or a group without exactly one 1 (and 0 elsewhere), cannot be mapped back: counted, never guessed;
* BASE64 data is decoded (SageMaker writes it for content types outside the capture header's lists) and then
  read per ``observedContentType``;
* a request holding several rows is unusable: the merge gives one label per inference.

Columns the Data stage drops anyway are filled deterministically when the record lacks them: ``Phone`` is
:data:`PHONE_FILL` and each ``*Charge`` is its minutes times the seed's tariff (:data:`CHARGE_RATES`), rounded
to cents, so the same record always gives the same row (and the same table sha256). Every cell is checked with
the raw table's own parsers first: a record the Data stage would refuse is counted unusable instead of failing
the whole retraining.

Records are deduplicated by inference id (else event id) across merged files: a window merged again later,
with more labels, appears twice and the copy in the most recently written object wins. Rows identical to a row
of the configured table or to another labelled row are dropped as exact duplicates (so a retraining whose base
table already holds an earlier retraining's rows adds only what is new). Every count is reported.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.data.raw_table import HEADER, PARSERS, RAW_COLUMNS
from safedeploy.errors import ConfigError
from safedeploy.features import FeatureSchema
from safedeploy.spec import PipelineSpec
from safedeploy.store import ArtifactRef, S3Uri

PHONE_FILL = "000-0000"
"""``Phone`` for a captured record (an identifier the Data stage drops; the API's records do not carry it)."""
CHARGE_RATES = {"Day Charge": 0.17, "Eve Charge": 0.085, "Night Charge": 0.045, "Intl Charge": 0.27}
"""The seed table's tariff per minute; each ``*Charge`` column is derived from its ``*Mins`` column."""
POSITIVE_LABELS = {"1", "1.0", "true", "True.", "yes"}
NEGATIVE_LABELS = {"0", "0.0", "false", "False.", "no"}
_KINDS = {c.name: c.kind for c in RAW_COLUMNS}


class UnusableRecordError(ValueError):
    """A labelled record that cannot become a raw row; ``kind`` is the reported reason."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass
class NewDataReport:
    """What became of the labelled records: every one is used, a duplicate, or unusable with its reason."""

    files: int = 0
    records_read: int = 0
    superseded: int = 0
    """Same inference (or event) id seen again: the copy from the most recently written object was kept."""
    exact_duplicates: int = 0
    used: int = 0
    unusable: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    """The first example per unusable reason (``file:line: detail``)."""

    def add_unusable(self, kind: str, where: str, detail: str) -> None:
        """Count one unusable record, keeping the first example of each reason."""
        self.unusable[kind] += 1
        self.examples.setdefault(kind, f"{where}: {detail}")

    def summary(self) -> str:
        """One line: read, used, duplicates, unusable per reason."""
        unusable = ", ".join(f"{kind} {count}" for kind, count in sorted(self.unusable.items())) or "none"
        return (
            f"{self.records_read} labelled records read from {self.files} merged files: {self.used} used, "
            f"{self.superseded} superseded by a later merge, {self.exact_duplicates} exact duplicates, "
            f"unusable: {unusable}"
        )

    def as_dict(self) -> dict[str, Any]:
        """For the retraining log."""
        return {
            "files": self.files,
            "records_read": self.records_read,
            "superseded": self.superseded,
            "exact_duplicates": self.exact_duplicates,
            "used": self.used,
            "unusable": dict(self.unusable),
            "examples": self.examples,
        }


@dataclass(frozen=True)
class CombinedTable:
    """The configured table plus the new labelled rows, as one raw table in the seed's format."""

    content: bytes
    sha256: str
    base_rows: int
    new_rows: int
    report: NewDataReport


def _payload_text(payload: Mapping[str, Any]) -> str:
    data, encoding = payload.get("data"), payload.get("encoding")
    if not isinstance(data, str):
        raise UnusableRecordError("bad_encoding", "the data is not text")
    if encoding in ("CSV", "JSON"):
        return data
    if encoding == "BASE64":
        try:
            return base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise UnusableRecordError("bad_encoding", "BASE64 data that is not base64 of UTF-8 text") from None
    raise UnusableRecordError("bad_encoding", f"unknown encoding {encoding!r}")


def label_of(record: Mapping[str, Any]) -> str:
    """The record's label as the raw table spells it (``True.``/``False.``)."""
    truth = record.get("groundTruthData")
    if not isinstance(truth, Mapping):
        raise UnusableRecordError("no_label", "no groundTruthData")
    text = _payload_text(truth).strip()
    if text in POSITIVE_LABELS:
        return C.LABEL_POSITIVE
    if text in NEGATIVE_LABELS:
        return C.LABEL_NEGATIVE
    raise UnusableRecordError("bad_label", f"groundTruthData {text[:40]!r} is not 0/1 or True./False.")


def _cell(name: str, value: Any) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise UnusableRecordError("invalid_value", f"{name}: {value!r}")
    if isinstance(value, float) and _KINDS[name] == "integer":
        if not value.is_integer():
            raise UnusableRecordError("invalid_value", f"{name}: {value!r} is not an integer")
        value = int(value)
    text = format(value, ".10g") if isinstance(value, float) else str(value).strip()
    try:
        PARSERS[_KINDS[name]](text)
    except ValueError as exc:
        raise UnusableRecordError("invalid_value", f"{name}: {exc}") from None
    return text


def raw_row(fields: Mapping[str, Any], label: str) -> tuple[str, ...]:
    """A raw-table row (``HEADER`` order) from a record's raw fields, the dropped columns filled (see above)."""
    unknown = sorted(set(fields) - set(HEADER))
    if unknown:
        raise UnusableRecordError("unknown_fields", ", ".join(unknown[:5]))
    values: dict[str, str] = {}
    missing = []
    for column in RAW_COLUMNS:
        if column.name in fields and fields[column.name] is not None:
            values[column.name] = _cell(column.name, fields[column.name])
        elif column.name == "Phone":
            values["Phone"] = PHONE_FILL
        elif column.name not in CHARGE_RATES:
            missing.append(column.name)
    if missing:
        raise UnusableRecordError("missing_fields", ", ".join(missing))
    for charge, rate in CHARGE_RATES.items():
        if charge not in values:
            minutes = float(values[charge.replace("Charge", "Mins")])
            values[charge] = f"{round(minutes * rate, 2):.2f}"
    return (*(values[c.name] for c in RAW_COLUMNS), label)


def decode_encoded_row(text: str, schema: FeatureSchema | None) -> dict[str, Any]:
    """Map one CSV row of encoded features back to raw fields, or raise :class:`UnusableRecordError` (never guess)."""
    if schema is None:
        raise UnusableRecordError("unmappable_csv", "an encoded CSV row, but no feature schema to map it back")
    cells = next(csv.reader([text]), [])
    if len(cells) != schema.width:
        raise UnusableRecordError(
            "unmappable_csv", f"an encoded row of {len(cells)} columns; the serving schema has {schema.width}"
        )
    try:
        numbers = [float(cell) for cell in cells]
    except ValueError:
        raise UnusableRecordError("unmappable_csv", "an encoded row with a cell that is not a number") from None
    if not all(math.isfinite(v) for v in numbers):
        raise UnusableRecordError("unmappable_csv", "an encoded row with a non-finite number")
    fields: dict[str, Any] = dict(zip(schema.numeric, numbers, strict=False))
    position = len(schema.numeric)
    for column, categories in schema.categorical:
        group = numbers[position : position + len(categories)]
        position += len(categories)
        hot = [i for i, v in enumerate(group) if v == 1.0]
        if len(hot) != 1 or any(v not in (0.0, 1.0) for v in group):
            problem = f"{column}: not exactly one of its {len(categories)} columns is 1"
            raise UnusableRecordError("unmappable_csv", problem)
        fields[column] = categories[hot[0]]
    return fields


def fields_of(record: Mapping[str, Any], schema: FeatureSchema | None) -> dict[str, Any]:
    """The raw fields of a capture record's ``endpointInput`` (JSON record, or encoded CSV mapped back)."""
    try:
        payload = record["captureData"]["endpointInput"]
    except (KeyError, TypeError):
        raise UnusableRecordError("missing_fields", "no captureData.endpointInput") from None
    if not isinstance(payload, Mapping):
        raise UnusableRecordError("missing_fields", "captureData.endpointInput is not an object")
    text = _payload_text(payload)
    media = str(payload.get("observedContentType") or "").split(";", 1)[0].strip().lower()
    if not media:
        media = "text/csv" if payload.get("encoding") == "CSV" else "application/json"
    if media == "text/csv":
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) != 1:
            raise UnusableRecordError("several_rows", f"{len(lines)} CSV rows for one label")
        return decode_encoded_row(lines[0], schema)
    if media == "application/json" or media.endswith("+json"):
        try:
            document = json.loads(text)
        except ValueError:
            raise UnusableRecordError("bad_input", "endpointInput is not JSON") from None
        if isinstance(document, list) and len(document) == 1:
            document = document[0]
        if isinstance(document, list):
            raise UnusableRecordError("several_rows", f"{len(document)} records for one label")
        if not isinstance(document, dict):
            raise UnusableRecordError("bad_input", "a JSON input that is not a record")
        return document
    raise UnusableRecordError("bad_input", f"unsupported content type {media!r}")


def _record_id(record: Mapping[str, Any]) -> str | None:
    meta = record.get("eventMetadata")
    if not isinstance(meta, Mapping):
        return None
    ident = meta.get("inferenceId") or meta.get("eventId")
    return str(ident) if ident else None


class LabelledObjects(Protocol):
    """Where the merged labelled records are read from.

    Locally the artifact store (the local Processing job uploads through it); on AWS the model-quality jobs' S3
    outputs (:class:`safedeploy.aws.retraining.JobOutputs`).
    """

    def list_objects(self, prefix: S3Uri) -> list[ArtifactRef]:
        """The objects under ``prefix``, with their last-modified times."""
        ...

    def get_bytes(self, uri: S3Uri) -> bytes:
        """One object's content."""
        ...


def read_labelled_rows(
    store: LabelledObjects, prefix: S3Uri, schema: FeatureSchema | None, report: NewDataReport
) -> list[tuple[str, ...]]:
    """Every merged labelled record under ``prefix`` as a raw row, deduplicated by id (latest object wins)."""
    objects = sorted(
        store.list_objects(prefix), key=lambda ref: (ref.last_modified or datetime.min.replace(tzinfo=UTC), ref.uri)
    )
    latest: dict[str, tuple[str, Mapping[str, Any]]] = {}
    anonymous: list[tuple[str, Mapping[str, Any]]] = []
    for ref in objects:
        if not ref.uri.endswith(".jsonl"):
            continue
        report.files += 1
        name = ref.uri.rsplit("/", 1)[-1]
        for number, line in enumerate(store.get_bytes(S3Uri.parse(ref.uri)).decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            report.records_read += 1
            where = f"{name}:{number}"
            try:
                record = json.loads(line)
            except ValueError:
                report.add_unusable("invalid_json", where, "not a JSON line")
                continue
            if not isinstance(record, dict):
                report.add_unusable("invalid_json", where, "not a JSON object")
                continue
            ident = _record_id(record)
            if ident is None:
                anonymous.append((where, record))
            else:
                if ident in latest:
                    report.superseded += 1
                latest[ident] = (where, record)
    rows = []
    for where, record in [*latest.values(), *anonymous]:
        try:
            rows.append(raw_row(fields_of(record, schema), label_of(record)))
        except UnusableRecordError as exc:
            report.add_unusable(exc.kind, where, exc.detail)
    return rows


def combine(spec: PipelineSpec, store: LabelledObjects, base: Path, schema: FeatureSchema | None) -> CombinedTable:
    """The configured table ``base`` with the new labelled rows appended (its own bytes kept as they are)."""
    report = NewDataReport()
    rows = read_labelled_rows(store, naming.merged_ground_truth_uri(spec), schema, report)
    content = base.read_bytes()
    text = content.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [name.strip() for name in next(reader, [])]
    if sorted(header) != sorted(HEADER):
        raise ConfigError(f"retraining: the configured table {base} does not have the seed's 21 columns")
    order = [HEADER.index(name) for name in header]
    existing = [tuple(cell.strip() for cell in cells) for cells in reader if any(c.strip() for c in cells)]
    seen = set(existing)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        ordered = tuple(row[i] for i in order)
        if ordered in seen:
            report.exact_duplicates += 1
            continue
        seen.add(ordered)
        writer.writerow(ordered)
        report.used += 1
    addition = out.getvalue().encode("utf-8")
    if addition and not content.endswith(b"\n"):
        content += b"\n"
    combined = content + addition
    return CombinedTable(combined, hashlib.sha256(combined).hexdigest(), len(existing), report.used, report)
