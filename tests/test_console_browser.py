"""The live console in headless Chromium: approve from the page and the execution resumes into production.

One pipeline run: it pauses at the approval gate (the ``Deferred`` approver, as ``make deploy`` without a terminal),
``safedeploy console`` prints the link, the page shows the execution waiting at ApproveDeployment, a comment is typed
and Approve clicked; the execution then runs DeployPrd to production, recorded as the CLI records it.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from safedeploy import cli
from safedeploy import constants as C
from safedeploy.approval import Deferred
from safedeploy.ledger import DeploymentLedger
from safedeploy.local import daemon
from safedeploy.pipeline import Pipeline
from safedeploy.registry import LocalModelRegistry
from safedeploy.runner import ExecutionStore, Status
from safedeploy.spec import load_spec
from tests.browser import chromium, page, require_chromium
from tests.conftest import REPO_ROOT, churn_rows, write_table

pytestmark = pytest.mark.slow
COMMENT = "dev smoke test and metrics reviewed in the console"


def _settings(tmp_path: Path) -> dict[str, Any]:
    return {
        "state_dir": str(tmp_path / "state"),
        "data.source": str(write_table(tmp_path / "churn.csv", churn_rows(600, seed=23))),
        "training.source_dir": str(REPO_ROOT / "model"),
        "hyperparameters.num_round": 40,
        "gate.conditions": [{"metric": "test:auc", "op": ">=", "threshold": 0.5}],
        "serving.enabled": True,
        "production.bake_seconds": 60,
        "production.time_scale": 120,
    }


def _console_link(settings: dict[str, Any]) -> str:
    """What `make console` prints, through the CLI (its last line is the link)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["console", *(f"--set={key}={json.dumps(value)}" for key, value in settings.items())])
    assert code == 0, out.getvalue()
    return out.getvalue().strip().splitlines()[-1]


def test_approving_in_the_console_resumes_the_execution_into_production(tmp_path: Path) -> None:
    require_chromium()  # before the pipeline runs: without a browser there is nothing to test
    settings = _settings(tmp_path)
    spec = load_spec(overrides=settings)
    try:
        paused = Pipeline(spec, project_root=REPO_ROOT, approver=Deferred()).run(trigger="console test")
        assert paused.awaiting_approval is not None, paused.error
        link = _console_link(settings)
        base = link.split("/console?token=")[0]
        assert base.startswith("http://127.0.0.1:")

        with chromium() as browser:
            with page(browser) as stranger:  # no token, no session: refused, saying how to get in
                refused = stranger.goto(f"{base}/console")
                assert refused is not None and refused.status == 401
                assert "make console" in stranger.content()
            with page(browser) as console:
                console.goto(link)
                assert console.url == f"{base}/console"  # the token left the address bar
                waiting = console.locator(f'tr[data-stage="{C.STAGE_APPROVAL}"][data-status="WaitingForApproval"]')
                waiting.wait_for(timeout=20_000)
                assert paused.execution_id in console.inner_text("#approval-expiry")
                console.click("#approve-button")  # without a comment: refused on the page, nothing sent
                assert "comment is required" in console.inner_text("#decision-status")
                console.fill("#approval-comment", COMMENT)
                console.click("#approve-button")
                console.locator("#execution-status", has_text="Succeeded").wait_for(timeout=240_000)
                prd = console.locator(f'tr[data-stage="{C.STAGE_DEPLOY_PRD}"]')
                assert prd.get_attribute("data-status") == "Succeeded"
                console.locator("#ledger tbody tr").first.wait_for(timeout=10_000)
                assert "Succeeded" in console.inner_text("#ledger tbody tr")
                console.locator('#variants tbody tr[data-role="primary"]').wait_for(timeout=10_000)
                assert (
                    float(console.get_attribute('#variants tbody tr[data-role="primary"]', "data-weight") or 0) == 1.0
                )
                # the charts the page drew carry the dashboard's figures
                assert console.locator("#figures .chart").count() >= 3
            # the session cookie is not readable by scripts, and the link works once only
            with page(browser) as replay:
                again = replay.goto(link)
                assert again is not None and again.status == 403

        root = spec.state_dir.resolve()
        execution = ExecutionStore(root / "executions", spec.pipeline_name).get(paused.execution_id)
        assert execution.status == Status.SUCCEEDED, execution.error
        approval = execution.stage(C.STAGE_APPROVAL).approval
        assert approval is not None and approval.status == "Approved"
        assert approval.approver == f"{getpass.getuser()} (console)" and approval.comment == COMMENT
        version = execution.stage(C.STAGE_DEPLOY_PRD).outputs["model_package_version"]
        package = LocalModelRegistry(root / "registry", spec.region, spec.account_id).describe(spec.model_name, version)
        assert package.ModelApprovalStatus == "Approved" and package.ApprovalDescription == COMMENT
        live = DeploymentLedger(root / "deployments", spec.pipeline_name).live()
        assert live is not None and live.version == version
        with pytest.raises(urllib.error.HTTPError) as unsigned:
            urllib.request.urlopen(f"{base}/console/api/state", timeout=5)
        assert unsigned.value.code == 401
    finally:
        daemon.stop(spec.state_dir)
