"""A dataset as the analyzer sees it: named columns of numbers (NaN where missing) with deequ's type counts.

deequ (and so Model Monitor) infers a column's type from its values' text: each value is Null, Integral,
Fractional, Boolean or String by regular expression, and the column is String if any value is, else
Fractional if any value is, else Integral. :func:`classify_tokens` follows those rules for CSV text;
numbers that arrive already parsed (JSON) are typed by their value (an integral float counts as Integral:
deviation documented in ``docs/monitoring.md``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from safedeploy.monitoring.analyzer import formats as F

FloatArray = npt.NDArray[np.float64]

# deequ's DataType analyzer patterns (analyzers/DataType.scala): an optional sign, digits, a dot.
_FRACTIONAL = re.compile(r"^(-|\+)? ?\d*\.\d*$")
_INTEGRAL = re.compile(r"^(-|\+)? ?\d*$")
_BOOLEAN = re.compile(r"^(true|false)$")


class DatasetError(ValueError):
    """The input dataset cannot be read (names the file and the problem)."""


@dataclass
class TypeCounts:
    """How many values of a column are of each deequ type."""

    null: int = 0
    integral: int = 0
    fractional: int = 0
    boolean: int = 0
    string: int = 0

    @property
    def present(self) -> int:
        """Values that are not null."""
        return self.integral + self.fractional + self.boolean + self.string

    def inferred_type(self) -> str:
        """Deequ's decision: String if any String (or Boolean mixed with numbers), then Fractional, Integral."""
        if self.present == 0:
            return F.UNKNOWN
        if self.string > 0 or self.boolean > 0:  # Model Monitor has no Boolean type: true/false are text
            return F.STRING
        if self.fractional > 0:
            return F.FRACTIONAL
        return F.INTEGRAL

    def matching(self, expected: str) -> int:
        """Present values compatible with ``expected`` (an Integral is a valid Fractional; anything is a String)."""
        if expected == F.INTEGRAL:
            return self.integral
        if expected == F.FRACTIONAL:
            return self.integral + self.fractional
        return self.present

    def add(self, other: TypeCounts) -> None:
        """Accumulate ``other`` into this."""
        self.null += other.null
        self.integral += other.integral
        self.fractional += other.fractional
        self.boolean += other.boolean
        self.string += other.string


@dataclass
class Column:
    """One column: numbers (NaN for null or non-numeric), type counts, and the text of non-numeric values."""

    name: str
    values: FloatArray
    types: TypeCounts
    strings: list[str] | None = None
    """Every present value as text, kept only for columns that are (or may be) String-typed."""

    @property
    def count(self) -> int:
        """Rows, null included."""
        return int(self.values.shape[0])


@dataclass
class Table:
    """Named columns of one length; ``item_count`` is the number of rows."""

    columns: list[Column]
    item_count: int
    notes: dict[str, int] = field(default_factory=dict)

    def names(self) -> list[str]:
        """Column names, in order."""
        return [c.name for c in self.columns]


def classify_tokens(tokens: Sequence[str]) -> tuple[TypeCounts, FloatArray, list[str]]:
    """Type every token as deequ does; return the counts, the numbers (NaN if not numeric) and the present text.

    Distinct tokens are classified once (a column of 1,000,000 zeros and ones costs two regex matches).
    """
    counts = TypeCounts()
    values = np.full(len(tokens), np.nan, dtype=np.float64)
    kinds: dict[str, tuple[str, float]] = {}
    present: list[str] = []
    for i, token in enumerate(tokens):
        known = kinds.get(token)
        if known is None:
            known = kinds[token] = _classify(token)
        kind, number = known
        if kind == "null":
            counts.null += 1
            continue
        present.append(token)
        if kind == "integral":
            counts.integral += 1
            values[i] = number
        elif kind == "fractional":
            counts.fractional += 1
            values[i] = number
        elif kind == "boolean":
            counts.boolean += 1
        else:
            counts.string += 1
    return counts, values, present


def _classify(token: str) -> tuple[str, float]:
    text = token.strip()
    if text == "":
        return "null", np.nan
    if _INTEGRAL.match(text) and any(ch.isdigit() for ch in text):
        return "integral", float(text.replace(" ", ""))
    if _FRACTIONAL.match(text) and any(ch.isdigit() for ch in text):
        return "fractional", float(text.replace(" ", ""))
    if _BOOLEAN.match(text):
        return "boolean", np.nan
    return "string", np.nan


def read_csv_with_header(path: str, text: str) -> Table:
    """Read a CSV with a header row (SageMaker's ``dataset_format={"csv": {"header": true}}``).

    Raises:
        DatasetError: no header, a duplicated or empty column name, or a row of the wrong width (named by line).
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError(f"{path}: the file is empty; a CSV with a header row is expected") from None
    except csv.Error as exc:
        raise DatasetError(f"{path}: line 1: {exc}") from None
    names = [name.strip() for name in header]
    if not names or any(not name for name in names):
        raise DatasetError(f"{path}: line 1: the header has an empty column name: {header!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DatasetError(f"{path}: line 1: duplicated column name(s) {', '.join(duplicates)}")
    cells: list[list[str]] = [[] for _ in names]
    rows = 0
    try:
        for row in reader:
            if not row:
                continue
            if len(row) != len(names):
                raise DatasetError(
                    f"{path}: line {reader.line_num}: {len(row)} values, but the header names {len(names)} columns"
                )
            for column, value in zip(cells, row):
                column.append(value)
            rows += 1
    except csv.Error as exc:
        raise DatasetError(f"{path}: line {reader.line_num}: {exc}") from None
    if rows == 0:
        raise DatasetError(f"{path}: the header is the only line; there is nothing to baseline")
    columns = []
    for name, tokens in zip(names, cells):
        types, values, present = classify_tokens(tokens)
        keep = present if types.inferred_type() == F.STRING else None
        columns.append(Column(name, values, types, keep))
    return Table(columns, rows)
