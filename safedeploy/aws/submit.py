"""``make deploy TARGET=aws``: run the Data stage into the pipeline's S3 buckets, which starts CodePipeline.

The Data stage is the same code the local backend runs (:func:`~safedeploy.data.prepare.prepare_dataset`), given
the S3 artifact store instead of the local one. It writes the encoded splits, the baseline set and, last, the
seed's ``data-source.zip`` contract at :func:`~safedeploy.naming.data_source_uri`. That upload is the trigger:
the base infrastructure's EventBridge rule starts the pipeline, whose S3 source action reads the new version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from safedeploy import naming
from safedeploy.aws.s3_store import S3ArtifactStore
from safedeploy.data.prepare import PreparedData, prepare_dataset
from safedeploy.errors import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from safedeploy.spec import PipelineSpec


@dataclass(frozen=True)
class Submission:
    """What was uploaded, and the contract version that starts the pipeline."""

    prepared: PreparedData
    contract_uri: str
    contract_version: str | None
    pipeline: str


def require_base_infrastructure(s3: S3Client, spec: PipelineSpec) -> None:
    """Raise :class:`ConfigError` naming the bucket if the base infrastructure of ``spec`` is not applied."""
    for bucket in (naming.data_bucket(spec), naming.artifact_bucket(spec)):
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            why = "does not exist" if code in ("404", "NoSuchBucket", "NotFound") else f"is not accessible ({code})"
            raise ConfigError(
                f"bucket {bucket} {why}: apply the base infrastructure of {spec.pipeline_name} first "
                f"(make plan ENV={spec.environment}, review, then terraform apply in build/terraform/"
                f"{spec.environment}) with credentials for account {spec.account_id}"
            ) from None


def submit(spec: PipelineSpec, s3: S3Client, source: Path) -> Submission:
    """Validate, encode and upload ``source``; the contract upload starts the AWS pipeline.

    Nothing is uploaded unless the table is valid (``prepare_dataset`` renders everything in memory first).

    Raises:
        ConfigError: the base infrastructure is missing.
        DataValidationError: the table is invalid (every problem named).
    """
    require_base_infrastructure(s3, spec)
    prepared = prepare_dataset(spec, S3ArtifactStore(s3), source)
    contract = naming.data_source_uri(spec)
    head = s3.head_object(Bucket=contract.bucket, Key=contract.key)
    return Submission(prepared, str(contract), head.get("VersionId"), naming.codepipeline_name(spec))
