"""Model registry with SageMaker Model Registry semantics.

A model package group per model name holds numbered versions. Each version carries its model data and that
archive's sha256 (``ModelDataETag``: serving refuses an archive that no longer has it), metrics, the sha256 of
the data it was trained on, the code revision, the hyperparameters and an approval status
(``PendingManualApproval`` / ``Approved`` / ``Rejected``) with the history of who changed it, when and why.
Field names follow ``DescribeModelPackage`` so code and knowledge carry over to the AWS backend.

Besides its approval, each version says in ``CustomerMetadataProperties`` (the place SageMaker users look, and the
one the AWS backend writes too: :mod:`safedeploy.aws.registry`) who decided it (``ApprovalDecidedBy``,
``ApprovalDecidedAt``, ``ApprovalComment``), where it serves (``ServesIn`` = ``dev``, ``prd`` or ``dev prd``, with
``<Stage>Endpoint`` and ``<Stage>Since``; ``<Stage>Until`` once another version took its place) and whether it was
rolled back (``RolledBackAt``, ``RolledBackReason``, ``RolledBackBy``). The approval status stays in SageMaker's enum:
a rolled-back version is still ``Approved``, but its ``RolledBackAt`` says it is not a healthy production candidate
(:func:`is_production_candidate`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
ServingStage = Literal["dev", "prd"]
SERVING_STAGES: tuple[ServingStage, ...] = (C.DEV_STAGE, C.PRD_STAGE)

META_DECIDED_BY = "ApprovalDecidedBy"
META_DECIDED_AT = "ApprovalDecidedAt"
META_COMMENT = "ApprovalComment"
META_SERVES_IN = "ServesIn"
META_ROLLED_BACK_AT = "RolledBackAt"
META_ROLLED_BACK_REASON = "RolledBackReason"
META_ROLLED_BACK_BY = "RolledBackBy"
META_INPUTS = "InputsSha256"
"""sha256 of the version's training inputs (data, code, hyperparameters, image: :mod:`safedeploy.training.inputs`)."""
MAX_METADATA_VALUE = 256
"""SageMaker's limit on a ``CustomerMetadataProperties`` value (keys: 128; at most 50 properties)."""
METADATA_PUNCTUATION = frozenset("_.:/=+-@")
"""Besides letters, digits and spaces, the only characters SageMaker accepts in a metadata value
(``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]``)."""
_SPELLED = {"%": " percent", "\u2026": "...", "#": " number ", "&": " and "}


def _stage_key(stage: ServingStage, what: Literal["Endpoint", "Since", "Until"]) -> str:
    return f"{stage.capitalize()}{what}"


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def metadata_value(text: str) -> str:
    """``text`` as SageMaker accepts a metadata value: other punctuation becomes spaces, at most 256 characters.

    The full text stays where it fits (the comment is also the ``ApprovalDescription``; the rollback's reason is in
    the deployment ledger).
    """
    chars = (
        _SPELLED.get(ch, ch if ch.isalnum() or ch in METADATA_PUNCTUATION else " ")
        for ch in text.replace("\u2026", "...")
    )
    flat = " ".join("".join(chars).split())
    if len(flat) > MAX_METADATA_VALUE:
        flat = flat[: MAX_METADATA_VALUE - 3].rstrip() + "..."
    return flat or "-"


@dataclass(frozen=True)
class MetadataChange:
    """A change of ``CustomerMetadataProperties``: keys to set and keys to remove.

    ``UpdateModelPackage``'s ``CustomerMetadataProperties`` and ``CustomerMetadataPropertiesToRemove``.
    """

    set: dict[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.set or self.remove)

    def apply(self, metadata: Mapping[str, str]) -> dict[str, str]:
        """``metadata`` with the change applied."""
        merged = {k: v for k, v in metadata.items() if k not in self.remove}
        return {**merged, **self.set}


def serving_stages(metadata: Mapping[str, str]) -> tuple[ServingStage, ...]:
    """The stages a version serves in, per its ``ServesIn``."""
    named = set(metadata.get(META_SERVES_IN, "").replace(",", " ").split())
    return tuple(stage for stage in SERVING_STAGES if stage in named)


def _serves_in(stages: Sequence[ServingStage]) -> MetadataChange:
    ordered = [stage for stage in SERVING_STAGES if stage in stages]
    return (
        MetadataChange(set={META_SERVES_IN: " ".join(ordered)}) if ordered else MetadataChange(remove=(META_SERVES_IN,))
    )


def approval_change(status: ApprovalStatus, *, by: str, comment: str, at: datetime) -> MetadataChange:
    """Who decided the version's approval, when and why (the comment is also its ``ApprovalDescription``)."""
    del status  # the status itself is ModelApprovalStatus
    return MetadataChange(
        set={
            META_DECIDED_BY: metadata_value(by),
            META_DECIDED_AT: _timestamp(at),
            META_COMMENT: metadata_value(comment),
        }
    )


def serving_change(metadata: Mapping[str, str], stage: ServingStage, endpoint: str, at: datetime) -> MetadataChange:
    """The version now serves ``stage`` on ``endpoint``, since ``at``.

    Serving production again after a rollback clears ``RolledBack*``: the version proved healthy there (the
    deployment ledger keeps the history).
    """
    stages = (*serving_stages(metadata), stage)
    change = _serves_in(stages)
    set_ = {
        **change.set,
        _stage_key(stage, "Endpoint"): metadata_value(endpoint),
        _stage_key(stage, "Since"): _timestamp(at),
    }
    remove = [*change.remove, _stage_key(stage, "Until")]
    if stage == C.PRD_STAGE:
        remove += [META_ROLLED_BACK_AT, META_ROLLED_BACK_REASON, META_ROLLED_BACK_BY]
    return MetadataChange(set=set_, remove=tuple(k for k in remove if k in metadata))


def leaving_change(metadata: Mapping[str, str], stage: ServingStage, at: datetime) -> MetadataChange:
    """The version no longer serves ``stage`` (another took its place, or it was rolled back); empty if it did not."""
    if stage not in serving_stages(metadata):
        return MetadataChange()
    change = _serves_in([s for s in serving_stages(metadata) if s != stage])
    remove = tuple(k for k in change.remove if k in metadata)
    return MetadataChange(set={**change.set, _stage_key(stage, "Until"): _timestamp(at)}, remove=remove)


def rollback_change(metadata: Mapping[str, str], *, reason: str, by: str, at: datetime) -> MetadataChange:
    """The version was rolled back from production (its canary failed, or ``make rollback`` took it out)."""
    leaving = leaving_change(metadata, C.PRD_STAGE, at)
    return MetadataChange(
        set={
            **leaving.set,
            META_ROLLED_BACK_AT: _timestamp(at),
            META_ROLLED_BACK_REASON: metadata_value(reason),
            META_ROLLED_BACK_BY: metadata_value(by),
        },
        remove=leaving.remove,
    )


def is_production_candidate(status: str, metadata: Mapping[str, str]) -> bool:
    """``Approved`` and never rolled back since (a rolled-back version is not a healthy candidate)."""
    return status == C.APPROVAL_APPROVED and META_ROLLED_BACK_AT not in metadata


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
    ApprovalHistory: list[ApprovalChange] = Field(default_factory=list)

    @property
    def serves_in(self) -> tuple[ServingStage, ...]:
        """The stages this version serves in (``ServesIn``)."""
        return serving_stages(self.CustomerMetadataProperties)

    @property
    def rolled_back(self) -> bool:
        """Rolled back from production (and not served there successfully since)."""
        return META_ROLLED_BACK_AT in self.CustomerMetadataProperties

    @property
    def production_candidate(self) -> bool:
        """Approved and not rolled back."""
        return is_production_candidate(self.ModelApprovalStatus, self.CustomerMetadataProperties)


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
    inputs_sha256: str = ""
    """The training inputs' digest (``InputsSha256``): a later run with the same inputs reuses this version."""


def matches_inputs(package: ModelPackage, inputs_sha256: str) -> bool:
    """Trained from these inputs, and not rejected (a rejected twin must not come back through the side door)."""
    return (
        bool(inputs_sha256)
        and package.CustomerMetadataProperties.get(META_INPUTS) == inputs_sha256
        and package.ModelApprovalStatus != C.APPROVAL_REJECTED
    )


def best_match(packages: Sequence[ModelPackage], inputs_sha256: str) -> ModelPackage | None:
    """The version to reuse among those trained from these inputs (not rejected).

    The one serving production, else one never rolled back, else the newest: a rehearsal's rolled-back twin must
    not displace the version production serves.
    """
    matches = [p for p in packages if matches_inputs(p, inputs_sha256)]
    if not matches:
        return None
    return max(matches, key=lambda p: (C.PRD_STAGE in p.serves_in, not p.rolled_back, p.ModelPackageVersion))


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

    def find_by_inputs(self, group: str, inputs_sha256: str) -> ModelPackage | None:
        """The non-rejected version trained from inputs with this digest (``InputsSha256``, :func:`best_match`)."""
        ...

    def list_versions(self, group: str) -> list[ModelPackage]:
        """Return every version of ``group``, oldest first."""
        ...

    def update_approval(
        self, group: str, version: int, status: ApprovalStatus, *, changed_by: str, reason: str
    ) -> ModelPackage:
        """Change a version's approval status, recording who and why."""
        ...

    def record_serving(
        self, group: str, version: int, stage: ServingStage, endpoint: str, *, at: datetime | None = None
    ) -> ModelPackage:
        """``version`` now serves ``stage`` on ``endpoint``; whichever version served it before no longer does."""
        ...

    def record_rollback(
        self, group: str, version: int, *, reason: str, by: str, at: datetime | None = None
    ) -> ModelPackage:
        """``version`` was rolled back from production: when, why and by whom."""
        ...


_ALLOWED: Mapping[ApprovalStatus, tuple[ApprovalStatus, ...]] = {
    "PendingManualApproval": ("Approved", "Rejected"),
    "Approved": ("Rejected",),
    "Rejected": ("Approved",),
}
"""Legal approval transitions. A decision can be reversed, but never undone back to pending."""
ALLOWED_TRANSITIONS = _ALLOWED


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
                    **({META_INPUTS: registration.inputs_sha256} if registration.inputs_sha256 else {}),
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

    def find_by_inputs(self, group: str, inputs_sha256: str) -> ModelPackage | None:
        """The non-rejected version whose ``InputsSha256`` is ``inputs_sha256`` (:func:`best_match`), or None."""
        return best_match(self.list_versions(group), inputs_sha256)

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
            metadata = approval_change(status, by=changed_by, comment=reason, at=now).apply(
                package.CustomerMetadataProperties
            )
            updated = package.model_copy(
                update={
                    "ModelApprovalStatus": status,
                    "ApprovalDescription": reason,
                    "LastModifiedTime": now,
                    "CustomerMetadataProperties": metadata,
                    "ApprovalHistory": [*package.ApprovalHistory, change],
                }
            )
            atomic_write_text(self._path(group, version), updated.model_dump_json(indent=2))
        return updated

    def _write_metadata(self, package: ModelPackage, change: MetadataChange, at: datetime) -> ModelPackage:
        if not change:
            return package
        updated = package.model_copy(
            update={
                "CustomerMetadataProperties": change.apply(package.CustomerMetadataProperties),
                "LastModifiedTime": at,
            }
        )
        atomic_write_text(
            self._path(package.ModelPackageGroupName, package.ModelPackageVersion), updated.model_dump_json(indent=2)
        )
        return updated

    def record_serving(
        self, group: str, version: int, stage: ServingStage, endpoint: str, *, at: datetime | None = None
    ) -> ModelPackage:
        """``version`` serves ``stage`` on ``endpoint`` since ``at`` (now); the one serving it before gets an Until.

        Raises:
            RegistryError: an unknown version.
        """
        now = at or datetime.now(UTC)
        with exclusive_lock(self._group_dir(group) / ".lock", wait=True):
            package = self.describe(group, version)
            for other in self.list_versions(group):
                if other.ModelPackageVersion != version:
                    self._write_metadata(other, leaving_change(other.CustomerMetadataProperties, stage, now), now)
            return self._write_metadata(
                package, serving_change(package.CustomerMetadataProperties, stage, endpoint, now), now
            )

    def record_rollback(
        self, group: str, version: int, *, reason: str, by: str, at: datetime | None = None
    ) -> ModelPackage:
        """``version`` was rolled back from production (it no longer serves there).

        Raises:
            RegistryError: an unknown version, or an empty reason.
        """
        if not reason.strip():
            raise RegistryError("a rollback needs a reason")
        now = at or datetime.now(UTC)
        with exclusive_lock(self._group_dir(group) / ".lock", wait=True):
            package = self.describe(group, version)
            change = rollback_change(package.CustomerMetadataProperties, reason=reason, by=by, at=now)
            return self._write_metadata(package, change, now)

    def production(self, group: str) -> ModelPackage | None:
        """The version serving production, per the registry."""
        return next((p for p in reversed(self.list_versions(group)) if C.PRD_STAGE in p.serves_in), None)
