"""Policy gates over infrastructure code: cfn-lint on CloudFormation templates, checkov on templates and Terraform.

Both tools run as subprocesses with JSON output, parsed into small reports, so ``make lint`` and the tests share
one reading of them. checkov lives in its own virtualenv (it pins ``boto3==1.35.49``); its path is passed in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKOV = REPO_ROOT / ".tools" / "checkov" / "bin" / "checkov"
_NO_COMMENT = "No comment provided"
"""What checkov records for an inline skip that gives no reason."""


class PolicyToolMissingError(RuntimeError):
    """A policy tool is not installed where expected."""


@dataclass(frozen=True)
class Finding:
    """One failed (or skipped) check on one resource."""

    check_id: str
    resource: str
    file: str
    detail: str = ""

    def __str__(self) -> str:
        extra = f": {self.detail}" if self.detail else ""
        return f"{self.check_id} {self.resource} ({self.file}){extra}"


@dataclass(frozen=True)
class CheckovReport:
    """checkov's verdict on one target."""

    passed: int
    failed: tuple[Finding, ...] = ()
    skipped: tuple[Finding, ...] = ()
    parsing_errors: tuple[str, ...] = ()
    resources: int = 0

    @property
    def unjustified_skips(self) -> tuple[Finding, ...]:
        """Skips without a written reason (every skip must say why)."""
        return tuple(s for s in self.skipped if s.detail.strip() in ("", _NO_COMMENT))

    @property
    def ok(self) -> bool:
        """No failed check, no parse error, every skip justified, and something was actually scanned."""
        return not self.failed and not self.parsing_errors and not self.unjustified_skips and self.passed > 0


def _findings(checks: list[dict[str, Any]], detail_key: str) -> tuple[Finding, ...]:
    out = []
    for check in checks:
        detail = ""
        if detail_key == "suppress_comment":
            detail = str(check.get("check_result", {}).get("suppress_comment") or "")
        else:
            detail = str(check.get("check_name") or "")
        out.append(Finding(check["check_id"], check.get("resource", "?"), check.get("file_path", "?"), detail))
    return tuple(out)


def parse_checkov(output: str) -> CheckovReport:
    """Read ``checkov -o json`` output (one framework's object, or a list of them)."""
    document = json.loads(output)
    return report_of(document if isinstance(document, list) else [document])


def report_of(reports: Sequence[Mapping[str, Any]]) -> CheckovReport:
    """One verdict over checkov's per-framework reports."""
    passed, resources = 0, 0
    failed: list[Finding] = []
    skipped: list[Finding] = []
    errors: list[str] = []
    for report in reports:
        if "results" not in report:  # "no resources found" summary
            continue
        results = report["results"]
        passed += len(results.get("passed_checks", []))
        failed.extend(_findings(results.get("failed_checks", []), "check_name"))
        skipped.extend(_findings(results.get("skipped_checks", []), "suppress_comment"))
        errors.extend(str(e) for e in results.get("parsing_errors", []))
        resources += int(report.get("summary", {}).get("resource_count", 0))
    return CheckovReport(passed, tuple(failed), tuple(skipped), tuple(errors), resources)


def checkov_executable(checkov: Path | None = None) -> Path:
    """The checkov executable to run (default: the tool virtualenv ``make test`` and ``make lint`` install).

    Raises:
        PolicyToolMissingError: it is not installed.
    """
    path = checkov or DEFAULT_CHECKOV
    if not path.is_file():
        raise PolicyToolMissingError(
            f"checkov is not installed at {path}: `make test` or `make lint` installs it "
            "(pinned in tools/checkov/requirements.txt)"
        )
    return path


def checkov_reports(target: Path, framework: str, checkov: Path | None = None) -> list[dict[str, Any]]:
    """Run checkov on a file or directory with one framework; return its raw JSON reports (one per framework).

    Offline: no platform, no guideline download. This is the project's one way of running checkov: the
    CloudFormation gate parses the reports with :func:`parse_checkov`, and ``cdktf_app.scan`` applies the
    synthesized roots' inline suppressions to them.

    Raises:
        PolicyToolMissingError: checkov is not installed.
        RuntimeError: checkov crashed or printed no JSON report.
    """
    executable = checkov_executable(checkov)
    flag = "-d" if target.is_dir() else "-f"
    argv = [str(executable), flag, str(target), "--framework", framework, "-o", "json", "--compact"]
    argv += ["--skip-download"]
    env = {**os.environ, "LOG_LEVEL": "ERROR"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, env=env)
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise RuntimeError(f"checkov failed on {target} (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    try:
        document = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"checkov printed no JSON report for {target}: {exc}\n{done.stdout[-2000:]}") from None
    reports = document if isinstance(document, list) else [document]
    if not all(isinstance(report, dict) for report in reports):
        raise RuntimeError(f"unexpected checkov report for {target}: {str(document)[:500]}")
    return reports


def run_checkov(target: Path, framework: str, checkov: Path | None = None) -> CheckovReport:
    """Run checkov on a file or directory with one framework (``cloudformation``, ``terraform_json``, ...)."""
    return report_of(checkov_reports(target, framework, checkov))


@dataclass(frozen=True)
class CfnLintReport:
    """cfn-lint's matches for a set of templates, by level."""

    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    informational: tuple[str, ...] = field(default_factory=tuple)


def run_cfn_lint(templates: Sequence[Path]) -> CfnLintReport:
    """Lint templates with cfn-lint (the project venv's); errors fail the gate, warnings are reported."""
    if not templates:
        raise ValueError("no templates to lint")
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    if not cfn_lint.is_file():
        raise PolicyToolMissingError(f"cfn-lint is not installed at {cfn_lint}: run `make venv`")
    done = subprocess.run(
        [str(cfn_lint), "--format", "json", "--", *map(str, templates)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode & 1 or (done.returncode and not done.stdout.strip()):
        raise RuntimeError(f"cfn-lint could not run (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    by_level: dict[str, list[str]] = {"Error": [], "Warning": [], "Informational": []}
    for match in json.loads(done.stdout or "[]"):
        where = f"{match['Filename']}:{match['Location']['Start']['LineNumber']}"
        by_level.setdefault(match["Level"], []).append(f"{match['Rule']['Id']} {where}: {match['Message']}")
    return CfnLintReport(tuple(by_level["Error"]), tuple(by_level["Warning"]), tuple(by_level["Informational"]))
