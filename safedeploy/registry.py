"""Model registry with SageMaker Model Registry semantics.

A model package group per model name holds numbered versions. Each version carries its model data and that
archive's sha256 (``ModelDataETag``: serving refuses an archive that no longer has it), metrics, the sha256 of
the data it was trained on, the code revision, the hyperparameters and an approval status
(``PendingManualApproval`` / ``Approved`` / ``Rejected``) with the history of who changed it, when and why.
Field names follow ``DescribeModelPackage`` so code and knowledge carry over to the AWS backend.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from safedeploy import constants as C
from safedeploy.atomic import atomic_write_text
from safedeploy.errors import RegistryError
from safedeploy.locking import exclusive_lock

ApprovalStatus = Literal["PendingManualApproval", "Approved", "Rejected"]
APPROVAL_STATUSES: tuple[ApprovalStatus, ...] = (C.APPROVAL_PENDING, C.APPROVAL_APPROVED, C.APPROVAL_REJECTED)


class ApprovalChange(BaseModel):
    """One approval-status change: from what, to what, by whom, why and when."""

    from_status: ApprovalStatus | None
    to_status: ApprovalStatus
    changed_by: str
    reason: str
    time: datetime


class MetricsSource(BaseModel):
    """SageMaker's ``MetricsSource``: a file in S3 with its content type and digest (``sha256:<hex>``)."""

    ContentType: str = "application/json"
    S3Uri: str
    ContentDigest: str


class ModelPackage(BaseModel):
    """One registered model version (``DescribeModelPackage`` names, plus the local approval history)."""

    ModelPackageGroupName: str
    ModelPackageVersion: int
    ModelPackageArn: str
    ModelPackageStatus: Literal["Completed"] = "Completed"
    ModelApprovalStatus: ApprovalStatus
    ApprovalDescription: str = ""
    CreationTime: datetime
    LastModifiedTime: datetime
    ModelDataUrl: str
    ModelDataETag: str = ""
    """sha256 (hex) of ``model.tar.gz`` at registration (SageMaker's container field of that name; the local
    store's ETag is the sha256). Deployments send it with ``CreateModel`` and serving checks the archive
    against it before unpacking. Empty only in versions registered before it was recorded."""
    Framework: str = "XGBOOST"
    FrameworkVersion: str
    SupportedContentTypes: list[str] = ["text/csv", "application/json"]
    SupportedResponseMIMETypes: list[str] = ["text/csv", "application/json"]
    Metrics: dict[str, float]
    Hyperparameters: dict[str, str]
    CustomerMetadataProperties: dict[str, str] = Field(default_factory=dict)
    """``DataSha256``, ``CodeRevision``, ``TrainingJobName``, ``PipelineExecutionId``, ``FeatureSchemaUri``, and
    the scores' baseline (``OutputStatisticsUri``/``OutputConstraintsUri`` with their ``...Sha256``)."""
    DriftCheckBaselines: dict[str, dict[str, MetricsSource]] = Field(default_factory=dict)
    """SageMaker's ``DriftCheckBaselines``: ``ModelDataQuality`` ``Statistics``/``Constraints`` of this version."""
    ApprovalHistory: list[ApprovalChange]


class ModelRegistration(BaseModel):
    """What a caller supplies to register a new version."""

    model_data_url: str
    model_data_sha256: str
    framework_version: str
    metrics: dict[str, float]
    hyperparameters: dict[str, str]
    data_sha256: str
    code_revision: str
    training_job_name: str
    pipeline_execution_id: str
    feature_schema_uri: str
    registered_by: str


VersionAttachments = Callable[[int], tuple[dict[str, dict[str, MetricsSource]], dict[str, str]]]
"""Called with the new version's number under the registry lock, before the version is written: returns its
``DriftCheckBaselines`` and extra ``CustomerMetadataProperties`` (e.g. after copying its baseline under the
version's own prefix). If it raises, nothing is registered."""


class ModelRegistry(Protocol):
    """What the pipeline needs from a model registry."""

    def register(
        self, group: str, registration: ModelRegistration, attach: VersionAttachments | None = None
    ) -> ModelPackage:
        """Create the next version of ``group`` in ``PendingManualApproval``."""
        ...

    def describe(self, group: str, version: int) -> ModelPackage:
        """Return one version."""
        ...

    def list_versions(self, group: str) -> list[ModelPackage]:
        """Return every version of ``group``, oldest first."""
        ...

    def update_approval(
        self, group: str, version: int, status: ApprovalStatus, *, changed_by: str, reason: str
    ) -> ModelPackage:
        """Change a version's approval status, recording who and why."""
        ...


_ALLOWED: Mapping[ApprovalStatus, tuple[ApprovalStatus, ...]] = {
    "PendingManualApproval": ("Approved", "Rejected"),
    "Approved": ("Rejected",),
    "Rejected": ("Approved",),
}
"""Legal approval transitions. A decision can be reversed, but never undone back to pending."""


class LocalModelRegistry:
    """File-backed registry: ``<root>/<group>/<version>.json``, written atomically under a group lock."""

    def __init__(self, root: Path, region: str, account_id: str) -> None:
        self.root = root
        self.region = region
        self.account_id = account_id

    def _group_dir(self, group: str) -> Path:
        return self.root / group

    def _path(self, group: str, version: int) -> Path:
        return self._group_dir(group) / f"{version:06d}.json"

    def arn(self, group: str, version: int) -> str:
        """The version's ARN, as SageMaker would name it."""
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:model-package/{group}/{version}"

    def register(
        self, group: str, registration: ModelRegistration, attach: VersionAttachments | None = None
    ) -> ModelPackage:
        """Create the next version of ``group`` (status ``PendingManualApproval``)."""
        now = datetime.now(UTC)
        with exclusive_lock(self._group_dir(group) / ".lock", wait=True):
            version = max((int(p.stem) for p in self._versions(group)), default=0) + 1
            baselines, metadata = attach(version) if attach is not None else ({}, {})
            package = ModelPackage(
                ModelPackageGroupName=group,
                ModelPackageVersion=version,
                ModelPackageArn=self.arn(group, version),
                ModelApprovalStatus=C.APPROVAL_PENDING,
                CreationTime=now,
                LastModifiedTime=now,
                ModelDataUrl=registration.model_data_url,
                ModelDataETag=registration.model_data_sha256,
                FrameworkVersion=registration.framework_version,
                Metrics=registration.metrics,
                Hyperparameters=registration.hyperparameters,
                CustomerMetadataProperties={
                    "DataSha256": registration.data_sha256,
                    "CodeRevision": registration.code_revision,
                    "TrainingJobName": registration.training_job_name,
                    "PipelineExecutionId": registration.pipeline_execution_id,
                    "FeatureSchemaUri": registration.feature_schema_uri,
                    **metadata,
                },
                DriftCheckBaselines=baselines,
                ApprovalHistory=[
                    ApprovalChange(
                        from_status=None,
                        to_status=C.APPROVAL_PENDING,
                        changed_by=registration.registered_by,
                        reason="registered after passing the quality gate",
                        time=now,
                    )
                ],
            )
            atomic_write_text(self._path(group, version), package.model_dump_json(indent=2))
        return package

    def _versions(self, group: str) -> list[Path]:
        directory = self._group_dir(group)
        return sorted(directory.glob("[0-9]*.json")) if directory.is_dir() else []

    def describe(self, group: str, version: int) -> ModelPackage:
        """Return one version; raise :class:`RegistryError` if it does not exist."""
        path = self._path(group, version)
        if not path.is_file():
            raise RegistryError(f"model package {group}/{version} does not exist")
        return ModelPackage.model_validate(json.loads(path.read_text("utf-8")))

    def list_versions(self, group: str) -> list[ModelPackage]:
        """Every version of ``group``, oldest first (empty if the group does not exist)."""
        return [ModelPackage.model_validate(json.loads(p.read_text("utf-8"))) for p in self._versions(group)]

    def latest(self, group: str, status: ApprovalStatus | None = None) -> ModelPackage | None:
        """The newest version, optionally only among those with ``status``."""
        matching = [p for p in self.list_versions(group) if status is None or p.ModelApprovalStatus == status]
        return matching[-1] if matching else None

    def update_approval(
        self, group: str, version: int, status: ApprovalStatus, *, changed_by: str, reason: str
    ) -> ModelPackage:
        """Move a version to ``status``; ``changed_by`` and ``reason`` are required and recorded.

        Raises:
            RegistryError: for an unknown version, an empty actor or reason, or an illegal transition.
        """
        if not changed_by.strip():
            raise RegistryError("an approval change needs the name of who made it")
        if not reason.strip():
            raise RegistryError("an approval change needs a reason")
        if status not in APPROVAL_STATUSES:
            raise RegistryError(f"unknown approval status {status!r} (expected one of {', '.join(APPROVAL_STATUSES)})")
        with exclusive_lock(self._group_dir(group) / ".lock", wait=True):
            package = self.describe(group, version)
            current = package.ModelApprovalStatus
            if status not in _ALLOWED[current]:
                raise RegistryError(
                    f"model package {group}/{version} is {current}; it cannot become {status} "
                    f"(allowed: {', '.join(_ALLOWED[current])})"
                )
            now = datetime.now(UTC)
            change = ApprovalChange(
                from_status=current, to_status=status, changed_by=changed_by, reason=reason, time=now
            )
            updated = package.model_copy(
                update={
                    "ModelApprovalStatus": status,
                    "ApprovalDescription": reason,
                    "LastModifiedTime": now,
                    "ApprovalHistory": [*package.ApprovalHistory, change],
                }
            )
            atomic_write_text(self._path(group, version), updated.model_dump_json(indent=2))
        return updated
