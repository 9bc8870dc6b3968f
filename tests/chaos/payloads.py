"""Hypothesis strategies for the bodies and headers clients get wrong when they call a deployed model.

Bodies are built as text where JSON itself cannot say what a client may send (``1e309``, ``NaN``, an integer of
5,000 digits, arrays nested 50,000 deep); rows have the model's width (69) so that one bad cell, not the width, is
what the model has to refuse. A share of the requests is valid, so the fuzzing also crosses the success path.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

WIDTH = 69
"""Encoded features of the churn model."""
WEIRD_NUMBERS = [
    "1e309", "-1e309", "NaN", "Infinity", "-Infinity", "1" * 5000, "9" * 400, "-" + "9" * 400, "1e39", "-3.5e38",
    "1e308", "5e-324", "-0.0", "0", "1.7976931348623157e308", "0x1F", "1_000", "+1", ".5", "1e", "--1",
]  # fmt: skip
"""Number-like tokens: some are valid JSON and CSV numbers (some beyond float32), most are not numbers at all."""
WEIRD_CELLS = [*WEIRD_NUMBERS, "", " ", "nan", "inf", '"1"', '"', "é", "\x00", "true", "null", "1,2"]
NESTING = [2, 50, 127, 999, 1000, 5000, 50_000]
CONTENT_TYPES: list[bytes | None] = [
    b"text/csv", b"application/json", b"application/json; charset=utf-8", b"TEXT/CSV", b"text/csv;", b"text/plain",
    b"application/x-npy", b"", b"multipart/form-data; boundary=x", b"text/csv\xe9", b"\xff\xfe", b"*/*",
    b"application/json" + b"; p=1" * 500, None,
]  # fmt: skip
ACCEPTS: list[bytes | None] = [
    b"text/csv", b"application/json", b"*/*", b"image/png", b"application/json, text/csv", b"text/*;q=0.1",
    b"\xe9", b"", None,
]  # fmt: skip


def _row(cells: list[str]) -> str:
    return ",".join(cells)


@st.composite
def csv_body(draw: st.DrawFn) -> bytes:
    """1-6 rows of 69 cells ("1"), some cells replaced by weird tokens, sometimes a ragged row."""
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        cells = ["1"] * draw(st.sampled_from([WIDTH] * 8 + [0, 1, 68, 70]))
        for _ in range(draw(st.integers(0, 2))):
            if cells:
                cells[draw(st.integers(0, len(cells) - 1))] = draw(st.sampled_from(WEIRD_CELLS))
        rows.append(_row(cells))
    return draw(st.sampled_from(["\n", "\r\n", "\r"])).join(rows).encode("utf-8")


@st.composite
def json_rows_body(draw: st.DrawFn) -> bytes:
    """A JSON array of 69-number rows, written as text so any token can stand for a number."""
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        cells = ["1"] * WIDTH
        for _ in range(draw(st.integers(0, 2))):
            cells[draw(st.integers(0, WIDTH - 1))] = draw(
                st.sampled_from([*WEIRD_NUMBERS, "true", "null", '"1"', "[]"])
            )
        rows.append("[" + _row(cells) + "]")
    return ("[" + ",".join(rows) + "]").encode("utf-8")


def json_record_body(record: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """A valid raw customer record with one field's value replaced (or removed, or an extra field)."""
    fields = sorted(record)

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        members = {name: json.dumps(value) for name, value in record.items()}
        change = draw(st.sampled_from(["replace", "replace", "remove", "extra", "none"]))
        name = draw(st.sampled_from(fields))
        if change == "replace":
            members[name] = draw(
                st.sampled_from([*WEIRD_NUMBERS, "true", "null", '"x"', '"9"', "[]", "{}", '"' + "a" * 5000 + '"'])
            )
        elif change == "remove":
            del members[name]
        elif change == "extra":
            members[draw(st.sampled_from(["Referrer", "", "state", "\u00e9"]))] = "1"
        text = "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in members.items()) + "}"
        return (f"[{text}]" if draw(st.booleans()) else text).encode("utf-8")

    return build()


@st.composite
def nesting_body(draw: st.DrawFn) -> bytes:
    """Arrays or objects nested ``n`` deep."""
    depth = draw(st.sampled_from(NESTING))
    if draw(st.booleans()):
        return b"[" * depth + b"1" + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def bodies(record: dict[str, Any], valid_csv: bytes) -> st.SearchStrategy[tuple[bytes, bytes | None]]:
    """(body, content type): adversarial bodies under the content type they claim, plus some valid requests."""
    csv = st.tuples(csv_body(), st.just(b"text/csv"))
    json_rows = st.tuples(json_rows_body(), st.just(b"application/json"))
    records = st.tuples(json_record_body(record), st.just(b"application/json"))
    nested = st.tuples(nesting_body(), st.sampled_from([b"application/json", b"text/csv"]))
    anything = st.tuples(
        st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))),
        st.sampled_from(CONTENT_TYPES),
    )
    valid = st.tuples(st.just(valid_csv), st.sampled_from([b"text/csv", b"text/csv; charset=utf-8"]))
    return st.one_of(csv, json_rows, records, nested, anything, valid)


def header_value() -> st.SearchStrategy[bytes]:
    """A header value: mostly what HTTP allows (visible ASCII, tab, space, obs-text), sometimes any byte but CR/LF."""
    allowed = st.characters(codec="latin-1", exclude_characters="\r\n\x00\x7f", exclude_categories=["Cc"])
    legal = st.text(alphabet=allowed | st.sampled_from(["\t", " "]), max_size=60).map(lambda t: t.encode("latin-1"))
    raw = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
    return st.one_of(legal, legal, legal, raw)


def header_name() -> st.SearchStrategy[bytes]:
    """A header name (token characters)."""
    return st.text(
        alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~",
        min_size=1,
        max_size=20,
    ).map(str.encode)
