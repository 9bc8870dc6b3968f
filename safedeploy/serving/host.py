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

from safedeploy import constants as C
from safedeploy.errors import SafeDeployError
from safedeploy.serving import daemon
from safedeploy.serving.runtime import RuntimePaths
from safedeploy.serving.state import RuntimeState

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

PROJECT_ROOT = Path(__file__).resolve().parents[2]
API_HANDLER = PROJECT_ROOT / "lambdas" / "api" / "app.py"


class ServingHost(Protocol):
    """What deploy stages need from the place endpoints run."""

    def sagemaker(self) -> SageMakerClient:
        """A SageMaker control-plane client."""
        ...

    def runtime(self) -> SageMakerRuntimeClient:
        """A SageMaker Runtime (InvokeEndpoint) client."""
        ...

    def publish_api(self, endpoint_name: str, model_version: str, *, api_key_required: bool) -> str:
        """Point the REST API at an endpoint; return the API's URL."""
        ...

    def outputs(self) -> dict[str, str]:
        """The stack outputs: ApiUrl, ApiKey, EndpointName, RuntimeUrl, ..."""
        ...


@dataclass
class LocalServingHost:
    """The embedded runtime, started in the background on first use."""

    state_dir: Path
    region: str
    account_id: str
    _info: daemon.RuntimeInfo | None = field(default=None, init=False)

    def info(self) -> daemon.RuntimeInfo:
        """The running runtime (started if needed)."""
        if self._info is None:
            self._info = daemon.ensure_running(self.state_dir, self.region, self.account_id)
        return self._info

    def sagemaker(self) -> SageMakerClient:
        """boto3's ``sagemaker`` client pointed at the local runtime."""
        return daemon.sagemaker_client(self.info())

    def runtime(self) -> SageMakerRuntimeClient:
        """boto3's ``sagemaker-runtime`` client pointed at the local runtime."""
        return daemon.runtime_client(self.info())

    def publish_api(self, endpoint_name: str, model_version: str, *, api_key_required: bool) -> str:
        """Route ``POST /api`` to the API handler configured for ``endpoint_name``."""
        info = self.info()
        daemon.put_route(
            info,
            C.API_ROUTE_NAME,
            {
                "Path": C.API_PATH,
                "Handler": f"{API_HANDLER}:create_handler",
                "Environment": {"ENDPOINT_NAME": endpoint_name, "MODEL_VERSION": model_version},
                "ApiKeyRequired": api_key_required,
            },
        )
        return f"{info.gateway_url}{C.API_PATH}"

    def outputs(self) -> dict[str, str]:
        """What is served now, read from the running runtime and its saved state."""
        paths = RuntimePaths(self.state_dir.resolve())
        info = daemon.read_info(paths)
        if info is None:
            raise SafeDeployError(f"the local runtime is not running (state {paths.root}); run `make deploy`")
        state = RuntimeState.load(paths.state)
        outputs = {"RuntimeUrl": info.runtime_url, "Region": info.region, "ApiKey": state.ApiKey}
        route = state.Routes.get(C.API_ROUTE_NAME)
        if route is not None:
            outputs["ApiUrl"] = f"{info.gateway_url}{route.Path}"
            outputs["EndpointName"] = route.Environment.get("ENDPOINT_NAME", "")
            outputs["ModelVersion"] = route.Environment.get("MODEL_VERSION", "")
            endpoint = state.Endpoints.get(outputs["EndpointName"])
            if endpoint is not None:
                outputs["EndpointStatus"] = endpoint.EndpointStatus
                outputs["EndpointConfigName"] = endpoint.EndpointConfigName
        return outputs


def format_outputs(outputs: dict[str, str]) -> str:
    """Outputs as JSON, keys sorted."""
    return json.dumps(outputs, indent=2, sort_keys=True)
