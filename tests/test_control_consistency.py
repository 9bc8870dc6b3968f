"""The control plane's memory never runs ahead of (or behind) its saved state when a save fails."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from safedeploy.serving.control import ControlPlane
from safedeploy.serving.state import RuntimeState
from safedeploy.store import LocalArtifactStore

MODEL = {"ModelName": "m1", "PrimaryContainer": {"Image": "local", "Environment": {}}}
CONFIG = {"EndpointConfigName": "c1", "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m1"}]}


def _control(tmp_path: Path, reserve: Path | None = None) -> ControlPlane:
    store = LocalArtifactStore(tmp_path / "s3")
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
