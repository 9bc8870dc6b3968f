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


def test_a_decision_records_approver_and_comment_in_the_metadata(registry: LocalModelRegistry) -> None:
    registry.register("customerchurn", _registration())
    registry.register("customerchurn", _registration())
    approved = registry.update_approval("customerchurn", 1, "Approved", changed_by="alice", reason="AUC looks good")
    meta = approved.CustomerMetadataProperties
    assert (meta["ApprovalDecidedBy"], meta["ApprovalComment"]) == ("alice", "AUC looks good")
    assert meta["ApprovalDecidedAt"].endswith("Z") and meta["DataSha256"] == "ab" * 32  # lineage kept
    rejected = registry.update_approval("customerchurn", 2, "Rejected", changed_by="bob", reason="recall too low")
    assert rejected.ModelApprovalStatus == "Rejected" and rejected.ApprovalDescription == "recall too low"
    assert rejected.CustomerMetadataProperties["ApprovalDecidedBy"] == "bob"
    assert approved.production_candidate and not rejected.production_candidate


def test_serving_moves_from_version_to_version_and_a_rollback_marks_the_version(registry: LocalModelRegistry) -> None:
    from datetime import UTC, datetime

    from safedeploy.report import format_packages

    for _ in range(3):
        registry.register("customerchurn", _registration())
    t1, t2, t3 = (datetime(2026, 12, 3, h, 0, tzinfo=UTC) for h in (10, 11, 12))
    registry.record_serving("customerchurn", 1, "dev", "customerchurn-dev", at=t1)
    registry.record_serving("customerchurn", 1, "prd", "customerchurn-prd-v1-a", at=t1)
    one = registry.describe("customerchurn", 1)
    assert one.serves_in == ("dev", "prd") and one.CustomerMetadataProperties["ServesIn"] == "dev prd"
    assert one.CustomerMetadataProperties["PrdSince"] == "2026-12-03T10:00:00Z"

    registry.update_approval("customerchurn", 2, "Approved", changed_by="bob", reason="ok")
    registry.record_serving("customerchurn", 2, "dev", "customerchurn-dev", at=t2)
    registry.record_serving("customerchurn", 2, "prd", "customerchurn-prd-v2-b", at=t2)
    one, two = registry.describe("customerchurn", 1), registry.describe("customerchurn", 2)
    assert one.serves_in == () and "ServesIn" not in one.CustomerMetadataProperties
    assert one.CustomerMetadataProperties["PrdUntil"] == "2026-12-03T11:00:00Z"
    assert two.serves_in == ("dev", "prd") and registry.production("customerchurn") == two

    # v3's canary fails: it never served production, and says so.
    registry.update_approval("customerchurn", 3, "Approved", changed_by="carol", reason="ok")
    registry.record_serving("customerchurn", 3, "dev", "customerchurn-dev", at=t3)
    three = registry.record_rollback("customerchurn", 3, reason="alarm green-error-rate", by="pipeline", at=t3)
    assert three.ModelApprovalStatus == "Approved" and three.rolled_back and not three.production_candidate
    assert three.CustomerMetadataProperties["RolledBackReason"] == "alarm green-error-rate"
    assert three.serves_in == ("dev",)

    # `make rollback`: production back from v2 to v1.
    registry.record_serving("customerchurn", 1, "prd", "customerchurn-prd-v1-c", at=t3)
    two = registry.record_rollback("customerchurn", 2, reason="rolled back by oncall to v1", by="oncall", at=t3)
    assert two.serves_in == () and two.rolled_back and two.CustomerMetadataProperties["PrdUntil"]  # v3 took dev
    assert registry.production("customerchurn") == registry.describe("customerchurn", 1)

    listing = format_packages(registry.list_versions("customerchurn"))
    rows = {line.split()[1] if line.startswith("*") else line.split()[0]: line for line in listing.splitlines()[1:4]}
    assert rows["1"].startswith("*") and "prd since 2026-12-03 12:00" in rows["1"]
    assert "Approved, rolled back" in rows["2"] and "Approved, rolled back" in rows["3"]
    assert "* in production: v1" in listing
    assert "v3 rolled back at 2026-12-03T12:00:00Z by pipeline: alarm green-error-rate" in listing

    # Serving production again clears the rollback mark; the metadata stays within SageMaker's limits.
    registry.record_serving("customerchurn", 2, "prd", "customerchurn-prd-v2-d", at=t3)
    assert not registry.describe("customerchurn", 2).rolled_back
    long = registry.record_rollback("customerchurn", 2, reason="x" * 1000, by="oncall")
    assert len(long.CustomerMetadataProperties["RolledBackReason"]) == 256
    with pytest.raises(RegistryError, match="reason"):
        registry.record_rollback("customerchurn", 2, reason=" ", by="oncall")
    with pytest.raises(RegistryError, match="does not exist"):
        registry.record_serving("customerchurn", 9, "prd", "x")


def test_metadata_values_are_what_sagemaker_accepts(registry: LocalModelRegistry) -> None:
    """SageMaker takes ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]{1,256}`` as a value (moto does not check it)."""
    from safedeploy.registry import metadata_value

    def accepted(value: str) -> bool:
        return 1 <= len(value) <= 256 and all(c.isalnum() or c.isspace() or c in "_.:/=+-@" for c in value)

    assert metadata_value(
        "rolled back: alarm green-error-rate, green-p99-latency in ALARM during the 10% step (x)"
    ) == ("rolled back: alarm green-error-rate green-p99-latency in ALARM during the 10 percent step x")
    assert metadata_value("  ") == "-" and metadata_value("é ü 日本") == "é ü 日本"
    assert len(metadata_value("y" * 300)) == 256
    registry.register("customerchurn", _registration())
    registry.update_approval("customerchurn", 1, "Approved", changed_by="o'brien (ops)", reason="100% sure, 'ok'!")
    registry.record_serving("customerchurn", 1, "dev", "customerchurn-dev")
    registry.record_serving("customerchurn", 1, "prd", "customerchurn-prd-v1-ab")
    package = registry.record_rollback("customerchurn", 1, reason="alarm (5xx) > 1%; see ledger…", by="a, b")
    written = {k: v for k, v in package.CustomerMetadataProperties.items() if k not in ("FeatureSchemaUri",)}
    assert all(accepted(v) for v in written.values()), written
    assert package.ApprovalDescription == "100% sure, 'ok'!"  # the description takes any text


def test_find_by_inputs_prefers_production_and_skips_rejected_twins(registry: LocalModelRegistry) -> None:
    digest = "d1" * 32
    assert registry.find_by_inputs("customerchurn", digest) is None
    one = registry.register("customerchurn", _registration(inputs_sha256=digest))
    assert one.CustomerMetadataProperties["InputsSha256"] == digest
    registry.register("customerchurn", _registration(inputs_sha256="e2" * 32))  # other inputs
    three = registry.register("customerchurn", _registration(inputs_sha256=digest))
    found = registry.find_by_inputs("customerchurn", digest)
    assert found is not None and found.ModelPackageVersion == 3  # the newest twin, none serving
    registry.record_serving("customerchurn", 1, "prd", "customerchurn-prd-v1-abc")
    registry.record_rollback("customerchurn", 3, reason="rehearsal", by="game day")
    found = registry.find_by_inputs("customerchurn", digest)
    assert found is not None and found.ModelPackageVersion == 1  # production's, not the rolled-back rehearsal
    registry.update_approval("customerchurn", 1, "Rejected", changed_by="me", reason="bad")
    found = registry.find_by_inputs("customerchurn", digest)
    assert found is not None and found.ModelPackageVersion == three.ModelPackageVersion
    registry.update_approval("customerchurn", 3, "Rejected", changed_by="me", reason="bad")
    assert registry.find_by_inputs("customerchurn", digest) is None
    assert registry.find_by_inputs("customerchurn", "") is None  # versions without a digest never match
