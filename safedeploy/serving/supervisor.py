"""The runtime's supervisor: restarts the runtime process after a crash, on the same ports.

``python -m safedeploy.serving.supervisor --state-dir DIR`` is what :func:`safedeploy.serving.daemon.ensure_running`
starts in its own session. It runs ``python -m safedeploy.serving.runtime`` as its child and waits:

* the runtime exits 0 (a graceful stop, ``make stop``): the supervisor exits too;
* SIGTERM/SIGINT to the supervisor: forwarded to the runtime, which drains and stops; then the supervisor exits;
* the runtime dies any other way (``kill -9``, a crash, the OOM killer): it is started again at once, then with
  a growing delay (1, 2, 4 … 30 s) while it keeps dying within a minute of starting. The runtime binds the
  ports it used before (``<state>/runtime/ports.json``), so the published ``ApiUrl`` stays valid, and brings
  back the endpoints it was serving from its saved state;
* the runtime exits with :data:`EXIT_CONFIG` (its ports are taken by another program, say): restarting cannot
  help, so the supervisor stops and the runtime's log says why.

A dedicated process rather than systemd or supervisord: it must work for any user without installing or
configuring a service manager, and it is about sixty lines.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from safedeploy.atomic import atomic_write_text
from safedeploy.locking import LockHeldError, exclusive_lock

LOG = logging.getLogger("safedeploy.supervisor")
EXIT_CONFIG = 3
"""The runtime's exit status for a problem a restart cannot fix (it names it in its log)."""
STABLE_AFTER_S = 60.0
MAX_DELAY_S = 30.0


def supervisor_file(state_dir: Path) -> Path:
    """``<state>/runtime/supervisor.json``: the supervisor's pid while it runs."""
    return state_dir / "runtime" / "supervisor.json"


def supervise(argv: list[str], state_dir: Path) -> int:
    """Run the runtime (``argv``) until it stops gracefully or the supervisor is told to stop."""
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    info = supervisor_file(state_dir)
    atomic_write_text(info, json.dumps({"pid": os.getpid()}))
    failures = 0
    try:
        while not stopping:
            started = time.monotonic()
            child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
            code = child.wait()
            if stopping or code == 0:
                return 0
            if code == EXIT_CONFIG:
                LOG.error("the runtime cannot start (status %d): not restarting it; see its log", code)
                return code
            failures = 0 if time.monotonic() - started > STABLE_AFTER_S else failures + 1
            delay = 0.0 if failures <= 1 else min(2.0 ** (failures - 2), MAX_DELAY_S)
            LOG.error("the runtime (pid %d) died with status %d; restarting it in %.0f s", child.pid, code, delay)
            deadline = time.monotonic() + delay
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.1)
        return 0
    finally:
        info.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point: the runtime's arguments are passed through."""
    parser = argparse.ArgumentParser(prog="safedeploy-supervisor", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    args, runtime_args = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    state_dir = args.state_dir.resolve()
    command = [sys.executable, "-m", "safedeploy.serving.runtime", "--state-dir", str(state_dir), *runtime_args]
    try:
        with exclusive_lock(state_dir / "runtime" / "supervisor.lock", {"role": "supervisor"}):
            return supervise(command, state_dir)
    except LockHeldError as exc:
        LOG.error("another supervisor (pid %s) already runs the runtime of %s", exc.holder.get("pid", "?"), state_dir)
        return 1


if __name__ == "__main__":
    sys.exit(main())
