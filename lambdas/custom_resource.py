"""CloudFormation's custom-resource contract, shared by the smoke test and the canary's warm-up.

CloudFormation invokes the function with a request (``RequestType`` Create/Update/Delete, a pre-signed
``ResponseURL``...) and waits for exactly one answer PUT to that URL: ``SUCCESS`` or ``FAILED`` with a reason (a
FAILED create or update fails the stack, which rolls back). :func:`answer_once` runs the work in ``try`` and answers
in ``finally``, whatever happens.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

REQUEST_TYPES = ("Create", "Update", "Delete")
Put = Callable[[str, bytes], None]
"""``put(url, body)``: send CloudFormation its answer."""


class ResourceError(Exception):
    """The resource's work failed for a reason its message states (shown as the stack event's reason)."""


@dataclass(frozen=True)
class CustomResourceEvent:
    """CloudFormation's custom-resource request."""

    request_type: Literal["Create", "Update", "Delete"]
    response_url: str
    stack_id: str
    request_id: str
    logical_resource_id: str
    physical_resource_id: str | None
    properties: Mapping[str, Any]

    @staticmethod
    def matches(event: Mapping[str, Any]) -> bool:
        """Whether ``event`` looks like a custom-resource request at all."""
        return "RequestType" in event and "ResponseURL" in event

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> CustomResourceEvent:
        """Read the event; raise ``ValueError`` if it cannot be answered."""
        request_type = event.get("RequestType")
        missing = [k for k in ("ResponseURL", "StackId", "RequestId", "LogicalResourceId") if not event.get(k)]
        if request_type not in REQUEST_TYPES or missing:
            raise ValueError(f"not a CloudFormation custom-resource request (RequestType {request_type!r}, {missing})")
        return cls(
            request_type=request_type,
            response_url=str(event["ResponseURL"]),
            stack_id=str(event["StackId"]),
            request_id=str(event["RequestId"]),
            logical_resource_id=str(event["LogicalResourceId"]),
            physical_resource_id=event.get("PhysicalResourceId"),
            properties=dict(event.get("ResourceProperties") or {}),
        )


def http_put(url: str, body: bytes) -> None:
    """PUT the answer to CloudFormation's pre-signed S3 URL."""
    request = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": ""})  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - CloudFormation's https URL
        response.read()


def answer_once(event: Mapping[str, Any], work: Callable[[CustomResourceEvent], str], put: Put) -> dict[str, str]:
    """Run ``work`` for Create/Update (Delete: nothing to undo) and answer CloudFormation exactly once.

    ``work`` returns a summary (the resource's ``Summary`` attribute) or raises (FAILED, with the reason).
    """
    request = CustomResourceEvent.parse(event)
    status, reason, summary = "FAILED", "the resource's work did not finish", ""
    try:
        if request.request_type == "Delete":
            summary = "nothing to delete"
        else:
            if not request.response_url.startswith("https://"):
                raise ValueError("the ResponseURL is not https")
            summary = work(request)
        status, reason = "SUCCESS", summary
    except Exception as exc:  # any failure is the stack's failure, with its reason
        reason = str(exc) if isinstance(exc, ResourceError) else f"{type(exc).__name__}: {exc}"
    finally:
        answer = {
            "Status": status,
            "Reason": reason[:3000],
            "PhysicalResourceId": request.physical_resource_id or f"{request.logical_resource_id}-{request.request_id}",
            "StackId": request.stack_id,
            "RequestId": request.request_id,
            "LogicalResourceId": request.logical_resource_id,
            "Data": {"Summary": summary[:1000]},
        }
        put(request.response_url, json.dumps(answer).encode("utf-8"))
    return {"Status": status, "Reason": reason}
