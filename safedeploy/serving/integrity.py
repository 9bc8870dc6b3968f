"""A served model's code and data come from the artifact store, match their recorded digests, and stay unchanged.

Three checks, each naming the file at fault:

* ``CreateModel`` (:func:`source_problem`): the model data is a ``ModelDataSource.S3DataSource`` object of the
  local artifact store with its ``ETag`` (the archive's sha256, which the registry recorded at registration as
  ``ModelDataETag``); the handler code (``SAGEMAKER_SUBMIT_DIRECTORY``) is an ``s3://`` archive of the store, never
  a local directory; ``SAGEMAKER_PROGRAM`` is a file name; no variable that changes how a process loads code
  (``LD_*``, ``DYLD_*``, ``PYTHON*``).
* Unpacking (:func:`prepare_model_tree`): the model archive must have the ``ETag``'s sha256 before it is opened; the
  digests of both archives' files form the model's manifest (computed from the archives, so it cannot be
  edited on disk to match a change), written beside the tree as ``manifest.json``.
* Before every serving instance starts (:func:`tree_problem`, fleet start and replacement alike): the unpacked
  tree must hold exactly the manifest's files with their digests; an added, changed, missing or linked file
  stops the instance from starting and fails the endpoint.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import tarfile
import threading
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from safedeploy import constants as C
from safedeploy.archives import unpack
from safedeploy.atomic import atomic_write_text
from safedeploy.errors import ArtifactError, SafeDeployError
from safedeploy.serving.state import ContainerDefinition, S3ModelDataSource
from safedeploy.store import LocalArtifactStore, S3Uri

MANIFEST_NAME = "manifest.json"
MODEL_DIR, CODE_DIR = "model", "code"
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_LOADER_VARIABLES = re.compile(r"^(LD_|DYLD_|PYTHON)", re.IGNORECASE)
_RESERVED_VARIABLES = frozenset((C.SM_BASE_DIR_ENV, C.LISTEN_FD_ENV))

_UNPACKING = threading.Lock()
"""Endpoints deploying the same model at once (each in a worker thread) must not unpack over each other."""

Manifest = Mapping[str, str]
"""sha256 (hex) of every file of an unpacked model, by path relative to its base (``model/...``, ``code/...``)."""


class ModelIntegrityError(SafeDeployError):
    """A model archive or its unpacked tree does not match its recorded digests; the message names the file."""


def etag_digest(source: S3ModelDataSource) -> str | None:
    """The sha256 an ``ETag`` names (quotes, as S3 writes ETags, allowed), or None if it is not one."""
    etag = (source.ETag or "").strip().strip('"').lower()
    return etag if _SHA256_HEX.match(etag) else None


def source_problem(container: ContainerDefinition, store: LocalArtifactStore) -> str | None:
    """Why ``CreateModel`` must refuse this container's code or data (None if it may be served)."""
    environment = container.Environment
    for name in sorted(environment):
        if _LOADER_VARIABLES.match(name) or name in _RESERVED_VARIABLES:
            return (
                f"PrimaryContainer.Environment.{name} is not accepted: it would change which code the serving "
                "process loads or where it listens (LD_*, DYLD_* and PYTHON* variables and the runtime's own "
                "are refused)"
            )
    program = environment.get(C.SM_PROGRAM_ENV, C.INFERENCE_PROGRAM)
    if PurePosixPath(program).name != program or program.startswith(".") or "\\" in program:
        return f"{C.SM_PROGRAM_ENV} must be a file name in the code archive (e.g. inference.py), not {program!r}"
    code = environment.get(C.SM_SUBMIT_DIRECTORY_ENV)
    if code is None:
        return (
            f"{C.SM_SUBMIT_DIRECTORY_ENV} is required: the s3:// URI of the handler code's archive in the "
            "artifact store"
        )
    if not code.startswith("s3://"):
        return (
            f"{C.SM_SUBMIT_DIRECTORY_ENV} must be the s3:// URI of the handler code's archive in the artifact store "
            f"(e.g. .../sourcedir.tar.gz), not {code!r}: this runtime runs code only from the artifact store"
        )
    problem = _object_problem(store, code, C.SM_SUBMIT_DIRECTORY_ENV)
    if problem is not None:
        return problem
    if container.ModelDataUrl is not None:
        return (
            "PrimaryContainer.ModelDataUrl carries no digest, so this runtime does not accept it: give "
            "ModelDataSource.S3DataSource with S3Uri, S3DataType 'S3Object', CompressionType 'Gzip' and ETag (the "
            "archive's sha256: the model package's ModelDataETag)"
        )
    if container.ModelDataSource is None:
        return None
    source = container.ModelDataSource.S3DataSource
    if source.S3DataType != "S3Object" or source.CompressionType != "Gzip":
        return (
            "ModelDataSource.S3DataSource must name one gzipped archive (S3DataType 'S3Object', CompressionType "
            f"'Gzip'), not S3DataType {source.S3DataType!r} with CompressionType {source.CompressionType!r}"
        )
    if etag_digest(source) is None:
        return (
            "ModelDataSource.S3DataSource.ETag is required: the model archive's sha256 (64 hex digits), the model "
            f"package's ModelDataETag; got {source.ETag!r}"
        )
    return _object_problem(store, source.S3Uri, "ModelDataSource.S3DataSource.S3Uri")


def _object_problem(store: LocalArtifactStore, uri: str, field: str) -> str | None:
    try:
        found = store.head(S3Uri.parse(uri))
    except ArtifactError as exc:
        return f"{field}: {exc}"
    return None if found is not None else f"{field}: there is no object {uri} in the artifact store"


def archive_digests(archive: bytes, prefix: str, what: str) -> dict[str, str]:
    """sha256 of every regular file of a tar.gz, by ``prefix/<member path>``; links and devices are refused."""
    digests: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for member in tar:
                if member.isdir():
                    continue
                name = PurePosixPath(member.name)
                if not member.isfile():
                    raise ModelIntegrityError(f"{what} holds {name}, which is not a regular file (links are refused)")
                stream = tar.extractfile(member)
                assert stream is not None  # noqa: S101 - a regular file has content
                digests[(PurePosixPath(prefix) / name).as_posix()] = hashlib.sha256(stream.read()).hexdigest()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ModelIntegrityError(f"{what} is not a readable tar.gz archive: {exc}") from None
    return digests


def _model_archive(store: LocalArtifactStore, source: S3ModelDataSource) -> bytes:
    """The model archive's bytes, refused unless their sha256 is the ``ETag`` CreateModel was given."""
    uri = S3Uri.parse(source.S3Uri)
    expected = etag_digest(source)
    path = store.path_of(uri)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelIntegrityError(f"cannot read the model data {uri} ({path}): {exc.strerror or exc}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ModelIntegrityError(
            f"the model data {uri} ({path}) has sha256 {actual}, not {expected}, the digest recorded at registration "
            "(CreateModel's ETag): it changed after registration, so it is not unpacked"
        )
    return data


def prepare_model_tree(store: LocalArtifactStore, base: Path, container: ContainerDefinition) -> Manifest:
    """Unpack the model's verified archives under ``base`` (``model/``, ``code/``) unless already there; check it.

    Returns the manifest (from the archives themselves). A tree left by an earlier unpack of the same archives
    is reused only if it still matches; one from other archives is replaced.
    """
    environment = container.Environment
    code_source = environment.get(C.SM_SUBMIT_DIRECTORY_ENV)
    if code_source is None or not code_source.startswith("s3://"):
        raise ModelIntegrityError(f"{C.SM_SUBMIT_DIRECTORY_ENV} must be the s3:// URI of the code archive")
    if container.ModelDataUrl is not None:
        raise ModelIntegrityError("the model was created with ModelDataUrl, which carries no digest; create it again")
    code_uri = S3Uri.parse(code_source)
    code_archive = store.get_bytes(code_uri)  # checked against the sha256 the store recorded when it was written
    manifest = archive_digests(code_archive, CODE_DIR, f"the code archive {code_uri}")
    model_archive: bytes | None = None
    if container.ModelDataSource is not None:
        source = container.ModelDataSource.S3DataSource
        model_archive = _model_archive(store, source)
        manifest |= archive_digests(model_archive, MODEL_DIR, f"the model data {source.S3Uri}")
    program = f"{CODE_DIR}/{environment.get(C.SM_PROGRAM_ENV, C.INFERENCE_PROGRAM)}"
    if program not in manifest:
        raise ModelIntegrityError(f"the code archive {code_uri} has no {program.removeprefix(CODE_DIR + '/')}")
    with _UNPACKING:
        if _recorded_manifest(base) != manifest:
            shutil.rmtree(base, ignore_errors=True)
            unpack(code_archive, base / CODE_DIR)
            if model_archive is not None:
                unpack(model_archive, base / MODEL_DIR)
            else:
                (base / MODEL_DIR).mkdir(parents=True)
            atomic_write_text(base / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True))
        problem = tree_problem(base, manifest)
    if problem is not None:
        raise ModelIntegrityError(problem)
    return manifest


def _recorded_manifest(base: Path) -> dict[str, str] | None:
    try:
        document = json.loads((base / MANIFEST_NAME).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def tree_problem(base: Path, manifest: Manifest) -> str | None:
    """What differs between the unpacked tree at ``base`` and its manifest (None if nothing does)."""
    problems: list[str] = []
    seen: set[str] = set()
    for top in (MODEL_DIR, CODE_DIR):
        for directory, dirs, files in os.walk(base / top):
            for name in sorted((*dirs, *files)):
                path = Path(directory) / name
                relative = path.relative_to(base).as_posix()
                mode = path.lstat().st_mode
                if stat.S_ISDIR(mode):
                    continue
                if not stat.S_ISREG(mode):
                    problems.append(f"unexpected {'link' if stat.S_ISLNK(mode) else 'special file'} {relative}")
                elif relative not in manifest:
                    problems.append(f"unexpected file {relative} (not in the model's archives)")
                else:
                    seen.add(relative)
                    if _sha256(path) != manifest[relative]:
                        problems.append(f"{relative} changed since it was unpacked")
    problems += [f"{relative} is missing" for relative in sorted(set(manifest) - seen)]
    if not problems:
        return None
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return f"the unpacked model {base} does not match its archives: {problems[0]}{more}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
