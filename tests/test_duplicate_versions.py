"""Identical inputs (data, code, hyperparameters, image) register no new version; the gate compares with production.

Production is what the deployment ledger says serves (a succeeded deployment's green); these tests record one in
the ledger directly instead of running a blue/green deployment, so the pipeline stops at Register as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from safedeploy.approval import AutoApprove
from safedeploy.ledger import EVENT_STARTED, EVENT_SUCCEEDED
from safedeploy.local import daemon
from safedeploy.local.host import LocalServingHost
from safedeploy.pipeline import Pipeline
from safedeploy.runner import Status
from safedeploy.spec import PipelineSpec, load_spec
from safedeploy.training.inputs import TrainingInputs, code_identity
from tests.conftest import REPO_ROOT, churn_rows, write_table


def _serve_in_production(pipeline: Pipeline, version: int) -> None:
    """Record a succeeded production deployment of ``version`` (what DeployPrd's controller writes)."""
    ledger = pipeline.backend.deployments
    deployment = f"d-test-v{version}"
    ledger.append(deployment, EVENT_STARTED, green={"endpoint": f"customerchurn-prd-v{version}-x", "version": version})
    ledger.append(deployment, EVENT_SUCCEEDED)


def test_the_inputs_digest_changes_with_each_input_and_only_with_them() -> None:
    base = TrainingInputs("d" * 64, "abc123", {"max_depth": "5", "eta": "0.2"}, "img:1")
    same = TrainingInputs("d" * 64, "abc123", {"eta": "0.2", "max_depth": "5"}, "img:1")  # order does not matter
    assert base.digest == same.digest and len(base.digest) == 64
    changed = [
        TrainingInputs("e" * 64, "abc123", {"max_depth": "5", "eta": "0.2"}, "img:1"),
        TrainingInputs("d" * 64, "abc124", {"max_depth": "5", "eta": "0.2"}, "img:1"),
        TrainingInputs("d" * 64, "abc123", {"max_depth": "6", "eta": "0.2"}, "img:1"),
        TrainingInputs("d" * 64, "abc123", {"max_depth": "5", "eta": "0.2"}, "img:2"),
    ]
    assert len({base.digest, *(c.digest for c in changed)}) == 5
    assert code_identity("abc123", "f" * 64) == "abc123"  # a clean revision says what the code is
    assert code_identity("abc123+dirty", "f" * 64) != code_identity("abc123+dirty", "0" * 64)


@pytest.mark.slow
def test_identical_inputs_reuse_the_version_and_a_worse_candidate_is_refused(
    make_spec: Callable[..., PipelineSpec],
) -> None:
    pipeline = Pipeline(make_spec(), project_root=REPO_ROOT)
    first = pipeline.run()
    assert first.status == Status.SUCCEEDED, first.error
    assert "no production yet (first deployment): absolute gate only" in (first.stage("Train").summary or "")
    [v1] = pipeline.model_packages()
    assert v1.CustomerMetadataProperties["InputsSha256"] == first.stage("Train").outputs["inputs_sha256"]
    _serve_in_production(pipeline, 1)
    ledger_before = pipeline.backend.deployments.events()

    # the same data, code, hyperparameters and image: v1 again, no job, no new package
    again = pipeline.run()
    assert again.status == Status.SUCCEEDED, again.error
    train = again.stage("Train")
    assert train.outputs["reused_version"] == 1
    assert "identical inputs to v1 (data " in (train.summary or "")
    assert "reusing v1, no new version" in (train.summary or "")
    assert train.outputs["training_job_name"] == first.stage("Train").outputs["training_job_name"]
    assert "reused: identical inputs, no new package" in (again.stage("Register").summary or "")
    assert again.stage("Register").outputs["model_package_version"] == 1
    assert [p.ModelPackageVersion for p in pipeline.model_packages()] == [1]
    assert pipeline.backend.deployments.events() == ledger_before  # production unchanged

    # a worse candidate (one shallow tree of 3 rounds) clears a lowered absolute gate but not production
    weak = Pipeline(
        make_spec(
            **{
                "hyperparameters.max_depth": 1,
                "hyperparameters.num_round": 3,
                "gate.conditions": [{"metric": "test:auc", "op": ">=", "threshold": 0.5}],
            }
        ),
        project_root=REPO_ROOT,
    )
    refused = weak.run()
    assert refused.status == Status.FAILED
    error = refused.stage("Train").error or ""
    production_auc = v1.Metrics["test:auc"]
    rows = first.stage("Data").outputs["rows"]["test"]
    assert f"is below production v1's {production_auc:.4f} on the same {rows} held-out rows (tolerance 0.005)" in error
    assert error.startswith("quality gate failed: test:auc 0.") and error.endswith("the model was not registered")
    assert refused.stage("Register").status is None
    assert [p.ModelPackageVersion for p in pipeline.model_packages()] == [1]


@pytest.mark.slow
def test_a_changed_hyperparameter_makes_a_new_version_compared_with_production(
    make_spec: Callable[..., PipelineSpec],
) -> None:
    pipeline = Pipeline(make_spec(), project_root=REPO_ROOT)
    assert pipeline.run().status == Status.SUCCEEDED
    _serve_in_production(pipeline, 1)
    changed = Pipeline(
        make_spec(**{"hyperparameters.max_depth": 3, "gate.production_tolerance": 1.0}), project_root=REPO_ROOT
    )
    trained = changed.run()
    assert trained.status == Status.SUCCEEDED, trained.error
    train = trained.stage("Train")
    assert train.outputs["reused_version"] is None and train.outputs["production_version"] == 1
    measured_by_job = train.outputs["production_metrics"]["test:auc"]
    assert f"vs production v1 {measured_by_job:.4f}" in (train.summary or "")
    assert [p.ModelPackageVersion for p in pipeline.model_packages()] == [1, 2]
    # production's score is not the new version's metric
    assert not any(k.startswith("production:") for k in pipeline.model_packages()[1].Metrics)

    # v2 reused while v1 serves: production is measured again, in-process, on the same rows: the same value
    reused = changed.run()
    assert reused.status == Status.SUCCEEDED, reused.error
    again = reused.stage("Train")
    assert again.outputs["reused_version"] == 2
    assert again.outputs["production_metrics"]["test:auc"] == pytest.approx(measured_by_job, abs=1e-12)
    assert [p.ModelPackageVersion for p in pipeline.model_packages()] == [1, 2]


@pytest.mark.slow
def test_a_rejected_twin_is_not_reused(make_spec: Callable[..., PipelineSpec]) -> None:
    pipeline = Pipeline(make_spec(), project_root=REPO_ROOT)
    assert pipeline.run().status == Status.SUCCEEDED
    pipeline.set_approval(1, "Rejected", by="tester", reason="not good enough")
    second = pipeline.run()
    assert second.status == Status.SUCCEEDED, second.error
    assert second.stage("Train").outputs["reused_version"] is None
    assert [p.ModelPackageVersion for p in pipeline.model_packages()] == [1, 2]


def test_status_shows_the_candidate_beside_production() -> None:
    from safedeploy.report import _against_production
    from safedeploy.stage_outputs import TrainOutputs

    common = {"training_job_name": "j", "model_data_url": "s3://b/m", "hyperparameters": {}, "feature_schema_uri": "u"}
    compared = TrainOutputs(
        **common, metrics={"test:auc": 0.9301}, production_version=3, production_metrics={"test:auc": 0.9263}
    )
    assert compared.comparison() == "test:auc 0.9301 vs production v3 0.9263"
    assert _against_production(compared) == " vs production v3 0.9263"
    first = TrainOutputs(**common, metrics={"test:auc": 0.93})
    assert first.comparison() is None and _against_production(first) == ""
    reused = TrainOutputs(**common, metrics={"test:auc": 0.93}, reused_version=1)
    assert _against_production(reused) == " (v1 reused: identical inputs, no new version)"


@pytest.mark.slow
def test_identical_inputs_leave_production_alone_end_to_end(tmp_path: Path) -> None:
    """With serving and production on: the second run asks no approval and DeployPrd changes nothing."""
    spec = load_spec(
        overrides={
            "state_dir": str(tmp_path / "state"),
            "data": {"source": str(write_table(tmp_path / "churn.csv", churn_rows(800, seed=5)))},
            "training": {"source_dir": str(REPO_ROOT / "model")},
            "hyperparameters": {"num_round": 60},
            "gate": {"conditions": [{"metric": "test:auc", "op": ">=", "threshold": 0.5}]},
            "serving": {"enabled": True},
            "monitoring": {"enabled": False},
            "production": {"strategy": "AllAtOnce", "bake_seconds": 60, "time_scale": 120},
        }
    )
    try:
        first = Pipeline(spec, project_root=REPO_ROOT, approver=AutoApprove("tests")).run(trigger="test")
        assert first.status == Status.SUCCEEDED, first.error
        pipeline = Pipeline(spec, project_root=REPO_ROOT, approver=AutoApprove("tests"))
        ledger = pipeline.backend.deployments.events()
        endpoint = first.stage("DeployPrd").outputs["endpoint_name"]

        second = pipeline.run(trigger="test")
        assert second.status == Status.SUCCEEDED, second.error
        approval = second.stage("ApproveDeployment")
        assert approval.approval is None  # nothing was asked
        assert approval.summary == f"v1 already serves production ({endpoint}): nothing to approve"
        assert second.stage("DeployPrd").summary == f"v1 already serves production on {endpoint}; nothing changed"
        assert "smoke test: " in (second.stage("DeployDev").summary or "")  # dev is still smoke-tested
        assert pipeline.backend.deployments.events() == ledger  # no deployment, no event
        assert [p.ModelPackageVersion for p in pipeline.model_packages()] == [1]
        assert LocalServingHost(spec.state_dir, spec.region, spec.account_id).outputs()["EndpointName"] == endpoint
    finally:
        daemon.stop(spec.state_dir)
