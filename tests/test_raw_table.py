"""The raw-table contract: every bad input is named by file, line and column, and nothing is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from safedeploy import constants as C
from safedeploy.data.prepare import prepare_dataset
from safedeploy.data.raw_table import HEADER, read_raw_table
from safedeploy.errors import DataValidationError
from safedeploy.spec import PipelineSpec
from safedeploy.store import LocalArtifactStore
from tests.conftest import churn_rows, write_table


def test_valid_table_is_typed(churn_csv: Path) -> None:
    table = read_raw_table(churn_csv)
    assert len(table.records) == len(table.labels) == 1000
    first = table.records[0]
    assert isinstance(first["Account Length"], int)
    assert isinstance(first["Day Mins"], float)
    assert first["Area Code"] in {"408", "415", "510"}
    assert set(table.labels) == {0, 1}
    assert len(table.sha256) == 64


def _rows_with(line_index: int, column: str, value: str) -> list[dict[str, str]]:
    rows = churn_rows(200)
    rows[line_index][column] = value
    return rows


CASES: list[tuple[str, Callable[[Path], Path], str]] = [
    (
        "missing column",
        lambda p: write_table(p, churn_rows(100), header=[h for h in HEADER if h != "Day Mins"]),
        "line 1, column 'Day Mins': missing column",
    ),
    (
        "extra column",
        lambda p: write_table(p, churn_rows(100), header=[*HEADER, "Referrer"]),
        "line 1, column 'Referrer': unexpected column",
    ),
    (
        "non-numeric value",
        lambda p: write_table(p, _rows_with(6, "Day Mins", "lots")),
        "line 8, column 'Day Mins': 'lots' is not a number",
    ),
    (
        "non-integer count",
        lambda p: write_table(p, _rows_with(0, "Day Calls", "3.5")),
        "line 2, column 'Day Calls': '3.5' is not an integer",
    ),
    (
        "NaN",
        lambda p: write_table(p, _rows_with(3, "Eve Mins", "nan")),
        "line 5, column 'Eve Mins': 'nan' is not a finite number",
    ),
    (
        "negative",
        lambda p: write_table(p, _rows_with(3, "Night Mins", "-4")),
        "line 5, column 'Night Mins': '-4' is negative",
    ),
    (
        "unknown label",
        lambda p: write_table(p, _rows_with(9, C.LABEL_COLUMN, "maybe")),
        "line 11, column 'Churn?': unknown label 'maybe'",
    ),
    (
        "label without the dot",
        lambda p: write_table(p, _rows_with(1, C.LABEL_COLUMN, "True")),
        "line 3, column 'Churn?': unknown label 'True'",
    ),
    (
        "unknown state",
        lambda p: write_table(p, _rows_with(2, "State", "ZZ")),
        "line 4, column 'State': unknown state 'ZZ'",
    ),
    (
        "bad plan flag",
        lambda p: write_table(p, _rows_with(2, "Int'l Plan", "maybe")),
        "line 4, column \"Int'l Plan\": 'maybe' is not 'yes' or 'no'",
    ),
    (
        "empty cell",
        lambda p: write_table(p, _rows_with(4, "Account Length", "")),
        "line 6, column 'Account Length': empty value",
    ),
    ("empty file", lambda p: (p.write_text(""), p)[1], "file is empty"),
    ("header only", lambda p: write_table(p, []), "no data rows after the header"),
    (
        "short row",
        lambda p: (p.write_text(",".join(HEADER) + "\nNJ,1,415\n"), p)[1],
        "line 2: expected 21 fields, found 3",
    ),
    ("not UTF-8", lambda p: (p.write_bytes(b"\xff\xfe\x00garbage"), p)[1], "not UTF-8 text"),
    (
        "too few churners",
        lambda p: write_table(p, [r for r in churn_rows(300) if r["Churn?"] == "False."][:100]),
        "too few rows to split",
    ),
]


@pytest.mark.parametrize(("case", "make", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_named_and_nothing_is_written(
    tmp_path: Path, make_spec: Callable[..., PipelineSpec], case: str, make: Callable[[Path], Path], expected: str
) -> None:
    path = make(tmp_path / "bad.csv")
    store = LocalArtifactStore(tmp_path / "store")
    with pytest.raises(DataValidationError) as info:
        prepare_dataset(make_spec(), store, path)
    message = str(info.value)
    assert str(path) in message, message
    assert expected in message, message
    assert not (tmp_path / "store").exists(), f"{case}: the data stage wrote output for bad input"


def test_every_problem_is_counted(tmp_path: Path) -> None:
    rows = churn_rows(200)
    for i in range(0, 60):
        rows[i]["Day Mins"] = "x"
    with pytest.raises(DataValidationError) as info:
        read_raw_table(write_table(tmp_path / "many.csv", rows))
    assert info.value.total == 60
    assert "and 50 more problem(s)" in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"nope\.csv.*cannot read file"):
        read_raw_table(tmp_path / "nope.csv")


def test_columns_may_come_in_any_order(tmp_path: Path) -> None:
    rows = churn_rows(50)
    table = read_raw_table(write_table(tmp_path / "shuffled.csv", rows, header=list(reversed(HEADER))))
    assert len(table.records) == 50
