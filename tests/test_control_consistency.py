"""The control plane's memory never runs ahead of (or behind) its saved state when a save fails."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path
from typing import Any

import pytest

from safedeploy.archives import pack_directory
from safedeploy.serving.control import ControlPlane
from safedeploy.serving.state import RuntimeState
from safedeploy.store import LocalArtifactStore, S3Uri

CODE_URI = S3Uri("bucket", "job/source/sourcedir.tar.gz")
MODEL_URI = S3Uri("bucket", "job/output/model.tar.gz")
MODEL: dict[str, Any] = {"ModelName": "m1"}
CONFIG = {"EndpointConfigName": "c1", "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m1"}]}


def _control(tmp_path: Path, reserve: Path | None = None) -> ControlPlane:
    """A control plane over a store holding one model's code and data archives (MODEL's container)."""
    store = LocalArtifactStore(tmp_path / "s3")
    code, model = tmp_path / "code", tmp_path / "model"
    code.mkdir()
    (code / "inference.py").write_text("def model_fn(model_dir):\n    return None\n")
    model.mkdir()
    (model / "weights.json").write_text('{"w": 1}')
    store.put_bytes(CODE_URI, pack_directory(code))
    store.put_bytes(MODEL_URI, pack_directory(model))
    MODEL["PrimaryContainer"] = {
        "Image": "local",
        "ModelDataSource": {
            "S3DataSource": {
                "S3Uri": str(MODEL_URI),
                "S3DataType": "S3Object",
                "CompressionType": "Gzip",
                "ETag": hashlib.sha256(store.get_bytes(MODEL_URI)).hexdigest(),
            }
        },
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": str(CODE_URI)},
    }
    session: Any = None  # no fleet is started in these tests
    return ControlPlane(tmp_path / "state.json", store, tmp_path / "work", "us-east-1", "0" * 12, session,
                        reserve=reserve)  # fmt: skip


def _disk_full(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: RuntimeState, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RuntimeState, "save", full)


def test_a_create_that_cannot_be_saved_leaves_nothing_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    control = _control(tmp_path)
    control.create_model(MODEL)
    with monkeypatch.context() as patch:
        _disk_full(patch)
        with pytest.raises(OSError):
            control.create_endpoint_config(CONFIG)
        with pytest.raises(OSError):
            control.create_model({**MODEL, "ModelName": "m2"})
    assert set(control.state.EndpointConfigs) == set() and set(control.state.Models) == {"m1"}
    assert RuntimeState.load(tmp_path / "state.json") == control.state


def test_a_delete_that_cannot_be_saved_keeps_the_resource(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    control = _control(tmp_path)  # no reserve: the critical save fails too
    control.create_model(MODEL)
    control.create_endpoint_config(CONFIG)
    with monkeypatch.context() as patch:
        _disk_full(patch)
        with pytest.raises(OSError):
            control.delete_endpoint_config({"EndpointConfigName": "c1"})
        with pytest.raises(OSError):
            control.delete_model({"ModelName": "m1"})
    assert set(control.state.EndpointConfigs) == {"c1"} and set(control.state.Models) == {"m1"}
    assert RuntimeState.load(tmp_path / "state.json") == control.state


def test_a_delete_on_a_full_disk_draws_on_the_reserve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reserve = tmp_path / ".reserve"
    reserve.write_bytes(b"\0" * 4096)
    control = _control(tmp_path, reserve)
    control.create_model(MODEL)
    real_save = RuntimeState.save
    failures = iter([True])

    def full_once(self: RuntimeState, path: Path) -> None:
        if next(failures, False):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(self, path)

    monkeypatch.setattr(RuntimeState, "save", full_once)
    control.delete_model({"ModelName": "m1"})
    assert not reserve.exists() and control.state.Models == {}
    assert RuntimeState.load(tmp_path / "state.json").Models == {}
