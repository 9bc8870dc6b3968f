"""Production on the local runtime: the :class:`~safedeploy.blue_green.ProdHost` the blue/green controller drives.

Green endpoints are created with SageMaker's own calls (boto3 against the runtime), the production REST API's
alias weights are the gateway route's canary, window statistics come from the runtime's ``GetMetricStatistics``
(Invocations and Invocation5XXErrors sums, ModelLatency p99), and the synthetic canary requests go through the
REST API itself, like a client's, marked with the synthetic header.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import threading
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from lambdas.hooks.common import HookClients
from safedeploy import constants as C
from safedeploy import naming
from safedeploy.blue_green import PRE_TRAFFIC, SyntheticAnswer, WindowStats
from safedeploy.deployment import ModelSource, deploy
from safedeploy.errors import DeploymentError
from safedeploy.faults import FAULT_ENV
from safedeploy.ids import random_uuid
from safedeploy.lambda_invoke import LambdaContext, load_handler_factory
from safedeploy.ledger import ServedModel
from safedeploy.local import daemon
from safedeploy.local.routes import PROJECT_ROOT, api_route
from safedeploy.processes import process_start_ticks
from safedeploy.spec import PipelineSpec
from safedeploy.store import LocalArtifactStore

if TYPE_CHECKING:
    from pathlib import Path

    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

HOOKS_DIR = PROJECT_ROOT / "lambdas" / "hooks"


class ServingRuntime(Protocol):
    """What production needs of the local serving host (:class:`safedeploy.local.host.LocalServingHost`)."""

    state_dir: Path

    def info(self) -> daemon.RuntimeInfo: ...  # noqa: D102
    def sagemaker(self) -> SageMakerClient: ...  # noqa: D102
    def runtime(self) -> SageMakerRuntimeClient: ...  # noqa: D102
    def outputs(self) -> dict[str, str]: ...  # noqa: D102
    def unpublish_api(self, stage: str, lease: str | None = None) -> None: ...  # noqa: D102
    def publish_api(  # noqa: D102
        self,
        stage: str,
        endpoint_name: str,
        model_version: str,
        *,
        api_key_required: bool,
        canary: tuple[str, str, float] | None = None,
        lease: str | None = None,
    ) -> str: ...


@dataclass
class LocalProdHost:
    """Blue/green production on the local runtime."""

    host: ServingRuntime
    spec: PipelineSpec
    source: ModelSource
    execution_id: str
    synthetic_rows: Sequence[str]
    """Held-out rows (encoded CSV) the synthetic canary sends."""
    known_rows: Sequence[str] = ()
    expected: Sequence[float] = ()
    """Known rows and the archive's offline scores for them: what the pre-traffic hook checks green against."""
    _local: threading.local = field(default_factory=threading.local)
    _lease: str | None = None
    _next_row: int = 0

    def start_green(self, endpoint_name: str) -> ServedModel:
        """Create green's endpoint with capture on and wait for InService (a model that fails to load raises)."""
        deployed = deploy(
            self.host.sagemaker(),
            self.spec,
            self.source,
            stage=C.PRD_STAGE,
            execution_id=self.execution_id,
            endpoint_name=endpoint_name,
            instance_count=self.spec.production.instance_count,
            instance_type=self.spec.production.instance_type,
            extra_environment={FAULT_ENV: self.spec.production.fault} if self.spec.production.fault else None,
        )
        return ServedModel(deployed.endpoint_name, self.source.version, deployed.endpoint_config_name)

    def delete_endpoint(self, served: ServedModel) -> None:
        """DeleteEndpoint, then its config and model (whatever of them still exists)."""
        sagemaker = self.host.sagemaker()
        try:
            described = sagemaker.describe_endpoint(EndpointName=served.endpoint)
        except ClientError:
            return
        config_name = described["EndpointConfigName"]
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        models = [variant["ModelName"] for variant in config["ProductionVariants"]]
        sagemaker.delete_endpoint(EndpointName=served.endpoint)
        with contextlib.suppress(ClientError):  # already gone: the endpoint itself is what matters
            sagemaker.delete_endpoint_config(EndpointConfigName=config_name)
        for model in models:
            with contextlib.suppress(ClientError):
                sagemaker.delete_model(ModelName=model)

    def route(self, primary: ServedModel | None, canary: ServedModel | None, weight: float) -> None:
        """The production API's alias: ``primary``, and ``weight`` of the requests to ``canary``."""
        if primary is None:
            self.host.unpublish_api(C.PRD_STAGE, lease=self._lease)
            return
        self.host.publish_api(
            C.PRD_STAGE,
            primary.endpoint,
            str(primary.version),
            api_key_required=self.spec.serving.api_key_required,
            canary=(canary.endpoint, str(canary.version), weight) if canary is not None else None,
            lease=self._lease,
        )

    def acquire_lease(
        self, deployment_id: str, blue: ServedModel | None, green: ServedModel, hang_timeout_seconds: float
    ) -> None:
        """Lease the production route from the runtime: if this process is lost, the runtime rolls back to blue."""
        document = {
            "Pipeline": self.spec.pipeline_name,
            "Route": api_route(self.spec.model_name, C.PRD_STAGE)[0],
            "Blue": blue.as_dict() if blue else None,
            "Green": green.as_dict(),
            "HolderPid": os.getpid(),
            "HolderStartTicks": process_start_ticks(os.getpid()),
            "HangTimeoutSeconds": hang_timeout_seconds,
        }
        try:
            daemon.local_call(self.host.info(), "PUT", f"/_local/leases/{deployment_id}", document)
        except daemon.LocalRuntimeError as exc:
            raise DeploymentError(f"cannot start deployment {deployment_id}: {exc}") from None
        self._lease = deployment_id

    def renew_lease(self, deployment_id: str) -> bool:
        """Renew it; False once the runtime has rolled the deployment back (410)."""
        try:
            daemon.local_call(self.host.info(), "POST", f"/_local/leases/{deployment_id}/renew")
        except daemon.LocalRuntimeError as exc:
            if exc.status in (404, 410):
                return False
            raise
        return True

    def release_lease(self, deployment_id: str) -> None:
        """The deployment ended and the ledger says how."""
        daemon.local_call(self.host.info(), "DELETE", f"/_local/leases/{deployment_id}")
        self._lease = None

    def window(self, endpoint: str, start: datetime, end: datetime) -> WindowStats:
        """Invocations, 5XX errors and p99 model latency (ms) of the endpoint's traffic in ``[start, end)``."""
        period = max(1, round((end - start).total_seconds()))
        invocations = self._sum(endpoint, "Invocations", start, end, period)
        errors = self._sum(endpoint, "Invocation5XXErrors", start, end, period)
        points = self._points(
            endpoint, "ModelLatency", start, end, period, "&Statistics=Maximum&ExtendedStatistics=p99"
        )
        p99 = max((p["ExtendedStatistics"]["p99"] for p in points if "ExtendedStatistics" in p), default=None)
        slowest = max((p["Maximum"] for p in points if "Maximum" in p), default=None)
        return WindowStats(
            invocations,
            errors,
            None if p99 is None else p99 / 1000.0,
            None if slowest is None else slowest / 1000.0,
        )

    def _sum(self, endpoint: str, metric: str, start: datetime, end: datetime, period: int) -> float:
        return float(sum(p["Sum"] for p in self._points(endpoint, metric, start, end, period, "&Statistics=Sum")))

    def _points(
        self, endpoint: str, metric: str, start: datetime, end: datetime, period: int, extra: str
    ) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode(
            {
                "EndpointName": endpoint,
                "VariantName": C.DEFAULT_VARIANT,
                "MetricName": metric,
                "StartTime": start.isoformat(),
                "EndTime": end.isoformat(),
                "Period": period,
            }
        )
        reply = daemon.local_get(self.host.info(), f"/_local/metrics?{query}{extra}")
        return list(reply["Datapoints"])

    def send_synthetic(self) -> SyntheticAnswer:
        """POST one held-out row through the production REST API (keep-alive, one connection per thread)."""
        info = self.host.info()
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            port = urllib.parse.urlsplit(info.gateway_url).port
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            self._local.connection = connection
            self._local.key = self.host.outputs()["ApiKey"]
        index = self._next_row % len(self.synthetic_rows)
        self._next_row += 1
        headers = {
            "Content-Type": "text/csv",
            "Accept": "text/csv",
            C.API_KEY_HEADER: self._local.key,
            C.SYNTHETIC_HEADER: "1",
        }
        try:
            path = api_route(self.spec.model_name, C.PRD_STAGE)[1]
            connection.request("POST", path, body=self.synthetic_rows[index].encode(), headers=headers)
            reply = connection.getresponse()
            body = reply.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            self._local.connection = None
            raise
        endpoint = reply.getheader("X-SageMaker-Endpoint") or ""
        score: float | None = None
        if reply.status == 200:
            with contextlib.suppress(ValueError, IndexError):
                score = float(body.split()[0])
        return SyntheticAnswer(reply.status, index, endpoint, score)

    def reference_scores(self, blue: ServedModel) -> dict[int, float]:
        """Blue's scores for every synthetic row, in one InvokeEndpoint call to blue's endpoint."""
        reply = self.host.runtime().invoke_endpoint(
            EndpointName=blue.endpoint, ContentType="text/csv", Accept="text/csv", Body="\n".join(self.synthetic_rows)
        )
        scores = [float(line) for line in reply["Body"].read().decode("utf-8").split()]
        return dict(enumerate(scores))

    def run_hook(self, hook: str, deployment_id: str, green: ServedModel, since: datetime) -> tuple[str, str]:
        """Invoke the hook Lambda in-process with CodeDeploy's event; read back what it reported (exactly once)."""
        info = self.host.info()
        store = LocalArtifactStore(self.host.state_dir.resolve() / "s3")
        if hook == PRE_TRAFFIC:
            checks = naming.deployment_prefix(self.spec, deployment_id).join("pre-traffic-checks.json")
            document = {"rows": list(self.known_rows), "expected": list(self.expected), "tolerance": 1e-6}
            store.put_bytes(checks, json.dumps(document).encode(), "application/json")
            handler_file = HOOKS_DIR / "pre_traffic.py"
            budget = f"{self.spec.production.pre_traffic_latency_budget_ms:g}"  # as the stack renders it
            environment = {"ENDPOINT_NAME": green.endpoint, "CHECKS_URI": str(checks), "LATENCY_BUDGET_MS": budget}
        else:
            handler_file = HOOKS_DIR / "post_traffic.py"
            environment = {
                "ENDPOINT_NAME": green.endpoint,
                "CAPTURE_URI": str(naming.capture_uri(self.spec)),
                "DEPLOYMENT_STARTED": since.isoformat(),
                "MAX_ERROR_RATE": str(self.spec.alarms.deployment.error_rate.threshold),
                "MIN_REQUESTS": str(self.spec.alarms.deployment.min_requests),
            }
        clients = HookClients(
            codedeploy=daemon.codedeploy_client(info),
            sagemaker=self.host.sagemaker(),
            runtime=self.host.runtime(),
            store=store,
            metrics=_RuntimeMetrics(self),
        )
        execution_id = random_uuid()
        handler = load_handler_factory(f"{handler_file}:create_handler")(environment, clients)
        context = LambdaContext(function_name=f"{self.spec.model_name}-{hook}", region=self.spec.region)
        result = handler({"DeploymentId": deployment_id, "LifecycleEventHookExecutionId": execution_id}, context)
        message = str(result.get("message", "")) if isinstance(result, dict) else ""
        try:
            report = daemon.local_get(info, f"/_local/codedeploy/{deployment_id}/{execution_id}")
        except daemon.LocalRuntimeError:
            return "Failed", f"the {hook} hook never reported its status to CodeDeploy ({message})"
        if report.get("reports") != 1:
            return "Failed", f"the {hook} hook reported {report.get('reports')} times"
        return str(report["status"]), message


@dataclass(frozen=True)
class _RuntimeMetrics:
    """The hooks' view of endpoint metrics, from the runtime."""

    host: LocalProdHost

    def totals(self, endpoint: str, variant: str, start: datetime, end: datetime) -> tuple[float, float]:
        stats = self.host.window(endpoint, start, end)
        return stats.invocations, stats.errors_5xx
