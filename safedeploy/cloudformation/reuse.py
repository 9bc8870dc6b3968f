"""Duplicate versions on AWS: the registered version a build reuses instead of training a twin.

``model/run.py`` (CodeBuild, the registry readable) computes the build's training-inputs digest exactly as the local
Train stage does (:func:`safedeploy.cloudformation.training_job.inputs_digest`) and asks :func:`find_reusable`.
A version is reused (the training stack's reuse variant: no training job, no baseline jobs, no
``CreateModelPackage``) only when all of these hold, else the build trains as usual and says why:

* the registry has a non-rejected version with that ``InputsSha256`` (:func:`safedeploy.registry.best_match`:
  production's first, then one never rolled back, then the newest);
* its model archive and its source archive (``sourcedir.tar.gz`` of its ``TrainingJobName``) still exist: the deploy
  stacks serve them (AWS-registered versions record no archive sha256 to verify, unlike local ones);
* production serves it (nothing to gate, as locally), or its recorded metrics still pass the spec's absolute gate
  (the gate is not part of the inputs);
* comparing with production (``gate.compare_with_production``): production serves it, or none serves yet, or it
  was compared with the version production serves now (``ComparedWithProductionVersion``) on the same held-out
  rows (identical data). Otherwise the normal variant trains and ``CompareWithProduction`` measures both
  (locally the reused version is measured in-process; CodeBuild has no scoring step to do that).

A fault rehearsal (``production.fault``) never reuses: it deploys a version of its own to roll back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from safedeploy import naming
from safedeploy.cloudformation.context import ReusedVersion
from safedeploy.errors import SafeDeployError
from safedeploy.registry import ModelPackage
from safedeploy.sagemaker_requests.training import source_archive_uri
from safedeploy.spec import PipelineSpec
from safedeploy.store import S3Uri
from safedeploy.training.gate import check_gate
from safedeploy.training.inputs import INPUTS_METADATA_KEY
from safedeploy.training.production import Production

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client

    from safedeploy.aws.registry import AwsModelRegistry

COMPARED_WITH_KEY = "ComparedWithProductionVersion"
"""The metadata the training state machine records: the production version its gate compared the candidate with."""


def _exists(s3: S3Client, uri: str) -> bool:
    try:
        parsed = S3Uri.parse(uri)
        s3.head_object(Bucket=parsed.bucket, Key=parsed.key)
    except (ClientError, BotoCoreError, ValueError, SafeDeployError):
        return False
    return True


def why_not_reusable(
    spec: PipelineSpec, package: ModelPackage, production: Production | None, s3: S3Client
) -> str | None:
    """Why ``package`` (identical inputs) cannot be reused; None if it can."""
    version = package.ModelPackageVersion
    job = package.CustomerMetadataProperties.get("TrainingJobName", "")
    execution = package.CustomerMetadataProperties.get("PipelineExecutionId", "")
    if not job or not execution:
        return f"v{version} records no TrainingJobName/PipelineExecutionId"
    if not _exists(s3, package.ModelDataUrl):
        return f"v{version}'s model archive {package.ModelDataUrl or '(none)'} is gone"
    source = source_archive_uri(naming.training_output_prefix(spec), job)
    if not _exists(s3, str(source)):
        return f"v{version}'s source archive {source} is gone"
    if production is not None and production.version == version:
        return None  # it already serves production: nothing to gate, as locally
    try:
        check_gate(spec.gate, dict(package.Metrics))
    except SafeDeployError as exc:
        return f"v{version}'s recorded metrics no longer pass the gate ({exc})"
    if spec.gate.compare_with_production and production is not None:
        compared = package.CustomerMetadataProperties.get(COMPARED_WITH_KEY)
        if compared != str(production.version):
            return (
                f"v{version} was compared with production {'v' + compared if compared else 'nothing'}, "
                f"production now serves v{production.version}: the comparison must be measured"
            )
    return None


def find_reusable(
    spec: PipelineSpec,
    registry: AwsModelRegistry,
    s3: S3Client,
    inputs_sha256: str,
    production: Production | None,
    say: Callable[[str], None] = print,
) -> ReusedVersion | None:
    """The registered version to reuse for these training inputs, or None (then ``say`` names why, if one matched)."""
    if spec.production.fault is not None:
        return None
    package = registry.find_by_inputs(naming.model_package_group(spec), inputs_sha256)
    if package is None:
        say(f"training inputs {inputs_sha256[:12]}: no registered version has them, training")
        return None
    reason = why_not_reusable(spec, package, production, s3)
    if reason is not None:
        say(f"identical inputs to v{package.ModelPackageVersion}, but {reason}: training anew")
        return None
    metadata = package.CustomerMetadataProperties
    reused = ReusedVersion(
        version=package.ModelPackageVersion,
        model_package_arn=package.ModelPackageArn,
        training_job_name=metadata["TrainingJobName"],
        execution_id=metadata["PipelineExecutionId"],
        model_data_url=package.ModelDataUrl,
        inputs_sha256=metadata.get(INPUTS_METADATA_KEY, inputs_sha256),
        serves_production=production is not None and production.version == package.ModelPackageVersion,
    )
    say(reused.describe() + (" (it already serves production)" if reused.serves_production else ""))
    return reused


def pipeline_variables(reused: ReusedVersion | None) -> dict[str, str]:
    """The Build action's exported variables (``model/buildspec.yml``): the pipeline's stage conditions read them.

    ``VERSION_SERVES_PRODUCTION`` is ``true`` only for a reused version production already serves: the approval
    and DeployPrd stages' entry conditions then skip them (``cdktf_app/pipeline.py``).
    """
    return {
        "REUSED_MODEL_VERSION": str(reused.version) if reused is not None else "none",
        "VERSION_SERVES_PRODUCTION": "true" if reused is not None and reused.serves_production else "false",
    }
