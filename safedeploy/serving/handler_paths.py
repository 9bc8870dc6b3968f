"""REST API routes run handlers from this project's ``lambdas/`` directory only.

A route's ``Handler`` (``<file.py>:<factory>``) is imported and run inside the runtime process, so a route
naming any other file would run that file's code. ``PUT /_local/routes/{name}`` refuses a handler whose file,
with every symlink resolved, is not a regular ``.py`` file under ``lambdas/``.
"""

from __future__ import annotations

from pathlib import Path

LAMBDAS_DIR = Path(__file__).resolve().parents[2] / "lambdas"


def handler_problem(spec: str, root: Path = LAMBDAS_DIR) -> str | None:
    """Why the route handler ``spec`` may not run (None if it may)."""
    file_name, _, factory = spec.partition(":")  # as the gateway splits it
    if not file_name or not factory.isidentifier():
        return f"Handler {spec!r}: expected <absolute path of a .py file under {root}>:<factory function>"
    path = Path(file_name)
    if not path.is_absolute():
        return f"Handler {spec!r}: the file must be an absolute path under {root}"
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        return f"Handler {spec!r}: cannot resolve {path}: {getattr(exc, 'strerror', None) or exc}"
    if not resolved.is_relative_to(root.resolve()):
        shown = f" (it resolves to {resolved})" if resolved != path else ""
        return f"Handler {spec!r}: {path} is outside {root}{shown}; route handlers come only from the project's lambdas"
    if resolved.suffix != ".py" or not resolved.is_file():
        return f"Handler {spec!r}: {resolved} is not a .py file"
    return None
