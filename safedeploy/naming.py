"""Names of buckets, keys, jobs and ARNs, shared by the local and AWS backends.

Both backends call these functions, so an artifact has the same ``s3://bucket/key`` on either, and several
pipelines (model x environment) coexist without clashing.
"""

from __future__ import annotations

import hashlib
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


def ground_truth_uri(spec: PipelineSpec) -> S3Uri:
    """Where ground-truth labels land (``GroundTruthS3Input``): ``<prefix>/yyyy/mm/dd/hh/`` by the hour collected.

    In the data bucket: labels are data the pipeline retrains on, like the raw tables.
    """
    return S3Uri(data_bucket(spec), f"{spec.model_name}/ground-truth")


def merged_ground_truth_uri(spec: PipelineSpec) -> S3Uri:
    """Captured records joined with their labels by the model-quality jobs' merge.

    Objects ``<prefix>/<endpoint>/yyyy/mm/dd/hh/<job>.jsonl`` (the hour of the window's start), one merged record
    a line: the capture record with ``groundTruthData`` added. Retraining reads every object under this prefix.
    """
    return S3Uri(artifact_bucket(spec), f"{spec.model_name}/merged-ground-truth")


def role_name(spec: PipelineSpec, service: str) -> str:
    """An IAM role of the base infrastructure: one per service, namespaced by model and environment."""
    return f"{spec.pipeline_name}-{service}"


def execution_role_arn(spec: PipelineSpec) -> str:
    """The SageMaker execution role the base infrastructure (``cdktf_app``) creates for this pipeline."""
    return f"arn:aws:iam::{spec.account_id}:role/{role_name(spec, 'sagemaker')}"


def monitor_role_arn(spec: PipelineSpec) -> str:
    """The role the monitor's Processing jobs (baseline and monitoring) run as: only what the analyzer touches."""
    return f"arn:aws:iam::{spec.account_id}:role/{role_name(spec, 'monitor')}"


STACK_KINDS: tuple[str, ...] = ("training-job", "suggest-baseline", "deploy-dev", "deploy-prd")
"""The per-model CloudFormation stacks ``model/run.py`` emits (the seed's names)."""
MODEL_TAG_KEY = "safedeploy:model"
"""The tag naming the model on what the per-model stacks create (a stack tag, and explicit where IAM depends on it)."""
ENVIRONMENT_TAG_KEY = "safedeploy:environment"
"""The tag naming the environment (dev, prod) beside :data:`MODEL_TAG_KEY`."""
DESTROY_ORDER: tuple[str, ...] = ("deploy-prd", "deploy-dev", "training-job", "suggest-baseline")
"""The order ``make destroy`` deletes them in: what serves traffic first, what it was built from last."""


def stack_name(spec: PipelineSpec, kind: str) -> str:
    """A per-model CloudFormation stack, as the seed names them: ``<model>-training-job``, ``<model>-deploy-prd``."""
    if kind not in STACK_KINDS:
        raise ValueError(f"unknown stack kind {kind!r}; expected one of {', '.join(STACK_KINDS)}")
    return f"{spec.model_name}-{kind}"


def retraining_project(spec: PipelineSpec) -> str:
    """The CodeBuild project that builds the retraining data and submits it (``safedeploy retraining check``)."""
    return f"{spec.pipeline_name}-retrain"


def retraining_parameter(spec: PipelineSpec) -> str:
    """The SSM parameter holding the last retraining's decision and times (the cooldown reads it)."""
    return f"/safedeploy/{spec.pipeline_name}/retraining"


def logs_bucket(spec: PipelineSpec) -> str:
    """Bucket receiving the S3 server access logs of the data and artifact buckets."""
    return _bucket(spec, "logs")


def kms_alias(spec: PipelineSpec) -> str:
    """Alias of the pipeline's customer-managed KMS key (buckets, capture, endpoints, topics)."""
    return f"alias/{spec.pipeline_name}"


def codepipeline_name(spec: PipelineSpec) -> str:
    """The AWS CodePipeline of this model and environment."""
    return spec.pipeline_name


def codecommit_repository(spec: PipelineSpec) -> str:
    """The CodeCommit repository holding this project (the seed's ``MLRepo``)."""
    return spec.pipeline_name


def codebuild_project(spec: PipelineSpec) -> str:
    """The CodeBuild project running ``model/buildspec.yml`` (which runs ``model/run.py``)."""
    return f"{spec.pipeline_name}-build"


def function_name(spec: PipelineSpec, purpose: str) -> str:
    """A Lambda function of the production stack: ``api``, ``pre-traffic-hook``, ``post-traffic-hook``."""
    return f"{spec.pipeline_name}-{purpose}"


def monitoring_schedule_name(spec: PipelineSpec) -> str:
    """The production endpoint's data-quality schedule (the ``MonitoringSchedule`` metric dimension)."""
    return f"{spec.pipeline_name}-data-quality"


def model_quality_schedule_name(spec: PipelineSpec) -> str:
    """The production endpoint's model-quality schedule (its executions' ``MonitoringSchedule`` dimension)."""
    return f"{spec.pipeline_name}-model-quality"


def model_quality_alarm_name(spec: PipelineSpec) -> str:
    """The AUC alarm on the model-quality schedule's ``auc`` metric (its state changes are EventBridge events)."""
    return alarm_name(spec, "model-quality")


def monitoring_reports_prefix(spec: PipelineSpec) -> S3Uri:
    """Where scheduled monitoring executions write ``constraint_violations.json`` and statistics."""
    return S3Uri(artifact_bucket(spec), f"{spec.model_name}/monitoring-reports")


STATE_MACHINE_KINDS: tuple[str, ...] = ("training-job", "suggest-baseline", "monitoring", "retraining", "model-quality")


def state_machine_name(spec: PipelineSpec, kind: str) -> str:
    """A Step Functions state machine of the per-model stacks.

    ``training-job`` / ``suggest-baseline`` (Train runs them), ``monitoring`` (the deploy-prd stack's, started by
    the data-quality schedule), ``model-quality`` (the deploy-prd stack's, started by the model-quality schedule),
    ``retraining`` (the base infrastructure's: a retraining alarm or the retrain schedule starts it; it waits out the
    debounce, then starts the retraining build).
    """
    if kind not in STATE_MACHINE_KINDS:
        raise ValueError(f"no state machine for stack kind {kind!r}")
    return f"{spec.pipeline_name}-{kind}"


def alarm_name(spec: PipelineSpec, purpose: str) -> str:
    """A CloudWatch alarm of this pipeline: ``drift`` (retrains via EventBridge), ``api-5xx``, ``api-latency``..."""
    return f"{spec.pipeline_name}-{purpose}"


def approval_topic(spec: PipelineSpec) -> str:
    """The SNS topic the manual approval action notifies."""
    return f"{spec.pipeline_name}-approval"


def baseline_job_name(spec: PipelineSpec, execution_id: str, now: datetime, kind: str = "") -> str:
    """A baseline processing job of one execution (at most 63 characters).

    ``kind``: ``data`` (training features), ``output`` (the model's validation scores) or ``quality`` (its model
    quality on the validation set), run by the training state machine; empty: Model Monitor's own job of the
    suggest-baseline stack (``monitoring.use_model_monitor``).
    """
    infix = f"-{kind}" if kind else ""
    return f"{spec.model_name}-baseline{infix}-{now:%Y%m%d-%H%M%S}-{execution_id[:8]}"


def model_package_group(spec: PipelineSpec) -> str:
    """The Model Registry group holding the model's versions (the seed's: the model name)."""
    return spec.model_name


def environment_claims_path(spec: PipelineSpec) -> str:
    """The SSM path under which each environment's base infrastructure claims the model in an account and region.

    The per-model stacks (``<model>-training-job``, ...), the registry group and the endpoints are named by model, not
    environment, so two environments of one model cannot share an account and region: the second one's plan fails
    on the first one's claim instead of its pipeline overwriting the other's stacks.
    """
    return f"/safedeploy/{spec.model_name}/environments"


def environment_claim(spec: PipelineSpec) -> str:
    """This environment's claim parameter under :func:`environment_claims_path`."""
    return f"{environment_claims_path(spec)}/{spec.environment}"


def lambda_code_uri(spec: PipelineSpec, sha256: str) -> S3Uri:
    """The Lambda functions' code bundle, content-addressed: ``<artifacts>/<model>/lambda/<sha256>.zip``."""
    return S3Uri(artifact_bucket(spec), f"{spec.model_name}/lambda/{sha256}.zip")


def rest_api_name(spec: PipelineSpec) -> str:
    """The production REST API (API Gateway) of this pipeline."""
    return f"{spec.pipeline_name}-api"


def notebook_instance_name(spec: PipelineSpec) -> str:
    """The project's SageMaker notebook instance (and its lifecycle configuration)."""
    return f"{spec.pipeline_name}-notebook"


def dashboard_name(spec: PipelineSpec) -> str:
    """The CloudWatch dashboard of this pipeline (API, Lambda, endpoints, pipeline triggers)."""
    return spec.pipeline_name


def alarm_topic(spec: PipelineSpec) -> str:
    """The SNS topic the base infrastructure's alarms and failed-execution notices go to."""
    return f"{spec.pipeline_name}-alarms"


def event_rule_name(spec: PipelineSpec, purpose: str) -> str:
    """An EventBridge rule of this pipeline: ``data-upload``, ``code-push``, ``drift-retrain``, ``retrain-schedule``."""
    return f"{spec.pipeline_name}-{purpose}"


def model_version_parameter(spec: PipelineSpec, execution_id: str) -> str:
    """The SSM parameter where an execution's training state machine records the version it registered.

    One per execution, so a later execution registering meanwhile cannot change what this one deploys.
    """
    return f"/safedeploy/{spec.pipeline_name}/executions/{execution_id}/model-version"


def auc_threshold_parameter(spec: PipelineSpec, execution_id: str) -> str:
    """The SSM parameter where an execution's training state machine records its model-quality AUC threshold.

    The threshold of the version's ``constraints.json`` (the spec's ``auc_threshold``, else the baseline's
    suggestion), known only once the baseline job ran: the deploy-prd stack's AUC alarm resolves it.
    """
    return f"/safedeploy/{spec.pipeline_name}/executions/{execution_id}/auc-threshold"


def version_baseline_prefix(spec: PipelineSpec, version: int) -> S3Uri:
    """Where a registered version's baselines live (``data/`` features, ``output/`` scores): its own, never shared."""
    return S3Uri(artifact_bucket(spec), f"{spec.model_name}/model-versions/{version}/baseline")


def execution_baseline_prefix(spec: PipelineSpec, execution_id: str) -> S3Uri:
    """Where an execution's baseline jobs write, before Register gives the baselines to the version."""
    return S3Uri(artifact_bucket(spec), f"{spec.model_name}/baseline-jobs/{execution_id}")


def monitoring_job_name(spec: PipelineSpec, kind: str, now: datetime, unique: str) -> str:
    """A baseline (``baseline``) or monitoring (``monitor``) processing job (at most 63 characters)."""
    return f"{spec.model_name}-{kind}-{now:%Y%m%d-%H%M%S}-{unique[:8]}"[:63]


def analyzer_code_prefix(spec: PipelineSpec, sha256: str) -> S3Uri:
    """The monitor's code, content-addressed: a Processing job's code input."""
    return S3Uri(artifact_bucket(spec), f"{spec.model_name}/monitor-code/{sha256[:16]}")


def drift_alarm_name(spec: PipelineSpec, feature: str | None = None) -> str:
    """The drift alarm (``None``: the one that combines every feature's, which retraining subscribes to)."""
    if feature is None:
        return alarm_name(spec, "drift")
    slug = "".join(ch if ch.isalnum() else "-" for ch in feature.lower()).strip("-")
    return alarm_name(spec, f"drift-{slug}")


def probe_canary_name(spec: PipelineSpec) -> str:
    """The standing probe's ``CanaryName``: ``<pipeline>-probe``, shortened to Synthetics' 21 characters.

    A longer pipeline name keeps its first characters and a 4-hex digest of the whole name, so two environments
    of one model still get different canaries.
    """
    suffix = "-probe"
    name = f"{spec.pipeline_name}{suffix}"
    if len(name) <= C.SYNTHETICS_NAME_MAX_LENGTH:
        return name
    digest = hashlib.sha256(spec.pipeline_name.encode()).hexdigest()[:4]
    keep = C.SYNTHETICS_NAME_MAX_LENGTH - len(suffix) - len(digest) - 1
    return f"{spec.pipeline_name[:keep].rstrip('-')}-{digest}{suffix}"


def probe_rows_uri(spec: PipelineSpec, version: int) -> S3Uri:
    """The standing probe's known rows for ``version`` (``pre-traffic-checks.json``'s shape), written by DeployPrd."""
    return S3Uri(artifact_bucket(spec), f"{spec.model_name}/probe/v{version}/known-rows.json")


def production_endpoint_parameter(spec: PipelineSpec) -> str:
    """The SSM parameter naming the endpoint production serves (``none`` before the first deployment).

    The base infrastructure creates it; the post-traffic hook records green there once it passed. The deploy-prd
    stack reads it when its update begins: that is blue, which green's latency alarm compares with and the
    synthetic canary scores the held-out rows on.
    """
    return f"/safedeploy/{spec.pipeline_name}/production-endpoint"
