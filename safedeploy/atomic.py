"""Crash-safe file writes: a reader sees the old file or the whole new one, never a part.

Every write goes to a temporary file in the destination directory, is flushed and fsynced, then renamed
over the destination (``os.replace`` is atomic on POSIX). A process killed mid-write leaves only a
temporary file whose name says so; :func:`sweep_temporaries` removes those once their writer is gone. Files
are created owner-only (``0600``) whatever the process's umask: state holds customer data and keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from safedeploy.processes import pid_alive

_TEMP_RE = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
_CHUNK = 1 << 20


def _temp_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(dest: Path) -> Iterator[BinaryIO]:
    """Open a binary stream that replaces ``dest`` atomically when the block exits without error.

    On any exception the temporary file is removed and ``dest`` is left as it was.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(dest)
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dest.parent)


def atomic_write_bytes(dest: Path, data: bytes) -> str:
    """Write ``data`` to ``dest`` atomically and return its sha256 (hex)."""
    with atomic_writer(dest) as stream:
        stream.write(data)
    return hashlib.sha256(data).hexdigest()


def atomic_write_text(dest: Path, text: str) -> str:
    """Write UTF-8 ``text`` to ``dest`` atomically and return its sha256 (hex)."""
    return atomic_write_bytes(dest, text.encode("utf-8"))


def atomic_copy(src: Path, dest: Path) -> str:
    """Copy ``src`` to ``dest`` atomically, hashing while copying; return the sha256 (hex)."""
    digest = hashlib.sha256()
    with src.open("rb") as source, atomic_writer(dest) as stream:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            stream.write(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    """Return the sha256 (hex) of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_temporary(path: Path) -> bool:
    """Tell whether ``path`` is an in-flight (or abandoned) temporary file of :func:`atomic_writer`."""
    return _TEMP_RE.match(path.name) is not None


def sweep_temporaries(root: Path) -> list[Path]:
    """Delete temporary files under ``root`` whose writing process no longer exists; return them."""
    removed: list[Path] = []
    if not root.exists():
        return removed
    for path in root.rglob(".*.tmp"):
        match = _TEMP_RE.match(path.name)
        if match and not pid_alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
