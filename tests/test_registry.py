"""Local model registry: SageMaker Model Registry semantics with an approval history."""

from __future__ import annotations

from pathlib import Path

import pytest

from safedeploy import constants as C
from safedeploy.errors import RegistryError
from safedeploy.registry import LocalModelRegistry, ModelRegistration


def _registration(**changes: object) -> ModelRegistration:
    fields = {
        "model_data_url": "s3://b/customerchurn/training-jobs/job-1/output/model.tar.gz",
        "model_data_sha256": "cd" * 32,
        "framework_version": C.XGBOOST_FRAMEWORK_VERSION,
        "metrics": {"test:auc": 0.93, "validation:auc": 0.91},
        "hyperparameters": {"max_depth": "6"},
        "data_sha256": "ab" * 32,
        "code_revision": "0123456789abcdef",
        "training_job_name": "job-1",
        "pipeline_execution_id": "exec-1",
        "feature_schema_uri": "s3://b/feature-schema.json",
        "registered_by": "pipeline customerchurn-dev",
    }
    return ModelRegistration.model_validate({**fields, **changes})


@pytest.fixture
def registry(tmp_path: Path) -> LocalModelRegistry:
    return LocalModelRegistry(tmp_path / "registry", "us-east-1", "000000000000")


def test_register_creates_pending_versions_with_lineage(registry: LocalModelRegistry) -> None:
    one = registry.register("customerchurn", _registration())
    two = registry.register("customerchurn", _registration(training_job_name="job-2"))
    assert (one.ModelPackageVersion, two.ModelPackageVersion) == (1, 2)
    assert one.ModelPackageArn == "arn:aws:sagemaker:us-east-1:000000000000:model-package/customerchurn/1"
    assert one.ModelApprovalStatus == "PendingManualApproval"
    assert one.Metrics["test:auc"] == 0.93
    assert one.Hyperparameters == {"max_depth": "6"}
    meta = one.CustomerMetadataProperties
    assert meta["DataSha256"] == "ab" * 32 and meta["CodeRevision"] == "0123456789abcdef"
    assert [h.to_status for h in one.ApprovalHistory] == ["PendingManualApproval"]
    assert registry.describe("customerchurn", 2).CustomerMetadataProperties["TrainingJobName"] == "job-2"
    assert registry.register("other", _registration()).ModelPackageVersion == 1  # groups are separate


def test_transitions_record_who_why_and_when(tmp_path: Path, registry: LocalModelRegistry) -> None:
    registry.register("customerchurn", _registration())
    approved = registry.update_approval("customerchurn", 1, "Approved", changed_by="alice", reason="AUC looks good")
    assert approved.ModelApprovalStatus == "Approved" and approved.ApprovalDescription == "AUC looks good"
    rejected = registry.update_approval("customerchurn", 1, "Rejected", changed_by="bob", reason="drift found")
    history = [(h.from_status, h.to_status, h.changed_by, h.reason) for h in rejected.ApprovalHistory]
    assert history == [
        (None, "PendingManualApproval", "pipeline customerchurn-dev", "registered after passing the quality gate"),
        ("PendingManualApproval", "Approved", "alice", "AUC looks good"),
        ("Approved", "Rejected", "bob", "drift found"),
    ]
    assert rejected.ApprovalHistory[1].time <= rejected.ApprovalHistory[2].time
    # persisted: a new registry object over the same directory sees the same history
    again = LocalModelRegistry(tmp_path / "registry", "us-east-1", "000000000000").describe("customerchurn", 1)
    assert again == rejected
    assert registry.latest("customerchurn", "Approved") is None
    assert registry.latest("customerchurn", "Rejected") == rejected


@pytest.mark.parametrize(
    ("first", "then", "message"),
    [
        (None, "PendingManualApproval", "cannot become PendingManualApproval"),
        ("Approved", "Approved", "is Approved; it cannot become Approved"),
        ("Rejected", "PendingManualApproval", "is Rejected; it cannot become PendingManualApproval"),
    ],
)
def test_illegal_transitions_are_refused(
    registry: LocalModelRegistry, first: str | None, then: str, message: str
) -> None:
    registry.register("customerchurn", _registration())
    if first:
        registry.update_approval("customerchurn", 1, first, changed_by="alice", reason="first")  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match=message):
        registry.update_approval("customerchurn", 1, then, changed_by="alice", reason="again")  # type: ignore[arg-type]


def test_changes_need_a_person_and_a_reason(registry: LocalModelRegistry) -> None:
    registry.register("customerchurn", _registration())
    with pytest.raises(RegistryError, match="needs a reason"):
        registry.update_approval("customerchurn", 1, "Approved", changed_by="alice", reason=" ")
    with pytest.raises(RegistryError, match="name of who"):
        registry.update_approval("customerchurn", 1, "Approved", changed_by="", reason="ok")
    with pytest.raises(RegistryError, match="customerchurn/7 does not exist"):
        registry.update_approval("customerchurn", 7, "Approved", changed_by="alice", reason="ok")
    assert registry.describe("customerchurn", 1).ModelApprovalStatus == "PendingManualApproval"
