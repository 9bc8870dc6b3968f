"""The golden-file helper: a difference always fails, an update run rewrites and still fails, CI refuses updates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.snapshots import Snapshot, update_requested


class _Options:
    """A pytest config as far as :func:`update_requested` reads it."""

    def __init__(self, flag: bool) -> None:
        self.flag = flag

    def getoption(self, name: str) -> bool:
        assert name == "--update-snapshots"
        return self.flag


def _golden(tmp_path: Path, text: str | None) -> Path:
    golden = tmp_path / "golden" / "stack.json"
    if text is not None:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    return golden


@pytest.mark.parametrize("update", [False, True])
def test_a_matching_golden_file_passes_and_is_left_alone(tmp_path: Path, update: bool) -> None:
    golden = _golden(tmp_path, "a\n")
    os.utime(golden, (1_000_000, 1_000_000))
    Snapshot(update).assert_match("a\n", golden)
    assert golden.read_text() == "a\n" and golden.stat().st_mtime == 1_000_000


def test_a_difference_fails_with_a_diff_and_keeps_the_golden_file(tmp_path: Path) -> None:
    golden = _golden(tmp_path, "a\nb\n")
    with pytest.raises(pytest.fail.Exception, match=r"is out of date(.|\n)*-b\n\+c"):
        Snapshot(False).assert_match("a\nc\n", golden)
    assert golden.read_text() == "a\nb\n"
    with pytest.raises(pytest.fail.Exception, match="no golden file"):
        Snapshot(False).assert_match("a\n", tmp_path / "missing.json")


def test_an_update_rewrites_a_differing_golden_file_and_still_fails(tmp_path: Path) -> None:
    golden = _golden(tmp_path, "a\nb\n")
    with pytest.raises(pytest.fail.Exception, match=r"was rewritten(.|\n)*-b\n\+c(.|\n)*re-run without"):
        Snapshot(True).assert_match("a\nc\n", golden)
    assert golden.read_text() == "a\nc\n"
    Snapshot(False).assert_match("a\nc\n", golden)  # the re-run without the flag is green

    created = tmp_path / "new" / "deep" / "stack.json"
    with pytest.raises(pytest.fail.Exception, match="was created"):
        Snapshot(True).assert_json({"b": 1, "a": [2]}, created)
    assert created.read_text() == '{\n  "a": [\n    2\n  ],\n  "b": 1\n}\n'


@pytest.mark.parametrize(
    ("flag", "environ", "expected"),
    [
        (False, {}, False),
        (True, {}, True),
        (False, {"UPDATE_SNAPSHOTS": "1"}, True),
        (False, {"UPDATE_SNAPSHOTS": "true"}, True),
        (False, {"UPDATE_SNAPSHOTS": "0"}, False),
        (False, {"CI": "true"}, False),  # CI compares
    ],
)
def test_the_update_flag(flag: bool, environ: dict[str, str], expected: bool) -> None:
    assert update_requested(_Options(flag), environ) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("flag", "environ"),
    [
        (True, {"CI": "true"}),
        (False, {"CI": "1", "UPDATE_SNAPSHOTS": "1"}),
        (False, {"CI": "TRUE", "UPDATE_SNAPSHOTS": "yes"}),
    ],
)
def test_ci_refuses_to_update_snapshots(flag: bool, environ: dict[str, str]) -> None:
    with pytest.raises(pytest.UsageError, match="refused under CI"):
        update_requested(_Options(flag), environ)  # type: ignore[arg-type]


def test_a_ci_run_asked_to_update_snapshots_stops_before_any_test() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_XDIST_WORKER", "PYTEST_ADDOPTS")}
    env |= {"CI": "true", "UPDATE_SNAPSHOTS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", "-q", "tests/test_snapshots.py::test_the_update_flag"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "refused under CI" in result.stderr and "passed" not in result.stdout
