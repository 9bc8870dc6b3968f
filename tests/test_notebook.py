"""The notebook's code cells run top to bottom against the real pipeline (no Jupyter needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.slow
def test_notebook_runs(tmp_path: Path, churn_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA", str(churn_csv))
    monkeypatch.setenv("SAFEDEPLOY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SAFEDEPLOY_TRAINING__SOURCE_DIR", str(REPO_ROOT / "model"))
    notebook = json.loads((REPO_ROOT / "notebooks" / "pipeline.ipynb").read_text())
    namespace: dict[str, object] = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "pipeline.ipynb", "exec"), namespace)  # noqa: S102
    execution = namespace["execution"]
    assert execution.status == "Succeeded"  # type: ignore[attr-defined]
    assert namespace["approved"].ModelApprovalStatus == "Approved"  # type: ignore[attr-defined]
