"""Spec resolution: arguments > environment > config file > defaults, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from safedeploy.errors import ConfigError
from safedeploy.spec import load_spec, parse_assignment


def test_defaults_match_the_seed() -> None:
    spec = load_spec()
    assert spec.model_name == "customerchurn"
    assert spec.hyperparameters.objective == "binary:logistic"
    assert [str(c) for c in spec.gate.conditions] == ["test:auc >= 0.9"]
    assert spec.pipeline_name == "customerchurn-dev"


def test_precedence_argument_over_env_over_file_over_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "pipeline.toml"
    config.write_text("[hyperparameters]\nmax_depth = 3\neta = 0.11\ngamma = 2.5\n")
    monkeypatch.setenv("SAFEDEPLOY_HYPERPARAMETERS__MAX_DEPTH", "4")
    monkeypatch.setenv("SAFEDEPLOY_HYPERPARAMETERS__ETA", "0.22")
    spec = load_spec(config, {"hyperparameters.max_depth": 5})
    hp = spec.hyperparameters
    assert hp.max_depth == 5  # argument beats env and file
    assert hp.eta == 0.22  # env beats file
    assert hp.gamma == 2.5  # file beats default
    assert hp.subsample == 0.8  # default


def test_config_file_found_by_env_and_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pipeline.toml").write_text('model_name = "fromcwd"\n')
    assert load_spec().model_name == "fromcwd"
    other = tmp_path / "other.toml"
    other.write_text('model_name = "fromenv"\n')
    monkeypatch.setenv("SAFEDEPLOY_CONFIG", str(other))
    assert load_spec().model_name == "fromenv"


def test_gate_list_from_env_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEDEPLOY_GATE__CONDITIONS", '[{"metric": "test:f1", "op": ">=", "threshold": 0.5}]')
    assert [str(c) for c in load_spec().gate.conditions] == ["test:f1 >= 0.5"]


@pytest.mark.parametrize(
    "name", ["CustomerChurn", "customer_churn", "-churn", "churn-", "a" * 16, ""], ids=lambda n: repr(n)
)
def test_invalid_model_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="model_name"):
        load_spec(overrides={"model_name": name})


@pytest.mark.parametrize("name", ["customerchurn", "churn-v2", "a--b", "x1", "a" * 15])
def test_valid_model_names(name: str) -> None:
    assert load_spec(overrides={"model_name": name}).model_name == name


def test_unknown_key_in_file_names_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[hyperparameters]\nmax_dept = 4\n")
    with pytest.raises(ConfigError) as info:
        load_spec(config)
    assert "bad.toml" in str(info.value) and "hyperparameters.max_dept" in str(info.value)


def test_malformed_toml_and_missing_file(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("model_name = \n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_spec(config)
    with pytest.raises(ConfigError, match="config file not found"):
        load_spec(tmp_path / "absent.toml")


def test_regression_objective_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"hyperparameters\.objective"):
        load_spec(overrides={"hyperparameters.objective": "reg:linear"})


def test_assignment_parsing() -> None:
    assert parse_assignment("a.b=3") == ("a.b", 3)
    assert parse_assignment("name=churn") == ("name", "churn")
    assert parse_assignment('x=["a"]') == ("x", ["a"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignment("novalue")


def test_repository_config_file_is_valid() -> None:
    repo_config = Path(__file__).resolve().parents[1] / "pipeline.toml"
    assert load_spec(repo_config) == load_spec()
