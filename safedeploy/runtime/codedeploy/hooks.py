"""CodeDeploy's lifecycle-hook status API, locally: what a deployment's hooks report, kept for its controller.

A hook Lambda reports its verdict with ``PutLifecycleEventHookExecutionStatus`` (boto3's ``codedeploy`` client,
``endpoint_url`` at the runtime). CodeDeploy accepts one report per hook execution: a second one is refused
with ``LifecycleEventAlreadyCompletedException``, as the real service does. The deployment controller reads the
reports back (:meth:`HookStatuses.get`) to decide whether to go on or roll back.
"""

from __future__ import annotations

import threading
from typing import Any

from safedeploy.http.errors import ApiError

TARGET_PREFIX = "CodeDeploy_20141006."
STATUSES = ("Pending", "InProgress", "Succeeded", "Failed", "Skipped", "Unknown")


class HookStatuses:
    """Reported hook statuses by (deployment id, lifecycle event hook execution id)."""

    def __init__(self) -> None:
        self._reports: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def put(self, document: dict[str, Any]) -> dict[str, Any]:
        """``PutLifecycleEventHookExecutionStatus``."""
        deployment = document.get("deploymentId")
        execution = document.get("lifecycleEventHookExecutionId")
        status = document.get("status")
        if not isinstance(deployment, str) or not deployment:
            raise ApiError(400, "DeploymentIdRequiredException", "deploymentId is required")
        if not isinstance(execution, str) or not execution:
            raise ApiError(
                400, "LifecycleEventHookExecutionIdRequiredException", "lifecycleEventHookExecutionId is required"
            )
        if status not in STATUSES:
            raise ApiError(
                400, "InvalidLifecycleEventHookExecutionStatusException", f"status {status!r} is not one of {STATUSES}"
            )
        with self._lock:
            previous = self._reports.get((deployment, execution))
            if previous is not None and previous["status"] in ("Succeeded", "Failed"):
                raise ApiError(
                    400,
                    "LifecycleEventAlreadyCompletedException",
                    f"lifecycle event {execution} of {deployment} already completed with {previous['status']}",
                )
            count = 1 if previous is None else previous["reports"] + 1
            self._reports[(deployment, execution)] = {"status": status, "reports": count}
        return {"lifecycleEventHookExecutionId": execution}

    def get(self, deployment: str, execution: str) -> dict[str, Any] | None:
        """The report of one hook execution (status and how many reports were made), if any."""
        with self._lock:
            report = self._reports.get((deployment, execution))
            return dict(report) if report else None
