"""Child-process helpers shared by training jobs and serving instances."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "PYTHONPATH")


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """A minimal environment for a job or serving process: the basics inherited, plus ``extra``."""
    return {k: v for k, v in os.environ.items() if k in _INHERITED_ENV} | extra


def die_with_parent() -> None:
    """In a child, before exec: ask Linux to kill it if its parent dies (even by ``kill -9``)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (zombies included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
