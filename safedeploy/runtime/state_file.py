"""The runtime's state file, kept recoverable: a corrupt or unreadable ``state.json`` never stops the runtime.

The control plane saves its whole state atomically after every change. A save writes only what reads back as
valid state, and writes it twice: ``state.json`` and the last good copy ``state.json.good``. When the runtime
starts and ``state.json`` cannot be read or is not valid state (edited by hand, damaged on disk, written by
an older bug), the problem is logged naming the file, the file is moved aside
(``state.json.corrupt-<UTC time>``, for a post-mortem) and the runtime starts from the good copy, or empty if
that is unusable too; ``GET /_local/health`` reports what happened (``stateRecovery``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from safedeploy.atomic import atomic_write_text
from safedeploy.runtime.state import RuntimeState

LOG = logging.getLogger(__name__)


class UnsavableStateError(ValueError):
    """The state in memory would not read back (a bug): nothing is written."""


@dataclass(frozen=True)
class StateRecovery:
    """What happened when the state file could not be used."""

    file: str
    problem: str
    restored_from: str | None
    """The good copy the state came from, or None when the runtime started empty."""
    kept_as: str | None
    """Where the unusable file was moved (None when it was left in place or was missing)."""

    def as_dict(self) -> dict[str, str | None]:
        """For the health document."""
        return asdict(self)


@dataclass(frozen=True)
class LoadedState:
    """The state read at start, and the recovery if ``state.json`` was unusable."""

    state: RuntimeState
    recovery: StateRecovery | None = None


def good_copy(path: Path) -> Path:
    """The last good copy of the state file ``path``."""
    return path.with_name(f"{path.name}.good")


def save_state(state: RuntimeState, path: Path) -> None:
    """Write ``state`` to ``path`` and to its good copy, atomically and owner-only (it holds the API key).

    Raises:
        UnsavableStateError: the state cannot be written as JSON or would not load back (nothing is written).
    """
    try:
        text = state.model_dump_json(indent=2)
        type(state).model_validate_json(text)
    except PydanticSerializationError as exc:
        raise UnsavableStateError(f"refusing to save state that cannot be written as JSON: {exc}") from None
    except ValidationError as exc:
        raise UnsavableStateError(f"refusing to save state that would not load back: {_first_problem(exc)}") from None
    # The good copy first: if the disk fills between the two writes, ``state.json`` still holds what memory
    # goes back to (the control plane undoes a change whose save fails), so the two never disagree.
    for destination in (good_copy(path), path):
        atomic_write_text(destination, text)
        destination.chmod(0o600)


def load_state(path: Path, *, keep_aside: bool) -> LoadedState:
    """Read the state at ``path``, falling back to its good copy, then to an empty state.

    ``keep_aside`` (the runtime only) moves an unusable file out of the way; readers in other processes leave
    the runtime's files alone.
    """
    good = good_copy(path)
    if not path.exists() and not good.exists():
        return LoadedState(RuntimeState())
    try:
        return LoadedState(_read(path))
    except (OSError, ValueError) as exc:
        problem = _describe(exc)
    kept_as = _move_aside(path) if keep_aside else None
    try:
        state, restored_from = _read(good), str(good)
    except (OSError, ValueError) as exc:
        LOG.error("the last good copy %s is unusable too (%s): starting with an empty state", good, _describe(exc))
        state, restored_from = RuntimeState(), None
    recovery = StateRecovery(file=str(path), problem=problem, restored_from=restored_from, kept_as=kept_as)
    LOG.error(
        "state file %s is unusable (%s); started from %s%s",
        path,
        problem,
        restored_from or "an empty state",
        f"; the unusable file is kept as {kept_as}" if kept_as else "",
    )
    return LoadedState(state, recovery)


def read_state(path: Path) -> RuntimeState:
    """Read saved state (its last good copy if it is unusable), or an empty one; never moves a file."""
    return load_state(path, keep_aside=False).state


def _read(path: Path) -> RuntimeState:
    return RuntimeState.model_validate_json(path.read_bytes())


def _move_aside(path: Path) -> str | None:
    if not path.is_file():
        return None
    aside = path.with_name(f"{path.name}.corrupt-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}")
    try:
        path.replace(aside)
    except OSError as exc:
        LOG.warning("cannot move the unusable state file %s aside: %s", path, exc)
        return None
    return str(aside)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return f"not valid state: {_first_problem(exc)}"
    if isinstance(exc, FileNotFoundError):
        return "missing"
    if isinstance(exc, OSError):
        return f"unreadable: {exc.strerror or exc}"
    return str(exc)


def _first_problem(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0] if errors else None
    if first is None:
        return str(exc)
    where = ".".join(str(part) for part in first["loc"]) or "document"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"
