"""DeployPrd end to end on the local runtime: a first deployment, then a healthy blue/green shift to 100 %."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safedeploy import constants as C
from safedeploy.approval import AutoApprove
from safedeploy.errors import DeploymentError
from safedeploy.ledger import DeploymentLedger
from safedeploy.local import daemon
from safedeploy.local.host import LocalServingHost
from safedeploy.pipeline import Pipeline
from safedeploy.report import format_packages
from safedeploy.runner import PipelineExecution
from safedeploy.spec import load_spec
from tests.conftest import REPO_ROOT, churn_rows, write_table
from tests.serving import http

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    root = tmp_path_factory.mktemp("prod")
    state = root / "state"
    spec = load_spec(
        overrides={
            "state_dir": str(state),
            "data": {"source": str(write_table(root / "churn.csv", churn_rows(800, seed=17)))},
            "training": {"source_dir": str(REPO_ROOT / "model")},
            "hyperparameters": {"num_round": 80},
            "gate": {"conditions": [{"metric": "test:auc", "op": ">=", "threshold": 0.5}]},
            "serving": {"enabled": True},
            # 5-minute canary and bake, 60 s alarm periods, at 120x: 2.5 s each on the wall.
            "production": {"strategy": "Canary10Percent5Minutes", "bake_seconds": 300, "time_scale": 120},
        }
    )
    try:
        yield state, spec
    finally:
        daemon.stop(state)


def _deploy(spec: Any) -> PipelineExecution:
    execution = Pipeline(spec, project_root=REPO_ROOT, approver=AutoApprove("tests")).run(trigger="test")
    assert execution.status == "Succeeded", execution.error
    return execution


def test_first_then_second_deployment_shift_blue_to_green(prod: tuple[Path, Any]) -> None:
    state, spec = prod
    host = LocalServingHost(state, spec.region, spec.account_id)

    first = _deploy(spec)
    stage = first.stage(C.STAGE_DEPLOY_PRD)
    blue = stage.outputs["endpoint_name"]
    assert stage.outputs["blue"] is None and blue.startswith("customerchurn-prd-v1-")
    # the status says what happened: no blue, so all at once, whatever the configured canary
    assert stage.outputs["strategy"] == "AllAtOnce"
    assert (
        "(AllAtOnce: first deployment, nothing to shift from; Canary10Percent5Minutes applies from the next one)"
        in (stage.summary or "")
    )
    outputs = host.outputs()
    assert (
        outputs["ApiUrl"].endswith("/customerchurn/api")
        and outputs["EndpointName"] == blue
        and outputs["ModelVersion"] == "1"
    )
    row = ",".join(["1"] * 69).encode()
    reply = http(outputs["ApiUrl"], row, {"x-api-key": outputs["ApiKey"], "Content-Type": "text/csv"})
    assert reply.status == 200 and reply.headers["x-sagemaker-endpoint"] == blue
    assert reply.headers["x-model-version"] == "1"

    # a new version needs new inputs (identical ones reuse v1: tests/test_duplicate_versions.py)
    retrained = spec.model_copy(update={"hyperparameters": spec.hyperparameters.model_copy(update={"num_round": 81})})
    second = _deploy(retrained)
    stage = second.stage(C.STAGE_DEPLOY_PRD)
    green = stage.outputs["endpoint_name"]
    assert stage.outputs["blue"]["endpoint"] == blue and green.startswith("customerchurn-prd-v2-")
    assert stage.outputs["strategy"] == "Canary10Percent5Minutes" and "(Canary10Percent5Minutes)" in (
        stage.summary or ""
    )
    outputs = host.outputs()
    assert outputs["EndpointName"] == green and outputs["ModelVersion"] == "2"
    reply = http(outputs["ApiUrl"], row, {"x-api-key": outputs["ApiKey"], "Content-Type": "text/csv"})
    assert reply.status == 200 and reply.headers["x-sagemaker-endpoint"] == green  # the API's endpoint changed
    assert reply.headers["x-model-version"] == "2"
    assert not host.endpoint_exists(blue)  # blue is gone

    ledger = DeploymentLedger(state / "deployments", spec.pipeline_name)
    deployments = ledger.deployments()
    assert [d["outcome"] for d in deployments] == ["Succeeded", "Succeeded"]
    assert [s["weights"] for s in deployments[1]["steps"]] == [{blue: 0.9, green: 0.1}, {green: 1.0}]
    assert deployments[1]["approver"] == "tests" and deployments[1]["execution_id"] == second.execution_id
    alarms = [e for e in ledger.events(deployments[1]["deployment_id"]) if e["event"] == "AlarmTransition"]
    assert {(e["alarm"], e["new"]) for e in alarms} >= {("green-error-rate", "OK"), ("green-p99-latency", "OK")}
    assert ledger.live() is not None and ledger.live().endpoint == green  # type: ignore[union-attr]
    # The registry says where each version serves: v2 in dev and production since this deployment, v1 nowhere now.
    registry = Pipeline(spec, project_root=REPO_ROOT).backend.registry
    one, two = registry.describe(spec.model_name, 1), registry.describe(spec.model_name, 2)
    assert two.serves_in == ("dev", "prd") and two.CustomerMetadataProperties["PrdEndpoint"] == green
    assert two.CustomerMetadataProperties["ApprovalDecidedBy"] == "tests" and two.production_candidate
    assert one.serves_in == () and one.CustomerMetadataProperties["PrdEndpoint"] == blue
    assert one.CustomerMetadataProperties["PrdUntil"] >= one.CustomerMetadataProperties["PrdSince"]
    # The canary traffic reached green through the API, marked synthetic in the captured data.
    captured = list((state / "s3").rglob(f"datacapture/{green}/AllTraffic/**/*.jsonl"))
    # (The pre-traffic hook's known-row check is captured too, unmarked: look across the files, in no given order.)
    texts = [path.read_text().replace('":"', '": "') for path in captured]
    assert captured and any('"inferenceId": "synthetic-' in text for text in texts)


def test_rollback_returns_production_to_the_previous_model_in_one_command(prod: tuple[Path, Any]) -> None:
    state, spec = prod  # runs after the two deployments above (v1, then v2 serving)
    host = LocalServingHost(state, spec.region, spec.account_id)
    before = host.outputs()
    assert before["ModelVersion"] == "2"
    was, now = Pipeline(spec, project_root=REPO_ROOT).rollback_production(by="oncall")
    assert (was.version, now.version) == (2, 1) and was.endpoint == before["EndpointName"]
    after = host.outputs()
    assert after["ModelVersion"] == "1" and after["EndpointName"] == now.endpoint != before["EndpointName"]
    reply = http(
        after["ApiUrl"], ",".join(["1"] * 69).encode(), {"x-api-key": after["ApiKey"], "Content-Type": "text/csv"}
    )
    assert reply.status == 200 and reply.headers["x-model-version"] == "1"
    assert not host.endpoint_exists(was.endpoint)
    last = DeploymentLedger(state / "deployments", spec.pipeline_name).deployments()[-1]
    assert last["outcome"] == "Succeeded" and last["rollback_of"]["version"] == 2 and last["approver"] == "oncall"
    assert last["strategy"].startswith("AllAtOnce")
    # The registry: v1 serves production again, v2 is marked rolled back (still Approved, no longer a candidate).
    pipeline = Pipeline(spec, project_root=REPO_ROOT)
    one, two = (pipeline.backend.registry.describe(spec.model_name, v) for v in (1, 2))
    assert "prd" in one.serves_in and one.CustomerMetadataProperties["PrdEndpoint"] == now.endpoint
    assert two.ModelApprovalStatus == "Approved" and two.rolled_back and not two.production_candidate
    assert "prd" not in two.serves_in and "by oncall" in two.CustomerMetadataProperties["RolledBackReason"]
    listing = format_packages(pipeline.model_packages())
    assert "* in production: v1" in listing and "v2 rolled back at" in listing
    # Rolling back again would bring back the version just taken out (a toggle): refused, naming it as a choice.
    with pytest.raises(DeploymentError, match=r"serves v1 and no version served before it .*--version.*: v2$"):
        pipeline.rollback_production(by="oncall")
