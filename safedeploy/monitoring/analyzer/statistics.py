"""``statistics.json``: per-feature statistics in Model Monitor's schema, and reading a baseline's back.

Numeric features (Integral, Fractional): ``num_present``/``num_missing``, ``mean``, ``sum``, population
``std_dev``, ``min``, ``max`` and the KLL distribution (10 equal-width buckets between min and max, and
deequ's deterministic quantile sketch, c 0.64, k 2048, as ``sketch.data``). String features: counts,
``distinct_count`` and the categorical buckets (value, count). Field names, nesting and number types follow
the analyzer's output (``version`` 0.0, counts as integers, ``distinct_count`` as a float).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.analyzer.kll import QuantileSketch, kll_buckets
from safedeploy.monitoring.analyzer.partials import NumericPartial
from safedeploy.monitoring.analyzer.table import Column, Table

Json = dict[str, Any]


class BaselineError(ValueError):
    """A baseline file is missing, unreadable or not in the expected schema (names the file)."""


def numeric_feature(column: Column, inferred: str) -> tuple[Json, QuantileSketch]:
    """Statistics of a numeric column (its present values) and the sketch behind its distribution."""
    partial = NumericPartial.of(column.values, column.types, column.count)
    return numeric_document(column.name, inferred, partial), partial.sketch


def numeric_document(name: str, inferred: str, partial: NumericPartial) -> Json:
    """A numeric feature's ``statistics.json`` entry from its (merged) aggregates."""
    present = partial.count
    stats: Json = {
        "name": name,
        "inferred_type": inferred,
        "numerical_statistics": {"common": {"num_present": present, "num_missing": partial.rows - present}},
    }
    if present:
        sketch = partial.sketch
        buckets = kll_buckets(sketch, *partial.kll_bounds(), F.KLL_BUCKETS)
        for bucket in buckets:  # the analyzer writes counts as doubles (2333.0)
            bucket["count"] = float(bucket["count"])
        stats["numerical_statistics"].update(
            {
                "mean": partial.total / present,
                "sum": partial.total,
                "std_dev": partial.std_dev,
                "min": float(partial.minimum) if partial.minimum is not None else None,
                "max": float(partial.maximum) if partial.maximum is not None else None,
                "distribution": {
                    "kll": {
                        "buckets": buckets,
                        "sketch": {"parameters": sketch.parameters(), "data": sketch.data()},
                    }
                },
            }
        )
    return stats


def string_feature(column: Column) -> Json:
    """Statistics of a String column: counts, distinct count and the value histogram (most frequent first)."""
    strings = column.strings or []
    histogram = Counter(strings)
    buckets = [{"value": value, "count": count} for value, count in sorted(histogram.items(), key=_by_count)]
    return {
        "name": column.name,
        "inferred_type": F.STRING,
        "string_statistics": {
            "common": {"num_present": len(strings), "num_missing": column.count - len(strings)},
            "distinct_count": float(len(histogram)),
            "distribution": {"categorical": {"buckets": buckets}},
        },
    }


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


@dataclass
class DatasetStatistics:
    """A dataset's ``statistics.json`` document and the sketches behind its numeric features."""

    document: Json
    sketches: dict[str, QuantileSketch]


def dataset_statistics(table: Table, types: dict[str, str] | None = None) -> DatasetStatistics:
    """Compute ``statistics.json`` for ``table``; ``types`` forces a feature's type (the baseline's, in a window).

    A numeric-typed baseline feature stays numeric in a window even if some of its values are text: those count
    as missing here and are judged by the data-type check.
    """
    features: list[Json] = []
    sketches: dict[str, QuantileSketch] = {}
    for column in table.columns:
        inferred = (types or {}).get(column.name) or column.types.inferred_type()
        if inferred in (F.INTEGRAL, F.FRACTIONAL):
            stats, sketch = numeric_feature(column, inferred)
            sketches[column.name] = sketch
            features.append(stats)
        elif inferred == F.STRING and column.strings is not None:
            features.append(string_feature(column))
        else:
            features.append(
                {
                    "name": column.name,
                    "inferred_type": F.UNKNOWN,
                    "string_statistics": {
                        "common": {"num_present": column.types.present, "num_missing": column.types.null},
                        "distinct_count": 0.0,
                    },
                }
            )
    document: Json = {"version": 0.0, "dataset": {"item_count": table.item_count}, "features": features}
    return DatasetStatistics(document, sketches)


def write_json(path: Path, document: Json) -> None:
    """Write ``document`` atomically (temp file, fsync, rename): a reader never sees half a report.

    orjson when the container has it (a window's statistics carry thousands of sketch values per feature).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        import orjson

        body = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    except ImportError:  # pragma: no cover - containers without orjson
        body = (json.dumps(document, indent=2, allow_nan=False) + "\n").encode()
    with temporary.open("wb") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


def load_json(path: Path, what: str) -> Json:
    """Read a baseline JSON file; raise :class:`BaselineError` naming the file for anything wrong."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise BaselineError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{what} {path} cannot be read: {exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{what} {path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BaselineError(f"{what} {path} is not a JSON object")
    return document


@dataclass(frozen=True)
class BaselineFeature:
    """What the checks need of one baseline feature."""

    name: str
    inferred_type: str
    num_present: int
    num_missing: int
    sketch: QuantileSketch | None
    categories: dict[str, int] | None


def read_baseline_statistics(path: Path) -> tuple[int, list[BaselineFeature]]:
    """Parse a baseline ``statistics.json``: ``(item_count, features)`` in the file's order.

    Raises:
        BaselineError: naming the file and the first field that is missing or malformed.
    """
    document = load_json(path, "baseline statistics")
    try:
        item_count = int(document["dataset"]["item_count"])
        features = []
        for index, feature in enumerate(document["features"]):
            features.append(_baseline_feature(feature, index))
    except (KeyError, TypeError, ValueError) as exc:
        raise BaselineError(f"baseline statistics {path} is not in Model Monitor's schema: {exc!r}") from None
    return item_count, features


def _baseline_feature(feature: Json, index: int) -> BaselineFeature:
    name, inferred = str(feature["name"]), str(feature["inferred_type"])
    if inferred in (F.INTEGRAL, F.FRACTIONAL):
        numerical = feature["numerical_statistics"]
        common = numerical["common"]
        sketch = None
        kll = numerical.get("distribution", {}).get("kll")
        if kll is not None:
            parameters = kll["sketch"]["parameters"]
            sketch = QuantileSketch.from_data(kll["sketch"]["data"], int(parameters["k"]), float(parameters["c"]))
        return BaselineFeature(name, inferred, int(common["num_present"]), int(common["num_missing"]), sketch, None)
    strings = feature["string_statistics"]
    common = strings["common"]
    buckets = strings.get("distribution", {}).get("categorical", {}).get("buckets", [])
    categories = {str(b["value"]): int(b["count"]) for b in buckets}
    return BaselineFeature(name, inferred, int(common["num_present"]), int(common["num_missing"]), None, categories)
