"""Feature schema: one encoder for the data stage and for serving raw records."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from safedeploy.data.raw_table import CATEGORICAL_FEATURES, IGNORED_COLUMNS, NUMERIC_FEATURES, read_raw_table
from safedeploy.features import FeatureEncodingError, FeatureSchema


@pytest.fixture
def schema(churn_csv: Path) -> FeatureSchema:
    table = read_raw_table(churn_csv)
    return FeatureSchema.learn(table.records, NUMERIC_FEATURES, CATEGORICAL_FEATURES, IGNORED_COLUMNS)


def _record() -> dict[str, object]:
    return {
        "State": "NJ", "Account Length": 137, "Area Code": 415, "Phone": "358-1921", "Int'l Plan": "no",
        "VMail Plan": "no", "VMail Message": 0, "Day Mins": 243.4, "Day Calls": 114, "Day Charge": 41.38,
        "Eve Mins": 121.2, "Eve Calls": 110, "Eve Charge": 10.3, "Night Mins": 162.6, "Night Calls": 104,
        "Night Charge": 7.32, "Intl Mins": 12.2, "Intl Calls": 5, "Intl Charge": 3.29, "CustServ Calls": 0,
    }  # fmt: skip


def test_layout_matches_the_seed(schema: FeatureSchema) -> None:
    assert len(schema.features) == 11 + 51 + 3 + 2 + 2 == 69
    assert schema.features[:3] == ["Account Length", "VMail Message", "Day Mins"]
    assert "State_NJ" in schema.features and "Area Code_415" in schema.features
    assert schema.features[-2:] == ["VMail Plan_no", "VMail Plan_yes"]


def test_json_round_trip(schema: FeatureSchema) -> None:
    assert FeatureSchema.from_json(schema.to_json()) == schema


def test_encodes_json_style_and_csv_style_records_identically(schema: FeatureSchema) -> None:
    as_json = _record()
    as_strings = {k: str(v) for k, v in as_json.items()}
    a, b = schema.encode([as_json]), schema.encode([as_strings])
    assert np.array_equal(a, b)
    row = dict(zip(schema.features, a[0], strict=True))
    assert row["Day Mins"] == 243.4 and row["State_NJ"] == 1 and row["Area Code_415"] == 1
    assert row["Int'l Plan_no"] == 1 and row["Int'l Plan_yes"] == 0
    assert sum(v for k, v in row.items() if k.startswith("State_")) == 1


def test_ignored_fields_are_optional(schema: FeatureSchema) -> None:
    record = {k: v for k, v in _record().items() if k != "Phone" and "Charge" not in k}
    assert np.array_equal(schema.encode([record]), schema.encode([_record()]))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"Day Mins": "abc"}, "record 0, field 'Day Mins': 'abc' is not a number"),
        ({"Day Mins": math.nan}, "field 'Day Mins': nan is not a finite number"),
        ({"Day Mins": "inf"}, "field 'Day Mins': 'inf' is not a finite number"),
        ({"Day Mins": None}, "field 'Day Mins': expected a number, got None"),
        ({"Day Mins": True}, "field 'Day Mins': expected a number"),
        ({"State": "ZZ"}, "field 'State': unknown category 'ZZ'"),
        ({"Area Code": 999}, "field 'Area Code': unknown category 999"),
        ({"Referrer": "x"}, "field 'Referrer': unknown field"),
    ],
)
def test_bad_records_are_named(schema: FeatureSchema, change: dict[str, object], message: str) -> None:
    with pytest.raises(FeatureEncodingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        schema.encode([{**_record(), **change}])


def test_missing_field(schema: FeatureSchema) -> None:
    record = _record()
    del record["Eve Calls"]
    with pytest.raises(FeatureEncodingError, match="record 1, field 'Eve Calls': missing field"):
        schema.encode([_record(), record])


def test_not_an_object(schema: FeatureSchema) -> None:
    with pytest.raises(FeatureEncodingError, match="expected an object of named fields"):
        schema.encode([[1, 2, 3]])  # type: ignore[list-item]


def test_invalid_schema_documents() -> None:
    with pytest.raises(ValueError, match="invalid feature schema"):
        FeatureSchema.from_json("{}")
    with pytest.raises(ValueError, match="unsupported feature schema version"):
        FeatureSchema.from_json('{"version": 99}')
