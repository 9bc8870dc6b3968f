"""Which of the project's Python files ship where, and which Python runs them there: decided here, once.

* **The SageMaker XGBoost framework image** (``C.XGBOOST_FRAMEWORK_VERSION``, Python
  ``C.XGBOOST_CONTAINER_PYTHON``): the training and serving code archive ``sourcedir.tar.gz`` (the spec's
  ``training.source_dir``, ``model/``, plus ``features.py``), which training jobs and endpoints run, and the
  monitor's analyzer bundle (``monitoring.requests.analyzer_files``), which the Processing jobs run on the same
  image.
* **Lambda** (``C.LAMBDA_RUNTIME``): ``lambdas/`` and the ``safedeploy`` modules it imports
  (``cloudformation.lambda_bundle.first_party_closure``).

The training stage, the CloudFormation build and ``scripts/python_compat.py`` (vermin, in ``make lint``) all take
their file sets from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from safedeploy import constants as C
from safedeploy import features as features_module
from safedeploy.archives import directory_members, pack_files

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FEATURES_ARCHIVE_NAME = "features.py"
"""The handler code imports the feature encoder; the archive carries its own copy beside ``inference.py``, so the
serving container (SageMaker's, or a local instance) needs nothing but the archive."""


def source_archive_files(source_dir: Path) -> dict[str, Path]:
    """The members of ``sourcedir.tar.gz``: ``source_dir``'s files (no ``__pycache__``) and ``features.py``."""
    return directory_members(source_dir, extra={FEATURES_ARCHIVE_NAME: Path(features_module.__file__)})


def source_archive(source_dir: Path) -> bytes:
    """``sourcedir.tar.gz``'s bytes (reproducible: the same files give the same sha256)."""
    return pack_files(source_archive_files(source_dir))


def python_version(runtime: str) -> str:
    """``"3.12"`` of ``"3.12"`` or of Lambda's ``"python3.12"``."""
    version = runtime.removeprefix("python")
    major, _, minor = version.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        raise ValueError(f"not a Python version: {runtime!r}")
    return version


@dataclass(frozen=True)
class Destination:
    """Where code runs: a name, the Python there, and the project's files that ship to it."""

    name: str
    python: str
    """``major.minor``, e.g. ``"3.12"``."""
    files: tuple[Path, ...]


def destinations(root: Path = PROJECT_ROOT, source_dir: Path | None = None) -> tuple[Destination, ...]:
    """Every place the project's code ships to outside this interpreter, with the Python files it runs there.

    ``source_dir`` is the training code directory (default: the spec's default ``training.source_dir`` under
    ``root``).
    """
    from safedeploy.cloudformation.lambda_bundle import first_party_closure
    from safedeploy.monitoring.requests import analyzer_files
    from safedeploy.spec import TrainingSpec

    source = source_dir if source_dir is not None else root / TrainingSpec().source_dir
    image = f"SageMaker XGBoost {C.XGBOOST_FRAMEWORK_VERSION} image"
    container_code = {**source_archive_files(source), **analyzer_files(root)}
    lambda_code, _ = first_party_closure(root)
    lambda_runtime = f"Lambda {C.LAMBDA_RUNTIME}"
    return (
        Destination(image, python_version(C.XGBOOST_CONTAINER_PYTHON), _python_files(container_code.values())),
        Destination(lambda_runtime, python_version(C.LAMBDA_RUNTIME), _python_files(lambda_code.values())),
    )


def _python_files(paths: Iterable[Path]) -> tuple[Path, ...]:
    return tuple(sorted({path.resolve() for path in paths if path.suffix == ".py"}))
