"""`make lint`'s policy gates: cfn-lint (0 errors) and checkov (0 failed checks, every skip justified).

Renders the four per-model templates with model/run.py offline (a data-source contract shaped like the Data
stage's, no AWS calls), checks that the committed synthesized Terraform is current (`cdktf_app synth --check`),
then runs cfn-lint on the templates and checkov on the templates and (`cdktf_app scan`) on every terraform/<env>/.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from safedeploy.cloudformation.contract import write_example_contract  # noqa: E402
from safedeploy.infra.policy import CheckovReport, run_cfn_lint, run_checkov  # noqa: E402
from safedeploy.spec import load_spec  # noqa: E402

OUT = ROOT / "build" / "policy"
EXECUTION_ID = "5b0c8f7e-2d41-4c3a-9e6f-7a1d2c3b4e5f"
ACCOUNT_ID = "123456789012"
RENDERED_AT = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
"""A stand-in account (the local default 000000000000 is no AWS account, and checkov reads its zeros as a secret)."""


def _contract(directory: Path) -> Path:
    spec = load_spec(overrides={"account_id": ACCOUNT_ID})
    return write_example_contract(directory, spec, dataset_id="0" * 16, data_sha256="0" * 64)


def _render_templates(out: Path) -> list[Path]:
    spec = load_spec(overrides={"account_id": ACCOUNT_ID})
    kms = f"arn:aws:kms:{spec.region}:{spec.account_id}:key/00000000-0000-4000-8000-000000000000"
    argv = [sys.executable, "model/run.py", "--data-source", str(_contract(OUT / "contract"))]
    argv += ["--execution-id", EXECUTION_ID, "--kms-key-arn", kms, "--no-upload", "--out", str(out)]
    # In-process with a fixed clock, so the rendered templates (job names, timestamps) are the same every run.
    loader = importlib.util.spec_from_file_location("run_py", ROOT / "model" / "run.py")
    if loader is None or loader.loader is None:
        raise SystemExit("cannot load model/run.py")
    run_py = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(run_py)
    os.environ["SAFEDEPLOY_ACCOUNT_ID"] = ACCOUNT_ID
    with contextlib.redirect_stdout(io.StringIO()):
        status = run_py.main(argv[2:], environ={}, now=lambda: RENDERED_AT)
    if status != 0:
        raise SystemExit(f"model/run.py failed to render the templates (exit {status})")
    return sorted(out.glob("*.template.json"))


def _report(name: str, report: CheckovReport) -> bool:
    print(f"checkov {name}: {report.passed} passed, {len(report.failed)} failed, {len(report.skipped)} skipped")
    for finding in (*report.failed, *report.unjustified_skips):
        print(f"  FAILED {finding}" if finding in report.failed else f"  UNJUSTIFIED SKIP {finding}")
    for error in report.parsing_errors:
        print(f"  PARSE ERROR {error}")
    return report.ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkov", type=Path, default=ROOT / ".tools" / "checkov" / "bin" / "checkov")
    args = parser.parse_args(argv)
    ok = True

    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    stale = subprocess.run([sys.executable, "-m", "cdktf_app", "synth", "--check"], cwd=ROOT, env=env, check=False)
    if stale.returncode != 0:
        print("synthesized Terraform is stale: run `make synth` and commit terraform/")
        ok = False

    # Rendered outside the checkout: checkov run on a directory inside the git work tree intermittently reported
    # CKV_AWS_45 on these same files. A copy is kept in build/policy/templates for review.
    templates_dir = Path(tempfile.mkdtemp(prefix="safedeploy-policy-"))
    templates = _render_templates(templates_dir)
    shutil.rmtree(OUT / "templates", ignore_errors=True)
    shutil.copytree(templates_dir, OUT / "templates")
    lint = run_cfn_lint(templates)
    print(f"cfn-lint: {len(templates)} templates, {len(lint.errors)} errors, {len(lint.warnings)} warnings")
    for line in (*lint.errors, *lint.warnings):
        print(f"  {line}")
    ok &= not lint.errors

    ok &= _report("templates", run_checkov(templates_dir, "cloudformation", args.checkov))
    shutil.rmtree(templates_dir, ignore_errors=True)
    # checkov's terraform_json framework ignores inline skips; cdktf_app's scan applies the justified skips each
    # resource carries (and fails on a skip that matches nothing).
    scanned = subprocess.run([sys.executable, "-m", "cdktf_app", "scan", "--out", "terraform"], cwd=ROOT, env=env)
    ok &= scanned.returncode == 0
    print("policy gates: " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
