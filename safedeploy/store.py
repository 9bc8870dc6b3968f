"""Artifact store: S3 semantics (bucket + key), every object checksummed.

The local backend lays objects out as ``<root>/<bucket>/<key>``, the same bucket/key naming the AWS backend
uses in S3, so an ``s3://bucket/key`` URI means the same artifact on both. Object metadata (sha256, size,
content type) lives beside the tree in ``<root>/.meta/<bucket>/<key>.json``; an object without metadata
was never completely written and does not exist as far as the store is concerned.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from safedeploy.atomic import (
    atomic_copy,
    atomic_write_bytes,
    atomic_write_text,
    sha256_file,
    sweep_temporaries,
)
from safedeploy.errors import ArtifactError

_META_DIR = ".meta"


@dataclass(frozen=True, order=True)
class S3Uri:
    """An ``s3://bucket/key`` location."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        """Parse ``s3://bucket/key``; raise :class:`ArtifactError` naming the URI if it is not one."""
        if not uri.startswith("s3://"):
            raise ArtifactError(f"not an s3:// URI: {uri!r}")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket:
            raise ArtifactError(f"s3 URI without a bucket: {uri!r}")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def join(self, *parts: str) -> S3Uri:
        """Return the URI of ``parts`` below this one (treated as a prefix)."""
        key = "/".join(p.strip("/") for p in (self.key, *parts) if p.strip("/"))
        return S3Uri(self.bucket, key)


class ArtifactRef(BaseModel):
    """A stored object and its recorded checksum."""

    model_config = ConfigDict(frozen=True)

    uri: str
    sha256: str
    size: int
    content_type: str = "application/octet-stream"
    last_modified: datetime | None = None


class ArtifactStore(Protocol):
    """What the pipeline needs from S3 (or its local stand-in)."""

    def put_bytes(self, uri: S3Uri, data: bytes, content_type: str = ...) -> ArtifactRef:
        """Store ``data`` at ``uri`` atomically."""
        ...

    def put_file(self, uri: S3Uri, path: Path, content_type: str = ...) -> ArtifactRef:
        """Store the file at ``path`` at ``uri`` atomically."""
        ...

    def get_bytes(self, uri: S3Uri) -> bytes:
        """Return the object's content after checking it against its recorded sha256."""
        ...

    def download(self, uri: S3Uri, dest: Path) -> ArtifactRef:
        """Copy the object to ``dest`` (atomically), checking its sha256."""
        ...

    def head(self, uri: S3Uri) -> ArtifactRef | None:
        """Return the object's metadata, or ``None`` if there is no complete object at ``uri``."""
        ...

    def list_objects(self, prefix: S3Uri) -> list[ArtifactRef]:
        """List complete objects whose key starts with ``prefix.key``, sorted by key."""
        ...


class LocalArtifactStore:
    """Directory-backed :class:`ArtifactStore` with S3's bucket/key layout."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, uri: S3Uri) -> Path:
        """Return the local file that holds ``uri`` (it may not exist)."""
        return self.root / uri.bucket / self._safe_key(uri)

    def _meta_path(self, uri: S3Uri) -> Path:
        return self.root / _META_DIR / uri.bucket / f"{self._safe_key(uri)}.json"

    @staticmethod
    def _safe_key(uri: S3Uri) -> PurePosixPath:
        key = PurePosixPath(uri.key)
        if not uri.key or key.is_absolute() or ".." in key.parts or uri.bucket in ("", ".", "..", _META_DIR):
            raise ArtifactError(f"invalid object location: {uri}")
        return key

    def _record(self, uri: S3Uri, sha256: str, size: int, content_type: str) -> ArtifactRef:
        ref = ArtifactRef(
            uri=str(uri), sha256=sha256, size=size, content_type=content_type, last_modified=datetime.now(UTC)
        )
        atomic_write_text(self._meta_path(uri), ref.model_dump_json(indent=2))
        return ref

    def put_bytes(self, uri: S3Uri, data: bytes, content_type: str = "application/octet-stream") -> ArtifactRef:
        """Store ``data`` at ``uri`` atomically and record its sha256."""
        sha = atomic_write_bytes(self.path_of(uri), data)
        return self._record(uri, sha, len(data), content_type)

    def put_file(self, uri: S3Uri, path: Path, content_type: str = "application/octet-stream") -> ArtifactRef:
        """Copy the file at ``path`` to ``uri`` atomically and record its sha256."""
        dest = self.path_of(uri)
        sha = atomic_copy(path, dest)
        return self._record(uri, sha, dest.stat().st_size, content_type)

    def head(self, uri: S3Uri) -> ArtifactRef | None:
        """Return the recorded metadata of a complete object, or ``None``."""
        meta = self._meta_path(uri)
        if not meta.is_file() or not self.path_of(uri).is_file():
            return None
        return ArtifactRef.model_validate(json.loads(meta.read_text("utf-8")))

    def _require(self, uri: S3Uri) -> ArtifactRef:
        ref = self.head(uri)
        if ref is None:
            raise ArtifactError(f"no such artifact: {uri}")
        return ref

    def get_bytes(self, uri: S3Uri) -> bytes:
        """Return the object's bytes, verified against the recorded sha256."""
        ref = self._require(uri)
        data = self.path_of(uri).read_bytes()
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise ArtifactError(f"checksum mismatch for {uri}: content changed since it was written")
        return data

    def download(self, uri: S3Uri, dest: Path) -> ArtifactRef:
        """Copy the object to ``dest`` atomically, verified against the recorded sha256."""
        ref = self._require(uri)
        sha = atomic_copy(self.path_of(uri), dest)
        if sha != ref.sha256:
            dest.unlink(missing_ok=True)
            raise ArtifactError(f"checksum mismatch for {uri}: content changed since it was written")
        return ref

    def verify(self, ref: ArtifactRef) -> bool:
        """Tell whether the object at ``ref.uri`` still exists with the checksum ``ref`` recorded."""
        uri = S3Uri.parse(ref.uri)
        current = self.head(uri)
        return current is not None and current.sha256 == ref.sha256 == sha256_file(self.path_of(uri))

    def list_objects(self, prefix: S3Uri) -> list[ArtifactRef]:
        """List complete objects under ``prefix``, sorted by key."""
        meta_root = self.root / _META_DIR / prefix.bucket
        if not meta_root.is_dir():
            return []
        refs = []
        for meta in sorted(meta_root.rglob("*.json")):
            key = meta.relative_to(meta_root).as_posix().removesuffix(".json")
            uri = S3Uri(prefix.bucket, key)
            if key.startswith(prefix.key) and (ref := self.head(uri)) is not None:
                refs.append(ref)
        return refs

    def sweep(self) -> list[Path]:
        """Remove temporary files left by writers that died mid-write; return what was removed."""
        return sweep_temporaries(self.root)
