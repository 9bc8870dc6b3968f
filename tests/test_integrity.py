"""Model integrity without a runtime: CreateModel's sources, the archive digest, the unpacked tree's manifest."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import Any

import pytest

from safedeploy.archives import pack_directory
from safedeploy.serving.handler_paths import LAMBDAS_DIR, handler_problem
from safedeploy.serving.integrity import ModelIntegrityError, prepare_model_tree, source_problem, tree_problem
from safedeploy.serving.state import ContainerDefinition
from safedeploy.store import LocalArtifactStore, S3Uri

CODE_URI = S3Uri("bucket", "job/source/sourcedir.tar.gz")
MODEL_URI = S3Uri("bucket", "job/output/model.tar.gz")


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    store = LocalArtifactStore(tmp_path / "s3")
    code, model = tmp_path / "code", tmp_path / "model"
    code.mkdir()
    (code / "inference.py").write_text("def model_fn(model_dir):\n    return None\n")
    model.mkdir()
    (model / "weights.json").write_text('{"w": 1}')
    store.put_bytes(CODE_URI, pack_directory(code))
    store.put_bytes(MODEL_URI, pack_directory(model))
    return store


def _container(store: LocalArtifactStore, **changes: Any) -> ContainerDefinition:
    digest = hashlib.sha256(store.get_bytes(MODEL_URI)).hexdigest()
    document: dict[str, Any] = {
        "Image": "local",
        "ModelDataSource": {
            "S3DataSource": {
                "S3Uri": str(MODEL_URI),
                "S3DataType": "S3Object",
                "CompressionType": "Gzip",
                "ETag": digest,
            }
        },
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": str(CODE_URI)},
    }
    return ContainerDefinition.model_validate(document | changes)


def _environment(**variables: str) -> dict[str, str]:
    return {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": str(CODE_URI)} | variables


def test_create_model_accepts_store_archives_with_their_digest(store: LocalArtifactStore) -> None:
    assert source_problem(_container(store), store) is None
    quoted = _container(store)
    assert quoted.ModelDataSource is not None
    quoted.ModelDataSource.S3DataSource.ETag = f'"{quoted.ModelDataSource.S3DataSource.ETag}"'  # as S3 quotes ETags
    assert source_problem(quoted, store) is None


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"Environment": _environment(SAGEMAKER_SUBMIT_DIRECTORY="/home/me/code")}, "not '/home/me/code'"),
        ({"Environment": _environment(SAGEMAKER_SUBMIT_DIRECTORY="s3://bucket/nothing.tar.gz")}, "no object"),
        ({"Environment": {"SAGEMAKER_PROGRAM": "inference.py"}}, "SAGEMAKER_SUBMIT_DIRECTORY is required"),
        ({"Environment": _environment(SAGEMAKER_PROGRAM="../../evil.py")}, "must be a file name"),
        ({"Environment": _environment(LD_PRELOAD="/tmp/evil.so")}, "Environment.LD_PRELOAD is not accepted"),
        ({"Environment": _environment(PYTHONPATH="/tmp/evil")}, "Environment.PYTHONPATH is not accepted"),
        ({"ModelDataSource": None, "ModelDataUrl": str(MODEL_URI)}, "ModelDataUrl carries no digest"),
    ],
    ids=["local-code", "missing-code", "no-code", "program-path", "ld-preload", "pythonpath", "model-data-url"],
)
def test_create_model_refuses_code_and_data_from_outside_the_store_or_without_digest(
    store: LocalArtifactStore, changes: dict[str, Any], named: str
) -> None:
    problem = source_problem(_container(store, **changes), store)
    assert problem is not None and named in problem


def test_create_model_refuses_a_model_data_source_without_a_sha256_etag(store: LocalArtifactStore) -> None:
    container = _container(store)
    assert container.ModelDataSource is not None
    for etag in (None, "d41d8cd98f00b204e9800998ecf8427e"):  # absent; an MD5-style S3 ETag
        container.ModelDataSource.S3DataSource.ETag = etag
        problem = source_problem(container, store)
        assert problem is not None and "ETag is required" in problem


def test_a_tampered_model_archive_is_not_unpacked(store: LocalArtifactStore, tmp_path: Path) -> None:
    container = _container(store)  # the ETag recorded before the change
    store.put_bytes(MODEL_URI, pack_directory(tmp_path / "code"))  # rewritten with the store's own checksum
    with pytest.raises(ModelIntegrityError) as refused:
        prepare_model_tree(store, tmp_path / "base", container)
    assert "model.tar.gz" in str(refused.value) and "recorded at registration" in str(refused.value)
    assert not (tmp_path / "base").exists()


def test_the_unpacked_tree_matches_its_manifest_until_a_file_is_added_changed_linked_or_removed(
    store: LocalArtifactStore, tmp_path: Path
) -> None:
    base = tmp_path / "base"
    manifest = prepare_model_tree(store, base, _container(store))
    assert set(manifest) == {"code/inference.py", "model/weights.json"}
    assert tree_problem(base, manifest) is None
    for path in base.rglob("*"):  # files unpacked owner-only, whatever the archive's modes (0644)
        assert path.is_dir() or stat.S_IMODE(path.stat().st_mode) == 0o600, path

    (base / "code" / "sitecustomize.py").write_text("import os\n")
    assert "unexpected file code/sitecustomize.py" in (tree_problem(base, manifest) or "")
    (base / "code" / "sitecustomize.py").unlink()
    (base / "code" / "__pycache__").mkdir()
    (base / "code" / "__pycache__" / "inference.cpython-311.pyc").write_bytes(b"\0")
    assert "unexpected file code/__pycache__/inference.cpython-311.pyc" in (tree_problem(base, manifest) or "")
    (base / "code" / "__pycache__" / "inference.cpython-311.pyc").unlink()
    (base / "model" / "weights.json").write_text('{"w": 2}')
    assert "model/weights.json changed since it was unpacked" in (tree_problem(base, manifest) or "")
    (base / "model" / "weights.json").unlink()
    (base / "model" / "weights.json").symlink_to("/etc/passwd")
    assert "unexpected link model/weights.json" in (tree_problem(base, manifest) or "")
    (base / "model" / "weights.json").unlink()
    assert "model/weights.json is missing" in (tree_problem(base, manifest) or "")

    # Preparing again refuses the changed tree (the manifest comes from the archives, not from disk).
    (base / "model" / "weights.json").write_text('{"w": 1}')
    assert prepare_model_tree(store, base, _container(store)) == manifest
    (base / "code" / "evil.py").write_text("")
    with pytest.raises(ModelIntegrityError, match=r"unexpected file code/evil\.py"):
        prepare_model_tree(store, base, _container(store))


def test_route_handlers_must_resolve_inside_lambdas(tmp_path: Path) -> None:
    assert handler_problem(f"{LAMBDAS_DIR / 'api' / 'app.py'}:create_handler") is None
    outside = tmp_path / "evil.py"
    outside.write_text("")
    problem = handler_problem(f"{outside}:create")
    assert problem is not None and "outside" in problem and str(outside) in problem
    traversal = handler_problem(f"{LAMBDAS_DIR}/../safedeploy/cli.py:main")
    assert traversal is not None and "resolves to" in traversal
    root = tmp_path / "lambdas"
    root.mkdir()
    (root / "link.py").symlink_to(outside)  # a link inside the directory to a file outside it
    linked = handler_problem(f"{root / 'link.py'}:create", root)
    assert linked is not None and f"it resolves to {outside}" in linked
    assert "absolute path" in (handler_problem("api/app.py:create_handler") or "")
    assert "factory" in (handler_problem(f"{LAMBDAS_DIR / 'api' / 'app.py'}") or "")
