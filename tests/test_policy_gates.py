"""The policy-gate tooling itself: cfn-lint and checkov results are read correctly, and bad input fails the gate.

The gates on the project's own templates and Terraform run in tests/test_templates.py and tests/test_cdktf_app.py;
here small templates prove each gate can fail and that a skip without a reason does not count as justified.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safedeploy.infra.policy import (
    DEFAULT_CHECKOV,
    PolicyToolMissingError,
    parse_checkov,
    run_cfn_lint,
    run_checkov,
)

_BUCKET = {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "policy-gate-test"}}


def _template(tmp_path: Path, resources: dict[str, object], name: str = "t.template.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"AWSTemplateFormatVersion": "2010-09-09", "Resources": resources}))
    return path


def test_cfn_lint_reports_errors_with_rule_and_location(tmp_path: Path) -> None:
    bad = _template(tmp_path, {"B": {"Type": "AWS::S3::Bucket", "Properties": {"Versioning": "yes"}}})
    report = run_cfn_lint([bad])
    assert report.errors and report.errors[0].startswith("E3002") and "t.template.json:1" in report.errors[0]
    good = _template(tmp_path, {"B": _BUCKET}, "good.template.json")
    assert run_cfn_lint([good]).errors == ()


def test_cfn_lint_needs_templates() -> None:
    with pytest.raises(ValueError, match="no templates"):
        run_cfn_lint([])


@pytest.mark.slow
def test_checkov_fails_an_unprotected_bucket_and_reads_inline_skips(tmp_path: Path) -> None:
    report = run_checkov(_template(tmp_path, {"B": _BUCKET}), "cloudformation")
    assert not report.ok
    assert {"CKV_AWS_53", "CKV_AWS_54"} <= {f.check_id for f in report.failed}  # public access block missing
    skipping = dict(_BUCKET)
    skipping["Metadata"] = {
        "checkov": {
            "skip": [
                {"id": "CKV_AWS_53", "comment": "test: the reason is written here"},
                {"id": "CKV_AWS_54"},  # no reason: not justified
            ]
        }
    }
    report = run_checkov(_template(tmp_path, {"B": skipping}, "s.template.json"), "cloudformation")
    skipped = {s.check_id: s.detail for s in report.skipped}
    assert skipped["CKV_AWS_53"] == "test: the reason is written here"
    assert [s.check_id for s in report.unjustified_skips] == ["CKV_AWS_54"]
    assert "CKV_AWS_53" not in {f.check_id for f in report.failed}


def test_checkov_output_with_several_frameworks_and_no_resources() -> None:
    one = {
        "check_type": "cloudformation",
        "results": {
            "passed_checks": [{"check_id": "CKV_AWS_1", "resource": "r", "file_path": "f"}],
            "failed_checks": [],
            "skipped_checks": [
                {"check_id": "CKV_AWS_2", "resource": "r", "file_path": "f", "check_result": {"suppress_comment": "x"}}
            ],
            "parsing_errors": [],
        },
        "summary": {"resource_count": 1},
    }
    empty = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0, "resource_count": 0}
    report = parse_checkov(json.dumps([one, empty]))
    assert report.ok and report.passed == 1 and report.resources == 1
    assert not parse_checkov(json.dumps(empty)).ok  # nothing scanned is not a pass


def test_missing_checkov_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyToolMissingError, match="make test"):
        run_checkov(tmp_path, "cloudformation", checkov=tmp_path / "nope")
    assert DEFAULT_CHECKOV.name == "checkov"
