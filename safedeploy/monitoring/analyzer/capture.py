"""Read a window of data-capture JSONL back into the model's feature columns (and its output scores).

Each captured invocation (``captureData.endpointInput/endpointOutput``, ``eventMetadata``) may carry several
rows: ``text/csv`` lines of encoded features, or JSON (one raw customer record, a list of them, or a list of
encoded rows, as the model's ``input_fn`` accepts). Raw records are encoded with the model's saved feature
schema, so the window is compared column by column with the baseline (the model's training features).

Nothing is dropped silently: lines outside the window, the synthetic canary's and the hooks' rows (inference
ids ``synthetic-`` / ``known-rows-``) are counted apart, and every malformed line is counted by kind
(``invalid_json``, ``missing_fields``, ``bad_encoding``, ``bad_input``, ``wrong_column_count``,
``output_mismatch``) with its first example. A malformed line never stops the job.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gc
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np

from safedeploy.features import FeatureSchema
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.analyzer.table import FloatArray

UTC = timezone.utc  # datetime.UTC is Python 3.11+; the framework container may run an older Python

try:  # the fast JSON parser, when the container has it
    import orjson

    _loads: Callable[[str | bytes], Any] = orjson.loads
    _JSON_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError)
except ImportError:  # pragma: no cover - exercised in containers without orjson
    _loads = json.loads
    _JSON_ERRORS = (json.JSONDecodeError, ValueError)

MALFORMED_KINDS = (
    "invalid_json",
    "missing_fields",
    "bad_encoding",
    "bad_input",
    "wrong_column_count",
    "output_mismatch",
)
_HOUR_PATH = re.compile(r"(\d{4})/(\d{2})/(\d{2})/(\d{2})$")


def iso_millis(moment: datetime) -> str:
    """``2026-12-03T10:00:00.000Z``: the capture's ``inferenceTime`` format, comparable as text."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """Parse an ISO-8601 time (``Z`` or an offset; naive means UTC)."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", ""))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _normalized(stamp: str) -> str:
    if len(stamp) == 24 and stamp[19] == "." and stamp[23] == "Z":
        return stamp
    if len(stamp) == 20 and stamp[19] == "Z":
        return stamp[:19] + ".000Z"
    return iso_millis(parse_time(stamp))


@dataclass
class Problems:
    """Malformed lines by kind, with the first example of each (file and line)."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, where: str, detail: str) -> None:
        """Count one malformed line."""
        self.counts[kind] += 1
        self.examples.setdefault(kind, f"{where}: {detail}"[:300])

    def merge(self, other: Problems) -> None:
        """Accumulate ``other``."""
        self.counts.update(other.counts)
        for kind, example in other.examples.items():
            self.examples.setdefault(kind, example)

    @property
    def total(self) -> int:
        """Malformed lines in all."""
        return sum(self.counts.values())


@dataclass
class RawFields:
    """What the JSON raw records looked like: which fields came, which were missing or unknown."""

    records: int = 0
    missing: Counter[str] = field(default_factory=Counter)
    extra: Counter[str] = field(default_factory=Counter)
    unknown_categories: dict[str, Counter[str]] = field(default_factory=dict)
    non_numeric: Counter[str] = field(default_factory=Counter)

    def merge(self, other: RawFields) -> None:
        """Accumulate ``other``."""
        self.records += other.records
        self.missing.update(other.missing)
        self.extra.update(other.extra)
        self.non_numeric.update(other.non_numeric)
        for name, values in other.unknown_categories.items():
            self.unknown_categories.setdefault(name, Counter()).update(values)


BoolArray = Any
"""numpy bool matrices (kept loose so the container's numpy version does not matter)."""


@dataclass
class Chunk:
    """Rows decoded from a group of capture files."""

    matrix: FloatArray
    """rows x features, in the baseline's column order (NaN = null or not a number)."""
    fractional: BoolArray
    """rows x features: the value arrived as a non-integral number (CSV text with a dot counts too)."""
    text: BoolArray
    """rows x features: the value arrived as text that is not a number."""
    scores: FloatArray
    """The model's score for each row (NaN if the answer was not captured or unreadable)."""


@dataclass
class WindowData:
    """A window's rows (in chunks, never one big matrix), its scores, and everything counted on the way."""

    width: int
    chunks: list[Chunk] = field(default_factory=list)
    records: int = 0
    """Captured invocations in the window (after exclusions)."""
    excluded: Counter[str] = field(default_factory=Counter)
    outside_window: int = 0
    problems: Problems = field(default_factory=Problems)
    widths: Counter[int] = field(default_factory=Counter)
    """CSV rows by column count (the preflight reads it)."""
    raw: RawFields = field(default_factory=RawFields)
    content_types: Counter[str] = field(default_factory=Counter)
    categories: dict[str, Counter[str]] = field(default_factory=dict)
    """Values of the columns the baseline types String, counted (the categorical checks compare them)."""

    @property
    def rows(self) -> int:
        """Rows in the window."""
        return sum(int(c.matrix.shape[0]) for c in self.chunks)

    def column(self, index: int) -> tuple[FloatArray, BoolArray, BoolArray]:
        """One column's values, fractional and text masks, in row order (one column in memory at a time)."""
        if not self.chunks:
            return np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
        return (
            np.concatenate([c.matrix[:, index] for c in self.chunks]),
            np.concatenate([c.fractional[:, index] for c in self.chunks]),
            np.concatenate([c.text[:, index] for c in self.chunks]),
        )

    def scores(self) -> FloatArray:
        """Every row's score, in row order."""
        return np.concatenate([c.scores for c in self.chunks]) if self.chunks else np.zeros(0)

    def merge(self, other: WindowData) -> None:
        """Append ``other`` (the rows after this one's)."""
        self.chunks.extend(other.chunks)
        self.records += other.records
        self.excluded.update(other.excluded)
        self.outside_window += other.outside_window
        self.problems.merge(other.problems)
        self.widths.update(other.widths)
        self.raw.merge(other.raw)
        self.content_types.update(other.content_types)
        for name, counts in other.categories.items():
            self.categories.setdefault(name, Counter()).update(counts)

    def counters(self) -> dict[str, Any]:
        """Everything but the rows, as JSON (a worker process hands it to its parent)."""
        return {
            "records": self.records,
            "excluded": dict(self.excluded),
            "outside_window": self.outside_window,
            "problems": {"counts": dict(self.problems.counts), "examples": self.problems.examples},
            "widths": {str(k): v for k, v in self.widths.items()},
            "raw": {
                "records": self.raw.records,
                "missing": dict(self.raw.missing),
                "extra": dict(self.raw.extra),
                "non_numeric": dict(self.raw.non_numeric),
                "unknown_categories": {k: dict(v) for k, v in self.raw.unknown_categories.items()},
            },
            "content_types": dict(self.content_types),
            "categories": {name: dict(counts) for name, counts in self.categories.items()},
        }

    @classmethod
    def from_counters(cls, width: int, counters: dict[str, Any], chunks: list[Chunk]) -> WindowData:
        """Rebuild what :meth:`counters` wrote, with the rows read back."""
        raw = counters["raw"]
        return cls(
            width=width,
            chunks=chunks,
            records=counters["records"],
            excluded=Counter(counters["excluded"]),
            outside_window=counters["outside_window"],
            problems=Problems(Counter(counters["problems"]["counts"]), dict(counters["problems"]["examples"])),
            widths=Counter({int(k): v for k, v in counters["widths"].items()}),
            raw=RawFields(
                records=raw["records"],
                missing=Counter(raw["missing"]),
                extra=Counter(raw["extra"]),
                non_numeric=Counter(raw["non_numeric"]),
                unknown_categories={k: Counter(v) for k, v in raw["unknown_categories"].items()},
            ),
            content_types=Counter(counters["content_types"]),
            categories={name: Counter(counts) for name, counts in counters.get("categories", {}).items()},
        )


GROUP_BYTES = 32 * 1024 * 1024
"""Capture files are decoded in groups of about this size: the parsed records of one group are all that is
held at a time (a million parsed records would take gigabytes; their encoded rows take 69 floats each)."""


def capture_files(source: Path, start: datetime | None = None, end: datetime | None = None) -> list[Path]:
    """Every ``*.jsonl`` under ``source``, sorted by path (the capture's time order).

    Hour folders (``yyyy/mm/dd/hh``) that end before ``start`` or begin at or after ``end`` are skipped.
    """
    files = []
    for path in sorted(source.rglob("*.jsonl")):
        match = _HOUR_PATH.search(path.parent.as_posix())
        if match and (start is not None or end is not None):
            year, month, day, hour_of_day = (int(g) for g in match.groups())
            hour = datetime(year, month, day, hour_of_day, tzinfo=UTC)
            if start is not None and hour.timestamp() + 3600 <= start.timestamp():
                continue
            if end is not None and hour >= end:
                continue
        files.append(path)
    return files


class CaptureDecoder:
    """Decodes capture lines of one model: its feature schema (optional) and the baseline's column names."""

    def __init__(
        self,
        columns: Sequence[str],
        schema: FeatureSchema | None,
        *,
        start: datetime | None,
        end: datetime | None,
        exclude_prefixes: Sequence[str] = (F.SYNTHETIC_INFERENCE_PREFIX, F.KNOWN_ROWS_INFERENCE_PREFIX),
        string_columns: Sequence[str] = (),
    ) -> None:
        self.columns = list(columns)
        self.width = len(self.columns)
        self._string_positions = [(name, self.columns.index(name)) for name in string_columns if name in self.columns]
        self.schema = schema
        self.start = iso_millis(start) if start else None
        self.end = iso_millis(end) if end else None
        self.exclude = tuple(p for p in exclude_prefixes if p)
        self._numeric_positions: list[tuple[str, int]] = []
        self._categorical: list[tuple[str, dict[Any, int]]] = []
        self._allowed: set[str] = set()
        if schema is not None:
            position = {name: i for i, name in enumerate(self.columns)}
            self._numeric_positions = [(name, position[name]) for name in schema.numeric if name in position]
            for column, categories in schema.categorical:
                lookup: dict[Any, int] = {}
                for category in categories:
                    name = f"{column}_{category}"
                    if name in position:
                        lookup[category] = position[name]
                        if category.lstrip("-").isdigit():
                            lookup[int(category)] = position[name]
                self._categorical.append((column, lookup))
            self._allowed = {*schema.raw_fields, *schema.ignored, schema.label}

    def read(self, files: Iterable[Path]) -> WindowData:
        """Decode every line of ``files`` that falls in the window, a group of files at a time.

        The cyclic garbage collector is paused meanwhile: decoding allocates millions of acyclic dicts and lists,
        and each generation-0 pass would walk them again (it more than doubles the time on a million records).
        """
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._read_groups(files)
        finally:
            if enabled:
                gc.enable()

    def _read_groups(self, files: Iterable[Path]) -> WindowData:
        window = WindowData(self.width)
        group: list[Path] = []
        size = 0
        for path in files:
            group.append(path)
            with contextlib.suppress(OSError):  # an unreadable file is counted when it is read
                size += path.stat().st_size
            if size >= GROUP_BYTES:
                window.merge(self._read_group(group))
                group, size = [], 0
        if group:
            window.merge(self._read_group(group))
        return window

    def _read_group(self, files: Iterable[Path]) -> WindowData:
        """Decode one group of files.

        The loop over lines does only what each line needs (its time, its id, where its payload goes); payloads
        are parsed afterwards in batches (a JSON array of many documents is one parser call).
        """
        problems = Problems()
        excluded: Counter[str] = Counter()
        content_types: Counter[str] = Counter()
        outside = 0
        csv_texts: list[str] = []
        csv_outputs: list[Any] = []
        json_texts: list[str] = []
        json_outputs: list[Any] = []
        json_where: list[tuple[str, int]] = []
        media_of: dict[str, str] = {}
        start, end, exclude = self.start, self.end, self.exclude
        loads = _loads
        for path in files:
            try:
                content = path.read_bytes()
            except OSError as exc:
                problems.add("bad_input", str(path), f"cannot read the file: {exc}")
                continue
            name = path.name
            for number, line in enumerate(content.splitlines(), start=1):
                try:
                    event = loads(line)
                except _JSON_ERRORS as exc:
                    if line.strip():
                        problems.add("invalid_json", f"{name}:{number}", str(exc))
                    continue
                try:
                    metadata = event["eventMetadata"]
                    stamp = metadata["inferenceTime"]
                    if len(stamp) != 24 or stamp[19] != "." or stamp[23] != "Z":
                        stamp = _normalized(stamp)
                    capture = event["captureData"]
                    endpoint_input = capture["endpointInput"]
                    data, encoding = endpoint_input["data"], endpoint_input["encoding"]
                    observed = endpoint_input.get("observedContentType") or ""
                except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                    problems.add("missing_fields", f"{name}:{number}", f"no {exc} in the capture record")
                    continue
                if (start and stamp < start) or (end and stamp >= end):
                    outside += 1
                    continue
                inference_id = metadata.get("inferenceId")
                if inference_id and exclude and inference_id.startswith(exclude):
                    prefix = next(p for p in exclude if inference_id.startswith(p))
                    excluded[prefix.rstrip("-")] += 1
                    continue
                if type(data) is not str or (encoding != "CSV" and encoding != "JSON"):
                    data = _payload_text(data, encoding)
                    if data is None:
                        problems.add("bad_encoding", f"{name}:{number}", f"{encoding!r} data that is not base64 UTF-8")
                        continue
                media = media_of.get(observed)
                if media is None:
                    media = media_of[observed] = str(observed).split(";", 1)[0].strip().lower()
                content_types[media or "unknown"] += 1
                if media == "text/csv" or (not media and encoding == "CSV"):
                    csv_texts.append(data)
                    csv_outputs.append(capture.get("endpointOutput"))
                elif media == "application/json" or media.endswith("+json") or (not media and encoding == "JSON"):
                    json_texts.append(data)
                    json_outputs.append(capture.get("endpointOutput"))
                    json_where.append((name, number))
                else:
                    content_types[media or "unknown"] -= 1
                    problems.add("bad_encoding", f"{name}:{number}", f"unsupported content type {media!r}")
        json_docs, json_scores, json_kept = self._parse_json_inputs(json_texts, json_outputs, json_where, problems)
        records = len(csv_texts) + len(json_docs)
        widths: Counter[int] = Counter()
        categories: dict[str, Counter[str]] = {}
        parts = [self._csv_rows(csv_texts, _scores_batch(csv_outputs), problems, widths, categories)]
        raw = RawFields()
        parts.append(self._json_rows(json_docs, json_scores, json_kept, problems, raw))
        chunk = Chunk(
            matrix=np.concatenate([p[0] for p in parts]),
            fractional=np.concatenate([p[1] for p in parts]),
            text=np.concatenate([p[2] for p in parts]),
            scores=np.concatenate([p[3] for p in parts]),
        )
        return WindowData(
            width=self.width,
            chunks=[chunk] if chunk.matrix.shape[0] else [],
            records=records,
            excluded=excluded,
            outside_window=outside,
            problems=problems,
            widths=widths,
            raw=raw,
            content_types=+content_types,
            categories=categories,
        )

    @staticmethod
    def _parse_json_inputs(
        texts: list[str], outputs: list[Any], where: list[tuple[str, int]], problems: Problems
    ) -> tuple[list[Any], list[list[float] | None], list[tuple[str, int]]]:
        """Parse the JSON payloads in one call (a JSON array of them); one by one only if some are broken."""
        if not texts:
            return [], [], []
        try:
            documents = _loads("[" + ",".join(texts) + "]")
            if len(documents) != len(texts):  # a payload such as '1,2' would split in two
                raise ValueError("payload count changed")
            keep = list(range(len(texts)))
        except _JSON_ERRORS:
            documents, keep = [], []
            for index, text in enumerate(texts):
                try:
                    documents.append(_loads(text))
                except _JSON_ERRORS as exc:
                    name, number = where[index]
                    problems.add("bad_input", f"{name}:{number}", f"endpointInput is not JSON: {exc}")
                    continue
                keep.append(index)
        scores = _scores_batch([outputs[i] for i in keep])
        return documents, scores, [where[i] for i in keep]

    # --- CSV -------------------------------------------------------------------------------------------
    def _csv_rows(
        self,
        texts: list[str],
        scores: list[list[float] | None],
        problems: Problems,
        widths: Counter[int],
        categories: dict[str, Counter[str]],
    ) -> tuple[FloatArray, Any, Any, FloatArray]:
        """Rows of the model's width, parsed in one pass; rows of another width are counted, not used.

        The values of String-typed columns are counted into ``categories`` as text.
        """
        width = self.width
        lines: list[str] = []
        row_scores: list[float] = []
        for record, text in enumerate(texts):
            record_lines = [line for line in text.splitlines() if line.strip(" \t,")]
            record_scores = scores[record]
            if record_scores is not None and len(record_scores) != len(record_lines):
                problems.add("output_mismatch", f"csv record {record}", "scores do not match the rows")
                record_scores = None
            for index, line in enumerate(record_lines):
                count = line.count(",") + 1
                widths[count] += 1
                if count != width:
                    problems.add("wrong_column_count", f"csv record {record}", f"{count} columns, expected {width}")
                    continue
                lines.append(line)
                row_scores.append(record_scores[index] if record_scores is not None else math.nan)
        if not lines:
            return _empty(width)
        blob = ",".join(lines)
        if self._string_positions:
            tokens = blob.split(",")
            for name, position in self._string_positions:
                values = (token.strip().strip('"') for token in tokens[position::width])
                categories.setdefault(name, Counter()).update(value for value in values if value)
        try:
            matrix = np.array(blob.split(","), dtype=np.float64).reshape(len(lines), width)
            text_mask = np.zeros(matrix.shape, dtype=bool)
        except ValueError:
            matrix, text_mask = self._csv_carefully(lines)
        # Model Monitor types CSV text: "1.5" is Fractional, "3" Integral; a dot makes a token Fractional.
        fractional = (matrix != np.trunc(matrix)) & np.isfinite(matrix)
        if "." in blob:
            dotted = np.array(["." in token for token in blob.split(",")], dtype=bool).reshape(matrix.shape)
            fractional |= dotted & ~text_mask
        return matrix, fractional, text_mask, np.asarray(row_scores, dtype=np.float64)

    def _csv_carefully(self, lines: list[str]) -> tuple[FloatArray, Any]:
        matrix = np.full((len(lines), self.width), np.nan, dtype=np.float64)
        text_mask = np.zeros(matrix.shape, dtype=bool)
        for row, line in enumerate(lines):
            for column, token in enumerate(line.split(",")):
                stripped = token.strip().strip('"')
                if not stripped:
                    continue
                try:
                    matrix[row, column] = float(stripped)
                except ValueError:
                    text_mask[row, column] = True
        return matrix, text_mask

    # --- JSON ------------------------------------------------------------------------------------------
    def _json_rows(
        self,
        documents: list[Any],
        scores: list[list[float] | None],
        where: list[tuple[str, int]],
        problems: Problems,
        raw: RawFields,
    ) -> tuple[FloatArray, Any, Any, FloatArray]:
        records: list[Mapping[str, Any]] = []
        record_scores: list[float] = []
        rows: list[list[Any]] = []
        row_scores: list[float] = []
        if documents and self.schema is not None and all(type(d) is dict for d in documents):
            # The REST API's shape: one raw record per request, one score per answer.
            single = [s[0] if s is not None and len(s) == 1 else math.nan for s in scores]
            for index, item_scores in enumerate(scores):
                if item_scores is not None and len(item_scores) != 1:
                    problems.add("output_mismatch", _at(where[index]), f"{len(item_scores)} scores for 1 record")
            return self._encode_records(documents, single, raw)
        for index, document in enumerate(documents):
            items = [document] if type(document) is dict else document
            if type(items) is not list or not items:
                problems.add("bad_input", _at(where[index]), "JSON input is neither a record, records nor rows")
                continue
            item_scores = scores[index]
            if item_scores is not None and len(item_scores) != len(items):
                problems.add("output_mismatch", _at(where[index]), f"{len(item_scores)} scores for {len(items)} rows")
                item_scores = None
            if (len(items) == 1 and type(items[0]) is dict) or all(type(item) is dict for item in items):
                if self.schema is None:
                    problems.add("bad_input", _at(where[index]), "raw records, but no feature schema to encode them")
                    continue
                records.extend(items)
                record_scores.extend(item_scores if item_scores is not None else [math.nan] * len(items))
            elif all(isinstance(item, list) for item in items):
                for item in items:
                    if len(item) != self.width:
                        problems.add(
                            "wrong_column_count", _at(where[index]), f"{len(item)} columns, expected {self.width}"
                        )
                        continue
                    rows.append(item)
                row_scores.extend(item_scores if item_scores is not None else [math.nan] * len(items))
            else:
                problems.add("bad_input", _at(where[index]), "a JSON list that mixes records and rows")
        parts = [_empty(self.width)]
        if rows:
            parts.append(self._json_feature_rows(rows, row_scores[: len(rows)]))
        if records:
            parts.append(self._encode_records(records, record_scores, raw))
        return (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
            np.concatenate([p[3] for p in parts]),
        )

    def _json_feature_rows(self, rows: list[list[Any]], scores: list[float]) -> tuple[FloatArray, Any, Any, FloatArray]:
        try:
            matrix = np.array(rows, dtype=np.float64)
            text_mask = np.zeros(matrix.shape, dtype=bool)
        except (ValueError, TypeError):
            matrix = np.full((len(rows), self.width), np.nan, dtype=np.float64)
            text_mask = np.zeros(matrix.shape, dtype=bool)
            for r, row in enumerate(rows):
                for c, value in enumerate(row):
                    number = _number(value)
                    if number is None and value is not None:
                        text_mask[r, c] = True
                    elif number is not None:
                        matrix[r, c] = number
        fractional = (matrix != np.trunc(matrix)) & np.isfinite(matrix)
        return matrix, fractional, text_mask, np.asarray(scores, dtype=np.float64)

    def _encode_records(
        self, records: list[Mapping[str, Any]], scores: list[float], raw: RawFields
    ) -> tuple[FloatArray, Any, Any, FloatArray]:
        """Encode raw records column by column (a list comprehension per field, not a loop per record)."""
        n = len(records)
        matrix = np.zeros((n, self.width), dtype=np.float64)
        text_mask = np.zeros(matrix.shape, dtype=bool)
        fractional = np.zeros(matrix.shape, dtype=bool)
        raw.records += n
        numeric = self._numeric_positions
        if len(numeric) > 1:  # the common case: every record has every number, as an int or a float
            try:
                rows = list(map(itemgetter(*(name for name, _ in numeric)), records))
                plain = set(map(type, chain.from_iterable(rows))) <= _INT_OR_FLOAT
            except KeyError:
                plain = False
            if plain:
                block = np.array(rows, dtype=np.float64)
                columns = [position for _, position in numeric]
                matrix[:, columns] = block
                fractional[:, columns] = (block != np.trunc(block)) & np.isfinite(block)
                numeric = []
        for name, position in numeric:
            values = [record.get(name) for record in records]
            kinds = set(map(type, values))
            if kinds <= _PLAIN_NUMBERS:  # the common case: one C-level conversion
                column = np.array(values, dtype=np.float64)
                if type(None) in kinds:  # None became NaN: count it missing
                    raw.missing[name] += values.count(None)
            else:
                column = np.full(n, np.nan)
                for i, value in enumerate(values):
                    number = _number(value)
                    if number is not None:
                        column[i] = number
                    elif value is None:
                        raw.missing[name] += 1
                    else:
                        text_mask[i, position] = True
                        raw.non_numeric[name] += 1
            matrix[:, position] = column
            fractional[:, position] = (column != np.trunc(column)) & np.isfinite(column)
        for name, lookup in self._categorical:
            positions = sorted(set(lookup.values()))
            values = [record.get(name) for record in records]
            try:
                indices = np.array([lookup.get(v, -1) for v in values], dtype=np.int64)
            except TypeError:  # an unhashable value (a list, an object) is no category
                indices = np.array(
                    [lookup.get(v, -1) if v.__hash__ is not None else -1 for v in values], dtype=np.int64
                )
            for position in positions:
                matrix[:, position] = indices == position
            missing = np.array([v is None for v in values], dtype=bool)
            unknown = (indices < 0) & ~missing
            if missing.any():
                raw.missing[name] += int(missing.sum())
                matrix[np.ix_(missing, np.array(positions))] = np.nan
            if unknown.any():
                counter = raw.unknown_categories.setdefault(name, Counter())
                counter.update(str(values[i]) for i in np.flatnonzero(unknown))
        allowed = self._allowed
        if not allowed.issuperset(chain.from_iterable(records)):  # one C-level pass over every key
            for record in records:
                for key in record:
                    if key not in allowed:
                        raw.extra[str(key)] += 1
        return matrix, fractional, text_mask, np.asarray(scores, dtype=np.float64)


def _at(where: tuple[str, int]) -> str:
    """``file:line`` of a capture record, formatted only when something is reported about it."""
    return f"{where[0]}:{where[1]}"


_PLAIN_NUMBERS = frozenset({int, float, type(None)})
_INT_OR_FLOAT = frozenset({int, float})


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _empty(width: int) -> tuple[FloatArray, Any, Any, FloatArray]:
    return (
        np.zeros((0, width), dtype=np.float64),
        np.zeros((0, width), dtype=bool),
        np.zeros((0, width), dtype=bool),
        np.zeros(0, dtype=np.float64),
    )


def _payload_text(data: Any, encoding: str) -> str | None:
    if not isinstance(data, str):
        return None
    if encoding in ("CSV", "JSON"):
        return data
    if encoding == "BASE64":
        try:
            return base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
    return None


def _scores_batch(outputs: list[Any]) -> list[list[float] | None]:
    """The model's scores from each captured answer (JSON ``predictions`` or CSV lines); None where unreadable.

    JSON answers are parsed together as one JSON array; the common shape ``{"predictions": [{"score": x}]}``
    is read without per-answer function calls.
    """
    result: list[list[float] | None] = [None] * len(outputs)
    json_at: list[int] = []
    json_texts: list[str] = []
    for index, output in enumerate(outputs):
        if type(output) is not dict:
            continue
        text = output.get("data")
        encoding = output.get("encoding")
        if type(text) is not str or (encoding != "CSV" and encoding != "JSON"):
            text = _payload_text(text, str(encoding))
            if text is None:
                continue
        if encoding == "JSON" or text.startswith(("{", "[")):
            json_at.append(index)
            json_texts.append(text)
        else:
            try:
                result[index] = [float(line) for line in text.split()]
            except ValueError:
                continue
    if json_texts:
        try:
            documents = _loads("[" + ",".join(json_texts) + "]")
            if len(documents) != len(json_texts):
                raise ValueError("answer count changed")
        except _JSON_ERRORS:
            documents = []
            for text in json_texts:
                try:
                    documents.append(_loads(text))
                except _JSON_ERRORS:
                    documents.append(None)
        for index, document in zip(json_at, documents):
            try:  # the model's shape, {"predictions": [{"score": x}]}, without a call per answer
                result[index] = [float(p["score"]) for p in document["predictions"]]
            except (KeyError, TypeError, ValueError):
                result[index] = _predictions(document)
    return result


def _predictions(document: Any) -> list[float] | None:
    try:
        predictions = document["predictions"] if type(document) is dict else document
        return [float(p["score"] if type(p) is dict else p) for p in predictions]
    except (ValueError, KeyError, TypeError):
        return None
