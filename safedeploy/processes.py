"""Child-process helpers shared by training jobs and serving instances."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

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


def process_start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot, from ``/proc``), or ``None`` if unknown or gone.

    With the pid it names one process for good: a pid reused by a later process has another start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text("ascii")
    except (OSError, UnicodeDecodeError):
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the command name may hold spaces and parentheses
    try:
        return int(fields[19])  # field 22 of stat(5); fields[0] here is field 3
    except (IndexError, ValueError):
        return None


def same_process_alive(pid: int, start_ticks: int | None) -> bool:
    """Whether the process ``pid`` that started at ``start_ticks`` still runs (not a zombie, not a reused pid)."""
    if not pid_alive(pid):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text("ascii")
    except OSError:
        return sys.platform != "linux" and start_ticks is None  # no /proc: the pid's existence is all we know
    if state[state.rfind(")") + 2 :].startswith("Z"):
        return False
    return start_ticks is None or process_start_ticks(pid) == start_ticks
