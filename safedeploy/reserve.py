"""Disk space held back for the writes that must not fail on a full disk.

When the disk fills during a production deployment, the writes that put traffic back on blue and record it
(the runtime's state, the deployment ledger) must still succeed, or memory, disk and production disagree.
Each state directory keeps a ballast file, ``<state>/.reserve`` (:data:`RESERVE_BYTES`, allocated with
``posix_fallocate`` so its blocks are really taken). A critical write that fails with ``ENOSPC`` releases the
ballast and tries once more (:func:`critical_write`); the ballast is allocated again (:func:`ensure_reserve`)
once the disk has room. Only these few small writes draw on it: capture data, logs and artifacts simply fail
(and are counted) while the disk is full. Nothing in the standard library or the field's packages does this,
hence this small module.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

LOG = logging.getLogger(__name__)
RESERVE_NAME = ".reserve"
RESERVE_BYTES = 8 * 1024 * 1024
_T = TypeVar("_T")


def reserve_path(state_dir: Path) -> Path:
    """The ballast file of a state directory."""
    return state_dir / RESERVE_NAME


def ensure_reserve(path: Path, size: int = RESERVE_BYTES) -> bool:
    """Allocate the ballast if it is missing or short; return whether it is in place (False: no room now)."""
    try:
        if path.is_file() and path.stat().st_size >= size:
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(descriptor, 0, size)
        finally:
            os.close(descriptor)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        path.unlink(missing_ok=True)
        return False
    return True


def release_reserve(path: Path) -> bool:
    """Free the ballast's space; return whether there was one to free."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    LOG.error("the disk is full: released the %d-byte reserve %s for a critical write", RESERVE_BYTES, path)
    return True


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is the disk (or quota) being full."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def critical_write(reserve: Path | None, write: Callable[[], _T]) -> _T:
    """Run ``write``; if the disk is full, release the reserve and run it once more."""
    try:
        return write()
    except OSError as exc:
        if reserve is None or not is_disk_full(exc) or not release_reserve(reserve):
            raise
    return write()
