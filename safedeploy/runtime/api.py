"""The runtime's HTTP face: SageMaker's control-plane API, SageMaker Runtime's InvokeEndpoint, and local extras.

* ``POST /`` with ``X-Amz-Target: CodeDeploy_20141006.PutLifecycleEventHookExecutionStatus``: what lifecycle
  hooks report (``GET /_local/codedeploy/{deploymentId}/{hookExecutionId}`` reads it back);
* ``POST /`` with ``X-Amz-Target: SageMaker.<Operation>``: the control plane, JSON 1.1 protocol (the boto3
  ``sagemaker`` client with ``endpoint_url`` pointed here works unchanged);
* ``POST /endpoints/{EndpointName}/invocations``: InvokeEndpoint, REST-JSON protocol, with the real headers
  (``Content-Type``, ``Accept``, ``X-Amzn-SageMaker-Custom-Attributes``, ``-Target-Variant``,
  ``-Inference-Id``) and error shapes (the boto3 ``sagemaker-runtime`` client works unchanged);
* ``GET /_local/health``, ``GET /_local/metrics`` (GetMetricStatistics' parameters as a query string),
  ``PUT`` / ``DELETE /_local/routes/{name}`` (a REST API route of the local gateway: its handler must be in
  ``lambdas/``; a route requiring a key gets its usage plan's, created on first use; a deployment's changes
  carry its lease in ``X-Safedeploy-Lease``); ``DELETE /_local/api-keys/{usagePlan}`` (API Gateway's
  ``DeleteApiKey`` for a model's usage plan, once no route uses it: ``destroy --model``);
* ``PUT`` / ``DELETE /_local/leases/{deploymentId}``, ``POST /_local/leases/{deploymentId}/renew``: a production
  deployment's lease on its route (:mod:`safedeploy.runtime.codedeploy.leases`).

Every request is authenticated before it gets here (:mod:`safedeploy.runtime.auth`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import ValidationError

from safedeploy import constants as C
from safedeploy.http.errors import ApiError
from safedeploy.http.json_documents import parse_document, parse_json
from safedeploy.ids import random_uuid
from safedeploy.metric_log import MetricLog
from safedeploy.metric_log import statistics as metric_statistics
from safedeploy.runtime.apigateway.gateway import new_api_key
from safedeploy.runtime.apigateway.handler_paths import handler_problem
from safedeploy.runtime.cloudwatch.metrics import STATISTICS, MetricStore
from safedeploy.runtime.codedeploy.hooks import TARGET_PREFIX as CODEDEPLOY_TARGET
from safedeploy.runtime.codedeploy.hooks import HookStatuses
from safedeploy.runtime.codedeploy.leases import LEASE_HEADER, LeaseKeeper
from safedeploy.runtime.request_shapes import validate_request
from safedeploy.runtime.sagemaker.control import ControlPlane
from safedeploy.runtime.sagemaker_runtime.invoke import Invoker, InvokeRequest, validation_error
from safedeploy.runtime.server import client_framing_errors
from safedeploy.runtime.state import RestApiRoute
from safedeploy.runtime.state_file import StateRecovery

LOG = logging.getLogger(__name__)
JSON_11 = "application/x-amz-json-1.1"
Operation = Callable[[dict[str, Any]], dict[str, Any] | Awaitable[dict[str, Any]]]


def _error_response(error: ApiError, request_id: str, content_type: str = "application/json") -> web.Response:
    return web.Response(
        status=error.status,
        body=json.dumps(error.body()).encode(),
        headers={"Content-Type": content_type, "x-amzn-ErrorType": error.code, "x-amzn-RequestId": request_id},
    )


def _retreat(previous: RestApiRoute | None, route: RestApiRoute) -> bool:
    """Whether a route change takes traffic away from a canary (a rollback): it may use the disk reserve."""
    return previous is not None and previous.Canary is not None and route.Canary is None


class RuntimeApi:
    """Request handling only; the state lives in :class:`ControlPlane` and :class:`Invoker`."""

    def __init__(
        self,
        control: ControlPlane,
        invoker: Invoker,
        metrics: MetricStore,
        on_routes_changed: Callable[[], None],
        metric_log: MetricLog | None = None,
        leases: LeaseKeeper | None = None,
    ) -> None:
        self.control = control
        self.invoker = invoker
        self.hooks = HookStatuses()
        self.metrics = metrics
        self.metric_log = metric_log
        self.on_routes_changed = on_routes_changed
        self.leases = leases
        self.state_recovery: StateRecovery | None = None
        """Set when the runtime started from the state's last good copy (reported by the health check)."""
        self.operations: dict[str, Operation] = {
            "CreateModel": control.create_model,
            "DescribeModel": control.describe_model,
            "DeleteModel": control.delete_model,
            "CreateEndpointConfig": control.create_endpoint_config,
            "DescribeEndpointConfig": control.describe_endpoint_config,
            "DeleteEndpointConfig": control.delete_endpoint_config,
            "CreateEndpoint": control.create_endpoint,
            "DescribeEndpoint": control.describe_endpoint,
            "UpdateEndpoint": control.update_endpoint,
            "UpdateEndpointWeightsAndCapacities": control.update_endpoint_weights_and_capacities,
            "ListEndpoints": control.list_endpoints,
            "DeleteEndpoint": control.delete_endpoint,
        }

    def app(self, *front_doors: Middleware) -> web.Application:
        """The runtime's HTTP app; ``front_doors`` (authentication) run first, inside the framing guard."""
        app = web.Application(
            client_max_size=C.INVOKE_MAX_PAYLOAD_BYTES + 1024 * 1024,
            middlewares=[client_framing_errors, *front_doors],
        )
        app.router.add_post("/", self.control_api)
        app.router.add_post("/endpoints/{name}/invocations", self.invoke)
        app.router.add_get("/_local/health", self.health)
        app.router.add_get("/_local/metrics", self.get_metric_statistics)
        app.router.add_put("/_local/routes/{name}", self.put_route)
        app.router.add_delete("/_local/routes/{name}", self.delete_route)
        app.router.add_delete("/_local/api-keys/{plan}", self.delete_api_key)
        app.router.add_get("/_local/codedeploy/{deployment}/{execution}", self.get_hook_status)
        app.router.add_put("/_local/leases/{deployment}", self.acquire_lease)
        app.router.add_post("/_local/leases/{deployment}/renew", self.renew_lease)
        app.router.add_delete("/_local/leases/{deployment}", self.release_lease)
        return app

    async def get_hook_status(self, request: web.Request) -> web.Response:
        """What a lifecycle hook reported (404 until it has)."""
        report = self.hooks.get(request.match_info["deployment"], request.match_info["execution"])
        if report is None:
            return web.json_response({"message": "no report yet"}, status=404)
        return web.json_response(report)

    async def control_api(self, request: web.Request) -> web.Response:
        """SageMaker's JSON 1.1 control-plane API."""
        request_id = random_uuid()
        target = request.headers.get("X-Amz-Target", "")
        operation: Operation | None
        if target == f"{CODEDEPLOY_TARGET}PutLifecycleEventHookExecutionStatus":
            operation = self.hooks.put
        else:
            operation = self.operations.get(target.removeprefix(C.SAGEMAKER_JSON_TARGET_PREFIX))
        if not target.startswith((C.SAGEMAKER_JSON_TARGET_PREFIX, CODEDEPLOY_TARGET)) or operation is None:
            known = ", ".join(sorted(self.operations))
            error = ApiError(400, "UnknownOperationException", f"unknown operation {target!r}; supported: {known}")
            return _error_response(error, request_id, JSON_11)
        try:
            document = parse_document(await request.read())
            if target.startswith(C.SAGEMAKER_JSON_TARGET_PREFIX):  # checked as SageMaker does, before acting on it
                validate_request("sagemaker", target.removeprefix(C.SAGEMAKER_JSON_TARGET_PREFIX), document)
            result = operation(document)
            if not isinstance(result, dict):
                result = await result
        except ApiError as error:
            return _error_response(error, request_id, JSON_11)
        except OSError as exc:  # the state could not be saved (a full disk): nothing changed, try again later
            LOG.error("%s failed: cannot save the runtime's state: %s", target, exc)
            unavailable = ApiError(503, "ServiceUnavailable", f"the runtime could not save its state: {exc}")
            return _error_response(unavailable, request_id, JSON_11)
        return web.Response(
            body=json.dumps(result).encode(), headers={"Content-Type": JSON_11, "x-amzn-RequestId": request_id}
        )

    async def invoke(self, request: web.Request) -> web.Response:
        """SageMaker Runtime ``InvokeEndpoint``."""
        request_id = random_uuid()
        headers = request.headers
        if (request.content_length or 0) > C.INVOKE_MAX_PAYLOAD_BYTES:
            too_large = validation_error(
                f"Request payload of {request.content_length} bytes exceeds the "
                f"{C.INVOKE_MAX_PAYLOAD_BYTES}-byte limit.",
                413,
            )
            return _error_response(too_large, request_id)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error_response(validation_error("Request payload exceeds the 6 MB limit.", 413), request_id)
        try:
            result = await self.invoker.invoke(
                InvokeRequest(
                    endpoint_name=request.match_info["name"],
                    body=body,
                    content_type=headers.get("Content-Type"),
                    accept=headers.get("Accept"),
                    custom_attributes=headers.get("X-Amzn-SageMaker-Custom-Attributes"),
                    target_variant=headers.get("X-Amzn-SageMaker-Target-Variant"),
                    inference_id=headers.get("X-Amzn-SageMaker-Inference-Id"),
                )
            )
        except ApiError as error:
            return _error_response(error, request_id)
        reply_headers = {
            "Content-Type": result.content_type,
            "x-Amzn-Invoked-Production-Variant": result.invoked_variant,
            "x-amzn-RequestId": request_id,
        }
        if result.custom_attributes:
            reply_headers["X-Amzn-SageMaker-Custom-Attributes"] = result.custom_attributes
        return web.Response(body=result.body, headers=reply_headers)

    async def health(self, _: web.Request) -> web.Response:
        """Liveness and a summary of what is served."""
        endpoints: dict[str, object] = {}
        for name, record in self.control.state.Endpoints.items():
            deployment = self.control.deployments.get(name)
            fleets = deployment.fleets.values() if deployment is not None else ()
            endpoints[name] = {
                "EndpointStatus": record.EndpointStatus,
                "Instances": {f.name: [i.process.pid for i in f.healthy_instances()] for f in fleets},
                "InstanceUrls": {f.name: [i.url for i in f.healthy_instances()] for f in fleets},
                "Spares": {f.name: [s.process.pid] for f in fleets if (s := f.spare()) is not None},
            }
        capture = self.invoker.capture.health()
        document = {
            "status": "ok",
            "pid": os.getpid(),
            "endpoints": endpoints,
            "capturePending": capture["Pending"],
            "capture": capture,
        }
        if self.state_recovery is not None:
            document["stateRecovery"] = self.state_recovery.as_dict()
        return web.json_response(document)

    async def get_metric_statistics(self, request: web.Request) -> web.Response:
        """``GetMetricStatistics`` for an endpoint variant (query: EndpointName, VariantName, MetricName, ...)."""
        query = request.query
        if query.get("Namespace", C.METRICS_NAMESPACE) != C.METRICS_NAMESPACE:
            return self._custom_metric_statistics(query)
        try:
            datapoints = self.metrics.get_metric_statistics(
                endpoint=query["EndpointName"],
                variant=query.get("VariantName", C.DEFAULT_VARIANT),
                metric=query["MetricName"],
                start=datetime.fromisoformat(query["StartTime"]),
                end=datetime.fromisoformat(query["EndTime"]),
                period=int(query.get("Period", "60")),
                statistics=tuple(query.get("Statistics", ",".join(STATISTICS)).split(",")),
                extended_statistics=tuple(filter(None, query.get("ExtendedStatistics", "").split(","))),
            )
        except KeyError as exc:
            return web.json_response({"message": f"missing query parameter {exc}"}, status=400)
        except (ValueError, OverflowError) as exc:  # OverflowError: a time or period beyond the calendar
            return web.json_response({"message": f"bad query: {exc}"}, status=400)
        return web.json_response({"Label": query["MetricName"], "Datapoints": datapoints})

    def _custom_metric_statistics(self, query: Any) -> web.Response:
        """Published metrics (the monitor's ``/aws/sagemaker/Endpoints/data-metric``), from the metric log.

        Query: ``Namespace``, ``MetricName``, ``Dimensions`` (JSON ``[{"Name": ..., "Value": ...}]``), ``StartTime``,
        ``EndTime``, ``Period`` (default 3600), ``Statistics``.
        """
        if self.metric_log is None:
            return web.json_response({"message": "this runtime keeps no published metrics"}, status=404)
        try:
            dimensions = {d["Name"]: d["Value"] for d in parse_json(query.get("Dimensions", "[]"))}
            start = datetime.fromisoformat(query["StartTime"])
            points = self.metric_log.query(
                query["Namespace"], query["MetricName"], dimensions, start, datetime.fromisoformat(query["EndTime"])
            )
            wanted = tuple(query.get("Statistics", ",".join(STATISTICS)).split(","))
            datapoints = metric_statistics(points, start, int(query.get("Period", "3600")), wanted)
        except KeyError as exc:
            return web.json_response({"message": f"missing query parameter {exc}"}, status=400)
        except (ValueError, TypeError, OverflowError) as exc:
            return web.json_response({"message": f"bad query: {exc}"}, status=400)
        except ApiError as exc:
            return web.json_response({"message": f"bad query: Dimensions: {exc.message}"}, status=400)
        return web.json_response({"Label": query["MetricName"], "Datapoints": datapoints})

    async def put_route(self, request: web.Request) -> web.Response:
        """Create or replace a REST API route of the local gateway."""
        try:
            route = RestApiRoute.model_validate_json(await request.read())
        except ValidationError as exc:
            return web.json_response({"message": str(exc)}, status=400)
        problem = handler_problem(route.Handler)
        if problem is not None:
            return web.json_response({"message": problem}, status=400)
        name = request.match_info["name"]
        refused = self._fence(name, request)
        if refused is not None:
            return refused
        previous = self.control.state.Routes.get(name)
        new_key = route.ApiKeyRequired and (route.UsagePlan or name) not in self.control.state.ApiKeys
        if new_key:
            self.control.state.ApiKeys[route.UsagePlan or name] = new_api_key()
        self.control.state.Routes[name] = route
        try:
            self.control.save(critical=_retreat(previous, route))
        except OSError as exc:  # memory follows disk: the route stays as it was
            self._undo_route(name, previous)
            if new_key:
                self.control.state.ApiKeys.pop(route.UsagePlan or name, None)
            return web.json_response({"message": f"the runtime could not save the route: {exc}"}, status=503)
        self.on_routes_changed()
        return web.json_response(route.model_dump())

    async def delete_route(self, request: web.Request) -> web.Response:
        """Remove a REST API route (idempotent: 200 whether or not it existed)."""
        name = request.match_info["name"]
        refused = self._fence(name, request)
        if refused is not None:
            return refused
        removed = self.control.state.Routes.pop(name, None)
        try:
            self.control.save(critical=True)
        except OSError as exc:
            self._undo_route(name, removed)
            return web.json_response({"message": f"the runtime could not save the route: {exc}"}, status=503)
        self.on_routes_changed()
        return web.json_response({"removed": removed is not None})

    async def delete_api_key(self, request: web.Request) -> web.Response:
        """Remove a usage plan's API key (idempotent); refused (409) while a route still accepts it."""
        plan = request.match_info["plan"]
        state = self.control.state
        users = sorted(n for n, r in state.Routes.items() if r.ApiKeyRequired and (r.UsagePlan or n) == plan)
        if users:
            message = f"usage plan {plan}'s key is still used by the routes {', '.join(users)}: delete them first"
            return web.json_response({"message": message}, status=409)
        removed = state.ApiKeys.pop(plan, None)
        try:
            self.control.save(critical=True)
        except OSError as exc:
            if removed is not None:
                state.ApiKeys[plan] = removed
            return web.json_response({"message": f"the runtime could not save the key's removal: {exc}"}, status=503)
        self.on_routes_changed()
        return web.json_response({"removed": removed is not None})

    def _undo_route(self, name: str, previous: RestApiRoute | None) -> None:
        if previous is None:
            self.control.state.Routes.pop(name, None)
        else:
            self.control.state.Routes[name] = previous

    def _fence(self, name: str, request: web.Request) -> web.Response | None:
        if self.leases is None:
            return None
        try:
            self.leases.check_route_change(name, request.headers.get(LEASE_HEADER))
        except ApiError as error:
            return _error_response(error, random_uuid())
        return None

    async def acquire_lease(self, request: web.Request) -> web.Response:
        """A deployment takes its lease on a production route (body: :class:`DeploymentLease` without the id)."""
        if self.leases is None:
            return web.json_response({"message": "this runtime keeps no leases"}, status=404)
        try:
            document = json.loads(await request.read() or b"{}")
            if not isinstance(document, dict):
                raise ValueError("the lease is not a JSON object")
            lease = self.leases.acquire(request.match_info["deployment"], document)
        except (ValueError, UnicodeDecodeError) as exc:
            return _error_response(ApiError(400, "SerializationException", str(exc)), random_uuid())
        except ApiError as error:
            return _error_response(error, random_uuid())
        except OSError as exc:
            return web.json_response({"message": f"the runtime could not save the lease: {exc}"}, status=503)
        return web.json_response(lease.model_dump(mode="json"))

    async def renew_lease(self, request: web.Request) -> web.Response:
        """The deployment's controller is alive (410 once the runtime has rolled its deployment back)."""
        if self.leases is None:
            return web.json_response({"message": "this runtime keeps no leases"}, status=404)
        try:
            self.leases.renew(request.match_info["deployment"])
        except ApiError as error:
            return _error_response(error, random_uuid())
        return web.json_response({"renewed": True})

    async def release_lease(self, request: web.Request) -> web.Response:
        """The deployment ended, recorded by its controller (idempotent)."""
        if self.leases is None:
            return web.json_response({"released": False})
        try:
            released = self.leases.release(request.match_info["deployment"])
        except OSError as exc:
            return web.json_response({"message": f"the runtime could not save the lease: {exc}"}, status=503)
        return web.json_response({"released": released})
