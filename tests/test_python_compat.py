"""Container truth: the pinned framework image, its XGBoost in the lock, and shipped code on the Pythons it meets."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import tarfile
import tomllib
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest

from safedeploy import constants as C
from safedeploy import shipping
from safedeploy.monitoring.requests import analyzer_files
from tests.conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "python_compat.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("python_compat", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pinned_framework_version_is_the_newest_sagemaker_core_lists() -> None:
    import sagemaker.core  # type: ignore[import-untyped]  # the aws extra, no stubs

    table = Path(sagemaker.core.__file__).parent / "image_uri_config" / "xgboost.json"
    listed = json.loads(table.read_text())["training"]["versions"]
    pinned = [v for v in listed if "-" in v]  # "1" is an alias of an old version, not a pin

    def key(version: str) -> tuple[int, ...]:
        upstream, _, build = version.partition("-")
        return (*(int(p) for p in upstream.split(".")), int(build))

    assert max(pinned, key=key) == C.XGBOOST_FRAMEWORK_VERSION
    assert C.XGBOOST_FRAMEWORK_VERSION in json.loads(table.read_text())["inference"]["versions"]


def test_local_xgboost_is_the_containers_exactly() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert f"xgboost-cpu=={C.XGBOOST_CONTAINER_XGBOOST}" in pyproject["project"]["dependencies"]
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    locked = {p["name"]: p["version"] for p in lock["package"]}
    assert locked["xgboost-cpu"] == C.XGBOOST_CONTAINER_XGBOOST
    assert metadata.version("xgboost-cpu") == C.XGBOOST_CONTAINER_XGBOOST
    # the container's upstream version is its framework version's first part: 3.2-0 holds XGBoost 3.2.x
    assert C.XGBOOST_CONTAINER_XGBOOST.startswith(C.XGBOOST_FRAMEWORK_VERSION.split("-")[0] + ".")


def test_the_destinations_cover_what_ships_and_take_their_pythons_from_the_constants() -> None:
    image, lambda_ = shipping.destinations(REPO_ROOT)
    assert image.python == C.XGBOOST_CONTAINER_PYTHON
    assert lambda_.python == C.LAMBDA_RUNTIME.removeprefix("python")
    shipped = {path.relative_to(REPO_ROOT).as_posix() for path in image.files}
    assert {"model/train.py", "model/inference.py", "model/tree_ensemble.py", "safedeploy/features.py"} <= shipped
    assert {name for name in analyzer_files(REPO_ROOT) if name.endswith(".py")} <= shipped
    to_lambda = {path.relative_to(REPO_ROOT).as_posix() for path in lambda_.files}
    assert {"lambdas/api/app.py", "lambdas/hooks/pre_traffic.py", "lambdas/hooks/post_traffic.py"} <= to_lambda
    assert not any(name.startswith("model/") for name in to_lambda)


def test_the_source_archive_is_exactly_the_shipped_source_files() -> None:
    """The training stage and the CloudFormation build upload this archive; the vermin gate checks these files."""
    source = REPO_ROOT / "model"
    with tarfile.open(fileobj=io.BytesIO(shipping.source_archive(source))) as tar:
        members = sorted(tar.getnames())
    assert members == sorted(shipping.source_archive_files(source))
    assert "features.py" in members and "inference.py" in members and "train.py" in members


def test_make_lint_gate_passes_on_the_shipped_code() -> None:
    assert "scripts/python_compat.py" in (REPO_ROOT / "Makefile").read_text()
    result = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, check=False, cwd=REPO_ROOT, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"run on Python {C.XGBOOST_CONTAINER_PYTHON}" in result.stdout


def test_a_violation_is_named_by_file_and_line(tmp_path: Path) -> None:
    code = tmp_path / "handler.py"
    code.write_text("import datetime\n\npairs = list(zip([1], [2], strict=True))\nnow = datetime.UTC\n")
    found = _script().violations([shipping.Destination("old image", "3.8", (code,))])
    assert len(found) == 2, found
    assert found[0].startswith(f"{code}:3: 'zip(strict)' needs Python 3.10")
    assert found[1].startswith(f"{code}:4: 'datetime.UTC' member needs Python 3.11")
    assert "old image, which runs Python 3.8" in found[0]
    assert _script().violations([shipping.Destination("new image", "3.12", (code,))]) == []


@pytest.mark.parametrize(("runtime", "version"), [("python3.11", "3.11"), ("3.12", "3.12")])
def test_python_version_of_a_runtime(runtime: str, version: str) -> None:
    assert shipping.python_version(runtime) == version


def test_python_version_refuses_what_is_no_version() -> None:
    with pytest.raises(ValueError, match="not a Python version"):
        shipping.python_version("nodejs20.x")
