"""IAM policy statements as typed values, rendered through ``aws_iam_policy_document``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from cdktf_cdktf_provider_aws.data_aws_iam_policy_document import (
    DataAwsIamPolicyDocument,
    DataAwsIamPolicyDocumentStatement,
    DataAwsIamPolicyDocumentStatementCondition,
    DataAwsIamPolicyDocumentStatementPrincipals,
)
from constructs import Construct

from cdktf_app.checks import skip_checks


@dataclass(frozen=True, kw_only=True)
class Principal:
    """Who a resource policy statement applies to (``Service``, ``AWS`` or ``*``)."""

    type: Literal["AWS", "Service", "*"]
    identifiers: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Condition:
    """One condition of a statement: ``test`` (``StringEquals``, ``Bool``, ...) on ``variable``."""

    test: str
    variable: str
    values: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Statement:
    """One statement of a policy document (a trust policy's statements have principals and no resources)."""

    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    effect: Literal["Allow", "Deny"] = "Allow"
    principals: tuple[Principal, ...] = ()
    conditions: tuple[Condition, ...] = ()

    def __post_init__(self) -> None:
        if not self.sid.isalnum():
            raise ValueError(f"statement id {self.sid!r} must be alphanumeric")
        if not self.actions:
            raise ValueError(f"statement {self.sid} needs actions")
        if not self.resources and not self.principals:
            raise ValueError(f"statement {self.sid} of an identity policy needs resources")
        if self.effect == "Allow" and "*" in self.actions:
            raise ValueError(f"statement {self.sid} allows every action")


def service(*names: str) -> Principal:
    """An AWS service principal (``codepipeline.amazonaws.com``, ...)."""
    return Principal(type="Service", identifiers=tuple(names))


def condition(test: str, variable: str, *values: str) -> Condition:
    """A condition on ``variable``."""
    return Condition(test=test, variable=variable, values=values)


def policy_document(
    scope: Construct,
    id_: str,
    statements: Sequence[Statement],
    *,
    skips: Mapping[str, str] | None = None,
) -> DataAwsIamPolicyDocument:
    """An ``aws_iam_policy_document`` of ``statements`` (with justified checkov suppressions, if any).

    Raises:
        ValueError: two statements share an id.
    """
    sids = [s.sid for s in statements]
    if len(set(sids)) != len(sids):
        raise ValueError(f"duplicate statement ids in {id_}: {sids}")
    document = DataAwsIamPolicyDocument(
        scope,
        id_,
        statement=[
            DataAwsIamPolicyDocumentStatement(
                sid=s.sid,
                effect=s.effect,
                actions=list(s.actions),
                resources=list(s.resources) or None,
                principals=[
                    DataAwsIamPolicyDocumentStatementPrincipals(type=p.type, identifiers=list(p.identifiers))
                    for p in s.principals
                ]
                or None,
                condition=[
                    DataAwsIamPolicyDocumentStatementCondition(test=c.test, variable=c.variable, values=list(c.values))
                    for c in s.conditions
                ]
                or None,
            )
            for s in statements
        ],
    )
    if skips:
        skip_checks(document, skips)
    return document
