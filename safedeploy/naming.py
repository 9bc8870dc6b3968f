"""Names of buckets, keys, jobs and ARNs, shared by the local and AWS backends.

Both backends call these functions, so an artifact has the same ``s3://bucket/key`` on either, and several
pipelines (model x environment) coexist without clashing.
"""

from __future__ import annotations

from datetime import datetime

from safedeploy import constants as C
from safedeploy.spec import PipelineSpec
from safedeploy.store import S3Uri


def _bucket(spec: PipelineSpec, purpose: str) -> str:
    name = f"{spec.model_name}-{spec.environment}-{purpose}-{spec.account_id}-{spec.region}"
    if len(name) > 63:  # S3's limit; the spec's field patterns keep names well inside it
        raise ValueError(f"bucket name {name!r} is longer than 63 characters")
    return name


def data_bucket(spec: PipelineSpec) -> str:
    """Bucket for raw data, prepared datasets and the data-source contract."""
    return _bucket(spec, "data")


def artifact_bucket(spec: PipelineSpec) -> str:
    """Bucket for training outputs (model archives, metrics)."""
    return _bucket(spec, "artifacts")


def raw_data_uri(spec: PipelineSpec, data_sha256: str, filename: str) -> S3Uri:
    """Where a validated raw input table is kept, by content hash."""
    return S3Uri(data_bucket(spec), f"{spec.model_name}/raw/{data_sha256[:16]}/{filename}")


def dataset_prefix(spec: PipelineSpec, dataset_id: str) -> S3Uri:
    """Prefix of one prepared dataset (train/validation/test/baseline + feature schema)."""
    return S3Uri(data_bucket(spec), f"{spec.model_name}/datasets/{dataset_id}")


def data_source_uri(spec: PipelineSpec) -> S3Uri:
    """The seed's data-source contract object (uploading it triggers the pipeline on AWS)."""
    return S3Uri(data_bucket(spec), f"{spec.model_name}/{C.DATA_SOURCE_ARCHIVE}")


def training_output_prefix(spec: PipelineSpec) -> S3Uri:
    """``OutputDataConfig.S3OutputPath`` of training jobs; SageMaker appends ``<job>/output/``."""
    return S3Uri(artifact_bucket(spec), f"{spec.model_name}/training-jobs")


def training_job_name(spec: PipelineSpec, execution_id: str, now: datetime) -> str:
    """A unique SageMaker-valid training job name (at most 63 characters)."""
    return f"{spec.model_name}-{now:%Y%m%d-%H%M%S}-{execution_id[:8]}"


def endpoint_name(spec: PipelineSpec, stage: str) -> str:
    """The stable endpoint of a deployment stage (``dev`` or ``prd``), as the seed names them."""
    return f"{spec.model_name}-{stage}"


def green_endpoint_name(spec: PipelineSpec, version: int, execution_id: str) -> str:
    """A production (blue/green) endpoint: one per deployed version, namespaced by model and stage."""
    return f"{spec.model_name}-{C.PRD_STAGE}-v{version}-{execution_id[:8]}"


def deployment_suffix(version: int, execution_id: str) -> str:
    """Unique suffix for the model and endpoint config of one deployment."""
    return f"v{version}-{execution_id[:8]}"


def deployment_prefix(spec: PipelineSpec, deployment_id: str) -> S3Uri:
    """Where one production deployment keeps its files (the hooks' known rows, ...)."""
    return S3Uri(artifact_bucket(spec), f"{spec.model_name}/deployments/{deployment_id}")


def capture_uri(spec: PipelineSpec) -> S3Uri:
    """``DataCaptureConfig.DestinationS3Uri``: SageMaker appends ``<endpoint>/<variant>/yyyy/mm/dd/hh/``."""
    return S3Uri(artifact_bucket(spec), f"{spec.model_name}/datacapture")


def execution_role_arn(spec: PipelineSpec) -> str:
    """The SageMaker execution role the infrastructure issue creates."""
    return f"arn:aws:iam::{spec.account_id}:role/{spec.model_name}-sagemaker-role"
