"""Inline checkov suppressions on synthesized Terraform JSON, each with its justification.

Terraform ignores a ``"//"`` property in a block (cdktf writes its own metadata there), so a suppression lives in
the resource it is about::

    "aws_s3_bucket": {"buckets_logs_bucket": {"//": {"checkov": {"skip": [{"id": "CKV_AWS_18", "comment": "..."}]}}}}

This is the shape checkov reads from CloudFormation ``Metadata``; checkov's ``terraform_json`` runner does not read
suppressions at all, so :mod:`cdktf_app.scan` applies them to its results.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cdktf import TerraformElement

COMMENT_KEY = "//"


def skip_checks(element: TerraformElement, reasons: Mapping[str, str]) -> None:
    """Suppress checkov checks on ``element``, each check id mapped to why it does not apply.

    Call it once per element: a second call replaces the first one's list.

    Raises:
        ValueError: no checks, or a reason is empty.
    """
    if not reasons:
        raise ValueError("no checks to skip")
    for check, reason in reasons.items():
        if not reason.strip():
            raise ValueError(f"skipping {check} needs a justification")
    from cdktf import TerraformDataSource, TerraformStack

    comment = {"checkov": {"skip": [{"id": check, "comment": reasons[check].strip()} for check in sorted(reasons)]}}
    if isinstance(element, TerraformDataSource):
        # A data source's own "//" is replaced by cdktf's metadata after its overrides are merged; the stack's
        # overrides are merged last.
        address = f"data.{element.terraform_resource_type}.{element.friendly_unique_id}.{COMMENT_KEY}"
        TerraformStack.of(element).add_override(address, comment)
    else:
        element.add_override(COMMENT_KEY, comment)
