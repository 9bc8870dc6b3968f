"""Feature schema: the exact encoded columns and categories a model was trained on.

The schema is learned once by the data stage, saved as JSON beside the datasets, copied into
``model.tar.gz`` by training, and used by serving to encode raw customer records. The same
:meth:`FeatureSchema.encode` runs in all three places, so train/serve skew cannot creep in.

This module depends on numpy and the standard library only: serving ships it inside the model's
``code/`` directory, where the rest of this package is not installed.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

SCHEMA_VERSION = 1


class FeatureEncodingError(ValueError):
    """A raw record cannot be encoded; names the record (0-based index) and the field."""

    def __init__(self, index: int, field_name: str | None, message: str) -> None:
        self.index = index
        self.field = field_name
        where = f"record {index}" + (f", field {_shown(field_name)}" if field_name else "")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class FeatureSchema:
    """Encoded layout: numeric columns as-is, then one-hot columns per category, in a fixed order."""

    numeric: tuple[str, ...]
    categorical: tuple[tuple[str, tuple[str, ...]], ...]
    ignored: tuple[str, ...] = ()
    label: str = "Churn?"
    label_values: tuple[str, str] = ("False.", "True.")
    """(negative, positive) label spellings in the raw table."""
    version: int = SCHEMA_VERSION
    _index: dict[str, dict[str, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        offsets: dict[str, dict[str, int]] = {}
        position = len(self.numeric)
        for column, categories in self.categorical:
            if not categories:
                raise ValueError(f"categorical column {column!r} has no categories")
            offsets[column] = {cat: position + i for i, cat in enumerate(categories)}
            position += len(categories)
        object.__setattr__(self, "_index", offsets)

    @property
    def width(self) -> int:
        """How many encoded columns there are (``len(features)``, without building the names)."""
        return len(self.numeric) + sum(len(categories) for _, categories in self.categorical)

    @property
    def features(self) -> list[str]:
        """Names of the encoded columns, in order (pandas ``get_dummies`` style: ``State_NJ``)."""
        names = list(self.numeric)
        for column, categories in self.categorical:
            names.extend(f"{column}_{cat}" for cat in categories)
        return names

    @property
    def raw_fields(self) -> list[str]:
        """Fields a raw record must carry (label excluded)."""
        return [*self.numeric, *(column for column, _ in self.categorical)]

    @classmethod
    def learn(
        cls,
        records: Iterable[Mapping[str, Any]],
        numeric: Sequence[str],
        categorical: Sequence[str],
        ignored: Sequence[str] = (),
        label: str = "Churn?",
        label_values: tuple[str, str] = ("False.", "True."),
    ) -> FeatureSchema:
        """Learn the category lists (sorted) from ``records``."""
        seen: dict[str, set[str]] = {column: set() for column in categorical}
        for record in records:
            for column in categorical:
                seen[column].add(str(record[column]))
        return cls(
            numeric=tuple(numeric),
            categorical=tuple((column, tuple(sorted(seen[column]))) for column in categorical),
            ignored=tuple(ignored),
            label=label,
            label_values=label_values,
        )

    def encode(self, records: Sequence[Mapping[str, Any]]) -> npt.NDArray[np.float64]:
        """Encode raw records into the model's feature matrix.

        Every numeric and categorical field must be present; ``ignored`` fields (and the label) may be;
        anything else is an error, as is a non-finite number or a category the model never saw.

        Raises:
            FeatureEncodingError: naming the first bad record and field.
        """
        allowed = {*self.raw_fields, *self.ignored, self.label}
        matrix = np.zeros((len(records), len(self.features)), dtype=np.float64)
        for i, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise FeatureEncodingError(i, None, f"expected an object of named fields, got {type(record).__name__}")
            unknown = [name for name in record if name not in allowed]
            if unknown:
                raise FeatureEncodingError(i, str(unknown[0]), f"unknown field (expected fields: {self.raw_fields})")
            row = matrix[i]
            for j, name in enumerate(self.numeric):
                row[j] = _number(i, name, record)
            for column, _ in self.categorical:
                if column not in record:
                    raise FeatureEncodingError(i, column, "missing field")
                value = record[column]
                key = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
                position = self._index[column].get(key) if key is not None else None
                if position is None:
                    known = ", ".join(self._index[column])
                    raise FeatureEncodingError(i, column, f"unknown category {_shown(value)} (known: {known})")
                row[position] = 1.0
        return matrix

    def to_json(self) -> str:
        """Serialise to the JSON saved as ``feature-schema.json``."""
        return json.dumps(
            {
                "version": self.version,
                "label": {
                    "name": self.label,
                    "negative": self.label_values[0],
                    "positive": self.label_values[1],
                },
                "numeric": list(self.numeric),
                "categorical": {column: list(cats) for column, cats in self.categorical},
                "ignored": list(self.ignored),
                "features": self.features,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> FeatureSchema:
        """Load ``feature-schema.json``; raise ``ValueError`` if it is not a valid schema."""
        try:
            doc = json.loads(text)
            if doc["version"] != SCHEMA_VERSION:
                raise ValueError(f"unsupported feature schema version {doc['version']!r}")
            schema = cls(
                numeric=tuple(doc["numeric"]),
                categorical=tuple((column, tuple(cats)) for column, cats in doc["categorical"].items()),
                ignored=tuple(doc.get("ignored", ())),
                label=doc["label"]["name"],
                label_values=(doc["label"]["negative"], doc["label"]["positive"]),
            )
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"invalid feature schema: {exc!r}") from None
        if "features" in doc and doc["features"] != schema.features:
            raise ValueError("invalid feature schema: 'features' does not match numeric + categorical")
        return schema


def _shown(value: object) -> str:
    """A client's value in a message: bounded in length and depth (a request may nest lists 900 deep)."""
    return reprlib.repr(value)


def _number(index: int, name: str, record: Mapping[str, Any]) -> float:
    if name not in record:
        raise FeatureEncodingError(index, name, "missing field")
    value = record[name]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FeatureEncodingError(index, name, f"expected a number, got {_shown(value)}")
    try:
        number = float(value)
    except ValueError:
        raise FeatureEncodingError(index, name, f"{_shown(value)} is not a number") from None
    except OverflowError:  # an integer beyond a double's range
        raise FeatureEncodingError(index, name, "the number is beyond a double's range") from None
    if not math.isfinite(number):
        raise FeatureEncodingError(index, name, f"{_shown(value)} is not a finite number")
    return number


class FeatureAlignmentError(ValueError):
    """Rows encoded for one schema cannot be given to a model of another: names the missing numeric feature."""


def align_columns(matrix: npt.NDArray[np.float64], have: Sequence[str], want: FeatureSchema) -> npt.NDArray[np.float64]:
    """``matrix`` (columns named ``have``) re-laid for a model trained on ``want``: the columns it knows, in its order.

    Why: the comparative quality gate scores the production model on the candidate's held-out rows, and the two
    may have been encoded by different schemas (a state that appears in one dataset only). A one-hot column the
    production model knows but the rows lack is 0 (that category was not seen in the rows); a column the
    production model does not know is ignored (it never learnt a split on it). A numeric feature the rows lack
    has no neutral value, so it is an error naming it. Used by ``model/train.py`` in the training job and by the
    Train stage in-process: one alignment, one measurement.

    Raises:
        FeatureAlignmentError: a numeric feature of ``want`` is not among ``have``, or the shapes disagree.
    """
    if matrix.ndim != 2 or matrix.shape[1] != len(have):
        raise FeatureAlignmentError(f"the rows have {matrix.shape[-1]} columns but {len(have)} feature names")
    position = {name: i for i, name in enumerate(have)}
    missing = [name for name in want.numeric if name not in position]
    if missing:
        raise FeatureAlignmentError(
            f"numeric feature(s) {', '.join(map(repr, missing))} of the model's schema are not in the rows "
            f"(their columns: {len(have)}); the two schemas are incompatible"
        )
    aligned = np.zeros((matrix.shape[0], want.width), dtype=np.float64)
    for j, name in enumerate(want.features):
        i = position.get(name)
        if i is not None:
            aligned[:, j] = matrix[:, i]
    return aligned
