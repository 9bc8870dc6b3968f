"""Backends: the one factory that chooses where the pipeline's work happens.

Stages only talk to the interfaces gathered in :class:`Backend` (artifact store, training jobs, model
registry, serving host). ``local`` implements them on this machine with no AWS account and no Docker; the AWS
implementations plug in here, chosen by the same spec.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, assert_never

from safedeploy.filemodes import secure_state_dir
from safedeploy.ledger import DeploymentLedger
from safedeploy.local.host import LocalServingHost, ServingHost
from safedeploy.processing.local_job import LocalProcessingJobs, ProcessingJobDescription
from safedeploy.registry import LocalModelRegistry, ModelRegistry
from safedeploy.reserve import ensure_reserve, reserve_path
from safedeploy.runner import ExecutionStore
from safedeploy.spec import PipelineSpec
from safedeploy.store import ArtifactRef, ArtifactStore, LocalArtifactStore
from safedeploy.training.local_job import LocalTrainingJobs, TrainingJobDescription

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import CreateProcessingJobRequestTypeDef, CreateTrainingJobRequestTypeDef


class TrainingJobs(Protocol):
    """Runs ``CreateTrainingJob`` requests to completion."""

    def run(
        self, request: CreateTrainingJobRequestTypeDef, on_log_line: Callable[[str], None] | None = None
    ) -> TrainingJobDescription:
        """Run one job and describe the outcome; ``on_log_line`` follows its log (the training rounds)."""
        ...


class ProcessingJobs(Protocol):
    """Runs ``CreateProcessingJob`` requests to completion (the baseline and monitoring jobs)."""

    def run(self, request: CreateProcessingJobRequestTypeDef, keep: bool = False) -> ProcessingJobDescription:
        """Run one job and describe the outcome."""
        ...


class VerifyingStore(ArtifactStore, Protocol):
    """An artifact store that can re-check an artifact against its recorded checksum."""

    def verify(self, ref: ArtifactRef) -> bool:
        """Whether ``ref`` still exists with its recorded sha256."""
        ...


@dataclass(frozen=True)
class Backend:
    """Everything stages need, for one spec."""

    name: str
    store: VerifyingStore
    registry: ModelRegistry
    training: TrainingJobs
    training_image: str
    processing: ProcessingJobs
    processing_image: str
    """The framework image the monitor's code runs on (the training image: a framework the project pins)."""
    executions: ExecutionStore
    lock_path: Path
    serving: ServingHost
    serving_image: str
    deployments: DeploymentLedger


def local_training_image() -> str:
    """Identify the local 'image': this interpreter and XGBoost build stand in for the SageMaker container.

    The version comes from the installed distribution's metadata: importing XGBoost (with scikit-learn) costs
    every CLI command about 2 s, and the training job runs in its own process anyway.
    """
    return f"local:python{platform.python_version()}-xgboost{xgboost_version()}"


def xgboost_version() -> str:
    """The installed XGBoost's version (``xgboost-cpu`` here, ``xgboost`` where the CUDA build is installed)."""
    for distribution in ("xgboost-cpu", "xgboost"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    raise RuntimeError("XGBoost is not installed: run `make deploy` or `make test`, which install it")


def create_backend(spec: PipelineSpec) -> Backend:
    """Build the backend the spec selects."""
    match spec.backend:
        case "local":
            return _local_backend(spec)
        case unknown:
            assert_never(unknown)


def _local_backend(spec: PipelineSpec) -> Backend:
    root = spec.state_dir.resolve()
    secure_state_dir(root)  # customer data, model code and keys: owner-only
    store = LocalArtifactStore(root / "s3")
    store.sweep()  # temporaries of writers that died mid-write
    if root.is_dir():
        ensure_reserve(reserve_path(root))  # allocated again once a full disk has room
    return Backend(
        name="local",
        store=store,
        registry=LocalModelRegistry(root / "registry", spec.region, spec.account_id),
        training=LocalTrainingJobs(store, root / "jobs", python=sys.executable),
        training_image=local_training_image(),
        processing=LocalProcessingJobs(store, root / "processing-jobs", python=sys.executable),
        processing_image=local_training_image(),
        executions=ExecutionStore(root / "executions", spec.pipeline_name),
        lock_path=root / "locks" / f"{spec.pipeline_name}.lock",
        serving=LocalServingHost(
            root, spec.region, spec.account_id, spec.model_name, (spec.serving.runtime_port, spec.serving.gateway_port)
        ),
        serving_image=local_training_image(),
        deployments=DeploymentLedger(root / "deployments", spec.pipeline_name, reserve_path(root)),
    )
