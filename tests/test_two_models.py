"""Two models' pipelines on one runtime: each REST API takes only its own model's key, a state from when they
shared one key is migrated, and ``destroy --model`` removes one pipeline while the other keeps serving."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from safedeploy.approval import AutoApprove
from safedeploy.cli import main
from safedeploy.errors import ConfigError, PipelineLockedError
from safedeploy.local import daemon
from safedeploy.local.destroy_model import destroy_model
from safedeploy.local.host import LocalServingHost
from safedeploy.locking import exclusive_lock
from safedeploy.pipeline import Pipeline
from safedeploy.runtime.paths import RuntimePaths
from safedeploy.runtime.state import RuntimeState, plans_without_key
from safedeploy.runtime.state_file import read_state
from safedeploy.spec import PipelineSpec, load_spec
from tests.conftest import REPO_ROOT, churn_rows, write_table
from tests.serving import Reply, http

ROW = ",".join(["1"] * 69).encode()
MODELS = ("alpha", "beta")


def _legacy(routes: dict[str, str], key: str = "shared-key") -> RuntimeState:
    """A state as saved when every model shared one key: ``ApiKey``, routes without a usage plan."""
    return RuntimeState.model_validate(
        {
            "ApiKey": key,
            "Routes": {name: {"Path": path, "Handler": "app.py:create_handler"} for name, path in routes.items()},
        }
    )


def test_a_shared_key_state_of_one_model_keeps_that_key() -> None:
    state = _legacy({"churn-api": "/churn/api", "churn-dev-api": "/churn/dev/api"})
    assert state.ApiKeys == {"churn": "shared-key"}  # nothing shared it: its clients keep working
    assert {route.UsagePlan for route in state.Routes.values()} == {"churn"}
    assert plans_without_key(state) == []


def test_a_shared_key_state_of_several_models_drops_it_and_each_model_gets_a_new_one() -> None:
    state = _legacy({"a-api": "/a/api", "a-dev-api": "/a/dev/api", "b-api": "/b/api"})
    assert state.ApiKeys == {}  # every model's clients knew it: it opens no API any more
    assert {name: route.UsagePlan for name, route in state.Routes.items()} == {
        "a-api": "a",
        "a-dev-api": "a",
        "b-api": "b",
    }
    assert plans_without_key(state) == ["a", "b"]  # the runtime issues these at start
    saved = RuntimeState.model_validate_json(state.model_dump_json())
    assert "ApiKey" not in saved.model_dump() and saved.Routes["b-api"].UsagePlan == "b"


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PipelineSpec]]:
    """alpha and beta, each deployed to dev and production on one state directory's runtime."""
    root = tmp_path_factory.mktemp("two-models")
    data = write_table(root / "churn.csv", churn_rows(600, seed=29))
    specs = {
        model: load_spec(
            overrides={
                "state_dir": str(root / "state"),
                "model_name": model,
                "data": {"source": str(data)},
                "training": {"source_dir": str(REPO_ROOT / "model")},
                "hyperparameters": {"num_round": 30},
                "gate": {"conditions": [{"metric": "test:auc", "op": ">=", "threshold": 0.5}]},
                "serving": {"enabled": True},
                "production": {"strategy": "AllAtOnce", "bake_seconds": 180, "time_scale": 120},
                # latency is not under test here: a busy machine must not roll these deployments back
                "alarms": {"deployment": {"latency_slack_ms": 2000, "max_latency_ms": 5000}},
            }
        )
        for model in MODELS
    }
    try:
        for spec in specs.values():
            execution = Pipeline(spec, project_root=REPO_ROOT, approver=AutoApprove("tests")).run(trigger="test")
            assert execution.status == "Succeeded", execution.error
        yield specs
    finally:
        daemon.stop(root / "state")


def _outputs(spec: PipelineSpec) -> dict[str, str]:
    return LocalServingHost(spec.state_dir, spec.region, spec.account_id, model_name=spec.model_name).outputs()


def _wait_in_service(spec: PipelineSpec, info: daemon.RuntimeInfo, deadline_s: float = 60.0) -> None:
    """Every endpoint the restarted runtime restored answers InService (its instances are up again)."""
    sagemaker = daemon.sagemaker_client(info)
    names = list(read_state(RuntimePaths(spec.state_dir.resolve()).state).Endpoints)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        statuses = {n: sagemaker.describe_endpoint(EndpointName=n)["EndpointStatus"] for n in names}
        if set(statuses.values()) == {"InService"}:
            return
        time.sleep(0.2)
    raise AssertionError(f"endpoints not InService after a restart: {statuses}")


def _call(url: str, key: str) -> Reply:
    return http(url, ROW, {"x-api-key": key, "Content-Type": "text/csv"})


def _each_key_opens_only_its_own_apis(specs: dict[str, PipelineSpec]) -> None:
    outputs = {model: _outputs(spec) for model, spec in specs.items()}
    assert outputs["alpha"]["ApiKey"] != outputs["beta"]["ApiKey"]
    for model, own in outputs.items():
        other = outputs["beta" if model == "alpha" else "alpha"]
        for url in (own["ApiUrl"], own["DevApiUrl"]):
            assert f"/{model}/" in url
            answer = _call(url, own["ApiKey"])
            assert answer.status == 200 and answer.headers["x-sagemaker-endpoint"].startswith(f"{model}-")
            refused = _call(url, other["ApiKey"])
            assert (refused.status, refused.json()) == (403, {"message": "Forbidden"})  # API Gateway's answer


@pytest.mark.slow
def test_each_models_key_works_only_on_its_own_api(two: dict[str, PipelineSpec]) -> None:
    _each_key_opens_only_its_own_apis(two)
    state_file = RuntimePaths(two["alpha"].state_dir.resolve()).state
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600  # the keys are secrets, as the credentials are
    assert set(read_state(state_file).ApiKeys) == set(MODELS)


@pytest.mark.slow
def test_a_runtime_restarted_on_a_shared_key_state_gives_each_model_a_new_key(two: dict[str, PipelineSpec]) -> None:
    alpha = two["alpha"]
    root = alpha.state_dir.resolve()
    shared = _outputs(alpha)["ApiKey"]
    daemon.stop(root)
    paths = RuntimePaths(root)
    document = json.loads(paths.state.read_text())
    document["ApiKey"] = shared  # what every model's routes accepted before keys were per model
    del document["ApiKeys"]
    for route in document["Routes"].values():
        del route["UsagePlan"]
    for path in (paths.state, paths.state.with_name(f"{paths.state.name}.good")):
        path.write_text(json.dumps(document))
    _wait_in_service(alpha, daemon.ensure_running(root, alpha.region, alpha.account_id))
    for model, spec in two.items():
        outputs = _outputs(spec)
        assert outputs["ApiKey"] != shared
        assert _call(outputs["ApiUrl"], shared).status == 403, model  # the shared key opens nothing any more
    _each_key_opens_only_its_own_apis(two)


@pytest.mark.slow
def test_destroy_one_model_leaves_the_other_serving(
    two: dict[str, PipelineSpec], capsys: pytest.CaptureFixture[str]
) -> None:
    alpha = two["alpha"]
    root = alpha.state_dir.resolve()
    state_arg = f"state_dir={root}"
    assert main(["destroy", "--set", state_arg, "--model", "gamma", "--yes"]) == 2
    refusal = capsys.readouterr().err
    assert "no model 'gamma'" in refusal and "known models: alpha, beta" in refusal
    before = {model: _outputs(spec) for model, spec in two.items()}
    beta_endpoints = [n for n in read_state(RuntimePaths(root).state).Endpoints if n.startswith("beta-")]
    assert len(beta_endpoints) == 2

    assert main(["destroy", "--set", state_arg, "--model", "beta", "--yes"]) == 0
    printed = capsys.readouterr().out
    assert "destroyed beta-dev locally" in printed and "route beta-api" in printed

    # alpha still answers on both its APIs, with its key
    after = _outputs(alpha)
    assert after["ApiKey"] == before["alpha"]["ApiKey"]
    for url in (after["ApiUrl"], after["DevApiUrl"]):
        assert _call(url, after["ApiKey"]).status == 200
    # beta's routes, endpoints and key are gone from the runtime
    for url in (before["beta"]["ApiUrl"], before["beta"]["DevApiUrl"]):
        assert _call(url, before["beta"]["ApiKey"]).status == 404
    state = read_state(RuntimePaths(root).state)
    assert set(state.ApiKeys) == {"alpha"} and all(r.UsagePlan == "alpha" for r in state.Routes.values())
    assert not [n for n in (*state.Endpoints, *state.EndpointConfigs, *state.Models) if n.startswith("beta-")]
    sagemaker = LocalServingHost(root, alpha.region, alpha.account_id).sagemaker()
    assert {e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]} == set(state.Endpoints)
    # beta's state is gone, alpha's is all there
    leftovers = [p.relative_to(root) for p in root.rglob("*beta*")]
    assert leftovers == []
    for kept in (
        "registry/alpha",
        "executions/alpha-dev",
        "deployments/alpha-dev.jsonl",
        "monitoring/alpha-dev-data-quality",
        "probes/alpha-dev-probe/schedule.json",
    ):
        assert (root / kept).exists(), kept
    assert Pipeline(alpha, project_root=REPO_ROOT).model_packages()
    # a second destroy of beta: it is not a known model any more
    assert main(["destroy", "--set", state_arg, "--model", "beta", "--yes"]) == 2
    assert "known models: alpha" in capsys.readouterr().err


def test_destroy_of_a_model_in_an_empty_state_directory_lists_none(
    make_spec: object, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["destroy", "--set", f"state_dir={tmp_path / 'empty'}", "--model", "churn", "--yes"]) == 2
    assert "known models: none: nothing was deployed here" in capsys.readouterr().err


def _touch(root: Path, *relative: str) -> None:
    for name in relative:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            path.mkdir(exist_ok=True)
        else:
            path.write_text("{}", "utf-8")


def test_destroy_of_a_model_with_a_pipeline_in_another_environment_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "state"
    _touch(root, "executions/churn-dev/", "executions/churn-prod/", "registry/churn/")
    spec = load_spec(overrides={"state_dir": str(root), "environment": "dev"})
    with pytest.raises(ConfigError, match=r"also has a pipeline in environment prod .* nothing was removed"):
        destroy_model(spec, "churn")
    assert sorted(p.name for p in (root / "executions").iterdir()) == ["churn-dev", "churn-prod"]
    assert (root / "registry" / "churn").is_dir() and not (root / "locks").exists()


def test_destroy_leaves_a_longer_named_models_files_whatever_its_environment(tmp_path: Path) -> None:
    root = tmp_path / "state"
    mine, theirs = "jobs/churn-20261204-041813-9a72d26c/", "jobs/churn-eu-20261204-041813-1b2c3d4e/"
    # churn-eu runs only in prod here and has no registry group yet: its job must stay all the same
    _touch(root, "executions/churn-dev/", "executions/churn-eu-prod/", mine, theirs, "locks/churn-dev.lock")
    spec = load_spec(overrides={"state_dir": str(root), "environment": "dev"})
    report = destroy_model(spec, "churn", progress=lambda _: None)
    assert set(report.removed) == {mine.rstrip("/"), "executions/churn-dev"}
    assert (root / theirs).is_dir() and (root / "executions" / "churn-eu-prod").is_dir()
    assert not (root / "locks" / "churn-dev.lock").exists()  # held to the end, then removed


def test_destroy_of_a_model_whose_execution_runs_removes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "state"
    _touch(root, "executions/churn-dev/", "registry/churn/")
    spec = load_spec(overrides={"state_dir": str(root), "environment": "dev"})
    locked = pytest.raises(PipelineLockedError, match=r"is running \(pid \d+ holds .*\): .* nothing was removed")
    with exclusive_lock(root / "locks" / "churn-dev.lock", {"execution_id": "e-1"}), locked:
        destroy_model(spec, "churn")
    assert (root / "executions" / "churn-dev").is_dir() and (root / "registry" / "churn").is_dir()
