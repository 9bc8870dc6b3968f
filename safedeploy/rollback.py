"""``make rollback``: production back along its deployment history, never a toggle.

The history is the deployment ledger (:mod:`safedeploy.ledger`). Replaying its deployments oldest first gives
**production's return path**: a list of versions, the last one serving now, each one below it the version that
served before it and that production has not rolled back from since. The rules (:func:`return_path`):

* a deployment that succeeded moves its version to the top (a pipeline deployment; or a rollback to a version
  that is not on the path any more, e.g. ``--version 3`` after production rolled back from v3: a return to
  it, which keeps the version it left below it);
* a rollback that succeeded to a version still on the path drops every version above it: production rolled
  back from each of them (the one serving, and any skipped over with ``--version``);
* a deployment that was rolled back (its canary failed, or a rollback that was itself rolled back) takes its
  version off the path, unless it is the one still serving: production rolled back from it;
* a deployment still in progress, or one that never reached an outcome, changes nothing.

So with v1, v2, v3 deployed in order, ``make rollback`` returns to v2 (the path is now v1, v2), a second one to
v1 (v1), and a third one has nowhere to go: production never served anything before v1 that it has not rolled
back from. ``make rollback VERSION=3`` then returns to v3 (the path is v1, v3), and the next ``make rollback``
to v1 again.

``make rollback VERSION=n`` returns to any version that served production before (a deployment of it succeeded
once), other than the one serving. Either way the target must still be deployable: registered, not
``Rejected``, its execution record kept, and its model and source archives still verifying against their
recorded sha256. A plain rollback skips a version on the path that is not (saying so); a named one that is not
is refused. Refusals change nothing and list the versions that can be named.

A rollback is a blue/green deployment like any other (new endpoint for the target, pre-traffic hook, all at
once, bake with alarms, post-traffic hook), recorded in the ledger with ``rollback_of`` (what it left) and
``rollback_to`` (``previous`` or the version named); the registry marks the version it left rolled back
(``RolledBackAt``/``Reason``/``By``) and the target serving production again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from safedeploy import constants as C
from safedeploy.backends import Backend
from safedeploy.errors import DeploymentError, SafeDeployError
from safedeploy.ids import random_uuid
from safedeploy.ledger import ServedModel
from safedeploy.progress import PlainProgress, ProgressReporter
from safedeploy.spec import PipelineSpec
from safedeploy.stages import ProductionRelease, deploy_to_production, record_in_registry
from safedeploy.traffic import build_schedule

LOG = logging.getLogger(__name__)
SUCCEEDED = "Succeeded"
ROLLED_BACK = "RolledBack"


@dataclass(frozen=True)
class ServedVersion:
    """A version production served: the latest deployment of it that succeeded.

    Attributes:
        version: The model package version.
        execution_id: The execution that trained and registered it (its archives and held-out rows).
        deployment_id: The ledger's deployment that last put it into production.
        time: When that deployment started (ISO-8601).
    """

    version: int
    execution_id: str
    deployment_id: str
    time: str


@dataclass(frozen=True)
class RollbackResult:
    """What a rollback did: the model it left, the model serving now, and the versions it skipped."""

    was: ServedModel
    now: ServedModel
    skipped: tuple[str, ...] = ()


def _version(deployment: dict[str, Any]) -> int:
    return int(deployment["green"]["version"])


def return_path(deployments: Sequence[dict[str, Any]]) -> list[ServedVersion]:
    """Production's return path from the ledger's deployments (oldest first): the last entry serves now.

    Each entry below the last is the version that served before the one above it and that production has not
    rolled back from since; the module docstring gives the rules.
    """
    path: list[ServedVersion] = []
    for deployment in deployments:
        version = _version(deployment)
        on_path = [entry.version for entry in path]
        if deployment["outcome"] == ROLLED_BACK:
            if version in on_path[:-1]:  # the version still serving stays, whatever a failed deployment was
                path.pop(on_path.index(version))
            continue
        if deployment["outcome"] != SUCCEEDED:
            continue
        served = ServedVersion(
            version, str(deployment.get("execution_id", "")), str(deployment["deployment_id"]), deployment["time"]
        )
        if deployment.get("rollback_of") is not None and version in on_path:
            del path[on_path.index(version) :]  # production rolled back from everything above it
        elif version in on_path:
            path.pop(on_path.index(version))
        path.append(served)
    return path


def served_versions(deployments: Sequence[dict[str, Any]]) -> dict[int, ServedVersion]:
    """Every version that ever served production (a deployment of it succeeded), by version, with its latest one."""
    served: dict[int, ServedVersion] = {}
    for deployment in deployments:
        if deployment["outcome"] == SUCCEEDED:
            version = _version(deployment)
            served[version] = ServedVersion(
                version, str(deployment.get("execution_id", "")), str(deployment["deployment_id"]), deployment["time"]
            )
    return served


def _release(spec: PipelineSpec, backend: Backend, target: ServedVersion) -> ProductionRelease:
    """The target's release, checked deployable: registered, not Rejected, archives verifying.

    Raises:
        DeploymentError: why it cannot serve again (in words naming the version).
    """
    name = f"v{target.version}"
    try:
        package = backend.registry.describe(spec.model_name, target.version)
    except SafeDeployError as exc:
        raise DeploymentError(f"{name} is not in the registry any more ({exc})") from None
    if package.ModelApprovalStatus == C.APPROVAL_REJECTED:
        why = f": {package.ApprovalDescription}" if package.ApprovalDescription else ""
        raise DeploymentError(f"{name} was rejected since it served{why}")
    try:
        execution = backend.executions.get(target.execution_id)
    except SafeDeployError as exc:
        raise DeploymentError(f"{name}'s execution record is gone ({exc})") from None
    try:
        release = ProductionRelease.of_execution(execution, backend.serving_image, backend.registry, spec.model_name)
        train = execution.stage(C.STAGE_TRAIN)
        archives = {"model": train.artifacts["model"], "source": train.artifacts["source"]}
    except (SafeDeployError, KeyError, ValueError) as exc:
        raise DeploymentError(f"{name}'s execution record does not say what it deployed ({exc})") from None
    for kind, ref in archives.items():
        if not backend.store.verify(ref):
            raise DeploymentError(f"{name}'s {kind} archive {ref.uri} is gone or no longer has its recorded sha256")
    registered = package.ModelDataETag
    if registered and registered != archives["model"].sha256:
        raise DeploymentError(f"{name}'s model archive is not the one the registry recorded ({registered[:12]}...)")
    return release


def _choosable(spec: PipelineSpec, backend: Backend, served: dict[int, ServedVersion], current: int) -> list[int]:
    """The versions ``--version`` accepts now (served before, not the current one, still deployable)."""
    choosable = []
    for version, target in sorted(served.items()):
        if version == current:
            continue
        try:
            _release(spec, backend, target)
        except DeploymentError:
            continue
        choosable.append(version)
    return choosable


def _listing(versions: Sequence[int]) -> str:
    if not versions:
        return "no version can be chosen with --version (VERSION=n)"
    return "versions that can be chosen with --version (VERSION=n): " + ", ".join(f"v{v}" for v in versions)


def choose_target(
    spec: PipelineSpec, backend: Backend, version: int | None = None
) -> tuple[ServedModel, ServedVersion, ProductionRelease, tuple[str, ...]]:
    """What a rollback would do: (the model serving, the target, its release, the versions skipped and why).

    Raises:
        DeploymentError: nothing serves, no earlier version to return to, or ``version`` cannot be chosen (the
            message names the problem and lists the versions that can).
    """
    deployments = backend.deployments.deployments()
    path = return_path(deployments)
    live = backend.deployments.live()
    if not path or live is None:
        raise DeploymentError("production has never been deployed: nothing to roll back")
    current = path[-1]
    served = served_versions(deployments)
    if version is not None:
        return (live, *_named_target(spec, backend, served, current.version, version), ())
    skipped: list[str] = []
    for target in reversed(path[:-1]):
        try:
            release = _release(spec, backend, target)
        except DeploymentError as exc:
            skipped.append(str(exc))
            LOG.warning("rollback skips v%s: %s", target.version, exc)
            continue
        return live, target, release, tuple(skipped)
    before = (
        f"every version before it on production's history cannot serve again ({'; '.join(skipped)})"
        if skipped
        else "no version served before it that production has not rolled back from since"
    )
    raise DeploymentError(
        f"production serves v{current.version} and {before}; "
        f"{_listing(_choosable(spec, backend, served, current.version))}"
    )


def _named_target(
    spec: PipelineSpec, backend: Backend, served: dict[int, ServedVersion], current: int, version: int
) -> tuple[ServedVersion, ProductionRelease]:
    """``--version n``: any version that served production before, other than the current one, still deployable."""

    def refuse(problem: str) -> DeploymentError:
        return DeploymentError(f"cannot roll back to v{version}: {problem}; {_listing(choosable())}")

    def choosable() -> list[int]:
        return _choosable(spec, backend, served, current)

    if version == current:
        raise refuse("production serves it now")
    target = served.get(version)
    if target is None:
        try:
            backend.registry.describe(spec.model_name, version)
        except SafeDeployError:
            raise refuse(f"{spec.model_name} has no version {version} in the registry") from None
        raise refuse("it never served production (only versions a deployment put there can be returned to)")
    try:
        return target, _release(spec, backend, target)
    except DeploymentError as exc:
        raise refuse(str(exc)) from None


def roll_back_production(
    spec: PipelineSpec,
    backend: Backend,
    by: str,
    version: int | None = None,
    progress: ProgressReporter | None = None,
) -> RollbackResult:
    """Return production to the version that served before the current one, or to ``version``.

    "Before the current one" is production's return path (:func:`return_path`): the history of successful
    deployments without the versions production has rolled back from since. Each plain rollback goes one
    further back (v3 -> v2 -> v1), never back to the version it just left. ``version`` names any version that
    served production before. The rollback is a blue/green deployment of the target through the same path as
    DeployPrd (all at once, hooks, bake with alarms), recorded in the ledger (``rollback_of``, ``rollback_to``)
    and the registry (the version left is marked rolled back, the target serves production).

    Raises:
        DeploymentError: nothing to roll back to, or ``version`` cannot be chosen (nothing changed).
        RolledBackError: the rollback itself was rolled back (production stays as it was).
    """
    current, target, release, skipped = choose_target(spec, backend, version)
    schedule = build_schedule("AllAtOnce", bake_seconds=spec.production.bake_seconds)
    progress = progress or PlainProgress()
    with progress.task(f"rollback: v{current.version} -> v{target.version}, a blue/green deployment all at once"):
        _, _, green = deploy_to_production(
            spec,
            backend,
            release,
            details={
                "rollback_of": current.as_dict(),
                "rollback_to": "previous" if version is None else version,
                "approver": by,
                "rehearsal": None,
            },
            schedule=schedule,
            deployment_execution_id=f"rb{random_uuid().replace('-', '')[:6]}",
            progress=progress,
        )
    why = f"production rolled back by {by} with safedeploy rollback to v{green.version}"
    record_in_registry(lambda: backend.registry.record_rollback(spec.model_name, current.version, reason=why, by=by))
    return RollbackResult(current, green, skipped)
