"""Owner-only files: the state directory holds customer data (capture), model code and the runtime's keys.

Every process that writes state (the CLI, the runtime, serving instances, training, processing and monitoring
jobs) calls :func:`use_private_umask` first, so whatever it creates, by whatever library, is ``0600``/``0700``;
job and instance processes are also started with :data:`PRIVATE_UMASK` (``subprocess``'s ``umask=``), in case
their entry point is not ours. :func:`secure_state_dir` makes the state directory itself ``0700`` whenever a
backend opens it, which also locks away files an older version left group- or world-readable.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

LOG = logging.getLogger(__name__)
PRIVATE_UMASK = 0o077
"""Nothing created is readable, writable or searchable by the group or others."""
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def use_private_umask() -> None:
    """Make every file and directory this process creates from now on owner-only."""
    os.umask(PRIVATE_UMASK)


def secure_state_dir(root: Path) -> None:
    """Create ``root`` owner-only, or make an existing one so (tightening everything under it the first time)."""
    root.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    mode = stat.S_IMODE(root.stat().st_mode)
    if mode & ~PRIVATE_DIR_MODE:
        LOG.warning("state directory %s was mode %o; making it and everything in it owner-only", root, mode)
        root.chmod(PRIVATE_DIR_MODE)
        tighten_tree(root)


def tighten_tree(root: Path) -> None:
    """Remove group and other permissions from everything under ``root`` (symlinks are left alone)."""
    for directory, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = Path(directory) / name
            try:
                info = path.lstat()
                if not stat.S_ISLNK(info.st_mode) and stat.S_IMODE(info.st_mode) & PRIVATE_UMASK:
                    path.chmod(stat.S_IMODE(info.st_mode) & ~PRIVATE_UMASK)
            except FileNotFoundError:  # removed meanwhile by a writer
                continue
