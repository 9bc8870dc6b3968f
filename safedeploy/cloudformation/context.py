"""What one build renders the stacks from: the spec, the contract, the execution and the images."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.cloudformation.contract import DataSourceContract
from safedeploy.errors import ConfigError
from safedeploy.sagemaker_requests.processing import (
    BaselineUris,
    QualityBaselineUris,
    execution_baseline,
    execution_quality_baseline,
)
from safedeploy.sagemaker_requests.training import source_archive_uri
from safedeploy.spec import PipelineSpec
from safedeploy.store import S3Uri
from safedeploy.training.production import Production


@dataclass(frozen=True)
class Images:
    """The container images of the stacks' jobs and endpoints."""

    training: str
    serving: str
    processing: str
    """The monitor's Processing jobs (baseline, monitoring): the same pinned XGBoost framework image (it has
    python3, numpy, scipy and boto3, all the analyzer imports), its code a processing input."""
    model_monitor: str
    """Model Monitor's analyzer, only with ``monitoring.use_model_monitor`` (accounts that still have it)."""


def resolve_images(spec: PipelineSpec) -> Images:
    """SageMaker's images for the spec's region: the pinned XGBoost framework version, never ``latest``.

    Resolved offline by sagemaker-core's bundled image-URI tables (the ``aws`` extra). Model Monitor's
    analyzer image is published without a version tag; it is what SageMaker's own SDK uses.
    """
    version = spec.training.framework_version
    if version == "latest" or not version:
        raise ConfigError(
            f"training.framework_version must pin a version (e.g. {C.XGBOOST_FRAMEWORK_VERSION}), not 'latest'"
        )
    try:
        from sagemaker.core import image_uris  # type: ignore[import-untyped]  # no stubs (the aws extra)
    except ImportError:  # pragma: no cover - the aws extra is part of every install make creates
        raise ConfigError("sagemaker-core is not installed: install the project with its aws extra") from None
    try:
        xgboost = str(image_uris.retrieve("xgboost", region=spec.region, version=version))
        monitor = str(image_uris.retrieve("model-monitor", region=spec.region))
    except ValueError as exc:
        raise ConfigError(f"no SageMaker image for XGBoost {version} in {spec.region}: {exc}") from None
    if not xgboost.endswith(f":{version}"):
        raise ConfigError(f"the XGBoost image {xgboost} is not tagged with the pinned version {version}")
    return Images(training=xgboost, serving=xgboost, processing=xgboost, model_monitor=monitor)


@dataclass(frozen=True)
class ReusedVersion:
    """A registered version whose training inputs are this build's (``InputsSha256``): served instead of training.

    ``model/run.py`` finds it (:mod:`safedeploy.cloudformation.reuse`); the training stack's reuse variant runs no
    job and registers nothing, and the deploy stacks serve its archives and baselines.
    """

    version: int
    model_package_arn: str
    training_job_name: str
    """The job that trained it (its ``TrainingJobName`` metadata): its model and source archives."""
    execution_id: str
    """The pipeline execution that registered it (``PipelineExecutionId``): its baselines' prefix."""
    model_data_url: str
    inputs_sha256: str
    serves_production: bool
    """It is the version production serves now: DeployPrd (and the approval) are skipped."""

    def describe(self) -> str:
        """What the build and the state machine say about it."""
        return f"identical inputs to v{self.version}: reusing v{self.version}, no new version"


@dataclass(frozen=True)
class BuildContext:
    """One build of the stacks (one CodePipeline execution)."""

    spec: PipelineSpec
    execution_id: str
    started: datetime
    """When the build ran: names this execution's jobs; the post-traffic hook counts capture since then."""
    contract: DataSourceContract
    images: Images
    code_revision: str
    lambda_code: S3Uri
    """The content-addressed Lambda bundle (``naming.lambda_code_uri``)."""
    analyzer_code: S3Uri
    """The monitor's code, content-addressed (``naming.analyzer_code_prefix``): the Processing jobs' code input."""
    production: Production | None = None
    """The version serving production when the build ran (``model/run.py`` resolves it): the training job scores
    its archive too and the quality gate compares; None before a first deployment (absolute gate only)."""
    source_archive_sha256: str = ""
    """sha256 of the shipped ``sourcedir.tar.gz``: the code's identity when the revision is ``+dirty``/unknown."""
    reused: ReusedVersion | None = None
    """The registered version with this build's training inputs: no training, the stacks serve its artifacts."""

    def __post_init__(self) -> None:
        if self.started.tzinfo is None:
            raise ValueError("BuildContext.started must be timezone-aware")
        if len(self.execution_id) < 8:
            raise ConfigError(f"pipeline execution id {self.execution_id!r} is too short (need at least 8 chars)")

    @property
    def training_job_name(self) -> str:
        """This execution's training job (the reused version's, which trained the served model)."""
        if self.reused is not None:
            return self.reused.training_job_name
        return naming.training_job_name(self.spec, self.execution_id, self.started)

    @property
    def output_prefix(self) -> S3Uri:
        """``S3OutputPath`` of the training job."""
        return naming.training_output_prefix(self.spec)

    @property
    def source_archive(self) -> S3Uri:
        """The ``sourcedir.tar.gz`` (``model/`` + ``features.py``) run.py uploads for training and serving."""
        return source_archive_uri(self.output_prefix, self.training_job_name)

    @property
    def model_data_url(self) -> str:
        """Where SageMaker puts the trained model: ``<S3OutputPath>/<job>/output/model.tar.gz``."""
        if self.reused is not None:
            return self.reused.model_data_url
        return str(self.output_prefix.join(self.training_job_name, "output", C.MODEL_ARCHIVE))

    @property
    def baseline_job_name(self) -> str:
        """This execution's Model Monitor suggest-baseline job (``monitoring.use_model_monitor`` only)."""
        return naming.baseline_job_name(self.spec, self.execution_id, self.started)

    def baseline_job(self, kind: str) -> str:
        """This execution's ``data`` (features), ``output`` (validation scores) or ``quality`` baseline job."""
        return naming.baseline_job_name(self.spec, self.execution_id, self.started, kind)

    @property
    def model_monitor_baseline(self) -> BaselineUris:
        """Model Monitor's own baseline of the training features (``monitoring.use_model_monitor``).

        Its analyzer's files, beside (never over) this project's: ``<execution prefix>/model-monitor/``.
        """
        folder = naming.execution_baseline_prefix(self.spec, self.execution_id).join("model-monitor")
        return BaselineUris(
            statistics=str(folder.join("statistics.json")),
            constraints=str(folder.join("constraints.json")),
            feature_schema=self.contract.uri("FeatureSchemaUri"),
        )

    @property
    def baseline(self) -> BaselineUris:
        """The baseline this execution's job writes, which its version is registered with and monitored against."""
        return execution_baseline(self.spec, self.baseline_execution_id, self.contract.uri("FeatureSchemaUri"))

    @property
    def quality_baseline(self) -> QualityBaselineUris:
        """The model-quality baseline this execution's ``quality`` job writes (its version's ``ModelQuality``)."""
        return execution_quality_baseline(self.spec, self.baseline_execution_id)

    @property
    def baseline_execution_id(self) -> str:
        """The execution whose baseline jobs wrote the served version's baselines (the reused version's, else this)."""
        return self.reused.execution_id if self.reused is not None else self.execution_id
