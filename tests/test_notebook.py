"""The notebook's code cells run top to bottom against the real pipeline (no Jupyter needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safedeploy import constants as C
from safedeploy.local import daemon
from safedeploy.pipeline import Pipeline
from tests.conftest import REPO_ROOT


@pytest.mark.slow
@pytest.mark.parametrize("serving", [False, True], ids=["registry-only", "approval-gate"])
def test_notebook_runs(tmp_path: Path, churn_csv: Path, monkeypatch: pytest.MonkeyPatch, serving: bool) -> None:
    monkeypatch.setenv("DATA", str(churn_csv))
    monkeypatch.setenv("SAFEDEPLOY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SAFEDEPLOY_TRAINING__SOURCE_DIR", str(REPO_ROOT / "model"))
    monkeypatch.setenv("SAFEDEPLOY_SERVING__ENABLED", str(serving).lower())
    notebook = json.loads((REPO_ROOT / "notebooks" / "pipeline.ipynb").read_text())
    namespace: dict[str, object] = {}
    try:
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                exec(compile("".join(cell["source"]), "pipeline.ipynb", "exec"), namespace)  # noqa: S102
    finally:
        daemon.stop(tmp_path / "state")
    pipeline = namespace["pipeline"]
    assert isinstance(pipeline, Pipeline)
    execution = pipeline.latest_execution()
    assert execution is not None and execution.status == "Succeeded"
    assert namespace["approved"].ModelApprovalStatus == "Approved"  # type: ignore[attr-defined]
    if serving:  # the gate paused the run; the notebook's approval resumed that same execution
        gate = execution.stage(C.STAGE_APPROVAL)
        assert gate.approval is not None
        assert gate.approval.status == "Approved" and gate.approval.comment == "metrics reviewed in the notebook"
