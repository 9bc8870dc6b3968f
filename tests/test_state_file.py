"""A corrupt or unreadable state file never bricks the runtime: it starts from the last good copy, says so in
its log and its health document, and keeps the unusable file for a post-mortem."""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path

import pytest

from safedeploy.local import daemon
from safedeploy.runtime.paths import RuntimePaths
from safedeploy.runtime.state import EndpointRecord, RestApiRoute, RuntimeState, VariantSummary
from safedeploy.runtime.state_file import UnsavableStateError, good_copy, load_state, read_state, save_state
from tests.serving import health

NULL_WEIGHT = {
    "EndpointName": "e",
    "EndpointConfigName": "c",
    "ProductionVariants": [
        {
            "VariantName": "A",
            "CurrentWeight": None,
            "DesiredWeight": None,
            "CurrentInstanceCount": 1,
            "DesiredInstanceCount": 1,
        }
    ],
}


def _state(key: str = "key-1") -> RuntimeState:
    return RuntimeState(ApiKeys={"m": key}, Routes={"r": RestApiRoute(Path="/m/api", Handler="app.py:create_handler")})


def test_a_save_writes_the_file_and_its_good_copy_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_state(_state(), path)
    assert path.read_bytes() == good_copy(path).read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(good_copy(path).stat().st_mode) == 0o600
    loaded = load_state(path, keep_aside=True)
    assert loaded.recovery is None and loaded.state.ApiKeys == {"m": "key-1"}


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (b"", "not valid state"),
        (b"{not json", "not valid state"),
        (b"\xff\xfe", "not valid state"),
        # What an Infinity weight used to become once saved: null where a number must be.
        (json.dumps({"Endpoints": {"e": NULL_WEIGHT}}).encode(), "Endpoints.e.ProductionVariants.0.CurrentWeight"),
    ],
    ids=["empty", "not json", "not utf-8", "null weight"],
)
def test_a_corrupt_file_is_kept_aside_and_the_good_copy_used(tmp_path: Path, damage: bytes, problem: str) -> None:
    path = tmp_path / "state.json"
    save_state(_state(), path)
    path.write_bytes(damage)
    loaded = load_state(path, keep_aside=True)
    assert loaded.state.ApiKeys == {"m": "key-1"} and "r" in loaded.state.Routes
    recovery = loaded.recovery
    assert recovery is not None
    assert recovery.file == str(path) and recovery.restored_from == str(good_copy(path))
    assert problem in recovery.problem
    assert recovery.kept_as is not None and Path(recovery.kept_as).read_bytes() == damage
    assert not path.exists()  # the runtime saves a fresh one from the good copy


def test_an_unreadable_file_is_recovered_from_too(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_state(_state(), path)
    path.unlink()
    path.mkdir()  # a directory where the file should be: unreadable
    loaded = load_state(path, keep_aside=True)
    assert loaded.state.ApiKeys == {"m": "key-1"}
    assert loaded.recovery is not None and loaded.recovery.problem.startswith("unreadable")


def test_readers_never_move_the_runtimes_files(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_state(_state(), path)
    path.write_text("garbage")
    assert read_state(path).ApiKeys == {"m": "key-1"}  # what `make outputs` reads
    assert path.read_text() == "garbage"


def test_with_both_copies_unusable_the_runtime_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("garbage")
    good_copy(path).write_text("more garbage")
    loaded = load_state(path, keep_aside=True)
    assert loaded.state == RuntimeState()
    assert loaded.recovery is not None and loaded.recovery.restored_from is None


def test_no_file_at_all_is_a_fresh_start(tmp_path: Path) -> None:
    loaded = load_state(tmp_path / "state.json", keep_aside=True)
    assert loaded.state == RuntimeState() and loaded.recovery is None


def test_state_that_would_not_load_back_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_state(_state(), path)
    before = path.read_bytes()
    state = _state("key-2")
    record = EndpointRecord(EndpointName="e", EndpointConfigName="c")
    summary = VariantSummary(
        VariantName="A", CurrentWeight=1.0, DesiredWeight=1.0, CurrentInstanceCount=1, DesiredInstanceCount=1
    )
    summary.CurrentWeight = math.inf  # assigned past validation: would be saved as null
    record.ProductionVariants = [summary]
    state.Endpoints["e"] = record
    with pytest.raises(UnsavableStateError, match="CurrentWeight"):
        save_state(state, path)
    unwritable = _state("key-3")
    unwritable.Routes["r"].Handler = "\ud800"  # half a surrogate pair: no UTF-8 file can hold it
    with pytest.raises(UnsavableStateError, match="cannot be written as JSON"):
        save_state(unwritable, path)
    assert path.read_bytes() == before == good_copy(path).read_bytes()


@pytest.mark.slow
def test_the_runtime_starts_from_the_good_copy_and_says_so(tmp_path: Path) -> None:
    paths = RuntimePaths(tmp_path / "state")
    paths.root.mkdir(parents=True)
    save_state(_state("kept-key"), paths.state)
    paths.state.write_text('{"ApiKeys": 7}')
    try:
        info = daemon.ensure_running(paths.state_dir, "us-east-1", "000000000000")
        recovery = health(info)["stateRecovery"]
        assert recovery["file"] == str(paths.state) and recovery["restored_from"] == str(good_copy(paths.state))
        assert "not valid state: ApiKeys" in recovery["problem"]
        assert read_state(paths.state).ApiKeys == {"m": "kept-key"}  # saved again from the good copy
        log = paths.log.read_text()
        assert f"state file {paths.state} is unusable" in log and f"started from {good_copy(paths.state)}" in log
    finally:
        daemon.stop(paths.state_dir)


def test_a_save_cut_short_by_a_full_disk_leaves_the_state_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The good copy is written first: a failure between the writes leaves ``state.json`` at the previous state,
    which is what the control plane undoes memory to."""
    import errno

    from safedeploy import atomic
    from safedeploy.runtime import state_file

    path = tmp_path / "state.json"
    save_state(_state("old"), path)
    real = atomic.atomic_write_text

    def full_disk_on_the_second(destination: Path, text: str) -> str:
        if destination == path:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(destination, text)

    monkeypatch.setattr(state_file, "atomic_write_text", full_disk_on_the_second)
    with pytest.raises(OSError, match="No space left"):
        save_state(_state("new"), path)
    assert read_state(path).ApiKeys == {"m": "old"}
