"""The raw churn table contract (the seed's format) and its validating reader.

21 columns with a header line; ``Churn?`` is ``True.`` or ``False.``. Every cell is checked before anything
is written, and every problem is reported with its file, line and column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from safedeploy import constants as C
from safedeploy.errors import DataProblem, DataValidationError

Value = str | int | float
Kind = Literal["state", "area_code", "yes_no", "integer", "number", "identifier"]
Role = Literal["feature", "categorical", "ignored"]

_INTEGER = re.compile(r"^[+-]?\d+$")
_AREA_CODE = re.compile(r"^\d{3}$")
_MAX_PROBLEMS = 50


@dataclass(frozen=True)
class Column:
    """One column of the raw table: its type and what the pipeline does with it."""

    name: str
    kind: Kind
    role: Role


RAW_COLUMNS: tuple[Column, ...] = (
    Column("State", "state", "categorical"),
    Column("Account Length", "integer", "feature"),
    Column("Area Code", "area_code", "categorical"),
    Column("Phone", "identifier", "ignored"),
    Column("Int'l Plan", "yes_no", "categorical"),
    Column("VMail Plan", "yes_no", "categorical"),
    Column("VMail Message", "integer", "feature"),
    Column("Day Mins", "number", "feature"),
    Column("Day Calls", "integer", "feature"),
    Column("Day Charge", "number", "ignored"),
    Column("Eve Mins", "number", "feature"),
    Column("Eve Calls", "integer", "feature"),
    Column("Eve Charge", "number", "ignored"),
    Column("Night Mins", "number", "feature"),
    Column("Night Calls", "integer", "feature"),
    Column("Night Charge", "number", "ignored"),
    Column("Intl Mins", "number", "feature"),
    Column("Intl Calls", "integer", "feature"),
    Column("Intl Charge", "number", "ignored"),
    Column("CustServ Calls", "integer", "feature"),
)
"""The 20 non-label columns, in the seed's order; the label ``Churn?`` comes last."""

HEADER: tuple[str, ...] = (*(c.name for c in RAW_COLUMNS), C.LABEL_COLUMN)
NUMERIC_FEATURES: tuple[str, ...] = tuple(c.name for c in RAW_COLUMNS if c.role == "feature")
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(c.name for c in RAW_COLUMNS if c.role == "categorical")
IGNORED_COLUMNS: tuple[str, ...] = tuple(c.name for c in RAW_COLUMNS if c.role == "ignored")


def _state(text: str) -> Value:
    if text not in C.STATES:
        raise ValueError(f"unknown state {text!r} (expected a two-letter US state code or DC)")
    return text


def _area_code(text: str) -> Value:
    if not _AREA_CODE.match(text):
        raise ValueError(f"{text!r} is not a three-digit area code")
    return text


def _yes_no(text: str) -> Value:
    if text not in ("yes", "no"):
        raise ValueError(f"{text!r} is not 'yes' or 'no'")
    return text


def _integer(text: str) -> Value:
    if not _INTEGER.match(text):
        raise ValueError(f"{text!r} is not an integer")
    value = int(text)
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return value


def _number(text: str) -> Value:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return value


def _identifier(text: str) -> Value:
    return text


PARSERS: dict[Kind, Callable[[str], Value]] = {
    "state": _state,
    "area_code": _area_code,
    "yes_no": _yes_no,
    "integer": _integer,
    "number": _number,
    "identifier": _identifier,
}
"""Cell parser per column kind: return the typed value or raise ``ValueError`` saying what is wrong."""


@dataclass(frozen=True)
class RawTable:
    """A validated raw table: typed records, 0/1 labels, and the file's sha256."""

    path: Path
    content: bytes
    sha256: str
    records: list[dict[str, Value]]
    labels: list[int]


class _Problems:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[DataProblem] = []
        self.total = 0

    def add(self, line: int | None, column: str | None, message: str) -> None:
        self.total += 1
        if len(self.items) < _MAX_PROBLEMS:
            self.items.append(DataProblem(line, column, message))

    def raise_if_any(self) -> None:
        if self.total:
            raise DataValidationError(self.path, self.items, self.total)


def read_raw_table(path: Path) -> RawTable:
    """Read and validate a raw churn table.

    Raises:
        DataValidationError: for an unreadable or empty file, a missing, extra or duplicate column, a row of
            the wrong width, an empty or ill-typed cell, or an unknown label, naming file, line and column.
    """
    problems = _Problems(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataValidationError(path, [DataProblem(None, None, f"cannot read file: {exc.strerror}")]) from None
    if not data.strip():
        raise DataValidationError(path, [DataProblem(None, None, "file is empty (expected a header line)")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataValidationError(path, [DataProblem(None, None, f"not UTF-8 text ({exc.reason})")]) from None

    reader = csv.reader(io.StringIO(text, newline=""))
    header = [name.strip() for name in next(reader)]
    _check_header(header, problems)
    problems.raise_if_any()

    records: list[dict[str, Value]] = []
    labels: list[int] = []
    parsers = {c.name: PARSERS[c.kind] for c in RAW_COLUMNS}
    for cells in reader:
        line = reader.line_num
        if not cells or all(not cell.strip() for cell in cells):
            continue  # blank line
        if len(cells) != len(header):
            problems.add(line, None, f"expected {len(header)} fields, found {len(cells)}")
            continue
        record: dict[str, Value] = {}
        label: int | None = None
        for name, raw in zip(header, cells, strict=True):
            cell = raw.strip()
            if name == C.LABEL_COLUMN:
                label = _label(cell, line, problems)
                continue
            if not cell:
                problems.add(line, name, "empty value")
                continue
            try:
                record[name] = parsers[name](cell)
            except ValueError as exc:
                problems.add(line, name, str(exc))
        if label is not None and len(record) == len(RAW_COLUMNS):
            records.append(record)
            labels.append(label)
    if not records and not problems.total:
        problems.add(None, None, "no data rows after the header")
    problems.raise_if_any()
    return RawTable(path=path, content=data, sha256=hashlib.sha256(data).hexdigest(), records=records, labels=labels)


def _check_header(header: list[str], problems: _Problems) -> None:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            problems.add(1, name, "duplicate column")
        seen.add(name)
    for name in HEADER:
        if name not in seen:
            problems.add(1, name, "missing column")
    for name in header:
        if name not in HEADER:
            problems.add(1, name, f"unexpected column (the table has exactly these 21: {', '.join(HEADER)})")


def _label(cell: str, line: int, problems: _Problems) -> int | None:
    if cell == C.LABEL_POSITIVE:
        return 1
    if cell == C.LABEL_NEGATIVE:
        return 0
    problems.add(
        line,
        C.LABEL_COLUMN,
        f"unknown label {cell!r} (expected {C.LABEL_POSITIVE!r} or {C.LABEL_NEGATIVE!r})",
    )
    return None
