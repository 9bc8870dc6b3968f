"""Advisory file locks (``flock``): released by the kernel when the holder exits, even on ``kill -9``."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


class LockHeldError(Exception):
    """The lock is held by another process; ``holder`` is what that process recorded, if readable."""

    def __init__(self, path: Path, holder: dict[str, Any]) -> None:
        self.path = path
        self.holder = holder
        super().__init__(f"lock {path} is held by {holder or 'another process'}")


@contextlib.contextmanager
def exclusive_lock(path: Path, holder: dict[str, Any] | None = None, wait: bool = False) -> Iterator[IO[str]]:
    """Hold an exclusive lock on ``path`` for the block.

    Args:
        path: Lock file (created if missing; never deleted, so every process locks the same inode).
        holder: Facts about this holder (pid, execution id...) written into the file for others to read.
        wait: Block until the lock is free instead of raising :class:`LockHeldError`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            try:
                recorded = json.loads(handle.read() or "{}")
            except json.JSONDecodeError:
                recorded = {}
            raise LockHeldError(path, recorded) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"pid": os.getpid(), **(holder or {})}))
            handle.flush()
            yield handle
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
