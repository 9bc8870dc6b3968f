"""What a ``terraform apply`` of the base infrastructure cannot create in moto, and the rest it can.

moto (5.2) implements most of what ``terraform/<env>`` creates. The resource types below it does not (or answers in
a shape the AWS provider cannot read); each is named with what moto does. An apply against moto targets every other
resource (``-target``), leaving out these and everything that references them, and the left-out resources' requests
are checked against botocore's service models instead (``tests/test_terraform_apply.py``, with ``Stubber``). A real
account creates all of them; nothing here changes what is applied there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MOTO_GAPS: Mapping[str, str] = {
    "aws_codecommit_repository": "moto answers CreateRepository with LastModifiedDate as a string; the provider "
    "expects a JSON number and fails to read the response",
    "aws_codecommit_approval_rule_template": "CreateApprovalRuleTemplate is not implemented in moto (HTTP 500)",
    "aws_codebuild_project": "moto refuses a CODEPIPELINE source without a location (InvalidInputException: "
    "Project source location is required); AWS takes none, CodePipeline supplies the source",
    "aws_sagemaker_model_package_group": "DeleteModelPackageGroup is not implemented in moto (HTTP 500), so "
    "`terraform destroy` cannot remove it",
    "aws_s3_bucket_logging": "moto's PutBucketLogging reads the target bucket's policy and crashes on a statement "
    "whose Principal is the string '*' (our DenyInsecureTransport statement): HTTP 500",
    "aws_sfn_state_machine": "moto does not implement ListStateMachineVersions, which the provider calls after "
    "CreateStateMachine (HTTP 500)",
}
"""Resource type -> why moto cannot create (or destroy) it."""


def _references(expressions: Any) -> Iterable[str]:
    if isinstance(expressions, dict):
        for key, value in expressions.items():
            if key == "references" and isinstance(value, list):
                yield from value
            else:
                yield from _references(value)
    elif isinstance(expressions, list):
        for item in expressions:
            yield from _references(item)


def _resource_address(reference: str) -> str | None:
    """``aws_s3_bucket.logs.arn`` -> ``aws_s3_bucket.logs``; ``var.x``, ``data.y.z``, ``local.w`` -> None."""
    if reference.startswith(("var.", "data.", "local.", "each.", "count.", "path.", "terraform.", "module.")):
        return None
    parts = reference.split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else None


def dependencies(plan: Mapping[str, Any]) -> dict[str, set[str]]:
    """Managed resource address -> the managed resources it references or depends on (``terraform show -json``)."""
    graph: dict[str, set[str]] = {}
    for resource in plan["configuration"]["root_module"].get("resources", []):
        if resource.get("mode") != "managed":
            continue
        refs = {*_references(resource.get("expressions", {})), *resource.get("depends_on", [])}
        graph[resource["address"]] = {a for a in map(_resource_address, refs) if a is not None}
    return graph


def split_targets(plan: Mapping[str, Any], gaps: Mapping[str, str] = MOTO_GAPS) -> tuple[list[str], dict[str, str]]:
    """Addresses moto can apply, and those left out with the reason (a gap, or depending on one).

    Only resources the plan creates count (a ``count = 0`` resource is in the configuration, not in the plan).

    Raises:
        ValueError: a gap names a resource type the plan does not have (a stale entry).
    """
    graph = dependencies(plan)
    types = {address.split(".")[0] for address in graph}
    stale = sorted(set(gaps) - types)
    if stale:
        raise ValueError(f"moto gaps for resource types the configuration no longer has: {stale}")
    left_out = {address: gaps[address.split(".")[0]] for address in graph if address.split(".")[0] in gaps}
    changed = True
    while changed:
        changed = False
        for address, needs in graph.items():
            if address in left_out:
                continue
            blocking = sorted(needs & set(left_out))
            if blocking:
                left_out[address] = f"references {blocking[0]}, which moto cannot create"
                changed = True
    planned = {_without_index(change["address"]) for change in plan.get("resource_changes", [])}
    if "resource_changes" not in plan:  # a bare configuration (tests): every resource is planned
        planned = set(graph)
    return [a for a in graph if a not in left_out and a in planned], {
        a: why for a, why in left_out.items() if a in planned
    }


def _without_index(address: str) -> str:
    """``aws_sns_topic_subscription.approval_email[0]`` -> ``aws_sns_topic_subscription.approval_email``."""
    return address.split("[", 1)[0]
