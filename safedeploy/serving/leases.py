"""Deployment leases: the runtime rolls a production deployment back when the process driving it is gone.

On AWS, CodeDeploy itself drives a deployment and rolls it back when it fails or times out. Locally the
controller is the ``safedeploy`` process (``make deploy``, ``make rollback``), and a ``kill -9`` of it must not
leave production split between blue and green with no alarm watching. So before green takes any traffic the
controller acquires a lease on the production route (``PUT /_local/leases/{deploymentId}``) naming what to
restore: the route, blue (none for a first deployment) and green. It renews the lease while it works
(``POST /_local/leases/{deploymentId}/renew``) and releases it when the deployment ends either way
(``DELETE``).

The runtime's watchdog looks every :data:`CHECK_INTERVAL_S`: a lease whose holder process has exited (pid and
start time, so a reused pid does not count) or has not renewed for ``HangTimeoutSeconds`` is lost. The runtime
then does what CodeDeploy does for a deployment that stopped: the route goes back to blue alone (or is removed
when there was no blue), green's endpoint, config and model are deleted, and the ledger records
``DeploymentRolledBack`` with the reason ``controller lost: ...``. The lease is then *revoked*: a route change
that presents it is refused with 409 (:meth:`LeaseKeeper.check_route_change`), so a controller that wakes up
late cannot move traffic again. Leases live in ``<state>/runtime/leases.json`` and survive a runtime restart:
a controller that died while the runtime was down is found on the first check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from safedeploy import constants as C
from safedeploy.atomic import atomic_write_text
from safedeploy.ledger import CONTROLLER_LOST, EVENT_ROLLED_BACK, DeploymentLedger
from safedeploy.processes import same_process_alive
from safedeploy.reserve import critical_write
from safedeploy.serving.control import ControlPlane
from safedeploy.serving.errors import ApiError

LOG = logging.getLogger(__name__)
CHECK_INTERVAL_S = 0.25
LEASE_HEADER = C.LEASE_HEADER
_Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]


class LeasedModel(BaseModel):
    """A model version behind an endpoint, as the ledger writes it."""

    model_config = ConfigDict(extra="forbid")
    endpoint: _Id
    version: int = Field(ge=0)
    config: str = ""


class DeploymentLease(BaseModel):
    """One deployment's claim on a production route, and what to restore if its controller is lost."""

    model_config = ConfigDict(extra="forbid")
    DeploymentId: _Id
    Pipeline: _Id
    """Whose ledger records the rollback (``<state>/deployments/<Pipeline>.jsonl``)."""
    Route: _Id
    Blue: LeasedModel | None
    Green: LeasedModel
    HolderPid: int = Field(gt=0)
    HolderStartTicks: int | None = None
    HangTimeoutSeconds: float = Field(ge=1.0, le=86_400.0)
    """How long without a renewal before a live but silent holder counts as lost."""


class _LeaseFile(BaseModel):
    Leases: dict[str, DeploymentLease] = {}
    Revoked: list[str] = []


def _conflict(message: str) -> ApiError:
    return ApiError(409, "ConflictException", message)


class LeaseKeeper:
    """The runtime's leases on production routes, and the watchdog that acts on lost ones."""

    def __init__(
        self,
        path: Path,
        state_dir: Path,
        control: ControlPlane,
        routes_changed: Callable[[], None],
        reserve: Path | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.state_dir = state_dir
        self.control = control
        self.routes_changed = routes_changed
        self.reserve = reserve
        self.monotonic = monotonic
        self.leases: dict[str, DeploymentLease] = {}
        self.revoked: list[str] = []
        self._renewed: dict[str, float] = {}
        self.recovered: list[str] = []
        """Deployments this runtime rolled back for a lost controller (newest last)."""

    # --- persistence -------------------------------------------------------------------------------------
    def load(self) -> None:
        """Read the saved leases; a renewal clock starts now for each (the holder gets a full timeout)."""
        if not self.path.is_file():
            return
        try:
            saved = _LeaseFile.model_validate_json(self.path.read_bytes())
        except (OSError, ValidationError, ValueError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            with contextlib.suppress(OSError):
                self.path.replace(aside)
            LOG.error("the lease file %s is unreadable (%s); set aside to %s, starting with no leases", self.path,
                      exc, aside)  # fmt: skip
            return
        self.leases, self.revoked = dict(saved.Leases), list(saved.Revoked)
        now = self.monotonic()
        self._renewed = {deployment: now for deployment in self.leases}

    def _save(self, critical: bool = False) -> None:
        """Persist the leases (``critical``: a release or recovery, which may draw on the disk reserve)."""
        document = _LeaseFile(Leases=self.leases, Revoked=self.revoked[-256:]).model_dump_json(indent=2)
        if critical:
            critical_write(self.reserve, lambda: atomic_write_text(self.path, document))
        else:
            atomic_write_text(self.path, document)

    # --- the API -------------------------------------------------------------------------------------------
    def acquire(self, deployment_id: str, document: dict[str, object]) -> DeploymentLease:
        """Take the lease of a deployment (idempotent for the same deployment)."""
        try:
            lease = DeploymentLease.model_validate({**document, "DeploymentId": deployment_id})
        except ValidationError as exc:
            raise ApiError(400, "ValidationException", f"invalid lease: {exc.errors()[0]['msg']} at "
                           f"{'.'.join(str(p) for p in exc.errors()[0]['loc'])}") from None  # fmt: skip
        if deployment_id in self.revoked:
            raise _conflict(f"deployment {deployment_id} lost its lease and was rolled back")
        for other in self.leases.values():
            if other.Route == lease.Route and other.DeploymentId != deployment_id:
                raise _conflict(f"route {lease.Route} is held by deployment {other.DeploymentId} "
                                f"(pid {other.HolderPid}); wait for it to end")  # fmt: skip
        previous = self.leases.get(deployment_id)
        self.leases[deployment_id] = lease
        try:
            self._save()
        except OSError:
            if previous is None:
                self.leases.pop(deployment_id, None)
            else:
                self.leases[deployment_id] = previous
            raise
        self._renewed[deployment_id] = self.monotonic()
        LOG.info("deployment %s holds route %s (pid %s)", deployment_id, lease.Route, lease.HolderPid)
        return lease

    def renew(self, deployment_id: str) -> None:
        """The holder is alive and working (kept in memory: renewals are frequent)."""
        if deployment_id in self.revoked:
            raise ApiError(410, "LeaseLost", f"deployment {deployment_id} lost its lease and was rolled back")
        if deployment_id not in self.leases:
            raise ApiError(404, "ResourceNotFound", f"no lease for deployment {deployment_id}")
        self._renewed[deployment_id] = self.monotonic()

    def release(self, deployment_id: str) -> bool:
        """The deployment ended (its controller recorded how); return whether it held a lease."""
        lease = self.leases.pop(deployment_id, None)
        if lease is None:
            return False
        try:
            self._save(critical=True)
        except OSError:
            self.leases[deployment_id] = lease
            raise
        self._renewed.pop(deployment_id, None)
        return True

    def check_route_change(self, route: str, deployment_id: str | None) -> None:
        """Refuse (409) a route change by a revoked deployment, or by anyone else while a deployment holds it."""
        if deployment_id is not None and deployment_id in self.revoked:
            raise _conflict(f"deployment {deployment_id} lost its lease and was rolled back; route {route} is "
                            "no longer its to change")  # fmt: skip
        for lease in self.leases.values():
            if lease.Route == route and lease.DeploymentId != deployment_id:
                raise _conflict(f"route {route} is held by deployment {lease.DeploymentId}; "
                                f"present its lease in {LEASE_HEADER}")  # fmt: skip

    # --- the watchdog --------------------------------------------------------------------------------------
    def lost(self, lease: DeploymentLease) -> str | None:
        """Why this lease's holder is lost, or ``None`` while it holds."""
        if not same_process_alive(lease.HolderPid, lease.HolderStartTicks):
            return f"{CONTROLLER_LOST}: the controlling process {lease.HolderPid} exited mid-deployment"
        silent = self.monotonic() - self._renewed.get(lease.DeploymentId, self.monotonic())
        if silent > lease.HangTimeoutSeconds:
            return (f"{CONTROLLER_LOST}: the controlling process {lease.HolderPid} did not renew its lease for "
                    f"{silent:.1f} s (timeout {lease.HangTimeoutSeconds:g} s)")  # fmt: skip
        return None

    async def watch(self, stop: asyncio.Event) -> None:
        """Check every lease every :data:`CHECK_INTERVAL_S` until ``stop``; recover the lost ones."""
        while not stop.is_set():
            await self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CHECK_INTERVAL_S)

    async def check(self) -> None:
        """One pass of the watchdog."""
        for lease in list(self.leases.values()):
            reason = self.lost(lease)
            if reason is None:
                continue
            try:
                await self.recover(lease, reason)
            except Exception:  # retried on the next pass; the lease stays until recovery completes
                LOG.exception("recovering deployment %s failed; retrying", lease.DeploymentId)

    async def recover(self, lease: DeploymentLease, reason: str) -> None:
        """Blue alone on the route (or no route), green deleted, the ledger told, the lease revoked.

        A deployment whose controller recorded success before it was lost keeps green: only the lease goes.
        """
        ledger = DeploymentLedger(self.state_dir / "deployments", lease.Pipeline, self.reserve)
        outcome = next(
            (d["outcome"] for d in reversed(ledger.deployments()) if d["deployment_id"] == lease.DeploymentId), None
        )
        if outcome == "Succeeded":
            LOG.info("deployment %s succeeded before its controller was lost; releasing its lease", lease.DeploymentId)
            self.release(lease.DeploymentId)
            return
        LOG.error("deployment %s: %s; rolling back to %s", lease.DeploymentId, reason,
                  lease.Blue.endpoint if lease.Blue else "no production model")  # fmt: skip
        self._restore_route(lease)
        problems = await self._delete_green(lease.Green.endpoint)
        if outcome != "RolledBack":  # the controller may have recorded its own rollback before it was lost
            ledger.append(
                lease.DeploymentId,
                EVENT_ROLLED_BACK,
                reason=reason,
                restored=lease.Blue.model_dump() if lease.Blue else None,
                problems=problems,
                by="runtime",
            )
        self.revoked.append(lease.DeploymentId)
        self.leases.pop(lease.DeploymentId, None)
        self._renewed.pop(lease.DeploymentId, None)
        self._save(critical=True)
        self.recovered.append(lease.DeploymentId)

    def _restore_route(self, lease: DeploymentLease) -> None:
        state = self.control.state
        route = state.Routes.get(lease.Route)
        if route is None and lease.Blue is None:
            return
        snapshot = state.Routes.copy()
        if lease.Blue is None:
            state.Routes.pop(lease.Route, None)
        elif route is not None:
            environment = {**route.Environment, "ENDPOINT_NAME": lease.Blue.endpoint,
                           "MODEL_VERSION": str(lease.Blue.version)}  # fmt: skip
            state.Routes[lease.Route] = route.model_copy(update={"Environment": environment, "Canary": None})
        try:
            self.control.save(critical=True)
        except OSError:
            state.Routes.clear()
            state.Routes.update(snapshot)
            raise
        self.routes_changed()

    async def _delete_green(self, endpoint: str) -> list[str]:
        """Delete green's endpoint, then its config and models; return what could not be deleted."""
        problems: list[str] = []
        record = self.control.state.Endpoints.get(endpoint)
        if record is None:
            return problems
        config = self.control.state.EndpointConfigs.get(record.EndpointConfigName)
        await self.control.delete_endpoint({"EndpointName": endpoint})
        if config is None:
            return problems
        try:
            self.control.delete_endpoint_config({"EndpointConfigName": config.EndpointConfigName})
        except ApiError as exc:
            problems.append(str(exc))
        for variant in config.ProductionVariants:
            still_used = any(
                v.ModelName == variant.ModelName
                for c in self.control.state.EndpointConfigs.values()
                for v in c.ProductionVariants
            )
            if still_used:
                continue
            try:
                self.control.delete_model({"ModelName": variant.ModelName})
            except ApiError as exc:
                problems.append(str(exc))
        return problems
