"""Where endpoints are hosted, behind one small interface the deploy stages use.

:class:`ServingHost` gives the stages a SageMaker control-plane client (boto3's, whatever the backend) and a
way to publish the REST API in front of an endpoint. :class:`LocalServingHost` starts the local runtime on
first use; the AWS host (infrastructure issue) returns the real client and updates the Lambda function.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import ClientError

from safedeploy import constants as C
from safedeploy.local import daemon
from safedeploy.local.prod_host import LocalProdHost
from safedeploy.local.routes import API_HANDLER, api_route
from safedeploy.runtime.paths import RuntimePaths
from safedeploy.runtime.state_file import read_state

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

    from safedeploy.blue_green import ProdHost
    from safedeploy.deployment import ModelSource
    from safedeploy.spec import PipelineSpec


class ServingHost(Protocol):
    """What deploy stages need from the place endpoints run."""

    def sagemaker(self) -> SageMakerClient:
        """A SageMaker control-plane client."""
        ...

    def runtime(self) -> SageMakerRuntimeClient:
        """A SageMaker Runtime (InvokeEndpoint) client."""
        ...

    def publish_api(
        self,
        stage: str,
        endpoint_name: str,
        model_version: str,
        *,
        api_key_required: bool,
        canary: tuple[str, str, float] | None = None,
    ) -> str:
        """Point the model's REST API of a stage (``prd`` or ``dev``) at an endpoint; return the API's URL.

        ``canary`` (endpoint, version, weight) sends that share of requests to a second version, as a Lambda
        alias's routing configuration does during a CodeDeploy traffic shift.
        """
        ...

    def unpublish_api(self, stage: str) -> None:
        """Remove a stage's REST API (a first production deployment that rolled back leaves none)."""
        ...

    def production(
        self,
        spec: PipelineSpec,
        source: ModelSource,
        execution_id: str,
        synthetic_rows: Sequence[str],
        known: tuple[Sequence[str], Sequence[float]] = ((), ()),
    ) -> ProdHost:
        """What the blue/green controller drives to deploy ``source`` (``known``: rows and expected scores)."""
        ...

    def endpoint_exists(self, name: str) -> bool:
        """Whether an endpoint of that name exists (in any status)."""
        ...

    def outputs(self) -> dict[str, str]:
        """The stack outputs: ApiUrl, ApiKey, EndpointName (prod), DevApiUrl, DevEndpointName, RuntimeUrl, ...

        ``AccessKeyId`` / ``SecretAccessKey`` sign calls to the runtime API (boto3 with ``endpoint_url``).
        """
        ...


@dataclass
class LocalServingHost:
    """The embedded runtime, started in the background on first use."""

    state_dir: Path
    region: str
    account_id: str
    model_name: str = C.DEFAULT_MODEL_NAME
    """Whose REST APIs this host publishes and reports (several models share one runtime)."""
    ports: tuple[int, int] = (0, 0)
    """The runtime API's and the gateway's ports (0: those used before, else free ones)."""
    _info: daemon.RuntimeInfo | None = field(default=None, init=False)

    def info(self) -> daemon.RuntimeInfo:
        """The running runtime (started if needed)."""
        if self._info is None:
            self._info = daemon.ensure_running(self.state_dir, self.region, self.account_id, self.ports)
        return self._info

    def sagemaker(self) -> SageMakerClient:
        """boto3's ``sagemaker`` client pointed at the local runtime."""
        return daemon.sagemaker_client(self.info())

    def runtime(self) -> SageMakerRuntimeClient:
        """boto3's ``sagemaker-runtime`` client pointed at the local runtime."""
        return daemon.runtime_client(self.info())

    def publish_api(
        self,
        stage: str,
        endpoint_name: str,
        model_version: str,
        *,
        api_key_required: bool,
        canary: tuple[str, str, float] | None = None,
        lease: str | None = None,
    ) -> str:
        """Route ``POST /<model>/api`` (prd) or ``/<model>/dev/api`` to the API handler for ``endpoint_name``.

        ``lease``: the production deployment making the change (the runtime fences it with that deployment's lease).
        """
        info = self.info()
        route, path = api_route(self.model_name, stage)
        document: dict[str, object] = {
            "Path": path,
            "Handler": f"{API_HANDLER}:create_handler",
            "Environment": {"ENDPOINT_NAME": endpoint_name, "MODEL_VERSION": model_version},
            "ApiKeyRequired": api_key_required,
            "UsagePlan": self.model_name,  # the model's APIs (dev and prd) share its key, no other model's
        }
        if canary is not None:
            endpoint, version, weight = canary
            document["Canary"] = {
                "Environment": {"ENDPOINT_NAME": endpoint, "MODEL_VERSION": version},
                "Weight": weight,
            }
        daemon.put_route(info, route, document, lease)
        return f"{info.gateway_url}{path}"

    def unpublish_api(self, stage: str, lease: str | None = None) -> None:
        """Remove the route."""
        daemon.delete_route(self.info(), api_route(self.model_name, stage)[0], lease)

    def endpoint_exists(self, name: str) -> bool:
        """DescribeEndpoint answers for it."""
        try:
            self.sagemaker().describe_endpoint(EndpointName=name)
        except ClientError:
            return False
        return True

    def production(
        self,
        spec: PipelineSpec,
        source: ModelSource,
        execution_id: str,
        synthetic_rows: Sequence[str],
        known: tuple[Sequence[str], Sequence[float]] = ((), ()),
    ) -> ProdHost:
        """Blue/green production on this runtime."""
        return LocalProdHost(self, spec, source, execution_id, synthetic_rows, known[0], known[1])

    def outputs(self) -> dict[str, str]:
        """What is served now, read from the running runtime and its saved state (the model's own API key)."""
        paths = RuntimePaths(self.state_dir.resolve())
        info = daemon.read_info(paths)
        if info is None:
            raise daemon.LocalRuntimeError(f"the local runtime is not running (state {paths.root}); run `make deploy`")
        state = read_state(paths.state)
        credentials = info.signing_credentials()
        outputs = {
            "RuntimeUrl": info.runtime_url,
            "Region": info.region,
            "AccessKeyId": credentials.access_key_id,
            "SecretAccessKey": credentials.secret_access_key,
        }
        if self.model_name in state.ApiKeys:
            outputs["ApiKey"] = state.ApiKeys[self.model_name]
        for stage, prefix in ((C.PRD_STAGE, ""), (C.DEV_STAGE, "Dev")):
            route_name = api_route(self.model_name, stage)[0]
            route = state.Routes.get(route_name)
            if route is None:
                continue
            outputs[f"{prefix}ApiUrl"] = f"{info.gateway_url}{route.Path}"
            outputs[f"{prefix}EndpointName"] = route.Environment.get("ENDPOINT_NAME", "")
            outputs[f"{prefix}ModelVersion"] = route.Environment.get("MODEL_VERSION", "")
            endpoint = state.Endpoints.get(outputs[f"{prefix}EndpointName"])
            if endpoint is not None:
                outputs[f"{prefix}EndpointStatus"] = endpoint.EndpointStatus
                outputs[f"{prefix}EndpointConfigName"] = endpoint.EndpointConfigName
        return outputs


def format_outputs(outputs: Mapping[str, object]) -> str:
    """Outputs as JSON, keys sorted."""
    return json.dumps(outputs, indent=2, sort_keys=True)
