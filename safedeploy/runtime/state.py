"""Control-plane state of the local SageMaker: models, endpoint configs, endpoints, REST APIs.

Kept apart from request handling (as moto keeps its backends apart from its responses). Field names are
SageMaker's own, so a record dumps straight into the JSON the ``Describe*`` calls answer with. The whole
state is saved atomically after every change and reloaded when the runtime restarts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from safedeploy import constants as C

Name = Annotated[str, Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")]
"""SageMaker's resource-name rule: 1-63 letters, digits and inner hyphens."""
EndpointStatus = Literal["Creating", "Updating", "InService", "Failed", "Deleting"]


def now() -> datetime:
    """Timestamps are UTC."""
    return datetime.now(UTC)


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore")


class S3ModelDataSource(_Shape):
    """``ModelDataSource.S3DataSource``: where the model archive is, and its ``ETag``.

    This runtime serves one gzipped archive (``S3Object``, ``Gzip``) and requires its ``ETag``: the local
    artifact store's ETag is the object's sha256, the digest the registry recorded (``ModelDataETag``).
    """

    S3Uri: str
    S3DataType: Literal["S3Prefix", "S3Object"]
    CompressionType: Literal["None", "Gzip"]
    ETag: str | None = None


class ModelDataSourceShape(_Shape):
    """``ContainerDefinition.ModelDataSource`` (the shape's name in SageMaker's model: ``ModelDataSource``)."""

    S3DataSource: S3ModelDataSource


class ContainerDefinition(_Shape):
    """``PrimaryContainer`` of ``CreateModel``."""

    Image: str
    ModelDataUrl: str | None = None
    ModelDataSource: ModelDataSourceShape | None = None
    Environment: dict[str, str] = {}


class ModelRecord(_Shape):
    """A model: its container and where its artifacts are."""

    ModelName: Name
    ModelArn: str = ""
    PrimaryContainer: ContainerDefinition
    ExecutionRoleArn: str | None = None
    CreationTime: datetime = Field(default_factory=now)


class ProductionVariant(_Shape):
    """One variant of an endpoint config: a model, its instance count and traffic weight."""

    VariantName: Name
    ModelName: Name
    InitialInstanceCount: int = Field(default=1, ge=1, le=C.MAX_LOCAL_INSTANCES)
    InstanceType: str = "ml.m5.large"
    InitialVariantWeight: float = Field(default=1.0, ge=0, allow_inf_nan=False)


class CaptureOption(_Shape):
    """Capture the request (``Input``) and/or the response (``Output``)."""

    CaptureMode: Literal["Input", "Output", "InputAndOutput"]


class ContentTypeHeaders(_Shape):
    """Content types whose payloads are captured as text (``CSV``/``JSON`` encoding) instead of base64."""

    CsvContentTypes: list[str] = []
    JsonContentTypes: list[str] = []


class CaptureConfig(_Shape):
    """``DataCaptureConfig`` of ``CreateEndpointConfig``."""

    EnableCapture: bool = True
    InitialSamplingPercentage: int = Field(ge=0, le=100)
    DestinationS3Uri: str = Field(pattern=r"^s3://[^/]+(/.*)?$")
    KmsKeyId: str | None = None
    CaptureOptions: list[CaptureOption] = Field(min_length=1)
    CaptureContentTypeHeader: ContentTypeHeaders | None = None

    def captures(self, mode: Literal["Input", "Output"]) -> bool:
        """Whether this config captures requests (``Input``) or responses (``Output``)."""
        return any(o.CaptureMode in (mode, "InputAndOutput") for o in self.CaptureOptions)


class EndpointConfigRecord(_Shape):
    """An endpoint config: its variants and data capture."""

    EndpointConfigName: Name
    EndpointConfigArn: str = ""
    ProductionVariants: list[ProductionVariant] = Field(min_length=1, max_length=10)
    DataCaptureConfig: CaptureConfig | None = None
    CreationTime: datetime = Field(default_factory=now)


class VariantSummary(_Shape):
    """A variant as ``DescribeEndpoint`` reports it."""

    VariantName: str
    DeployedImages: list[dict[str, str]] = []
    CurrentWeight: float
    DesiredWeight: float
    CurrentInstanceCount: int
    DesiredInstanceCount: int


class DataCaptureConfigSummary(_Shape):
    """Data capture as ``DescribeEndpoint`` reports it."""

    EnableCapture: bool
    CaptureStatus: Literal["Started", "Stopped"]
    CurrentSamplingPercentage: int
    DestinationS3Uri: str


class EndpointRecord(_Shape):
    """An endpoint: which config it serves and how it is doing."""

    EndpointName: Name
    EndpointArn: str = ""
    EndpointConfigName: str
    EndpointStatus: EndpointStatus = "Creating"
    FailureReason: str | None = None
    ProductionVariants: list[VariantSummary] = []
    DataCaptureConfig: DataCaptureConfigSummary | None = None
    CreationTime: datetime = Field(default_factory=now)
    LastModifiedTime: datetime = Field(default_factory=now)


class RouteCanary(_Shape):
    """A second function version behind the route's alias, taking ``Weight`` of the requests.

    Lambda's alias routing (``RoutingConfig.AdditionalVersionWeights``), which CodeDeploy moves step by step
    during a canary or linear deployment: the primary version takes the rest.
    """

    Environment: dict[str, str]
    Weight: float = Field(ge=0.0, le=1.0)


class RestApiRoute(_Shape):
    """A REST API resource served by the local API gateway: path -> Lambda handler and its environment."""

    Path: str = Field(pattern=r"^/[A-Za-z0-9_\-/]*$")
    Handler: str
    """``<file.py>:<factory>``: the handler file and the function that builds a handler from (environ, client)."""
    Environment: dict[str, str] = {}
    ApiKeyRequired: bool = True
    UsagePlan: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    """The usage plan whose API key the route accepts (one per model, as on AWS); default: the route's name."""
    Canary: RouteCanary | None = None


class RuntimeState(_Shape):
    """Everything the control plane knows, saved as one JSON document."""

    Models: dict[str, ModelRecord] = {}
    EndpointConfigs: dict[str, EndpointConfigRecord] = {}
    Endpoints: dict[str, EndpointRecord] = {}
    Routes: dict[str, RestApiRoute] = {}
    ApiKeys: dict[str, str] = {}
    """API keys by usage plan (a model's REST APIs share one; models never share a key)."""

    @model_validator(mode="before")
    @classmethod
    def _one_key_per_model(cls, data: Any) -> Any:
        """Read a state saved when every model shared one key (``ApiKey``) as one key per model.

        Each route without a usage plan gets its model's (the first segment of its path, as the pipeline names
        a model's APIs). The shared key stays only where nothing shared it: the state's routes belong to one
        model. With several models it is dropped (every model's clients knew it), and the runtime issues each
        model a new key when it starts (:func:`plans_without_key`); ``make outputs`` prints it.
        """
        if not isinstance(data, dict) or "ApiKey" not in data:
            return data
        data = dict(data)
        shared = data.pop("ApiKey")
        routes = {
            name: dict(route) if isinstance(route, dict) else route
            for name, route in (data.get("Routes") or {}).items()
        }
        for route in routes.values():
            if isinstance(route, dict) and not route.get("UsagePlan") and isinstance(route.get("Path"), str):
                route["UsagePlan"] = route["Path"].strip("/").split("/")[0] or None
        data["Routes"] = routes
        plans = {
            route.get("UsagePlan")
            for route in routes.values()
            if isinstance(route, dict) and route.get("ApiKeyRequired", True)
        }
        keys = dict(data.get("ApiKeys") or {})
        if isinstance(shared, str) and shared and len(plans) == 1:
            keys.setdefault(next(iter(plans)), shared)
        data["ApiKeys"] = keys
        return data


def plans_without_key(state: RuntimeState) -> list[str]:
    """The usage plans that key-requiring routes name and that have no key (after reading a shared-key state)."""
    return sorted(
        {
            route.UsagePlan
            for route in state.Routes.values()
            if route.ApiKeyRequired and route.UsagePlan and route.UsagePlan not in state.ApiKeys
        }
    )
