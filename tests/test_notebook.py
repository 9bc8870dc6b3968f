"""The notebook runs headless on the real registered kernel (nbclient), and its outcomes are read from the state.

The kernel is ``safedeploy``, registered inside ``.venv`` by ``make venv`` / ``make test``: a missing kernel fails
naming that command, never falls back to another Python.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from nbclient import NotebookClient

from safedeploy import constants as C
from safedeploy.ledger import EVENT_SHIFTED, DeploymentLedger
from safedeploy.local import daemon
from safedeploy.pipeline import Pipeline
from safedeploy.spec import load_spec
from tests.conftest import REPO_ROOT, churn_rows, write_table

NOTEBOOK = REPO_ROOT / "notebooks" / "pipeline.ipynb"
KERNEL = "safedeploy"
COMMENT = "reviewed by the notebook test"
CELL_TIMEOUT_S = 120


def _code_cells(notebook: Any) -> list[Any]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_the_notebook_is_stored_without_outputs_on_the_project_kernel() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    cells = _code_cells(notebook)
    assert cells
    assert [(cell.execution_count, cell.outputs) for cell in cells] == [(None, [])] * len(cells)
    assert notebook.metadata.kernelspec.name == KERNEL
    assert notebook.metadata.kernelspec.display_name == "safedeploy (.venv)"


def _kernel_spec() -> Any:
    try:
        return KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        pytest.fail(
            f"the Jupyter kernel {KERNEL!r} is not registered for this environment: run `make venv` "
            "(it registers .venv's kernel as 'safedeploy (.venv)')"
        )


def test_the_registered_kernel_is_this_environments_python() -> None:
    spec = _kernel_spec()  # the notebook runs on the packages under test, not some other Python's
    assert Path(spec.argv[0]).absolute() == Path(sys.executable).absolute(), spec.argv
    assert spec.display_name == "safedeploy (.venv)"


@pytest.fixture
def executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Path]]:
    """The notebook executed headless on its kernel, against a state directory under tmp_path."""
    _kernel_spec()
    state = tmp_path / "state"
    data = write_table(tmp_path / "churn.csv", churn_rows(1500, seed=5))
    monkeypatch.setenv("DATA", str(data))
    monkeypatch.setenv("NOTEBOOK_DECISION", "approve")
    monkeypatch.setenv("NOTEBOOK_COMMENT", COMMENT)
    monkeypatch.setenv(f"{C.ENV_PREFIX}STATE_DIR", str(state))
    monkeypatch.setenv(f"{C.ENV_PREFIX}TRAINING__SOURCE_DIR", str(REPO_ROOT / "model"))
    monkeypatch.setenv(f"{C.ENV_PREFIX}SERVING__ENABLED", "true")
    monkeypatch.setenv(f"{C.ENV_PREFIX}HYPERPARAMETERS__NUM_ROUND", "150")
    monkeypatch.setenv(f"{C.ENV_PREFIX}PRODUCTION__TIME_SCALE", "120")  # a 5-minute canary step: 2.5 s
    # Green's p99 is judged against blue's plus a slack; on a machine shared with other test workers a few ms of
    # scheduling noise can roll the canary back, which is not what this test is about (tests/test_blue_green.py is).
    monkeypatch.setenv(f"{C.ENV_PREFIX}ALARMS__DEPLOYMENT__LATENCY_SLACK_MS", "250")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(REPO_ROOT / "notebooks")}},
    )
    try:
        client.execute()
        yield notebook, state
    finally:
        daemon.stop(state)


def _text(cell: Any) -> str:
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output and "text/plain" in output.data:
            parts.append(output.data["text/plain"])
    return "".join(parts)


@pytest.mark.slow
def test_the_notebook_runs_the_workshop_flow_on_its_kernel(
    executed: tuple[Any, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook, state = executed
    cells = _code_cells(notebook)
    assert all(cell.execution_count is not None for cell in cells)
    assert not [o for cell in cells for o in cell.outputs if o.output_type == "error"]

    spec = load_spec(overrides={"state_dir": str(state)})
    pipeline = Pipeline(spec, project_root=REPO_ROOT)
    first, second = pipeline.executions()
    # Both executions ran through production; the first approval is the notebook's, with its comment.
    assert (first.status, second.status) == ("Succeeded", "Succeeded"), (first.error, second.error)
    gate = first.stage(C.STAGE_APPROVAL).approval
    assert gate is not None and (gate.status, gate.comment) == ("Approved", COMMENT)
    assert first.stage(C.STAGE_DEPLOY_PRD).outputs["strategy"] == "AllAtOnce"
    # The second version serves production after a real canary, recorded step by step in the ledger.
    prd = second.stage(C.STAGE_DEPLOY_PRD).outputs
    assert prd["strategy"] == spec.production.strategy == "Canary10Percent5Minutes" and prd["blue"] is not None
    one, two = pipeline.model_packages()
    assert "prd" in two.serves_in and "prd" not in one.serves_in
    assert two.ApprovalHistory[-1].reason.startswith("second version")
    ledger = DeploymentLedger(state / "deployments", spec.pipeline_name)
    deployment = ledger.deployments()[-1]
    assert deployment["outcome"] == "Succeeded" and deployment["green"]["version"] == 2
    shifts = [e["weights"] for e in ledger.events(deployment["deployment_id"]) if e["event"] == EVENT_SHIFTED]
    assert len(shifts) == 2 and sorted(shifts[0].values()) == [0.1, 0.9] and list(shifts[1].values()) == [1.0]
    # The traffic cell saw answers from both versions while production shifted.
    traffic = _text(cells[next(i for i, c in enumerate(cells) if "send_during(" in c.source)])
    assert "v1:" in traffic and "v2:" in traffic
    # One monitoring run on the drifted window, read back by the notebook, with the drift found.
    (execution,) = [e for e in pipeline.monitor().executions() if e.Trigger == "notebook"]
    assert execution.Trigger == "notebook" and execution.ModelPackageVersion == 2
    assert execution.MonitoringExecutionStatus == "CompletedWithViolations"
    assert "CustServ Calls" in {v["feature_name"] for v in execution.Violations}
    monitoring = _text(cells[next(i for i, c in enumerate(cells) if "monitor.run(" in c.source)])
    assert "CustServ Calls" in monitoring
    # The charts carry data: the clients' view of the shift, then the dashboard's timeline, metrics, ROC, the
    # canary's traffic and drift, each with traces (a figure with nothing to draw has none, only a note).
    figures = [o for cell in cells for o in cell.outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == 6
    assert all(figure.data["application/vnd.plotly.v1+json"]["data"] for figure in figures)
    titles = [str(figure.data["application/vnd.plotly.v1+json"]["layout"]["title"]) for figure in figures]
    assert "Which version answered" in titles[0] and "Canary10Percent5Minutes, Succeeded" in titles[4], titles
    # The source notebook stays without outputs.
    assert all(not cell.outputs for cell in _code_cells(nbformat.read(NOTEBOOK, as_version=4)))
    assert json.loads(NOTEBOOK.read_text())["metadata"]["kernelspec"]["name"] == KERNEL


def test_run_notebook_saves_the_outputs_and_a_failing_cell_with_its_error(tmp_path: Path) -> None:
    from scripts.run_notebook import main

    _kernel_spec()
    source = tmp_path / "in.ipynb"
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"), nbformat.v4.new_code_cell("1 / 0")]
    )
    nbformat.write(notebook, source)
    assert main([str(source), str(tmp_path / "out" / "ran.ipynb")]) == 1  # the second cell fails
    ran = nbformat.read(tmp_path / "out" / "ran.ipynb", as_version=4)
    assert ran.cells[0].outputs[0].text.strip() == sys.executable  # on this environment's kernel
    assert ran.cells[1].outputs[-1].ename == "ZeroDivisionError"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('ok')")]), source)
    assert main([str(source), str(tmp_path / "out" / "ran.ipynb")]) == 0
    assert nbformat.read(tmp_path / "out" / "ran.ipynb", as_version=4).cells[0].outputs[0].text == "ok\n"
