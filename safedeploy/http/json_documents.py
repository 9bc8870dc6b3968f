r"""JSON request documents parsed strictly, every failure a client's 400 (``SerializationException``).

``json.loads`` accepts what AWS's JSON protocols refuse, and fails in ways that are not ``ValueError``:
``NaN`` and ``Infinity`` literals and numbers beyond a double (``1e309`` becomes ``inf``) parse, as does
``"\ud800"`` (half a surrogate pair, which no UTF-8 file can hold), and a value that cannot be saved as JSON
again then bricks whatever stored it (or fails the save: a 500); an integer longer than Python's int-str limit
raises ``ValueError`` from the integer parser; an array nested a thousand deep raises ``RecursionError``.
:func:`parse_document` turns each of those into an :class:`~safedeploy.http.errors.ApiError` naming the
problem, so the runtime's handlers never answer a client's mistake with a 500.
"""

from __future__ import annotations

import json
import math
from typing import Any

from safedeploy.http.errors import ApiError

MAX_INTEGER_DIGITS = 309
"""Longer integers are beyond any number AWS's models carry (a double's range ends near 1.8e308)."""
MAX_NESTING = 128
"""Deeper documents are refused: no SageMaker request nests anywhere near this deep."""


class _OutOfRangeError(ValueError):
    """A number the JSON protocol cannot carry."""


def serialization_error(message: str) -> ApiError:
    """AWS's answer to a document that is not the JSON the operation takes (400 ``SerializationException``)."""
    return ApiError(400, "SerializationException", message)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _OutOfRangeError(f"the number {text[:40]} is out of range (beyond a double's)")
    return value


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INTEGER_DIGITS:
        raise _OutOfRangeError(f"an integer of {digits} digits is out of range")
    return int(text)


def _no_constant(name: str) -> Any:
    raise _OutOfRangeError(f"{name} is not a JSON number")


def parse_json(text: str | bytes) -> Any:
    """Parse JSON with finite numbers and bounded nesting only.

    Raises:
        ApiError: 400 ``SerializationException`` naming the problem (not UTF-8, not JSON, ``NaN``/``Infinity``,
            a number out of range, nesting too deep).
    """
    try:
        document = json.loads(text, parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_no_constant)
    except _OutOfRangeError as exc:
        raise serialization_error(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise serialization_error(f"the document is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise serialization_error(f"the document is not valid JSON: {exc}") from None
    except ValueError as exc:  # the integer parser's own limits
        raise serialization_error(f"a number in the document is out of range: {exc}") from None
    except RecursionError:
        raise serialization_error(f"the document nests deeper than {MAX_NESTING} levels") from None
    if _depth_exceeds(document, MAX_NESTING):
        raise serialization_error(f"the document nests deeper than {MAX_NESTING} levels")
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if b"\\ud" in raw.lower() and _has_lone_surrogate(document):  # only escapes can make one
        raise serialization_error("the document has a \\u escape of half a surrogate pair: not text")
    return document


def parse_document(body: bytes) -> dict[str, Any]:
    """A JSON 1.1 request document: a JSON object (an empty body is ``{}``)."""
    document = parse_json(body) if body.strip() else {}
    if not isinstance(document, dict):
        raise serialization_error(f"the request document must be a JSON object, not {type(document).__name__}")
    return document


def _has_lone_surrogate(document: Any) -> bool:
    """Whether a string (or key) holds half a surrogate pair, which no UTF-8 file or response can carry."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def _depth_exceeds(document: Any, limit: int) -> bool:
    """Whether ``document`` nests deeper than ``limit`` (iteratively: the check must not recurse itself)."""
    level: list[Any] = [document]
    for _ in range(limit):  # after k rounds, ``level`` holds the containers nested k + 1 deep
        level = [
            child
            for value in level
            if isinstance(value, dict | list)
            for child in (value.values() if isinstance(value, dict) else value)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True
