"""The deployment ledger never keeps a torn line, and draws on the disk reserve when the disk is full."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from safedeploy import ledger as ledger_module
from safedeploy.ledger import EVENT_ROLLED_BACK, EVENT_STARTED, EVENT_SUCCEEDED, EVENT_TAIL_SET_ASIDE, DeploymentLedger
from safedeploy.reserve import RESERVE_BYTES, critical_write, ensure_reserve


def _started(ledger: DeploymentLedger, deployment: str, version: int) -> None:
    ledger.append(deployment, EVENT_STARTED, green={"endpoint": f"e{version}", "version": version})


def test_a_torn_tail_is_set_aside_and_the_next_append_starts_on_a_fresh_line(tmp_path: Path) -> None:
    ledger = DeploymentLedger(tmp_path, "p")
    _started(ledger, "d1", 1)
    ledger.append("d1", EVENT_SUCCEEDED, green={"endpoint": "e1", "version": 1})
    with ledger.path.open("ab") as stream:  # a writer killed mid-line
        stream.write(b'{"deployment_id": "d2", "event": "Deploym')

    _started(ledger, "d3", 3)

    lines = ledger.path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    records = [json.loads(line) for line in lines[:-1]]  # every line parses
    assert [r["event"] for r in records] == [EVENT_STARTED, EVENT_SUCCEEDED, EVENT_TAIL_SET_ASIDE, EVENT_STARTED]
    aside = Path(records[2]["set_aside"])
    assert aside.read_bytes() == b'{"deployment_id": "d2", "event": "Deploym'
    assert records[2]["bytes"] == len(aside.read_bytes())
    assert ledger.live() is not None and ledger.live().version == 1  # type: ignore[union-attr]


def test_a_torn_tail_longer_than_one_read_chunk_is_set_aside_whole(tmp_path: Path) -> None:
    ledger = DeploymentLedger(tmp_path, "p")
    _started(ledger, "d1", 1)
    tail = b"x" * (ledger_module._TAIL_CHUNK * 2 + 17)
    with ledger.path.open("ab") as stream:
        stream.write(tail)
    _started(ledger, "d2", 2)
    note = ledger.events()[1]
    assert note["event"] == EVENT_TAIL_SET_ASIDE
    assert Path(note["set_aside"]).read_bytes() == tail


def test_a_write_that_fails_part_way_is_cut_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = DeploymentLedger(tmp_path, "p")
    _started(ledger, "d1", 1)
    before = ledger.path.read_bytes()
    real_write = os.write

    def half_then_full(descriptor: int, data: bytes) -> int:
        real_write(descriptor, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("safedeploy.ledger.os.write", half_then_full)
    with pytest.raises(OSError, match="No space"):
        _started(ledger, "d2", 2)
    assert ledger.path.read_bytes() == before


def test_a_short_write_is_cut_back_and_reported_as_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = DeploymentLedger(tmp_path, "p")
    _started(ledger, "d1", 1)
    before = ledger.path.read_bytes()
    real_write = os.write
    monkeypatch.setattr("safedeploy.ledger.os.write", lambda fd, data: real_write(fd, data[:5]))
    with pytest.raises(OSError) as caught:
        _started(ledger, "d2", 2)
    assert caught.value.errno == errno.ENOSPC
    assert ledger.path.read_bytes() == before


def test_on_a_full_disk_the_reserve_is_released_once_and_the_append_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reserve = tmp_path / ".reserve"
    assert ensure_reserve(reserve)
    assert reserve.stat().st_size == RESERVE_BYTES
    ledger = DeploymentLedger(tmp_path / "deployments", "p", reserve)
    real_write = os.write
    failures = iter([True])

    def full_once(descriptor: int, data: bytes) -> int:
        if next(failures, False):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(descriptor, data)

    monkeypatch.setattr("safedeploy.ledger.os.write", full_once)
    ledger.append("d1", EVENT_ROLLED_BACK, reason="alarm")
    assert not reserve.exists()
    assert [e["event"] for e in ledger.events()] == [EVENT_ROLLED_BACK]


def test_progress_events_do_not_draw_on_the_reserve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk stops a deployment's progress (it then rolls back, and that record may use the reserve)."""
    reserve = tmp_path / ".reserve"
    assert ensure_reserve(reserve, 4096)
    ledger = DeploymentLedger(tmp_path / "deployments", "p", reserve)

    def full(descriptor: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("safedeploy.ledger.os.write", full)
    with pytest.raises(OSError):
        _started(ledger, "d1", 1)
    assert reserve.exists()


def test_without_a_reserve_a_full_disk_is_raised() -> None:
    def full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        critical_write(None, full)


def test_other_errors_do_not_touch_the_reserve(tmp_path: Path) -> None:
    reserve = tmp_path / ".reserve"
    ensure_reserve(reserve, 4096)

    def denied() -> None:
        raise PermissionError(errno.EACCES, "denied")

    with pytest.raises(PermissionError):
        critical_write(reserve, denied)
    assert reserve.exists()


def test_the_ledger_file_is_owner_only(tmp_path: Path) -> None:
    ledger = DeploymentLedger(tmp_path, "p")
    _started(ledger, "d1", 1)
    assert ledger.path.stat().st_mode & 0o077 == 0
