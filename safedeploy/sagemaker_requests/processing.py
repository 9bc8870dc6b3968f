"""Processing requests: the monitor's baseline and monitoring jobs (and Model Monitor's own baseline job).

Every ``CreateProcessingJob`` the project sends is built by :func:`processing_job_request`: one cluster, one
output, the spec's KMS key on both, the model's tags. The analyzer (``safedeploy/monitoring/analyzer/`` with
``safedeploy/features.py``, see :func:`safedeploy.shipping.analyzer_files`) ships as the job's code input: its
files, content-addressed under ``naming.analyzer_code_prefix``, land in ``/opt/ml/processing/input/code`` and run
on the framework image the project pins, with ``PYTHONPATH`` pointing there:
``python3 -m safedeploy.monitoring.analyzer.job``. Locally the same request runs as a child process
(``safedeploy/processing/local_job.py``), so the bundle is proven self-contained.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, cast

from safedeploy import naming
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.sagemaker_requests import resource_tags
from safedeploy.spec import PipelineSpec
from safedeploy.store import S3Uri

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.literals import ProcessingInstanceTypeType
    from mypy_boto3_sagemaker.type_defs import (
        AppSpecificationTypeDef,
        CreateProcessingJobRequestTypeDef,
        ProcessingClusterConfigTypeDef,
        ProcessingInputTypeDef,
        ProcessingOutputConfigTypeDef,
        ProcessingOutputTypeDef,
    )

CODE_PATH = "/opt/ml/processing/input/code"
OUTPUT_PATH = "/opt/ml/processing/output"
DATASET_PATH = "/opt/ml/processing/input/dataset"
ENDPOINT_PATH = "/opt/ml/processing/input/endpoint"
BASELINE_PATH = "/opt/ml/processing/input/baseline"
MODEL_PATH = "/opt/ml/processing/input/model"
ENTRYPOINT = ["python3", "-m", "safedeploy.monitoring.analyzer.job"]
VOLUME_GB = 20
METRICS_PUBLISHER_CLOUDWATCH = "cloudwatch"
MAX_PROCESSING_INPUTS = 10
"""``CreateProcessingJob`` takes at most 10 ``ProcessingInputs`` (the code and the baseline files included)."""


def _input(name: str, uri: S3Uri | str, local_path: str) -> ProcessingInputTypeDef:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": str(uri),
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def processing_job_request(
    spec: PipelineSpec,
    *,
    job_name: str,
    role_arn: str,
    app: AppSpecificationTypeDef,
    environment: Mapping[str, str],
    inputs: Sequence[ProcessingInputTypeDef],
    output: S3Uri,
    output_path: str,
    instance_type: str,
    max_runtime_seconds: int,
    kms_key_id: str | None,
    extra_outputs: Sequence[tuple[str, S3Uri, str]] = (),
) -> CreateProcessingJobRequestTypeDef:
    """The one ``CreateProcessingJob`` shape: one instance, ``EndOfJob`` outputs, KMS on volume and output.

    ``extra_outputs``: (name, S3 URI, local path) beside ``monitoring_output`` (model quality's merged records).
    """
    cluster: ProcessingClusterConfigTypeDef = {
        "InstanceCount": 1,
        "InstanceType": cast("ProcessingInstanceTypeType", instance_type),
        "VolumeSizeInGB": VOLUME_GB,
    }
    outputs: list[ProcessingOutputTypeDef] = [
        {
            "OutputName": name,
            "S3Output": {"S3Uri": str(uri), "LocalPath": local_path, "S3UploadMode": "EndOfJob"},
        }
        for name, uri, local_path in [("monitoring_output", output, output_path), *extra_outputs]
    ]
    output_config: ProcessingOutputConfigTypeDef = {"Outputs": outputs}
    if kms_key_id is not None:
        cluster["VolumeKmsKeyId"] = kms_key_id
        output_config["KmsKeyId"] = kms_key_id
    return {
        "ProcessingJobName": job_name,
        "RoleArn": role_arn,
        "AppSpecification": app,
        "Environment": dict(environment),
        "ProcessingInputs": list(inputs),
        "ProcessingOutputConfig": output_config,
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_seconds},
        "NetworkConfig": {"EnableInterContainerTrafficEncryption": True},
        "Tags": resource_tags(spec),
    }


def _request(
    spec: PipelineSpec,
    *,
    job_name: str,
    image_uri: str,
    code: S3Uri,
    inputs: Sequence[ProcessingInputTypeDef],
    output: S3Uri,
    environment: Mapping[str, str],
    kms_key_id: str | None,
    extra_outputs: Sequence[tuple[str, S3Uri, str]] = (),
) -> CreateProcessingJobRequestTypeDef:
    """A job of this project's analyzer: its code input first, ``PYTHONPATH`` on it, the monitor's role."""
    return processing_job_request(
        spec,
        job_name=job_name,
        role_arn=naming.monitor_role_arn(spec),
        app={"ImageUri": image_uri, "ContainerEntrypoint": list(ENTRYPOINT)},
        environment={"PYTHONPATH": CODE_PATH, **environment},
        inputs=[_input("code", code, CODE_PATH), *inputs],
        output=output,
        output_path=OUTPUT_PATH,
        instance_type=spec.monitoring.instance_type,
        max_runtime_seconds=spec.monitoring.max_runtime_seconds,
        kms_key_id=kms_key_id,
        extra_outputs=extra_outputs,
    )


def baseline_job_request(
    spec: PipelineSpec,
    *,
    job_name: str,
    dataset: S3Uri | str,
    output: S3Uri,
    code: S3Uri,
    image_uri: str,
    kms_key_id: str | None = None,
) -> CreateProcessingJobRequestTypeDef:
    """Suggest a baseline for a CSV with a header: ``statistics.json`` and ``constraints.json`` to ``output``."""
    return _request(
        spec,
        job_name=job_name,
        image_uri=image_uri,
        code=code,
        inputs=[_input("baseline_dataset_input", dataset, DATASET_PATH)],
        output=output,
        environment={
            F.ENV_ANALYSIS_TYPE: "SUGGEST_BASELINE",
            F.ENV_DATASET_FORMAT: F.DATASET_FORMAT_CSV_HEADER,
            F.ENV_DATASET_SOURCE: DATASET_PATH,
            F.ENV_OUTPUT_PATH: OUTPUT_PATH,
            F.ENV_PUBLISH_METRICS: "Disabled",
            F.ENV_COMPARISON_THRESHOLD: str(spec.monitoring.comparison_threshold),
            F.ENV_COMPARISON_METHOD: spec.monitoring.comparison_method,
        },
        kms_key_id=kms_key_id,
    )


def output_baseline_job_request(
    spec: PipelineSpec,
    *,
    job_name: str,
    dataset: S3Uri | str,
    model_archive: S3Uri | str,
    output: S3Uri,
    code: S3Uri,
    image_uri: str,
    kms_key_id: str | None = None,
) -> CreateProcessingJobRequestTypeDef:
    """Suggest the baseline of the model's scores (``SUGGEST_OUTPUT_BASELINE``) on a SageMaker CSV (label first).

    ``dataset`` is the validation channel, ``model_archive`` the training job's ``model.tar.gz``; writes
    ``statistics.json``, ``constraints.json`` and ``digests.json`` of the column ``score`` to ``output``.
    """
    return _request(
        spec,
        job_name=job_name,
        image_uri=image_uri,
        code=code,
        inputs=[
            _input("validation_dataset_input", dataset, DATASET_PATH),
            _input("model_archive_input", model_archive, MODEL_PATH),
        ],
        output=output,
        environment={
            F.ENV_ANALYSIS_TYPE: "SUGGEST_OUTPUT_BASELINE",
            F.ENV_DATASET_SOURCE: DATASET_PATH,
            F.ENV_MODEL_ARCHIVE: MODEL_PATH,
            F.ENV_OUTPUT_PATH: OUTPUT_PATH,
            F.ENV_PUBLISH_METRICS: "Disabled",
            F.ENV_COMPARISON_THRESHOLD: str(spec.monitoring.comparison_threshold),
            F.ENV_COMPARISON_METHOD: spec.monitoring.comparison_method,
        },
        kms_key_id=kms_key_id,
    )


@dataclass(frozen=True)
class BaselineUris:
    """A version's baseline files (features and, if present, the model's scores) and its feature schema."""

    statistics: str
    constraints: str
    feature_schema: str
    output_statistics: str | None = None
    output_constraints: str | None = None


def _timestamp(moment: datetime) -> str:
    """``2026-12-03T10:00:00Z``, with milliseconds only when the moment has them.

    A fast local clock's sub-second windows would otherwise collapse to empty ones.
    """
    millis = moment.microsecond // 1000
    return f"{moment:%Y-%m-%dT%H:%M:%S}" + (f".{millis:03d}" if millis else "") + "Z"


def execution_baseline(spec: PipelineSpec, execution_id: str, feature_schema: str) -> BaselineUris:
    """The baselines an execution's two baseline jobs write (features ``data/``, validation scores ``output/``).

    Under ``naming.execution_baseline_prefix``. On AWS the training state machine runs both jobs and registers
    these URIs with their sha256 (the version's ``DriftCheckBaselines`` and ``CustomerMetadataProperties.Output*``);
    the deploy-prd stack of the same execution (which serves that version) monitors against them.
    """
    prefix = naming.execution_baseline_prefix(spec, execution_id)
    data, output = prefix.join("data"), prefix.join("output")
    return BaselineUris(
        statistics=str(data.join(F.STATISTICS_FILE)),
        constraints=str(data.join(F.CONSTRAINTS_FILE)),
        feature_schema=feature_schema,
        output_statistics=str(output.join(F.STATISTICS_FILE)),
        output_constraints=str(output.join(F.CONSTRAINTS_FILE)),
    )


@dataclass(frozen=True)
class QualityBaselineUris:
    """A version's model-quality baseline (``DriftCheckBaselines.ModelQuality``)."""

    statistics: str
    constraints: str


def execution_quality_baseline(spec: PipelineSpec, execution_id: str) -> QualityBaselineUris:
    """The model-quality baseline an execution's ``quality`` baseline job writes (``<execution prefix>/quality/``).

    On AWS the training state machine runs that job and registers these URIs (``DriftCheckBaselines.ModelQuality``);
    the deploy-prd stack of the same execution judges production's model quality against its constraints.
    """
    folder = naming.execution_baseline_prefix(spec, execution_id).join("quality")
    return QualityBaselineUris(
        statistics=str(folder.join(F.STATISTICS_FILE)), constraints=str(folder.join(F.CONSTRAINTS_FILE))
    )


def monitoring_job_request(
    spec: PipelineSpec,
    *,
    job_name: str,
    schedule_name: str,
    endpoint: str,
    capture_prefixes: Sequence[S3Uri],
    start: datetime,
    end: datetime,
    baseline: BaselineUris,
    output: S3Uri,
    code: S3Uri,
    image_uri: str,
    kms_key_id: str | None = None,
    publish_to_cloudwatch: bool = False,
) -> CreateProcessingJobRequestTypeDef:
    """Analyse ``[start, end)`` of ``endpoint``'s capture (one input per hour folder, as Model Monitor stages it).

    ``publish_to_cloudwatch`` (AWS): the job publishes its metric lines itself (``metrics_publisher=cloudwatch``,
    PutMetricData in the spec's region); locally the monitor reads the lines and puts them in its metric log.
    """
    inputs: list[ProcessingInputTypeDef] = []
    for prefix in capture_prefixes:  # <capture>/<endpoint>/<variant>/yyyy/mm/dd/hh
        relative = prefix.key.split(f"/{endpoint}/", 1)[-1]
        inputs.append(_input(f"endpoint-{len(inputs)}", prefix, f"{ENDPOINT_PATH}/{endpoint}/{relative}"))
    files = {
        "statistics": baseline.statistics,
        "constraints": baseline.constraints,
        "schema": baseline.feature_schema,
        "output-statistics": baseline.output_statistics,
        "output-constraints": baseline.output_constraints,
    }
    environment = {
        F.ENV_ANALYSIS_TYPE: "MODEL_MONITOR",
        F.ENV_DATASET_FORMAT: F.DATASET_FORMAT_CAPTURE,
        F.ENV_DATASET_SOURCE: ENDPOINT_PATH,
        F.ENV_OUTPUT_PATH: OUTPUT_PATH,
        F.ENV_START_TIME: _timestamp(start),
        F.ENV_END_TIME: _timestamp(end),
        F.ENV_PUBLISH_METRICS: "Enabled",
        F.ENV_ENDPOINT_NAME: endpoint,
        F.ENV_SCHEDULE_NAME: schedule_name,
        F.ENV_SIGNIFICANCE: str(spec.monitoring.significance),
    }
    if publish_to_cloudwatch:
        environment[F.ENV_METRICS_PUBLISHER] = METRICS_PUBLISHER_CLOUDWATCH
        environment["AWS_DEFAULT_REGION"] = spec.region
    names = {
        "statistics": F.ENV_BASELINE_STATISTICS,
        "constraints": F.ENV_BASELINE_CONSTRAINTS,
        "schema": F.ENV_FEATURE_SCHEMA,
        "output-statistics": F.ENV_OUTPUT_BASELINE_STATISTICS,
        "output-constraints": F.ENV_OUTPUT_BASELINE_CONSTRAINTS,
    }
    for key, uri in files.items():
        if uri is None:
            continue
        filename = S3Uri.parse(uri).key.rsplit("/", 1)[-1]
        inputs.append(_input(f"baseline-{key}", uri, f"{BASELINE_PATH}/{key}"))
        environment[names[key]] = f"{BASELINE_PATH}/{key}/{filename}"
    return _request(
        spec,
        job_name=job_name,
        image_uri=image_uri,
        code=code,
        inputs=inputs,
        output=output,
        environment=environment,
        kms_key_id=kms_key_id,
    )


# --- Model quality ------------------------------------------------------------------------------------------
GROUND_TRUTH_PATH = "/opt/ml/processing/input/ground_truth"
MERGED_PATH = "/opt/ml/processing/merged"
_FOLDER_KEY = re.compile(r"(\d{4}/\d{2}/\d{2}(?:/\d{2})?)/?$")
"""A ground-truth hour (``yyyy/mm/dd/hh``) or day (``yyyy/mm/dd``, AWS's fallback) folder: its own local path."""


def _quality_settings(spec: PipelineSpec) -> dict[str, str]:
    quality = spec.monitoring.model_quality
    settings = {
        F.ENV_PROBLEM_TYPE: F.PROBLEM_TYPE_BINARY,
        F.ENV_PROBABILITY_THRESHOLD: str(quality.probability_threshold),
        F.ENV_BOOTSTRAP_SEED: str(quality.bootstrap_seed),
    }
    if quality.auc_threshold is not None:
        settings[F.ENV_AUC_THRESHOLD] = str(quality.auc_threshold)
    return settings


def model_quality_baseline_job_request(
    spec: PipelineSpec,
    *,
    job_name: str,
    dataset: S3Uri | str,
    model_archive: S3Uri | str,
    output: S3Uri,
    code: S3Uri,
    image_uri: str,
    evaluation_time: datetime,
    kms_key_id: str | None = None,
) -> CreateProcessingJobRequestTypeDef:
    """``SUGGEST_MODEL_QUALITY_BASELINE``: the model scored on the validation channel (label first) against its labels.

    Writes ``statistics.json`` (binary classification metrics), ``constraints.json`` and ``digests.json`` to
    ``output``. ``evaluation_time`` is written into the statistics (a parameter, so the same inputs give the same
    bytes).
    """
    return _request(
        spec,
        job_name=job_name,
        image_uri=image_uri,
        code=code,
        inputs=[
            _input("validation_dataset_input", dataset, DATASET_PATH),
            _input("model_archive_input", model_archive, MODEL_PATH),
        ],
        output=output,
        environment={
            F.ENV_ANALYSIS_TYPE: F.ANALYSIS_SUGGEST_MODEL_QUALITY_BASELINE,
            F.ENV_DATASET_SOURCE: DATASET_PATH,
            F.ENV_MODEL_ARCHIVE: MODEL_PATH,
            F.ENV_OUTPUT_PATH: OUTPUT_PATH,
            F.ENV_END_TIME: _timestamp(evaluation_time),
            F.ENV_PUBLISH_METRICS: "Disabled",
            **_quality_settings(spec),
        },
        kms_key_id=kms_key_id,
    )


def model_quality_job_request(
    spec: PipelineSpec,
    *,
    job_name: str,
    schedule_name: str,
    endpoint: str,
    capture_prefixes: Sequence[S3Uri],
    ground_truth_prefixes: Sequence[S3Uri],
    start: datetime,
    end: datetime,
    baseline_constraints: str | None,
    output: S3Uri,
    merged_output: S3Uri,
    code: S3Uri,
    image_uri: str,
    kms_key_id: str | None = None,
    publish_to_cloudwatch: bool = False,
) -> CreateProcessingJobRequestTypeDef:
    """``MODEL_QUALITY`` over the inferences of ``[start, end)``.

    ``capture_prefixes``: the endpoint's capture hour folders (as :func:`monitoring_job_request`);
    ``ground_truth_prefixes``: the ground-truth hour (or day) folders from the window's start to when the job runs
    (late labels), or the ground-truth root; ``baseline_constraints``: the serving version's model-quality
    ``constraints.json``; ``merged_output``: the folder the merged records go to, as ``<job_name>.jsonl``
    (``naming.merged_ground_truth_uri`` + ``/<endpoint>/yyyy/mm/dd/hh``).
    """
    inputs: list[ProcessingInputTypeDef] = []
    for prefix in capture_prefixes:
        relative = prefix.key.split(f"/{endpoint}/", 1)[-1]
        inputs.append(_input(f"endpoint-{len(inputs)}", prefix, f"{ENDPOINT_PATH}/{endpoint}/{relative}"))
    for index, prefix in enumerate(ground_truth_prefixes):
        folder = _FOLDER_KEY.search(prefix.key)
        local = f"{GROUND_TRUTH_PATH}/{folder.group(1)}" if folder else GROUND_TRUTH_PATH
        inputs.append(_input(f"ground-truth-{index}", prefix, local))
    environment = {
        F.ENV_ANALYSIS_TYPE: F.ANALYSIS_MODEL_QUALITY,
        F.ENV_DATASET_FORMAT: F.DATASET_FORMAT_CAPTURE,
        F.ENV_DATASET_SOURCE: ENDPOINT_PATH,
        F.ENV_GROUND_TRUTH_SOURCE: GROUND_TRUTH_PATH,
        F.ENV_OUTPUT_PATH: OUTPUT_PATH,
        F.ENV_MERGED_OUTPUT_PATH: MERGED_PATH,
        F.ENV_MERGED_FILE_NAME: job_name,
        F.ENV_START_TIME: _timestamp(start),
        F.ENV_END_TIME: _timestamp(end),
        F.ENV_PUBLISH_METRICS: "Enabled",
        F.ENV_ENDPOINT_NAME: endpoint,
        F.ENV_SCHEDULE_NAME: schedule_name,
        F.ENV_MIN_LABELLED_RECORDS: str(spec.monitoring.model_quality.min_labelled_records),
        **_quality_settings(spec),
    }
    if baseline_constraints is not None:
        inputs.append(_input("baseline-constraints", baseline_constraints, f"{BASELINE_PATH}/constraints"))
        filename = S3Uri.parse(baseline_constraints).key.rsplit("/", 1)[-1]
        environment[F.ENV_BASELINE_CONSTRAINTS] = f"{BASELINE_PATH}/constraints/{filename}"
    if publish_to_cloudwatch:
        environment[F.ENV_METRICS_PUBLISHER] = METRICS_PUBLISHER_CLOUDWATCH
        environment["AWS_DEFAULT_REGION"] = spec.region
    return _request(
        spec,
        job_name=job_name,
        image_uri=image_uri,
        code=code,
        inputs=inputs,
        output=output,
        environment=environment,
        kms_key_id=kms_key_id,
        extra_outputs=[("merged_ground_truth", merged_output, MERGED_PATH)],
    )


# --- Model Monitor's own analyzer (monitoring.use_model_monitor) ---------------------------------------------

MODEL_MONITOR_INPUT_NAME = "baseline_dataset_input"
MODEL_MONITOR_INPUT_PATH = f"/opt/ml/processing/input/{MODEL_MONITOR_INPUT_NAME}"
MONITOR_OUTPUT_PATH = OUTPUT_PATH
"""Model Monitor's analyzer container: where it writes statistics/constraints (the same path as this project's)."""
MODEL_MONITOR_MAX_RUNTIME_SECONDS = 3600


def monitor_dataset_format() -> str:
    """The analyzer's ``dataset_format``: CSV with a header (the baseline dataset of the Data stage)."""
    return json.dumps({"csv": {"header": True, "output_columns_position": "START"}}, separators=(",", ":"))


def model_monitor_baseline_job_request(
    spec: PipelineSpec,
    *,
    job_name: str,
    baseline_uri: str,
    output: S3Uri,
    image_uri: str,
    kms_key_id: str | None = None,
) -> CreateProcessingJobRequestTypeDef:
    """``CreateProcessingJob`` of Model Monitor's own suggest-baseline job (``monitoring.use_model_monitor``).

    It reads the Data stage's baseline CSV (training features with a header) and writes ``statistics.json`` and
    ``constraints.json`` to ``output`` (the execution's baseline prefix, never a shared key). Without the switch the
    stacks run this project's analyzer instead (:func:`baseline_job_request`).
    """
    return processing_job_request(
        spec,
        job_name=job_name,
        role_arn=naming.execution_role_arn(spec),
        app={"ImageUri": image_uri},
        environment={
            "dataset_format": monitor_dataset_format(),
            "dataset_source": MODEL_MONITOR_INPUT_PATH,
            "output_path": MONITOR_OUTPUT_PATH,
            "publish_cloudwatch_metrics": "Disabled",
        },
        inputs=[_input(MODEL_MONITOR_INPUT_NAME, baseline_uri, MODEL_MONITOR_INPUT_PATH)],
        output=output,
        output_path=MONITOR_OUTPUT_PATH,
        instance_type=spec.training.instance_type,
        max_runtime_seconds=MODEL_MONITOR_MAX_RUNTIME_SECONDS,
        kms_key_id=kms_key_id,
    )
