"""Golden-file (snapshot) comparison with an update flag that cannot hide a difference.

Without the flag a difference (or a missing golden file) fails with a unified diff naming the file.

``pytest --update-snapshots`` (or ``UPDATE_SNAPSHOTS=1``) rewrites the golden files that differ, and the tests
whose files it rewrote still FAIL, naming each file and showing the diff: an update run is never a green run.
Review the change with ``git diff``, re-run without the flag (now green), and commit the files. Golden files that
already match pass as usual.

Under CI (``CI`` set to ``true``/``1``/``yes``) the flag is refused before any test runs: CI compares golden files,
it never rewrites them.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

SNAPSHOT_DIR = Path(__file__).resolve().parent / "snapshots"
UPDATE_HINT = "run `pytest --update-snapshots` (or UPDATE_SNAPSHOTS=1), review `git diff`, then re-run without it"


def canonical_json(document: Any) -> str:
    """The stable text of a JSON document: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _diff(expected: str, actual: str, golden: Path) -> str:
    lines = difflib.unified_diff(
        expected.splitlines(keepends=True),
        actual.splitlines(keepends=True),
        fromfile=f"{golden} (golden)",
        tofile="actual",
        n=2,
    )
    return "".join(lines)[:6000]


class Snapshot:
    """Compares text to a golden file; when updating, rewrites a differing file and still fails."""

    def __init__(self, update: bool) -> None:
        self.update = update

    def assert_match(self, actual: str, golden: Path) -> None:
        """Fail with a diff if ``actual`` differs from ``golden`` (when updating, rewrite it first, then fail)."""
        expected = golden.read_text(encoding="utf-8") if golden.is_file() else None
        if expected == actual:
            return
        if self.update:
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(actual, encoding="utf-8")
            what = "created" if expected is None else f"rewritten:\n{_diff(expected, actual, golden)}"
            pytest.fail(f"{golden} was {what}\nreview it with `git diff`, then re-run without --update-snapshots")
        if expected is None:
            pytest.fail(f"no golden file {golden}: {UPDATE_HINT}")
        pytest.fail(
            f"{golden} is out of date; if the change is intended, {UPDATE_HINT}:\n{_diff(expected, actual, golden)}"
        )

    def assert_json(self, document: Any, golden: Path) -> None:
        """Compare a JSON document in its canonical form."""
        self.assert_match(canonical_json(document), golden)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def update_requested(config: pytest.Config, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this run rewrites golden files; :class:`pytest.UsageError` if it is asked for under CI."""
    requested = bool(config.getoption("--update-snapshots")) or _truthy(environ.get("UPDATE_SNAPSHOTS"))
    if requested and _truthy(environ.get("CI")):
        raise pytest.UsageError(
            "--update-snapshots / UPDATE_SNAPSHOTS is refused under CI: CI compares golden files, it never rewrites them"
        )
    return requested
