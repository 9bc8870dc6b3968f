"""Reproducible tar.gz archives: same content in, same bytes (and sha256) out."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Mapping
from pathlib import Path

from safedeploy.errors import ArtifactError


def directory_members(
    directory: Path, exclude: tuple[str, ...] = ("__pycache__",), extra: Mapping[str, Path] | None = None
) -> dict[str, Path]:
    """``directory``'s files by their path relative to it, plus ``extra`` (archive name -> file; it wins)."""
    members: dict[str, Path] = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if any(part in exclude for part in relative.parts) or not path.is_file():
            continue
        members[relative.as_posix()] = path
    members.update(extra or {})
    return members


def pack_files(members: Mapping[str, Path]) -> bytes:
    """Return a gzipped tar of ``members`` (archive name -> file), sorted, with normalised metadata."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name in sorted(members):
            path = members[name]
            info = tarfile.TarInfo(name)
            info.size = path.stat().st_size
            info.mode = 0o644
            with path.open("rb") as stream:
                tar.addfile(info, stream)
    return buffer.getvalue()


def pack_directory(
    directory: Path, exclude: tuple[str, ...] = ("__pycache__",), extra: Mapping[str, Path] | None = None
) -> bytes:
    """Return a gzipped tar of ``directory``'s content (paths relative to it), with normalised metadata.

    ``extra`` adds files from elsewhere under the given archive names (a file of the directory with the same
    name is replaced).
    """
    return pack_files(directory_members(directory, exclude, extra))


def _owner_only(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """The ``data`` extraction filter (no links out, no absolute paths, no devices), with owner-only modes."""
    member = tarfile.data_filter(member, dest)
    mode = member.mode if member.mode is not None else (0o700 if member.isdir() else 0o600)
    return member.replace(mode=mode & 0o700, deep=False)


def unpack(archive: bytes, dest: Path) -> None:
    """Extract a tar.gz into ``dest`` owner-only, refusing links and paths that escape it."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            tar.extractall(dest, filter=_owner_only)  # noqa: S202 - tarfile's data filter, then owner-only modes
    except (tarfile.TarError, OSError) as exc:
        raise ArtifactError(f"cannot unpack archive into {dest}: {exc}") from None


def read_member(archive: bytes, name: str) -> bytes:
    """Return one member of a tar.gz; raise :class:`ArtifactError` if it is absent."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        try:
            member = tar.extractfile(name)
        except KeyError:
            member = None
        if member is None:
            raise ArtifactError(f"archive has no member {name!r}")
        return member.read()
