"""Hypothesis strategies for AWS JSON request documents, built from botocore's service model, then broken.

A document is first drawn valid for its operation's input shape (required members, enum values, lengths, ranges,
patterns), so it gets past parsing into the deeper checks; then a few mutations are applied at random places: a
wrong JSON type, a number just outside its range or one JSON cannot carry (``1e309``, ``NaN``, 5,000 digits), a
string one character too long or breaking its pattern, a required member dropped, nesting a thousand deep. Raw
JSON text is spliced in with :class:`Raw`; :func:`to_json` writes the document.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StringShape, StructureShape
from hypothesis import strategies as st

from safedeploy.runtime.request_shapes import service_model

MAX_DEPTH = 4
"""Optional members below this depth are left out (SageMaker's shapes nest deep and some recursively)."""


class Raw(str):
    """JSON text written as is (a number JSON cannot carry, nesting a thousand deep...)."""


RAW_VALUES = [
    Raw("1e309"), Raw("-1e309"), Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1" * 5000), Raw("9" * 400),
    Raw("-0.0"), Raw("5e-324"), Raw("1e308"), Raw("[" * 1000 + "]" * 1000), Raw('{"a":' * 200 + "1" + "}" * 200),
]  # fmt: skip
WRONG_TYPES: list[Any] = [
    "x",
    "",
    1,
    -1,
    1.5,
    True,
    False,
    None,
    [],
    {},
    [1, 2],
    {"a": 1},
    "é" * 5,
    "\u0000",
    2**31,
    2**63,
]


def to_json(document: Any) -> bytes:
    """The document as JSON text (``Raw`` values spliced in, non-finite floats as ``NaN``/``Infinity``)."""

    def dump(value: Any) -> str:
        if isinstance(value, Raw):
            return str(value)
        if isinstance(value, Mapping):
            return "{" + ",".join(f"{json.dumps(str(k))}:{dump(v)}" for k, v in value.items()) + "}"
        if isinstance(value, list):
            return "[" + ",".join(dump(v) for v in value) + "]"
        return json.dumps(value, allow_nan=True)

    return dump(document).encode("utf-8", "surrogatepass")


def _compiled(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def valid_value(shape: Shape, names: Mapping[str, st.SearchStrategy[str]], depth: int = 0) -> st.SearchStrategy[Any]:
    """A value that satisfies ``shape`` (names of the kinds in ``names`` drawn from their pools)."""
    metadata = shape.metadata
    if shape.name in names:
        return names[shape.name]
    if isinstance(shape, StructureShape):
        required = {name: valid_value(shape.members[name], names, depth + 1) for name in shape.required_members}
        optional = (
            {}
            if depth >= MAX_DEPTH
            else {
                name: valid_value(member, names, depth + 1)
                for name, member in shape.members.items()
                if name not in required
            }
        )
        return st.fixed_dictionaries(required, optional=optional)
    if isinstance(shape, ListShape):
        low = metadata.get("min", 0)
        return st.lists(
            valid_value(shape.member, names, depth + 1),
            min_size=low,
            max_size=min(metadata.get("max", low + 2), low + 2),
        )
    if isinstance(shape, MapShape):
        low = metadata.get("min", 0)
        return st.dictionaries(
            valid_value(shape.key, names, depth + 1),
            valid_value(shape.value, names, depth + 1),
            min_size=low,
            max_size=min(metadata.get("max", low + 2), low + 2),
        )
    kind = shape.type_name
    if kind == "string":
        if isinstance(shape, StringShape) and shape.enum:
            return st.sampled_from(shape.enum)
        low, high = metadata.get("min", 0), min(metadata.get("max", 40), 40)
        pattern = metadata.get("pattern")
        if pattern and _compiled(pattern):
            return st.from_regex(pattern, fullmatch=True).filter(lambda s: low <= len(s) <= metadata.get("max", 10**9))
        return st.text(min_size=low, max_size=max(high, low))
    if kind in ("integer", "long"):
        low = metadata.get("min", 0)
        return st.integers(low, min(metadata.get("max", low + 10), low + 10))
    if kind in ("float", "double"):
        return st.floats(metadata.get("min", 0), metadata.get("max", 1e6), allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "timestamp":
        return st.integers(0, 2_000_000_000)
    if kind == "blob":
        return st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode())
    return st.none()


def wrong_value(shape: Shape) -> st.SearchStrategy[Any]:
    """A value that breaks ``shape``: of another JSON type, out of its range, or not JSON a parser should take."""
    metadata = shape.metadata
    choices: list[Any] = [*WRONG_TYPES, *RAW_VALUES]
    if shape.type_name == "string":
        high = metadata.get("max", 256)
        choices += ["a" * (high + 1), "bad name!", "-leading", "x" * 70, "\ud800"]
    if shape.type_name in ("integer", "long", "float", "double"):
        if "min" in metadata:
            choices.append(metadata["min"] - 1)
        if "max" in metadata:
            choices.append(metadata["max"] + 1)
        choices += [-0.0, 1e308, -1e-300]
    if isinstance(shape, ListShape):
        choices.append([None] * (metadata.get("max", 10) + 1))
    return st.sampled_from(choices)


@st.composite
def broken_document(
    draw: st.DrawFn, shape: StructureShape, names: Mapping[str, st.SearchStrategy[str]], max_mutations: int = 2
) -> Any:
    """A valid document for ``shape`` with 0 to ``max_mutations`` mutations."""
    document = draw(valid_value(shape, names))
    for _ in range(draw(st.integers(0, max_mutations))):
        places = list(_places(shape, document, ()))
        where, member_shape = draw(st.sampled_from(places))
        action = draw(st.sampled_from(["replace"] * 6 + ["drop", "unknown", "whole"]))
        if action == "whole":
            return draw(
                st.sampled_from([Raw("[]"), Raw("1"), Raw("null"), Raw('"x"'), Raw("[" * 1000 + "]" * 1000), {}])
            )
        document = _apply(document, where, action, draw(wrong_value(member_shape)))
    return document


def _places(shape: Shape, value: Any, path: tuple[Any, ...]) -> Any:
    """Every (path, shape) in a drawn document, the document itself included."""
    yield path, shape
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                yield from _places(member, value[name], (*path, name))
    elif isinstance(shape, ListShape) and isinstance(value, list):
        for index, item in enumerate(value):
            yield from _places(shape.member, item, (*path, index))
    elif isinstance(shape, MapShape) and isinstance(value, dict):
        for key, item in value.items():
            yield from _places(shape.value, item, (*path, key))


def _apply(document: Any, where: tuple[Any, ...], action: str, value: Any) -> Any:
    if not where:
        return value if action == "replace" else document
    parent = document
    for step in where[:-1]:
        parent = parent[step]
    last = where[-1]
    if action == "replace":
        parent[last] = value
    elif action == "drop" and isinstance(parent, dict):
        del parent[last]
    elif action == "unknown" and isinstance(parent, dict):
        parent[f"Unknown{last}"] = value
    return document


def operation_input(service: str, operation: str) -> StructureShape:
    """The input shape of an operation."""
    shape = service_model(service).operation_model(operation).input_shape
    assert isinstance(shape, StructureShape)
    return shape
