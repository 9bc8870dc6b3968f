"""checkov on the synthesized roots, with the inline suppressions of :mod:`cdktf_app.checks` applied.

checkov parses ``*.tf.json`` only with its ``terraform_json`` framework (the ``terraform`` framework skips them), and
that runner ignores suppressions. This module runs it (``-o json``) on each root and then applies the suppressions
written in the resources themselves (``"//": {"checkov": {"skip": [{"id", "comment"}]}}``): a failed check is
skipped only if the resource it failed on suppresses that check with a non-empty justification. A suppression
that matches no failed check is reported too (``unused``), so stale justifications do not pile up.

This module does not import cdktf: scanning needs only the committed JSON and the checkov executable, run by the
project's one checkov runner (:mod:`safedeploy.infra.policy`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdktf_app.checks import COMMENT_KEY
from safedeploy.infra.policy import PolicyToolMissingError, checkov_reports

FRAMEWORK = "terraform_json"

Address = tuple[str, str, str]
"""``(block, type, name)`` of a resource (``resource``) or data source (``data``)."""


class ScanError(RuntimeError):
    """checkov failed, or its report names something the document does not have."""


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One check on one resource.

    Attributes:
        check_id: ``CKV_AWS_18``, ...
        check_name: What the check ensures.
        address: The resource or data source it ran on.
        justification: Why it is skipped (skipped findings only).
    """

    check_id: str
    check_name: str
    address: Address
    justification: str = ""

    def __str__(self) -> str:
        block, kind, name = self.address
        where = f"{kind}.{name}" if block == "resource" else f"data.{kind}.{name}"
        return f"{self.check_id} on {where}: {self.check_name}" + (
            f" -- skipped: {self.justification}" if self.justification else ""
        )


@dataclass(frozen=True, kw_only=True)
class ScanResult:
    """checkov's verdict on one root, suppressions applied.

    Attributes:
        root: The scanned directory.
        passed: Number of passed checks.
        failed: Failed checks not suppressed.
        skipped: Failed checks suppressed inline (each with its justification).
        unused: Suppressions ``(address, check id)`` that matched no failed check.
        parsing_errors: Files checkov could not parse.
    """

    root: Path
    passed: int
    failed: tuple[Finding, ...]
    skipped: tuple[Finding, ...]
    unused: tuple[tuple[Address, str], ...]
    parsing_errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """No failed check, no unused suppression, no parsing error, and something was checked."""
        return not (self.failed or self.unused or self.parsing_errors) and self.passed > 0

    def summary(self) -> str:
        """A human-readable report."""
        lines = [
            f"{self.root}: {self.passed} passed, {len(self.failed)} failed, {len(self.skipped)} skipped (justified "
            f"inline), {len(self.unused)} unused suppressions, {len(self.parsing_errors)} parsing errors"
        ]
        lines += [f"  FAILED  {finding}" for finding in self.failed]
        lines += [f"  SKIPPED {finding}" for finding in self.skipped]
        lines += [f"  UNUSED  {check} on {'.'.join(address[1:])}" for address, check in self.unused]
        lines += [f"  PARSING ERROR {path}" for path in self.parsing_errors]
        return "\n".join(lines)


def inline_skips(document: Mapping[str, Any]) -> dict[Address, dict[str, str]]:
    """Every resource's and data source's suppressions: ``{address: {check id: justification}}``."""
    skips: dict[Address, dict[str, str]] = {}
    for block in ("resource", "data"):
        for kind, elements in document.get(block, {}).items():
            for name, body in elements.items():
                entries = body.get(COMMENT_KEY, {}).get("checkov", {}).get("skip", [])
                if entries:
                    skips[(block, kind, name)] = {
                        entry["id"]: str(entry.get("comment", "")).strip() for entry in entries
                    }
    return skips


def run_checkov(root: Path, *, checkov: Path | None = None) -> dict[str, Any]:
    """Checkov's ``terraform_json`` report on ``root`` (run by :func:`safedeploy.infra.policy.checkov_reports`).

    Raises:
        PolicyToolMissingError: checkov is not installed.
        ScanError: checkov crashed or printed no report.
    """
    try:
        reports = checkov_reports(root, FRAMEWORK, checkov)
    except RuntimeError as exc:
        if isinstance(exc, PolicyToolMissingError):
            raise
        raise ScanError(str(exc)) from None
    return next((r for r in reports if r.get("check_type", FRAMEWORK) == FRAMEWORK), {})


def locate(resource: str, document: Mapping[str, Any]) -> Address:
    """The address of checkov's resource id: ``aws_s3_bucket.x``, ``aws_iam_policy_document.x``, ``resource.x``, ...

    Raises:
        ScanError: the id names nothing in ``document``, or more than one thing.
    """
    parts = resource.split(".")
    blocks: tuple[str, ...]
    kinds: set[str] | None
    if len(parts) == 3 and parts[0] == "data":  # data.<type>.<name>
        blocks, kinds, name = ("data",), {parts[1]}, parts[2]
    elif len(parts) == 2 and parts[0] in ("resource", "data"):  # <block>.<name> (python checks)
        blocks, kinds, name = (parts[0],), None, parts[1]
    elif len(parts) == 2:  # <type>.<name> (graph checks)
        blocks, kinds, name = ("resource", "data"), {parts[0]}, parts[1]
    else:
        raise ScanError(f"unexpected checkov resource id {resource!r}")
    matches = [
        (block, kind, name)
        for block in blocks
        for kind, elements in document.get(block, {}).items()
        if (kinds is None or kind in kinds) and name in elements
    ]
    if len(matches) != 1:
        raise ScanError(f"checkov's resource {resource!r} matches {len(matches)} elements of the document")
    return matches[0]


def evaluate(root: Path, report: Mapping[str, Any], document: Mapping[str, Any]) -> ScanResult:
    """Apply ``document``'s inline suppressions to checkov's ``report`` on ``root``."""
    results = report.get("results", {})
    skips = inline_skips(document)
    used: set[tuple[Address, str]] = set()
    failed, skipped = [], []
    for check in results.get("failed_checks", []):
        address = locate(check["resource"], document)
        justification = skips.get(address, {}).get(check["check_id"], "")
        finding = Finding(
            check_id=check["check_id"],
            check_name=check.get("check_name", ""),
            address=address,
            justification=justification,
        )
        if justification:
            used.add((address, finding.check_id))
            skipped.append(finding)
        else:
            failed.append(finding)
    for check in results.get("skipped_checks", []):  # not produced by terraform_json today; kept if it ever is
        skipped.append(
            Finding(
                check_id=check["check_id"],
                check_name=check.get("check_name", ""),
                address=locate(check["resource"], document),
                justification=str(check.get("check_result", {}).get("suppress_comment", "")).strip(),
            )
        )
    unused = sorted(
        (address, check) for address, checks in skips.items() for check in checks if (address, check) not in used
    )
    summary = report.get("summary", {})
    return ScanResult(
        root=root,
        passed=int(summary.get("passed", len(results.get("passed_checks", [])))),
        failed=tuple(failed),
        skipped=tuple(skipped),
        unused=tuple(unused),
        parsing_errors=tuple(results.get("parsing_errors", [])),
    )


def scan_root(root: Path, *, checkov: Path | None = None, synth_file: str = "cdk.tf.json") -> ScanResult:
    """Run checkov on one synthesized root and apply its inline suppressions."""
    document = json.loads((root / synth_file).read_text(encoding="utf-8"))
    return evaluate(root, run_checkov(root, checkov=checkov), document)


def scan_roots(roots: Iterable[Path], *, checkov: Path | None = None) -> list[ScanResult]:
    """:func:`scan_root` on each of ``roots``.

    Raises:
        ScanError: no roots.
    """
    results = [scan_root(root, checkov=checkov) for root in roots]
    if not results:
        raise ScanError("no synthesized roots to scan: run `python -m cdktf_app synth` first")
    return results
