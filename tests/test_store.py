"""Artifact store: S3 layout, recorded sha256, atomic writes that a crash cannot leave half-done."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from safedeploy import atomic
from safedeploy.errors import ArtifactError
from safedeploy.store import LocalArtifactStore, S3Uri


def test_layout_is_bucket_slash_key_and_sha_is_recorded(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    uri = S3Uri.parse("s3://my-bucket/a/b/c.csv")
    ref = store.put_bytes(uri, b"1,2,3\n", "text/csv")
    assert (tmp_path / "my-bucket" / "a" / "b" / "c.csv").read_bytes() == b"1,2,3\n"
    assert ref.sha256 == hashlib.sha256(b"1,2,3\n").hexdigest()
    assert ref.uri == "s3://my-bucket/a/b/c.csv" and ref.size == 6
    assert store.get_bytes(uri) == b"1,2,3\n"
    assert store.head(uri) == ref
    assert [r.uri for r in store.list_objects(S3Uri("my-bucket", "a/"))] == [ref.uri]
    assert store.verify(ref)


def test_tampered_object_fails_its_checksum(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    uri = S3Uri("b", "model.tar.gz")
    ref = store.put_bytes(uri, b"original")
    store.path_of(uri).write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        store.get_bytes(uri)
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        store.download(uri, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not store.verify(ref)


@pytest.mark.parametrize("uri", ["s3://b/../escape", "s3://b//abs", "s3://.meta/x", "s3://b/"])
def test_keys_cannot_escape_the_store(tmp_path: Path, uri: str) -> None:
    with pytest.raises(ArtifactError):
        LocalArtifactStore(tmp_path).put_bytes(S3Uri.parse(uri), b"x")


def test_not_an_s3_uri() -> None:
    with pytest.raises(ArtifactError, match="not an s3:// URI"):
        S3Uri.parse("/tmp/file")


def test_failure_mid_write_leaves_old_content_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalArtifactStore(tmp_path)
    uri = S3Uri("b", "data.csv")
    store.put_bytes(uri, b"old")

    def crash(fd: int) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk on fire"):
        store.put_bytes(uri, b"new" * 1000)
    monkeypatch.undo()
    assert store.get_bytes(uri) == b"old"
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["data.csv"]


def test_kill_9_mid_write_leaves_no_partial_artifact(tmp_path: Path) -> None:
    """A writer killed mid-write leaves only an invisible temporary, which the store then sweeps."""
    writer = f"""
import sys, time
from pathlib import Path
from safedeploy.atomic import atomic_writer
with atomic_writer(Path({str(tmp_path / "b" / "big.bin")!r})) as out:
    out.write(b"x" * 1000)
    out.flush()
    print("writing", flush=True)
    time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)

    store = LocalArtifactStore(tmp_path)
    assert not (tmp_path / "b" / "big.bin").exists()
    leftovers = list((tmp_path / "b").iterdir())
    assert len(leftovers) == 1 and atomic.is_temporary(leftovers[0])
    assert store.head(S3Uri("b", "big.bin")) is None
    assert store.sweep() == leftovers
    assert list((tmp_path / "b").iterdir()) == []


def test_sweep_spares_live_writers(tmp_path: Path) -> None:
    live = tmp_path / f".x.csv.{os.getpid()}.0123abcd.tmp"
    live.write_bytes(b"in flight")
    assert atomic.sweep_temporaries(tmp_path) == []
    assert live.exists()


def test_object_without_metadata_does_not_exist(tmp_path: Path) -> None:
    """A crash between writing the object and its checksum record leaves no visible artifact."""
    store = LocalArtifactStore(tmp_path)
    uri = S3Uri("b", "half.csv")
    store.path_of(uri).parent.mkdir(parents=True)
    store.path_of(uri).write_bytes(b"no checksum recorded")
    assert store.head(uri) is None
    with pytest.raises(ArtifactError, match="no such artifact"):
        store.get_bytes(uri)


def test_a_write_in_flight_is_a_temporary_named_for_its_writer(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "model.tar.gz"
    with atomic.atomic_writer(dest) as stream:
        stream.write(b"partial")
        [temporary] = list(dest.parent.iterdir())
        assert atomic.is_temporary(temporary) and not dest.exists()
        assert temporary.name.startswith(f".model.tar.gz.{os.getpid()}.") and temporary.read_bytes() == b""
        assert atomic.sweep_temporaries(tmp_path) == []  # its writer is alive
    assert list(dest.parent.iterdir()) == [dest] and dest.read_bytes() == b"partial"
    assert atomic.atomic_write_text(dest, "ünïcode") == hashlib.sha256("ünïcode".encode()).hexdigest()
    assert dest.read_bytes() == "ünïcode".encode()


def test_a_temporary_another_sweeper_removed_meanwhile_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    orphan = tmp_path / ".x.csv.999999.0123abcd.tmp"
    orphan.write_bytes(b"left by a dead writer")

    def dead_and_already_swept(pid: int) -> bool:
        orphan.unlink()  # a concurrent sweep got there first
        return False

    monkeypatch.setattr(atomic, "pid_alive", dead_and_already_swept)
    assert atomic.sweep_temporaries(tmp_path) == [orphan]


def test_hashing_and_copying_stream_in_bounded_memory(tmp_path: Path) -> None:
    """Model archives can be large: a file is read in 1 MiB chunks, never whole."""
    big = tmp_path / "big.bin"
    content = os.urandom(1 << 20) * 12  # 12 MiB
    big.write_bytes(content)
    del content
    tracemalloc.start()
    try:
        digest = atomic.sha256_file(big)
        copied = atomic.atomic_copy(big, tmp_path / "copy.bin")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest == copied == hashlib.sha256(big.read_bytes()).hexdigest()
    assert (tmp_path / "copy.bin").read_bytes() == big.read_bytes()
    assert peak < 4 << 20, f"peak {peak / (1 << 20):.1f} MiB"
