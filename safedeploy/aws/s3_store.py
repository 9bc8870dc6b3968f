"""The artifact store over S3: the :class:`~safedeploy.store.ArtifactStore` protocol, every object checksummed.

An object's sha256 is recorded as user metadata (``x-amz-meta-sha256``) and sent as ``ChecksumSHA256``, so S3
itself refuses a corrupted upload; reads and downloads check the content against the recorded value. As in the
local store, an object without the metadata was not written by the pipeline and does not exist as far as the
store is concerned (:meth:`S3ArtifactStore.head` is ``None``).

Objects other writers put in S3 (SageMaker's data capture) carry no such metadata: :func:`list_s3_objects` lists
them plainly, and :func:`read_object` reads one, checking the sha256 only where it is recorded.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from safedeploy.atomic import atomic_writer
from safedeploy.errors import ArtifactError
from safedeploy.store import ArtifactRef, S3Uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SHA256_METADATA = "sha256"
"""User-metadata key of the recorded checksum (``x-amz-meta-sha256``)."""
MAX_PUT_BYTES = 5 * 1024**3
"""A single PutObject's limit (5 GiB); model archives and datasets stay far below it."""
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class S3Object:
    """A listed object, whoever wrote it."""

    uri: str
    size: int
    last_modified: datetime
    etag: str


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _missing(exc: ClientError) -> bool:
    return _code(exc) in ("NoSuchKey", "404", "NotFound")


def _check(uri: S3Uri, recorded: str | None, actual: str) -> None:
    if recorded is not None and recorded != actual:
        raise ArtifactError(f"checksum mismatch for {uri}: content changed since it was written")


def read_object(s3: S3Client, uri: S3Uri, *, require_checksum: bool) -> bytes:
    """One object's content, checked against its recorded sha256 (required, or only when there is one).

    Raises:
        ArtifactError: no such object, no recorded checksum (when required), or the content does not match it.
    """
    try:
        reply = s3.get_object(Bucket=uri.bucket, Key=uri.key)
    except ClientError as exc:
        if _missing(exc):
            raise ArtifactError(f"no such artifact: {uri}") from None
        raise ArtifactError(f"cannot read {uri}: {_code(exc)}: {exc}") from None
    recorded = reply.get("Metadata", {}).get(SHA256_METADATA)
    if recorded is None and require_checksum:
        raise ArtifactError(f"no such artifact: {uri} has no recorded sha256, so the pipeline did not write it")
    data = reply["Body"].read()
    _check(uri, recorded, hashlib.sha256(data).hexdigest())
    return data


def list_s3_objects(s3: S3Client, prefix: S3Uri) -> list[S3Object]:
    """Every object whose key starts with ``prefix.key``, sorted by key (S3's listing order)."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=prefix.bucket, Prefix=prefix.key):
        for item in page.get("Contents", []):
            found.append(
                S3Object(
                    uri=str(S3Uri(prefix.bucket, item["Key"])),
                    size=item.get("Size", 0),
                    last_modified=item["LastModified"],
                    etag=item.get("ETag", "").strip('"'),
                )
            )
    return found


class S3ArtifactStore:
    """:class:`~safedeploy.store.ArtifactStore` on S3, with the same checksum guarantees as the local store."""

    def __init__(self, s3: S3Client, kms_key_id: str | None = None) -> None:
        """Store artifacts through ``s3``; with ``kms_key_id``, every object is encrypted with that key (SSE-KMS)."""
        self.s3 = s3
        self.kms_key_id = kms_key_id

    def _put(self, uri: S3Uri, body: Any, sha256: bytes, size: int, content_type: str) -> ArtifactRef:
        if not uri.key:
            raise ArtifactError(f"invalid object location: {uri}")
        if size > MAX_PUT_BYTES:
            raise ArtifactError(f"{uri}: {size} bytes is more than one PutObject takes ({MAX_PUT_BYTES})")
        encryption: dict[str, Any] = (
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id} if self.kms_key_id else {}
        )
        try:
            self.s3.put_object(
                Bucket=uri.bucket,
                Key=uri.key,
                Body=body,
                ContentType=content_type,
                Metadata={SHA256_METADATA: sha256.hex()},
                ChecksumSHA256=base64.b64encode(sha256).decode("ascii"),
                **encryption,
            )
        except ClientError as exc:
            raise ArtifactError(f"cannot write {uri}: {_code(exc)}: {exc}") from None
        return ArtifactRef(
            uri=str(uri), sha256=sha256.hex(), size=size, content_type=content_type, last_modified=datetime.now(UTC)
        )

    def put_bytes(self, uri: S3Uri, data: bytes, content_type: str = "application/octet-stream") -> ArtifactRef:
        """Store ``data`` at ``uri`` (one PutObject: all or nothing) and record its sha256."""
        return self._put(uri, data, hashlib.sha256(data).digest(), len(data), content_type)

    def put_file(self, uri: S3Uri, path: Path, content_type: str = "application/octet-stream") -> ArtifactRef:
        """Store the file at ``path`` at ``uri`` and record its sha256."""
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
        with path.open("rb") as stream:
            return self._put(uri, stream, digest.digest(), path.stat().st_size, content_type)

    def get_bytes(self, uri: S3Uri) -> bytes:
        """The object's content, verified against its recorded sha256."""
        return read_object(self.s3, uri, require_checksum=True)

    def download(self, uri: S3Uri, dest: Path) -> ArtifactRef:
        """Copy the object to ``dest`` atomically, verified against its recorded sha256 (``dest`` untouched if not)."""
        try:
            reply = self.s3.get_object(Bucket=uri.bucket, Key=uri.key)
        except ClientError as exc:
            if _missing(exc):
                raise ArtifactError(f"no such artifact: {uri}") from None
            raise ArtifactError(f"cannot read {uri}: {_code(exc)}: {exc}") from None
        recorded = reply.get("Metadata", {}).get(SHA256_METADATA)
        if recorded is None:
            raise ArtifactError(f"no such artifact: {uri} has no recorded sha256, so the pipeline did not write it")
        digest = hashlib.sha256()
        with atomic_writer(dest) as out:
            for chunk in reply["Body"].iter_chunks(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
            _check(uri, recorded, digest.hexdigest())  # raising here leaves dest as it was
        return ArtifactRef(
            uri=str(uri),
            sha256=recorded,
            size=reply.get("ContentLength", 0),
            content_type=reply.get("ContentType", "application/octet-stream"),
            last_modified=reply.get("LastModified"),
        )

    def head(self, uri: S3Uri) -> ArtifactRef | None:
        """The object's recorded metadata, or ``None`` if there is no object the pipeline wrote at ``uri``."""
        try:
            reply = self.s3.head_object(Bucket=uri.bucket, Key=uri.key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise ArtifactError(f"cannot read {uri}: {_code(exc)}: {exc}") from None
        recorded = reply.get("Metadata", {}).get(SHA256_METADATA)
        if recorded is None:
            return None
        return ArtifactRef(
            uri=str(uri),
            sha256=recorded,
            size=reply.get("ContentLength", 0),
            content_type=reply.get("ContentType", "application/octet-stream"),
            last_modified=reply.get("LastModified"),
        )

    def list_objects(self, prefix: S3Uri) -> list[ArtifactRef]:
        """The pipeline's objects under ``prefix`` (those with a recorded sha256), sorted by key."""
        refs = []
        for listed in list_s3_objects(self.s3, prefix):
            ref = self.head(S3Uri.parse(listed.uri))
            if ref is not None:
                refs.append(ref)
        return refs

    def verify(self, ref: ArtifactRef) -> bool:
        """Whether the object at ``ref.uri`` still exists with the checksum ``ref`` recorded (content re-hashed)."""
        uri = S3Uri.parse(ref.uri)
        current = self.head(uri)
        if current is None or current.sha256 != ref.sha256:
            return False
        try:
            reply = self.s3.get_object(Bucket=uri.bucket, Key=uri.key)
        except ClientError:
            return False
        digest = hashlib.sha256()
        for chunk in reply["Body"].iter_chunks(_CHUNK):
            digest.update(chunk)
        return digest.hexdigest() == ref.sha256
