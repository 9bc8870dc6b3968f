"""The local SageMaker control plane: models, endpoint configs and endpoints, backed by worker fleets.

The operations take and return exactly what SageMaker's API does (the JSON 1.1 protocol's request and
response documents), so the boto3 ``sagemaker`` client drives them unchanged through
:mod:`safedeploy.serving.http_api`. ``CreateEndpoint`` and ``UpdateEndpoint`` return at once; the endpoint
is ``Creating``/``Updating`` until every instance of every variant answers ``/ping``. An update starts the
new fleet beside the old one and switches traffic only when the new one is ready (a failed update leaves
the old config serving, ``InService``, with the ``FailureReason``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from safedeploy import constants as C
from safedeploy.errors import SafeDeployError
from safedeploy.reserve import critical_write
from safedeploy.serving import integrity
from safedeploy.serving.errors import validation
from safedeploy.serving.fleet import DeploymentFailedError, ModelFiles, VariantFleet
from safedeploy.serving.state import (
    CaptureConfig,
    DataCaptureConfigSummary,
    EndpointConfigRecord,
    EndpointRecord,
    ModelRecord,
    RuntimeState,
    VariantSummary,
    now,
)
from safedeploy.store import LocalArtifactStore

LOG = logging.getLogger(__name__)
_Shape = TypeVar("_Shape", bound=BaseModel)


@dataclass(eq=False)
class Deployment:
    """An endpoint config running: its variant fleets and its capture settings."""

    config: EndpointConfigRecord
    fleets: dict[str, VariantFleet]

    @property
    def capture(self) -> CaptureConfig | None:
        """The data capture config, if capture is on."""
        capture = self.config.DataCaptureConfig
        return capture if capture is not None and capture.EnableCapture else None

    async def stop(self) -> None:
        """Stop every fleet."""
        await asyncio.gather(*(fleet.stop() for fleet in self.fleets.values()))


@dataclass(eq=False)
class ControlPlane:
    """State plus running fleets; every mutation is saved before it is acknowledged."""

    state_file: Path
    store: LocalArtifactStore
    work_dir: Path
    region: str
    account_id: str
    session: aiohttp.ClientSession
    state: RuntimeState = field(default_factory=RuntimeState)
    deployments: dict[str, Deployment] = field(default_factory=dict)
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _stopping: set[asyncio.Task[None]] = field(default_factory=set)
    on_change: Callable[[], Awaitable[None]] | None = None
    reserve: Path | None = None

    # --- persistence -------------------------------------------------------------------------------------
    def save(self, critical: bool = False) -> None:
        """Persist the state atomically.

        ``critical``: a change that takes something away (a deletion, traffic back to blue) may draw on the disk
        reserve when the disk is full; changes that add things fail instead, and the deployment rolls back.
        """
        if critical:
            critical_write(self.reserve, lambda: self.state.save(self.state_file))
        else:
            self.state.save(self.state_file)

    async def restore(self) -> None:
        """Bring back the endpoints a previous runtime was serving."""
        for record in self.state.Endpoints.values():
            if record.EndpointStatus in ("Creating", "Updating", "InService"):
                record.EndpointStatus = "Creating"
                self._launch(record.EndpointName, record.EndpointConfigName)
        self.save()

    def _save_or_undo(self, undo: Callable[[], object]) -> None:
        """Save; if that fails, undo the change in memory too (memory and disk never disagree) and re-raise."""
        try:
            self.save()
        except OSError:
            undo()
            raise

    async def settled(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until no endpoint is being created, updated or restored."""
        pending = [task for task in self._tasks.values() if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{kind}/{name.lower()}"

    # --- models and endpoint configs ------------------------------------------------------------------------
    def create_model(self, request: dict[str, Any]) -> dict[str, Any]:
        """``CreateModel``."""
        model = _parse(ModelRecord, request)
        if model.ModelName in self.state.Models:
            raise validation(f'Cannot create already existing model "{self._arn("model", model.ModelName)}".')
        problem = integrity.source_problem(model.PrimaryContainer, self.store)
        if problem is not None:
            raise validation(problem)
        model.ModelArn = self._arn("model", model.ModelName)
        self.state.Models[model.ModelName] = model
        self._save_or_undo(lambda: self.state.Models.pop(model.ModelName, None))
        return {"ModelArn": model.ModelArn}

    def describe_model(self, request: dict[str, Any]) -> dict[str, Any]:
        """``DescribeModel``."""
        return self._model(str(request.get("ModelName"))).model_dump(mode="json", exclude_none=True)

    def delete_model(self, request: dict[str, Any]) -> dict[str, Any]:
        """``DeleteModel``."""
        model = self._model(str(request.get("ModelName")))
        del self.state.Models[model.ModelName]
        try:
            self.save(critical=True)
        except OSError:
            self.state.Models[model.ModelName] = model  # memory follows disk
            raise
        shutil.rmtree(self.work_dir / "models" / model.ModelName, ignore_errors=True)
        return {}

    def _model(self, name: str) -> ModelRecord:
        model = self.state.Models.get(name)
        if model is None:
            raise validation(f'Could not find model "{self._arn("model", name)}".')
        return model

    def create_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        """``CreateEndpointConfig``: its models must exist."""
        config = _parse(EndpointConfigRecord, request)
        if config.EndpointConfigName in self.state.EndpointConfigs:
            arn = self._arn("endpoint-config", config.EndpointConfigName)
            raise validation(f'Cannot create already existing endpoint configuration "{arn}".')
        names = [v.VariantName for v in config.ProductionVariants]
        if len(set(names)) != len(names):
            raise validation(f"Variant names must be unique within an endpoint config: {names}")
        if sum(v.InitialVariantWeight for v in config.ProductionVariants) <= 0:
            raise validation("The sum of InitialVariantWeight over the production variants must be positive.")
        for variant in config.ProductionVariants:
            self._model(variant.ModelName)
        config.EndpointConfigArn = self._arn("endpoint-config", config.EndpointConfigName)
        self.state.EndpointConfigs[config.EndpointConfigName] = config
        self._save_or_undo(lambda: self.state.EndpointConfigs.pop(config.EndpointConfigName, None))
        return {"EndpointConfigArn": config.EndpointConfigArn}

    def describe_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        """``DescribeEndpointConfig``."""
        return self._config(str(request.get("EndpointConfigName"))).model_dump(mode="json", exclude_none=True)

    def delete_endpoint_config(self, request: dict[str, Any]) -> dict[str, Any]:
        """``DeleteEndpointConfig``."""
        config = self._config(str(request.get("EndpointConfigName")))
        del self.state.EndpointConfigs[config.EndpointConfigName]
        try:
            self.save(critical=True)
        except OSError:
            self.state.EndpointConfigs[config.EndpointConfigName] = config
            raise
        return {}

    def _config(self, name: str) -> EndpointConfigRecord:
        config = self.state.EndpointConfigs.get(name)
        if config is None:
            raise validation(f'Could not find endpoint configuration "{self._arn("endpoint-config", name)}".')
        return config

    # --- endpoints ---------------------------------------------------------------------------------------
    def create_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        """``CreateEndpoint``: returns at once; the endpoint is ``Creating`` until its instances are ready."""
        name, config_name = str(request.get("EndpointName", "")), str(request.get("EndpointConfigName", ""))
        if name in self.state.Endpoints:
            raise validation(f'Cannot create already existing endpoint "{self._arn("endpoint", name)}".')
        self._config(config_name)
        record = _parse(EndpointRecord, {"EndpointName": name, "EndpointConfigName": config_name})
        record.EndpointArn = self._arn("endpoint", name)
        self.state.Endpoints[name] = record
        self._save_or_undo(lambda: self.state.Endpoints.pop(name, None))
        self._launch(name, config_name)
        return {"EndpointArn": record.EndpointArn}

    def update_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        """``UpdateEndpoint``: start the new config beside the old one, switch when it is ready."""
        record = self._endpoint(str(request.get("EndpointName")))
        config_name = str(request.get("EndpointConfigName", ""))
        self._config(config_name)
        if record.EndpointStatus not in ("InService", "Failed"):
            raise validation(
                f'Cannot update in-progress endpoint "{record.EndpointArn}" (status {record.EndpointStatus}).'
            )
        before = record.model_copy()
        record.EndpointStatus = "Updating" if record.EndpointName in self.deployments else "Creating"
        record.FailureReason = None
        record.LastModifiedTime = now()
        self._save_or_undo(lambda: self.state.Endpoints.__setitem__(record.EndpointName, before))
        self._launch(record.EndpointName, config_name)
        return {"EndpointArn": record.EndpointArn}

    def update_endpoint_weights_and_capacities(self, request: dict[str, Any]) -> dict[str, Any]:
        """``UpdateEndpointWeightsAndCapacities``: weights apply at once; capacity changes start or stop instances."""
        record = self._endpoint(str(request.get("EndpointName")))
        deployment = self.deployments.get(record.EndpointName)
        if record.EndpointStatus != "InService" or deployment is None:
            raise validation(f'Endpoint "{record.EndpointArn}" is not InService (status {record.EndpointStatus}).')
        desired = request.get("DesiredWeightsAndCapacities")
        if not isinstance(desired, list) or not desired:
            raise validation("DesiredWeightsAndCapacities must list at least one variant.")
        changes: list[tuple[VariantFleet, float | None, int | None]] = []
        for item in desired:
            fleet = deployment.fleets.get(str(item.get("VariantName")))
            if fleet is None:
                raise validation(
                    f"The variant {item.get('VariantName')!r} is not part of endpoint {record.EndpointName}."
                )
            weight, count = item.get("DesiredWeight"), item.get("DesiredInstanceCount")
            if weight is not None and (not isinstance(weight, int | float) or weight < 0):
                raise validation(f"DesiredWeight must be a non-negative number, got {weight!r}.")
            if count is not None and (not isinstance(count, int) or not 1 <= count <= C.MAX_LOCAL_INSTANCES):
                raise validation(f"DesiredInstanceCount must be 1..{C.MAX_LOCAL_INSTANCES}, got {count!r}.")
            changes.append((fleet, weight, count))
        weights = {fleet: fleet.weight for fleet, _, _ in changes}
        before = record.model_copy()
        for fleet, weight, _ in changes:
            if weight is not None:
                fleet.weight = float(weight)
        scaling = any(count is not None for _, _, count in changes)
        if scaling:
            record.EndpointStatus = "Updating"
        self._summarise(record, deployment)

        def undo() -> None:
            for fleet, weight in weights.items():
                fleet.weight = weight
            self.state.Endpoints[record.EndpointName] = before

        self._save_or_undo(undo)  # weights apply only once saved: memory never runs ahead of disk
        if scaling:
            self._tasks[record.EndpointName] = asyncio.create_task(self._scale(record, changes))
        return {"EndpointArn": record.EndpointArn}

    async def _scale(
        self, record: EndpointRecord, changes: list[tuple[VariantFleet, float | None, int | None]]
    ) -> None:
        try:
            for fleet, _, count in changes:
                if count is not None:
                    await fleet.scale(count, self.session)
        except DeploymentFailedError as exc:
            record.FailureReason = str(exc)
        record.EndpointStatus = "InService"
        deployment = self.deployments.get(record.EndpointName)
        if deployment is not None:
            self._summarise(record, deployment)
        self.save()

    def describe_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        """``DescribeEndpoint``."""
        return self._endpoint(str(request.get("EndpointName"))).model_dump(mode="json", exclude_none=True)

    def list_endpoints(self, _: dict[str, Any]) -> dict[str, Any]:
        """``ListEndpoints`` (no paging: a local runtime holds a handful)."""
        keys = {"EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus"}
        return {
            "Endpoints": [
                record.model_dump(mode="json", include=keys) for _, record in sorted(self.state.Endpoints.items())
            ]
        }

    async def delete_endpoint(self, request: dict[str, Any]) -> dict[str, Any]:
        """``DeleteEndpoint``: stop its instances and forget it."""
        record = self._endpoint(str(request.get("EndpointName")))
        del self.state.Endpoints[record.EndpointName]
        try:
            self.save(critical=True)
        except OSError:  # memory follows disk: the endpoint stays, serving as before
            self.state.Endpoints[record.EndpointName] = record
            raise
        task = self._tasks.pop(record.EndpointName, None)
        if task is not None:
            task.cancel()
        deployment = self.deployments.pop(record.EndpointName, None)
        if deployment is not None:
            await deployment.stop()
        if self.on_change is not None:
            await self.on_change()
        return {}

    def _endpoint(self, name: str) -> EndpointRecord:
        record = self.state.Endpoints.get(name)
        if record is None:
            raise validation(f'Could not find endpoint "{self._arn("endpoint", name)}".')
        return record

    # --- fleets ------------------------------------------------------------------------------------------
    def _launch(self, endpoint: str, config_name: str) -> None:
        previous = self._tasks.pop(endpoint, None)
        if previous is not None:
            previous.cancel()
        self._tasks[endpoint] = asyncio.create_task(self._deploy(endpoint, config_name), name=f"deploy-{endpoint}")

    async def _deploy(self, endpoint: str, config_name: str) -> None:
        record = self.state.Endpoints[endpoint]
        config = self.state.EndpointConfigs[config_name]
        fleets: dict[str, VariantFleet] = {}
        try:
            for variant in config.ProductionVariants:
                files = await asyncio.to_thread(self._prepare_model, self.state.Models[variant.ModelName])
                fleet = VariantFleet(endpoint, variant, files, self.work_dir / "logs")
                fleet.on_refused = functools.partial(self._instance_refused, endpoint, fleet)
                fleets[variant.VariantName] = fleet
            await asyncio.gather(*(fleet.start(self.session) for fleet in fleets.values()))
        except (DeploymentFailedError, SafeDeployError, KeyError, OSError) as exc:
            await asyncio.gather(*(fleet.stop() for fleet in fleets.values()))
            reason = str(exc) if not isinstance(exc, KeyError) else f"model {exc} no longer exists"
            LOG.error("endpoint %s: deploying %s failed: %s", endpoint, config_name, reason)
            record.FailureReason = reason
            record.EndpointStatus = "InService" if endpoint in self.deployments else "Failed"
            record.LastModifiedTime = now()
            self.save()
            return
        except asyncio.CancelledError:
            await asyncio.gather(*(fleet.stop() for fleet in fleets.values()))
            raise
        old = self.deployments.get(endpoint)
        deployment = Deployment(config, fleets)
        self.deployments[endpoint] = deployment
        record.EndpointConfigName = config_name
        record.EndpointStatus = "InService"
        record.LastModifiedTime = now()
        self._summarise(record, deployment)
        self.save()
        LOG.info("endpoint %s InService with %s", endpoint, config_name)
        if old is not None:
            await old.stop()
        if self.on_change is not None:
            await self.on_change()

    def _summarise(self, record: EndpointRecord, deployment: Deployment) -> None:
        record.ProductionVariants = [
            VariantSummary(
                VariantName=name,
                DeployedImages=[{"SpecifiedImage": fleet.model.image, "ResolvedImage": fleet.model.image}],
                CurrentWeight=fleet.weight,
                DesiredWeight=fleet.weight,
                CurrentInstanceCount=len(fleet.healthy_instances()),
                DesiredInstanceCount=fleet.desired_count,
            )
            for name, fleet in deployment.fleets.items()
        ]
        capture = deployment.config.DataCaptureConfig
        record.DataCaptureConfig = (
            None
            if capture is None
            else DataCaptureConfigSummary(
                EnableCapture=capture.EnableCapture,
                CaptureStatus="Started" if capture.EnableCapture else "Stopped",
                CurrentSamplingPercentage=capture.InitialSamplingPercentage,
                DestinationS3Uri=capture.DestinationS3Uri,
            )
        )

    def _prepare_model(self, model: ModelRecord) -> ModelFiles:
        """Lay the model out as a container sees it, ``<base>/model`` and ``<base>/code``, from verified archives."""
        container = model.PrimaryContainer
        base = self.work_dir / "models" / model.ModelName
        manifest = integrity.prepare_model_tree(self.store, base, container)
        return ModelFiles(
            base_dir=base,
            code_dir=base / integrity.CODE_DIR,
            program=container.Environment.get(C.SM_PROGRAM_ENV, C.INFERENCE_PROGRAM),
            image=container.Image,
            environment=dict(container.Environment),
            manifest=manifest,
        )

    def _instance_refused(self, endpoint: str, fleet: VariantFleet, reason: str) -> None:
        """A replacement instance refused to start (its model's files changed): the endpoint fails, nothing serves."""
        deployment = self.deployments.get(endpoint)
        if deployment is None or fleet not in deployment.fleets.values():
            return  # an old fleet, already replaced
        del self.deployments[endpoint]
        record = self.state.Endpoints.get(endpoint)
        if record is not None:
            LOG.error("endpoint %s failed: %s", endpoint, reason)
            record.EndpointStatus = "Failed"
            record.FailureReason = reason
            record.LastModifiedTime = now()
            self.save()
        task = asyncio.create_task(deployment.stop(), name=f"stop-{endpoint}")
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        """Stop every fleet (the state stays saved, so a new runtime brings the endpoints back)."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        await asyncio.gather(*(d.stop() for d in self.deployments.values()))
        self.deployments.clear()


def _parse(shape: type[_Shape], request: dict[str, Any]) -> _Shape:
    try:
        return shape.model_validate(request)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'request'}: {error['msg']}" for error in exc.errors()
        )
        raise validation(f"{exc.error_count()} validation error(s): {problems}") from None
