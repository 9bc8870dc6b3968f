"""InvokeEndpoint: route a request to a variant by weight, proxy it to an instance, measure and capture.

Errors are SageMaker Runtime's own: ``ValidationError`` (400) for an unknown endpoint or variant or a payload
over 6 MB (413), ``ModelError`` (424) when the container answers non-2xx, carrying ``OriginalStatusCode`` and
``OriginalMessage``, and ``ServiceUnavailable`` (503) when no instance is up. Every request that reaches a
variant is counted in its metrics (4xx and 5xx by the container's status), so alarms see model errors.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from safedeploy import constants as C
from safedeploy.serving.capture import CapturedPayload, CaptureWriter, capture_record
from safedeploy.serving.control import ControlPlane, Deployment
from safedeploy.serving.errors import ApiError
from safedeploy.serving.fleet import VariantFleet
from safedeploy.serving.ids import random_uuid
from safedeploy.serving.instance_client import InstanceClient, InstanceNotConnectedError, InstanceUnreachableError
from safedeploy.serving.metrics import MetricStore

LOG = logging.getLogger(__name__)
MODEL_TIMEOUT_S = 60.0
"""SageMaker gives a container 60 s to answer an invocation."""
_ORIGINAL_MESSAGE_LIMIT = 2048


@dataclass(frozen=True)
class InvokeRequest:
    """The parameters of ``InvokeEndpoint``."""

    endpoint_name: str
    body: bytes
    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = None
    target_variant: str | None = None
    inference_id: str | None = None


@dataclass(frozen=True)
class InvokeResult:
    """The response of ``InvokeEndpoint``."""

    body: bytes
    content_type: str
    invoked_variant: str
    custom_attributes: str | None = None


def validation_error(message: str, status: int = 400) -> ApiError:
    """SageMaker Runtime's ``ValidationError``."""
    return ApiError(status, "ValidationError", message)


class Invoker:
    """The data plane of the local runtime."""

    def __init__(
        self,
        control: ControlPlane,
        instances: InstanceClient,
        metrics: MetricStore,
        capture: CaptureWriter,
        request_flush: asyncio.Event,
    ) -> None:
        self.control = control
        self.instances = instances
        self.metrics = metrics
        self.capture = capture
        self.request_flush = request_flush
        self._random = random.Random()  # noqa: S311 - traffic split, not security

    def _deployment(self, name: str) -> Deployment:
        record = self.control.state.Endpoints.get(name)
        if record is None:
            raise validation_error(f"Endpoint {name} of account {self.control.account_id} not found.")
        deployment = self.control.deployments.get(name)
        if deployment is None:
            raise validation_error(
                f"Endpoint {name} is not ready to serve: its status is {record.EndpointStatus}"
                + (f" ({record.FailureReason})" if record.FailureReason else "")
                + "."
            )
        return deployment

    def _choose(self, deployment: Deployment, request: InvokeRequest) -> VariantFleet:
        if request.target_variant is not None:
            fleet = deployment.fleets.get(request.target_variant)
            if fleet is None:
                raise validation_error(
                    f"The variant {request.target_variant!r} is not part of endpoint {request.endpoint_name}; "
                    f"its variants: {', '.join(deployment.fleets)}."
                )
            return fleet
        fleets = list(deployment.fleets.values())
        if len(fleets) == 1:
            return fleets[0]
        weights = [fleet.weight for fleet in fleets]
        if sum(weights) <= 0:
            raise ApiError(503, "ServiceUnavailable", f"Endpoint {request.endpoint_name} has no variant with weight.")
        return self._random.choices(fleets, weights)[0]

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        """Serve one invocation or raise the :class:`ApiError` SageMaker Runtime would answer."""
        started = time.perf_counter()
        if len(request.body) > C.INVOKE_MAX_PAYLOAD_BYTES:
            raise validation_error(
                f"Request payload of {len(request.body)} bytes exceeds the {C.INVOKE_MAX_PAYLOAD_BYTES}-byte limit.",
                413,
            )
        deployment = self._deployment(request.endpoint_name)
        fleet = self._choose(deployment, request)
        headers = {"Content-Type": request.content_type or "application/octet-stream"}
        if request.accept:
            headers["Accept"] = request.accept
        if request.custom_attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = request.custom_attributes
        tried: set[int] = set()
        while True:  # an instance that cannot be reached never saw the request: another one takes it
            instance = fleet.pick(avoid=tried)
            if instance is None:
                self._record(request.endpoint_name, fleet.name, 503, 0.0, started)
                raise ApiError(
                    503, "ServiceUnavailable", f"No instance of variant {fleet.name} of {request.endpoint_name} is up."
                )
            tried.add(instance.port)
            model_started = time.perf_counter()
            try:
                reply = await self.instances.post(
                    "127.0.0.1", instance.port, "/invocations", request.body, headers, MODEL_TIMEOUT_S
                )
            except ValueError as exc:
                raise validation_error(str(exc)) from None
            except InstanceNotConnectedError:
                instance.healthy = False  # its process is gone or going: the fleet replaces it
                continue
            except (InstanceUnreachableError, TimeoutError) as exc:
                instance.healthy = instance.process.returncode is None and not isinstance(exc, TimeoutError)
                self._record(request.endpoint_name, fleet.name, 500, time.perf_counter() - model_started, started)
                reason = f"no answer within {MODEL_TIMEOUT_S:g} s" if isinstance(exc, TimeoutError) else str(exc)
                raise self._model_error(request, fleet, 500, f"the instance did not answer: {reason}") from None
            break
        payload, status = reply.body, reply.status
        reply_type = reply.headers.get("content-type", "application/octet-stream")
        reply_attributes = reply.headers.get("x-amzn-sagemaker-custom-attributes")
        model_seconds = time.perf_counter() - model_started
        if status >= 300:
            self._record(request.endpoint_name, fleet.name, status, model_seconds, started)
            raise self._model_error(request, fleet, status, payload.decode("utf-8", "replace"))
        if len(payload) > C.INVOKE_MAX_PAYLOAD_BYTES:
            self._record(request.endpoint_name, fleet.name, 500, model_seconds, started)
            raise self._model_error(request, fleet, 500, f"response of {len(payload)} bytes exceeds the 6 MB limit")
        capture = deployment.capture
        if capture is not None and self._random.random() * 100 < capture.InitialSamplingPercentage:
            at = datetime.now(UTC)
            record = capture_record(
                capture,
                CapturedPayload(headers["Content-Type"], request.body),
                CapturedPayload(reply_type, payload),
                event_id=random_uuid(),
                inference_time=at,
                inference_id=request.inference_id,
            )
            if self.capture.add(capture.DestinationS3Uri, request.endpoint_name, fleet.name, record, at):
                self.request_flush.set()
        self._record(request.endpoint_name, fleet.name, status, model_seconds, started)
        return InvokeResult(payload, reply_type, fleet.name, reply_attributes)

    def _record(self, endpoint: str, variant: str, status: int, model_seconds: float, started: float) -> None:
        total = time.perf_counter() - started
        self.metrics.record_invocation(
            endpoint,
            variant,
            status=status,
            model_latency_us=model_seconds * 1e6,
            overhead_latency_us=max(total - model_seconds, 0.0) * 1e6,
        )

    def _model_error(self, request: InvokeRequest, fleet: VariantFleet, status: int, message: str) -> ApiError:
        kind = "client" if 400 <= status < 500 else "server"
        original = message[:_ORIGINAL_MESSAGE_LIMIT]
        log_group = f"/aws/sagemaker/Endpoints/{request.endpoint_name}"
        arn = f"arn:aws:logs:{self.control.region}:{self.control.account_id}:log-group:{log_group}"
        return ApiError(
            424,
            "ModelError",
            f'Received {kind} error ({status}) from {fleet.name} with message "{original}". '
            f"See {self.control.work_dir / 'logs' / request.endpoint_name / fleet.name} for more information.",
            {"OriginalStatusCode": status, "OriginalMessage": original, "LogStreamArn": arn},
        )
