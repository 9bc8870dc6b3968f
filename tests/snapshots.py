"""Golden-file (snapshot) comparison with an update flag.

``pytest --update-snapshots`` (or ``UPDATE_SNAPSHOTS=1``) rewrites the golden files instead of comparing; review
the diff with ``git diff`` and commit it. Without the flag a difference fails with a unified diff naming the file.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import pytest

SNAPSHOT_DIR = Path(__file__).resolve().parent / "snapshots"


def canonical_json(document: Any) -> str:
    """The stable text of a JSON document: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


class Snapshot:
    """Compares text to a golden file, or rewrites the file when updating."""

    def __init__(self, update: bool) -> None:
        self.update = update

    def assert_match(self, actual: str, golden: Path) -> None:
        """Fail with a diff if ``actual`` differs from ``golden`` (rewrite it instead when updating)."""
        if self.update:
            golden.parent.mkdir(parents=True, exist_ok=True)
            if not golden.is_file() or golden.read_text(encoding="utf-8") != actual:
                golden.write_text(actual, encoding="utf-8")
            return
        if not golden.is_file():
            pytest.fail(f"no golden file {golden}: run `pytest --update-snapshots` and review it")
        expected = golden.read_text(encoding="utf-8")
        if expected != actual:
            diff = "".join(
                difflib.unified_diff(
                    expected.splitlines(keepends=True),
                    actual.splitlines(keepends=True),
                    fromfile=f"{golden} (golden)",
                    tofile="actual",
                    n=2,
                )
            )
            pytest.fail(
                f"{golden} is out of date; if the change is intended run `pytest --update-snapshots`:\n{diff[:6000]}"
            )

    def assert_json(self, document: Any, golden: Path) -> None:
        """Compare a JSON document in its canonical form."""
        self.assert_match(canonical_json(document), golden)


def update_requested(config: pytest.Config) -> bool:
    """Whether this run rewrites golden files."""
    return bool(config.getoption("--update-snapshots")) or os.environ.get("UPDATE_SNAPSHOTS", "") in ("1", "true")
