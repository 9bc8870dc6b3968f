"""``make rollback`` walks production's history back (v3 -> v2 -> v1), never toggles; ``VERSION=n`` names a version.

The rule first, on ledger summaries (no runtime), then the acceptance run: three versions deployed in order on a
real runtime, rolled back twice, then forward again by name, and every version that cannot be chosen refused
with nothing changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from safedeploy.approval import AutoApprove
from safedeploy.cli import main
from safedeploy.errors import ConfigError, DeploymentError
from safedeploy.ledger import DeploymentLedger
from safedeploy.local import daemon
from safedeploy.local.host import LocalServingHost
from safedeploy.pipeline import Pipeline
from safedeploy.rollback import return_path, served_versions
from safedeploy.spec import PipelineSpec, load_spec
from safedeploy.store import LocalArtifactStore, S3Uri
from tests.conftest import REPO_ROOT, churn_rows, write_table
from tests.serving import http

ROW = ",".join(["1"] * 69).encode()


def _deployment(version: int, outcome: str = "Succeeded", rollback_of: int | None = None) -> dict[str, Any]:
    """A ledger summary as :meth:`DeploymentLedger.deployments` gives it."""
    return {
        "deployment_id": f"d-{version}-{outcome}-{rollback_of}",
        "time": "2026-12-04T00:00:00+00:00",
        "green": {"endpoint": f"m-prd-v{version}-x", "version": version},
        "execution_id": f"e{version}",
        "outcome": outcome,
        "rollback_of": None if rollback_of is None else {"endpoint": "e", "version": rollback_of},
    }


def _path(*deployments: dict[str, Any]) -> list[int]:
    return [served.version for served in return_path(list(deployments))]


def test_each_rollback_goes_one_further_back_never_to_the_version_it_left() -> None:
    one, two, three = _deployment(1), _deployment(2), _deployment(3)
    assert _path(one, two, three) == [1, 2, 3]
    back_to_two = _deployment(2, rollback_of=3)
    assert _path(one, two, three, back_to_two) == [1, 2]  # rolled back from v3: it is off the path
    back_to_one = _deployment(1, rollback_of=2)
    assert _path(one, two, three, back_to_two, back_to_one) == [1]  # not [1, 2, 3], not a toggle to v3


def test_a_named_version_off_the_path_is_a_return_that_keeps_the_version_it_left() -> None:
    one, two, three = _deployment(1), _deployment(2), _deployment(3)
    history = [one, two, three, _deployment(2, rollback_of=3), _deployment(1, rollback_of=2)]
    forward = _deployment(3, rollback_of=1)  # VERSION=3 from v1
    assert _path(*history, forward) == [1, 3]  # the next plain rollback returns to v1
    assert _path(*history, forward, _deployment(1, rollback_of=3)) == [1]


def test_a_named_version_on_the_path_drops_every_version_above_it() -> None:
    one, two, three = _deployment(1), _deployment(2), _deployment(3)
    assert _path(one, two, three, _deployment(1, rollback_of=3)) == [1]  # v2 and v3 both left behind


def test_failed_deployments_never_serve_and_take_their_version_off_the_path() -> None:
    one, two = _deployment(1), _deployment(2)
    assert _path(one, two, _deployment(3, "RolledBack")) == [1, 2]  # a canary that failed: v2 still serves
    # v1 redeployed (identical inputs) and its canary failed: production rolled back from v1, so not back to it
    assert _path(one, two, _deployment(1, "RolledBack")) == [2]
    # a failed redeployment of the version serving leaves it serving (and on the path)
    assert _path(one, two, _deployment(2, "RolledBack")) == [1, 2]
    assert _path(one, _deployment(2, "InProgress")) == [1]


def test_a_pipeline_deployment_of_an_earlier_version_moves_it_to_the_top() -> None:
    one, two, three = _deployment(1), _deployment(2), _deployment(3)
    assert _path(one, two, three, _deployment(1)) == [2, 3, 1]  # a forward deployment: nothing rolled back


def test_served_versions_are_every_version_a_deployment_put_into_production() -> None:
    history = [_deployment(1), _deployment(2), _deployment(3, "RolledBack"), _deployment(1, rollback_of=2)]
    served = served_versions(history)
    assert sorted(served) == [1, 2]
    assert served[1].deployment_id == history[-1]["deployment_id"]  # the latest deployment of it


@pytest.fixture(scope="module")
def three_versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineSpec]:
    """v1, v2, v3 deployed to production in order (small trainings, all at once); the runtime stopped at the end."""
    root = tmp_path_factory.mktemp("rollback")
    state = root / "state"
    spec = load_spec(
        overrides={
            "state_dir": str(state),
            "data": {"source": str(write_table(root / "churn.csv", churn_rows(600, seed=23)))},
            "training": {"source_dir": str(REPO_ROOT / "model")},
            "hyperparameters": {"num_round": 40},
            "gate": {"conditions": [{"metric": "test:auc", "op": ">=", "threshold": 0.5}]},
            "serving": {"enabled": True},
            "production": {"strategy": "AllAtOnce", "bake_seconds": 180, "time_scale": 120},
            # latency is not under test here: a busy machine must not roll these deployments back
            "alarms": {"deployment": {"latency_slack_ms": 2000, "max_latency_ms": 5000}},
        }
    )
    try:
        for rounds in (40, 41, 42):  # new inputs each time: identical ones would reuse the version
            version = spec.model_copy(
                update={"hyperparameters": spec.hyperparameters.model_copy(update={"num_round": rounds})}
            )
            execution = Pipeline(version, project_root=REPO_ROOT, approver=AutoApprove("tests")).run(trigger="test")
            assert execution.status == "Succeeded", execution.error
        yield spec
    finally:
        daemon.stop(state)


def _serving(spec: PipelineSpec) -> str:
    """The version production's REST API answers with (asked through the API, with the model's key)."""
    outputs = LocalServingHost(spec.state_dir, spec.region, spec.account_id).outputs()
    reply = http(outputs["ApiUrl"], ROW, {"x-api-key": outputs["ApiKey"], "Content-Type": "text/csv"})
    assert reply.status == 200, reply.body
    assert outputs["ModelVersion"] == reply.headers["x-model-version"]
    return reply.headers["x-model-version"]


def _ledger(spec: PipelineSpec) -> list[dict[str, Any]]:
    return DeploymentLedger(spec.state_dir / "deployments", spec.pipeline_name).deployments()


@pytest.mark.slow
def test_rollback_v3_to_v2_to_v1_then_version_3(
    three_versions: PipelineSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = three_versions
    pipeline = Pipeline(spec, project_root=REPO_ROOT)
    assert _serving(spec) == "3"

    report = pipeline.rollback(by="oncall")
    assert report.ok and "(v3) -> " in report.text and report.text.endswith("(v2)")
    assert _serving(spec) == "2"

    report = pipeline.rollback(by="oncall")  # one further back, not a toggle to v3
    assert report.ok and "(v2) -> " in report.text and report.text.endswith("(v1)")
    assert _serving(spec) == "1"

    # nothing before v1: refused, naming the versions that can be chosen, and nothing changes
    deployments = len(_ledger(spec))
    with pytest.raises(DeploymentError, match=r"serves v1 and no version served before it.*--version.*: v2, v3$"):
        pipeline.rollback(by="oncall")
    assert len(_ledger(spec)) == deployments and _serving(spec) == "1"

    # `make rollback VERSION=3` (the CLI, as make runs it)
    assert main(["rollback", "--set", f"state_dir={spec.state_dir}", "--version", "3", "--by", "oncall"]) == 0
    assert "production rolled back: " in capsys.readouterr().out
    assert _serving(spec) == "3"

    ledger = _ledger(spec)
    rollbacks = ledger[3:]
    assert [d["outcome"] for d in ledger] == ["Succeeded"] * 6
    assert [(d["rollback_of"]["version"], d["green"]["version"], d["rollback_to"]) for d in rollbacks] == [
        (3, 2, "previous"),
        (2, 1, "previous"),
        (1, 3, 3),
    ]
    assert all(d["approver"] == "oncall" and d["strategy"].startswith("AllAtOnce") for d in rollbacks)
    # the registry: v3 serves production again (its rolled-back mark cleared), v2 and v1 were rolled back from
    registry = pipeline.backend.registry
    one, two, three = (registry.describe(spec.model_name, v) for v in (1, 2, 3))
    assert "prd" in three.serves_in and not three.rolled_back
    assert two.rolled_back and "rollback to v1" in two.CustomerMetadataProperties["RolledBackReason"]
    assert one.rolled_back and "by oncall" in one.CustomerMetadataProperties["RolledBackReason"]
    assert "prd" not in one.serves_in and "prd" not in two.serves_in

    # the next plain rollback returns to v1, the version that served before v3 this time
    assert pipeline.rollback(by="oncall").ok
    assert _serving(spec) == "1"


@pytest.mark.slow
def test_versions_that_cannot_be_chosen_are_refused_with_nothing_changed(
    three_versions: PipelineSpec, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = three_versions
    pipeline = Pipeline(spec, project_root=REPO_ROOT)
    serving, deployments = _serving(spec), len(_ledger(spec))
    others = sorted({1, 2, 3} - {int(serving)})
    choosable = ", ".join(f"v{v}" for v in others)

    with pytest.raises(DeploymentError, match=rf"v{serving}: production serves it now; .*: {choosable}$"):
        pipeline.rollback(int(serving))
    with pytest.raises(DeploymentError, match=r"v9: customerchurn has no version 9 in the registry"):
        pipeline.rollback(9)
    # registered, but never served production: a fourth version waiting at the approval gate
    waiting = spec.model_copy(update={"hyperparameters": spec.hyperparameters.model_copy(update={"num_round": 43})})
    paused = Pipeline(waiting, project_root=REPO_ROOT).run(trigger="test")
    assert paused.awaiting_approval is not None
    with pytest.raises(DeploymentError, match=r"v4: it never served production"):
        pipeline.rollback(4)
    # rejected since it served
    rejected = others[0]
    pipeline.reject(rejected, by="qa", reason="leaks a feature")
    with pytest.raises(
        DeploymentError, match=rf"v{rejected}: v{rejected} was rejected since it served: leaks a feature"
    ):
        pipeline.rollback(rejected)
    # an archive that no longer verifies
    tampered = others[1]
    package = pipeline.backend.registry.describe(spec.model_name, tampered)
    store = LocalArtifactStore(spec.state_dir / "s3")
    archive = store.path_of(S3Uri.parse(package.ModelDataUrl))
    archive.write_bytes(archive.read_bytes() + b"tampered")
    with pytest.raises(DeploymentError, match=rf"v{tampered}'s model archive .* no longer has its recorded sha256"):
        pipeline.rollback(tampered)
    # a plain rollback has nowhere healthy to go either, and says why for each version on the path
    with pytest.raises(DeploymentError, match="no version can be chosen with --version"):
        pipeline.rollback()
    # the CLI: the same refusal as one line, exit status 2
    assert main(["rollback", "--set", f"state_dir={spec.state_dir}", "--version", "9"]) == 2
    assert "error: cannot roll back to v9" in capsys.readouterr().err
    assert len(_ledger(spec)) == deployments and _serving(spec) == serving
    assert pipeline.backend.deployments.live() is not None


def test_aws_says_what_it_does_instead(make_spec: Any) -> None:
    pipeline = Pipeline(make_spec(), project_root=REPO_ROOT, target="aws", aws_clients=lambda spec: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigError, match=r"rollback to v2 --target aws is not available: on AWS, CodeDeploy rolls"):
        pipeline.rollback(2)


def test_a_rollback_before_any_deployment_says_so(make_spec: Any) -> None:
    with pytest.raises(DeploymentError, match="production has never been deployed"):
        Pipeline(make_spec(), project_root=REPO_ROOT).rollback()
