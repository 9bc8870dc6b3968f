"""Control-plane requests checked against SageMaker's own API model before anything is saved or applied.

SageMaker validates every request against its service model (the Smithy model botocore ships as
``service-2.json``): member types, required members, string and list lengths, value ranges, name patterns and
enum values. A request that breaks any of them is answered ``ValidationException`` (400) and changes nothing;
one whose JSON types do not fit the shape (a string where a number goes) ``SerializationException`` (400).
Reading the limits from botocore's copy of the model, instead of copying them by hand, keeps the local control
plane as strict as SageMaker for every member of the operations it implements, and current with botocore.

The messages follow AWS's: ``1 validation error detected: Value '-1.0' at
'desiredWeightsAndCapacities.1.member.desiredWeight' failed to satisfy constraint: Member must have value
greater than or equal to 0``. Patterns are Java regular expressions matched against the whole value; the
few Python's ``re`` cannot compile (Unicode property classes in tag keys) are not enforced.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.loaders import create_loader
from botocore.model import ListShape, MapShape, ServiceModel, Shape, StringShape, StructureShape

from safedeploy.http.errors import ApiError
from safedeploy.http.json_documents import serialization_error

LOG = logging.getLogger(__name__)
MAX_REPORTED = 10
"""AWS lists at most this many violations in one message."""
_INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_JSON_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "long": "an integer",
    "float": "a number",
    "double": "a number",
    "boolean": "a boolean",
    "timestamp": "a timestamp (epoch seconds or ISO 8601)",
    "blob": "a base64 string",
    "structure": "an object",
    "map": "an object",
    "list": "an array",
}


@functools.cache
def service_model(service: str) -> ServiceModel:
    """The service's model as botocore ships it (loaded once; SageMaker's takes about 0.1 s)."""
    return ServiceModel(create_loader().load_service_model(service, "service-2"), service_name=service)


_JAVA_CLASSES = {"ASCII": "\\x00-\\x7F", "Print": "\\x20-\\x7E"}
"""Java's POSIX classes the models use, as ranges (``\\p{Print}`` is ASCII's printable characters in Java)."""


def python_pattern(java: str) -> str:
    r"""A Java pattern in Python's syntax: ``\p{ASCII}``, ``\p{Print}`` and ``\z`` translated, the rest kept."""
    out: list[str] = []
    in_class, i = False, 0
    while i < len(java):
        char = java[i]
        if char == "\\":
            pair = java[i : i + 2]
            name = java[i + 3 : java.find("}", i)] if java.startswith("\\p{", i) else None
            if name in _JAVA_CLASSES:
                ranges = _JAVA_CLASSES[name]
                out.append(ranges if in_class else f"[{ranges}]")
                i += len(name) + 4
                continue
            out.append("\\Z" if pair == "\\z" else pair)
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


@functools.cache
def _pattern(source: str) -> re.Pattern[str] | None:
    try:
        return re.compile(python_pattern(source))
    except re.error:
        LOG.info("pattern %r is not Python syntax: not enforced", source)
        return None


class _TypeMismatchError(Exception):
    """A JSON value of the wrong type for its shape (AWS answers SerializationException)."""


def validate_request(service: str, operation: str, document: dict[str, Any], code: str = "ValidationException") -> None:
    """Check ``document`` against the input shape of ``operation``.

    Raises:
        ApiError: ``SerializationException`` (400) for a value of the wrong JSON type, ``code`` (400; SageMaker
            Runtime says ``ValidationError``) listing up to :data:`MAX_REPORTED` broken constraints.
    """
    shape = service_model(service).operation_model(operation).input_shape
    if shape is None:
        return
    try:
        problems = list(_check(shape, document, ""))
    except _TypeMismatchError as exc:
        raise serialization_error(str(exc)) from None
    if problems:
        count = len(problems)
        noun = "error" if count == 1 else "errors"
        raise ApiError(400, code, f"{count} validation {noun} detected: {'; '.join(problems[:MAX_REPORTED])}")


def _child(path: str, name: str) -> str:
    member = name[:1].lower() + name[1:]  # AWS names members in camelCase in these messages
    return f"{path}.{member}" if path else member


def _shown(value: Any) -> str:
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "an array"
    text = str(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _fail(path: str, value: Any, constraint: str) -> str:
    return f"Value '{_shown(value)}' at '{path or 'request'}' failed to satisfy constraint: {constraint}"


def _check(shape: Shape, value: Any, path: str) -> Iterator[str]:
    kind = shape.type_name
    if value is None:
        return  # JSON null is an absent member (required members are checked by their structure)
    if not _has_json_type(kind, value):
        raise _TypeMismatchError(f"'{path or 'request'}' must be {_JSON_TYPES.get(kind, kind)}, got {_shown(value)!r}")
    metadata = shape.metadata
    if isinstance(shape, StructureShape):
        yield from _check_structure(shape, value, path)
    elif isinstance(shape, ListShape):
        yield from _check_length(metadata, len(value), value, path)
        for index, item in enumerate(value, start=1):
            yield from _check(shape.member, item, f"{path}.{index}.member")
    elif isinstance(shape, MapShape):
        yield from _check_length(metadata, len(value), value, path)
        for key, item in value.items():
            yield from _check(shape.key, key, f"{path}.key")
            yield from _check(shape.value, item, f"{path}.{key}.value")
    elif kind == "string":
        yield from _check_string(shape, value, path)
    elif kind in ("integer", "long", "float", "double"):
        yield from _check_number(kind, metadata, value, path)


def _has_json_type(kind: str, value: Any) -> bool:
    if kind in ("string", "blob"):
        return isinstance(value, str)
    if kind in ("integer", "long"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("float", "double"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "timestamp":
        return isinstance(value, int | float | str) and not isinstance(value, bool)
    if kind in ("structure", "map"):
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    return True


def _check_structure(shape: StructureShape, value: dict[str, Any], path: str) -> Iterator[str]:
    for name in shape.required_members:
        if value.get(name) is None:
            yield f"Value null at '{_child(path, name)}' failed to satisfy constraint: Member must not be null"
    for name, member in shape.members.items():
        if name in value:
            yield from _check(member, value[name], _child(path, name))


def _check_length(metadata: dict[str, Any], length: int, value: Any, path: str) -> Iterator[str]:
    if "min" in metadata and length < metadata["min"]:
        yield _fail(path, value, f"Member must have length greater than or equal to {metadata['min']}")
    if "max" in metadata and length > metadata["max"]:
        yield _fail(path, value, f"Member must have length less than or equal to {metadata['max']}")


def _check_string(shape: Shape, value: str, path: str) -> Iterator[str]:
    metadata = shape.metadata
    yield from _check_length(metadata, len(value), value, path)
    enum = shape.enum if isinstance(shape, StringShape) else None
    if enum and value not in enum:
        yield _fail(path, value, f"Member must satisfy enum value set: [{', '.join(enum)}]")
    source = metadata.get("pattern")
    pattern = _pattern(source) if source else None
    if pattern is not None and pattern.fullmatch(value) is None:
        yield _fail(path, value, f"Member must satisfy regular expression pattern: {source}")


def _check_number(kind: str, metadata: dict[str, Any], value: float, path: str) -> Iterator[str]:
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        if not low <= value <= high:
            raise _TypeMismatchError(f"'{path}': {_shown(value)} is out of range for {kind} ({low}..{high})")
    else:
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer beyond a double
            finite = False
        if not finite:
            raise _TypeMismatchError(f"'{path}': {_shown(value)} is not a finite {kind}")
    if "min" in metadata and value < metadata["min"]:
        yield _fail(path, value, f"Member must have value greater than or equal to {metadata['min']}")
    if "max" in metadata and value > metadata["max"]:
        yield _fail(path, value, f"Member must have value less than or equal to {metadata['max']}")


@dataclass(frozen=True)
class _StringRule:
    path: str
    low: int
    high: int | None
    source: str | None
    pattern: re.Pattern[str] | None


@functools.cache
def _string_rules(service: str, operation: str) -> dict[str, _StringRule]:
    shape = service_model(service).operation_model(operation).input_shape
    assert isinstance(shape, StructureShape)  # noqa: S101 - the operations checked this way take a structure
    rules = {}
    for name, member in shape.members.items():
        if member.type_name == "string":
            source = member.metadata.get("pattern")
            pattern = _pattern(source) if source else None
            low, high = member.metadata.get("min", 0), member.metadata.get("max")
            rules[name] = _StringRule(_child("", name), low, high, source, pattern)
    return rules


def validate_strings(service: str, operation: str, values: dict[str, str | None], code: str) -> None:
    """Check string members (``None``: absent) against their shapes, a few microseconds a request.

    The data plane's fast path of :func:`validate_request`: InvokeEndpoint's headers are all strings.

    Raises:
        ApiError: ``code`` (400) listing the broken constraints.
    """
    rules = _string_rules(service, operation)
    problems: list[str] = []
    for name, value in values.items():
        rule = rules[name]
        if value is None:
            continue
        if len(value) < rule.low:
            problems.append(_fail(rule.path, value, f"Member must have length greater than or equal to {rule.low}"))
        if rule.high is not None and len(value) > rule.high:
            problems.append(_fail(rule.path, value, f"Member must have length less than or equal to {rule.high}"))
        if rule.pattern is not None and rule.pattern.fullmatch(value) is None:
            problems.append(_fail(rule.path, value, f"Member must satisfy regular expression pattern: {rule.source}"))
    if problems:
        count = len(problems)
        noun = "error" if count == 1 else "errors"
        raise ApiError(400, code, f"{count} validation {noun} detected: {'; '.join(problems[:MAX_REPORTED])}")
