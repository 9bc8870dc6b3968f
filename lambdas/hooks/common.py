"""What the CodeDeploy lifecycle hooks share: the event, the clients they are given, reporting exactly once.

A hook is invoked with CodeDeploy's event (``DeploymentId``, ``LifecycleEventHookExecutionId``), runs its checks
and reports the verdict with ``PutLifecycleEventHookExecutionStatus``, exactly once, whatever happens:
:func:`report_once` runs the checks in ``try`` and reports in ``finally`` (``Failed`` on any exception). The
seed's hooks duplicated this and could exit without reporting, leaving CodeDeploy to time out.

Clients are injected (:class:`HookClients`): boto3's on AWS, the local runtime's locally, same calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from mypy_boto3_codedeploy import CodeDeployClient
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

LOG = logging.getLogger("hooks")
Handler = Callable[[dict[str, Any], Any], dict[str, str]]
Check = Callable[[Mapping[str, str], "HookClients"], str]


class HookCheckError(Exception):
    """A check the new version did not pass; the message says which and why."""


class ObjectStore(Protocol):
    """The object storage a hook reads (S3 on AWS, the local artifact store locally)."""

    def get_bytes(self, uri: Any) -> bytes:
        """One object's content."""
        ...

    def list_objects(self, prefix: Any) -> list[Any]:
        """Objects under a prefix, each with ``uri`` and ``last_modified``."""
        ...


class VariantMetrics(Protocol):
    """Endpoint variant traffic (CloudWatch's AWS/SageMaker metrics)."""

    def totals(self, endpoint: str, variant: str, start: datetime, end: datetime) -> tuple[float, float]:
        """(Invocations, Invocation5XXErrors) in ``[start, end)``."""
        ...


class ParameterWriter(Protocol):
    """SSM's ``PutParameter`` (boto3's ``ssm`` client): where the post-traffic hook records production's endpoint."""

    def put_parameter(self, *, Name: str, Value: str, Type: str, Overwrite: bool) -> Any:  # noqa: N803 - boto3's
        """Write the parameter."""
        ...


@dataclass(frozen=True)
class HookClients:
    """Everything a hook talks to."""

    codedeploy: CodeDeployClient
    sagemaker: SageMakerClient
    runtime: SageMakerRuntimeClient
    store: ObjectStore
    metrics: VariantMetrics
    parameters: ParameterWriter | None = None
    """SSM on AWS (the post-traffic hook records green as production); None locally (the ledger records it)."""


@dataclass(frozen=True)
class HookEvent:
    """CodeDeploy's lifecycle hook event."""

    deployment_id: str
    execution_id: str

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> HookEvent:
        """Read the event; raise ``ValueError`` naming a missing field."""
        deployment, execution = event.get("DeploymentId"), event.get("LifecycleEventHookExecutionId")
        if not isinstance(deployment, str) or not deployment:
            raise ValueError("the hook event has no DeploymentId")
        if not isinstance(execution, str) or not execution:
            raise ValueError("the hook event has no LifecycleEventHookExecutionId")
        return cls(deployment, execution)


def require(environ: Mapping[str, str], name: str) -> str:
    """A configuration variable the hook cannot do without."""
    value = environ.get(name, "").strip()
    if not value:
        raise HookCheckError(f"the hook is misconfigured: {name} is not set")
    return value


def report_once(event: Mapping[str, Any], codedeploy: CodeDeployClient, checks: Callable[[], str]) -> dict[str, str]:
    """Run ``checks`` and report Succeeded (it returned) or Failed (it raised anything) exactly once.

    Returns the verdict and its message; an event without the ids cannot be reported and raises ``ValueError``.
    """
    hook = HookEvent.parse(event)
    status: Literal["Succeeded", "Failed"] = "Failed"
    message = "the checks did not finish"
    try:
        message = checks()
        status = "Succeeded"
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, HookCheckError) else str(exc)
        LOG.error("hook %s of %s failed: %s", hook.execution_id, hook.deployment_id, message)
    finally:
        codedeploy.put_lifecycle_event_hook_execution_status(
            deploymentId=hook.deployment_id, lifecycleEventHookExecutionId=hook.execution_id, status=status
        )
    return {"status": status, "message": message}


def hook_handler(check: Check, environ: Mapping[str, str], clients: HookClients) -> Handler:
    """The Lambda handler of a hook: run ``check`` with the function's configuration, report via :func:`report_once`."""
    settings = dict(environ)

    def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
        return report_once(event, clients.codedeploy, lambda: check(settings, clients))

    return handler
