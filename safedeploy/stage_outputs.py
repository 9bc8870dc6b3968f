"""What each stage hands to the stages after it: one typed model per stage.

A stage returns its outputs as one of these models; the runner stores them in the execution record as JSON, and a
later stage (or ``make rollback``, the report, the notebook) reads them back with
``context.output(TrainOutputs)`` / ``execution.output(TrainOutputs)``, validated, instead of indexing a dictionary
by string keys. Each model names the stage it belongs to (``STAGE``), so the pairing cannot drift.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from safedeploy import constants as C
from safedeploy.approval import ManualApproval
from safedeploy.ledger import ServedModel


class StageOutputs(BaseModel):
    """Base of every stage's outputs."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    STAGE: ClassVar[str]

    @classmethod
    def read(cls: type[OutputsT], outputs: dict[str, Any]) -> OutputsT:
        """From an execution record's stored outputs (raises pydantic's ``ValidationError`` naming the field)."""
        return cls.model_validate(outputs)


OutputsT = TypeVar("OutputsT", bound=StageOutputs)


class InputData(BaseModel):
    """The data-source contract's ``inputData.json``: the channels the Data stage wrote (S3 URIs)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    TrainingUri: str
    ValidationUri: str
    TestUri: str
    BaselineUri: str
    FeatureSchemaUri: str
    DataSha256: str

    def channels(self) -> dict[str, str]:
        """As the contract file holds it (what the request builders take)."""
        return self.model_dump()


class DataOutputs(StageOutputs):
    """Data: the validated, encoded and split dataset."""

    STAGE: ClassVar[str] = C.STAGE_DATA

    dataset_id: str
    data_sha256: str
    rows: dict[str, int]
    positives: dict[str, int]
    input_data: InputData


class TrainOutputs(StageOutputs):
    """Train: the training job and its gated model."""

    STAGE: ClassVar[str] = C.STAGE_TRAIN

    training_job_name: str
    model_data_url: str
    metrics: dict[str, float]
    hyperparameters: dict[str, str]
    feature_schema_uri: str
    log_file: str | None = None
    inputs_sha256: str = ""
    """Digest of data, code, hyperparameters and image (:mod:`safedeploy.training.inputs`)."""
    reused_version: int | None = None
    """Set when a registered version had identical inputs: no job ran, no new version; later stages reuse it."""
    production_version: int | None = None
    """The version serving production the candidate was compared with (None: no production yet, or not compared)."""
    production_metrics: dict[str, float] = {}
    """Production's metrics on the candidate's test rows (``test:auc``, ...)."""

    def comparison(self) -> str | None:
        """``test:auc 0.9301 vs production v3 0.9263`` (None without a comparison)."""
        if self.production_version is None or "test:auc" not in self.production_metrics:
            return None
        candidate = self.metrics.get("test:auc", float("nan"))
        production = self.production_metrics["test:auc"]
        return f"test:auc {candidate:.4f} vs production v{self.production_version} {production:.4f}"


class BaselineOutputs(StageOutputs):
    """Baseline: the suggest-baseline jobs' files (URI and sha256 by role)."""

    STAGE: ClassVar[str] = C.STAGE_BASELINE

    files: dict[str, str]
    sha256: dict[str, str]
    jobs: list[str]


class RegisterOutputs(StageOutputs):
    """Register: the new model package version."""

    STAGE: ClassVar[str] = C.STAGE_REGISTER

    model_package_arn: str
    model_package_version: int
    approval_status: str


class SmokeTestSummary(BaseModel):
    """DeployDev's smoke test: held-out rows sent, the largest difference from the offline predictions, time."""

    model_config = ConfigDict(frozen=True)

    rows: int
    max_abs_error: float
    seconds: float


class DeployDevOutputs(StageOutputs):
    """DeployDev: the dev endpoint, its REST API and the smoke test's result."""

    STAGE: ClassVar[str] = C.STAGE_DEPLOY_DEV

    endpoint_name: str
    endpoint_config_name: str
    model_name: str
    model_package_version: int
    api_url: str
    smoke_test: SmokeTestSummary


class ApprovalOutputs(StageOutputs):
    """ApproveDeployment: the answered gate."""

    STAGE: ClassVar[str] = C.STAGE_APPROVAL

    model_package_version: int
    approval: ManualApproval | None = None
    """None when nothing was asked: the version already served production (identical inputs reused)."""


class DeployPrdOutputs(StageOutputs):
    """DeployPrd: the blue/green deployment and what production serves now."""

    STAGE: ClassVar[str] = C.STAGE_DEPLOY_PRD

    deployment_id: str | None
    """None when nothing was deployed: the version already served production."""
    endpoint_name: str
    model_package_version: int
    blue: ServedModel | None
    strategy: str
    api_url: str | None
