"""The Lambda bundle imports in a Lambda-like interpreter: only the bundle plus what the runtime provides.

The vendor directory is assembled from this environment's installed packages (the same versions
``lambdas/requirements.txt`` pins; model/buildspec.yml installs them for the Lambda platform with pip).
"""

from __future__ import annotations

import importlib.metadata
import io
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from safedeploy.cloudformation.lambda_bundle import build_lambda_bundle
from tests.conftest import REPO_ROOT

REQUIREMENTS = REPO_ROOT / "lambdas" / "requirements.txt"
LAMBDA_RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "dateutil", "urllib3", "six.py")
"""What the python3.11 Lambda runtime ships besides the standard library."""


def _pins() -> dict[str, str]:
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip()] = version.strip()
    return pins


def _site_packages() -> Path:
    return Path(str(importlib.metadata.distribution("boto3").locate_file("")))


def _copy_top_level(names: list[str], dest: Path) -> None:
    site = _site_packages()
    for name in names:
        src = site / name
        target = dest / name
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, target)


def _top_level(distribution: str) -> list[str]:
    files = importlib.metadata.distribution(distribution).files or []
    tops = {f.parts[0] for f in files if not f.parts[0].endswith(".dist-info") and f.parts[0] != ".."}
    return sorted(t for t in tops if t != "__pycache__" and not t.endswith(".pth"))


def test_requirements_are_pinned_to_the_lock() -> None:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    locked = {p["name"]: p["version"] for p in lock["package"]}
    pins = _pins()
    assert {"aws-lambda-powertools", "pydantic", "pydantic-core"} <= set(pins)
    assert {name: locked.get(name) for name in pins} == pins


@pytest.mark.slow
def test_bundle_with_vendored_packages_imports_in_a_lambda_like_interpreter(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    for distribution in _pins():
        _copy_top_level(_top_level(distribution), vendor)
    bundle = build_lambda_bundle(REPO_ROOT, vendor)
    assert bundle.third_party == ()
    assert build_lambda_bundle(REPO_ROOT, vendor).sha256 == bundle.sha256  # still reproducible
    code = tmp_path / "task"  # Lambda's /var/task
    with zipfile.ZipFile(io.BytesIO(bundle.content)) as archive:
        archive.extractall(code)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    _copy_top_level(list(LAMBDA_RUNTIME_PACKAGES), runtime)
    probe = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "import lambdas.api.app as api, lambdas.hooks.pre_traffic as pre, lambdas.hooks.post_traffic as post\n"
        "assert callable(api.lambda_handler) and callable(pre.handler) and callable(post.handler)\n"
        "import pydantic, aws_lambda_powertools\n"
        "assert pydantic.__file__.startswith(sys.argv[1]), pydantic.__file__\n"
        "print('ok')\n"
    )
    # -S: no site-packages, -I: no user site or PYTHON* variables; only the bundle and the runtime's packages
    done = subprocess.run(
        [sys.executable, "-S", "-I", "-c", probe, str(code), str(runtime)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"AWS_DEFAULT_REGION": "us-east-1", "ENDPOINT_NAME": "x"},
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_without_the_vendored_packages_the_bundle_does_not_import(tmp_path: Path) -> None:
    bundle = build_lambda_bundle(REPO_ROOT)
    assert {"aws_lambda_powertools", "pydantic"} <= set(bundle.third_party)


def test_a_missing_vendor_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"vendor directory .*nope does not exist"):
        build_lambda_bundle(REPO_ROOT, tmp_path / "nope")
