"""Build the SageMaker ``CreateTrainingJob`` request from the spec and the data-source contract.

The local backend executes exactly this request; the AWS backend submits it (or renders it into the
training-job CloudFormation stack). Only the training image differs: see ``image_uri``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.sagemaker_requests import resource_tags
from safedeploy.spec import PipelineSpec
from safedeploy.store import S3Uri

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.literals import TrainingInstanceTypeType
    from mypy_boto3_sagemaker.type_defs import (
        ChannelTypeDef,
        CreateTrainingJobRequestTypeDef,
        OutputDataConfigTypeDef,
        ResourceConfigTypeDef,
    )

_CHANNELS = {C.TRAIN_CHANNEL: "TrainingUri", C.VALIDATION_CHANNEL: "ValidationUri", C.TEST_CHANNEL: "TestUri"}
_REPORTED = ("auc", "accuracy", "precision", "recall", "f1", "log_loss")
_REPORTED_SPLITS = ("validation", "test")
PRODUCTION_CHANNEL = "production"
"""The optional channel holding the production version's ``model.tar.gz``: the job scores the test channel with it."""
PRODUCTION_PREFIX = "production:"


def reported_metrics() -> tuple[str, ...]:
    """The metrics a training job reports (``MetricDefinitions``): what a quality gate can ask for."""
    return tuple(f"{split}:{metric}" for split in _REPORTED_SPLITS for metric in _REPORTED)


def production_metrics() -> tuple[str, ...]:
    """What a job with a production channel reports besides: production's test metrics (``production:test:auc``)."""
    return tuple(f"{PRODUCTION_PREFIX}test:{metric}" for metric in _REPORTED)


def source_archive_uri(output_prefix: S3Uri, job_name: str) -> S3Uri:
    """Where the job's ``sourcedir.tar.gz`` (the ``model/`` directory) is uploaded, as the SageMaker SDK does."""
    return output_prefix.join(job_name, "source", "sourcedir.tar.gz")


def training_job_request(
    spec: PipelineSpec,
    *,
    job_name: str,
    input_data: Mapping[str, str],
    hyperparameters: Mapping[str, str],
    output_prefix: S3Uri,
    image_uri: str,
    kms_key_id: str | None = None,
    production_model_uri: str | None = None,
) -> CreateTrainingJobRequestTypeDef:
    """Return the ``CreateTrainingJob`` request for one run of ``model/train.py`` in script mode.

    Args:
        spec: The pipeline spec (instance type, runtime limit, entry point).
        job_name: Unique training job name.
        input_data: ``inputData.json`` of the data-source contract (channel URIs).
        hyperparameters: ``hyperparameters.json`` of the data-source contract (string values).
        output_prefix: ``S3OutputPath``; artifacts land in ``<prefix>/<job>/output/``.
        image_uri: Training image (the AWS backend resolves the pinned XGBoost framework image).
        kms_key_id: KMS key for the model artifacts and the instance's volume (AWS; the local backend has none).
        production_model_uri: The ``model.tar.gz`` of the version serving production, if any: it becomes the
            ``production`` channel, and the job reports ``production:test:*`` beside the candidate's metrics.
    """
    channels: list[ChannelTypeDef] = []
    for channel, key in _CHANNELS.items():
        if key in input_data:
            channels.append(
                {
                    "ChannelName": channel,
                    "ContentType": "text/csv",
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": input_data[key],
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                }
            )
    if production_model_uri is not None:
        channels.append(
            {
                "ChannelName": PRODUCTION_CHANNEL,
                "ContentType": "application/x-gzip",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": production_model_uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        )
    metric_names = reported_metrics() + (production_metrics() if production_model_uri is not None else ())
    resources: ResourceConfigTypeDef = {
        "InstanceType": cast("TrainingInstanceTypeType", spec.training.instance_type),
        "InstanceCount": spec.training.instance_count,
        "VolumeSizeInGB": 10,
    }
    output: OutputDataConfigTypeDef = {"S3OutputPath": str(output_prefix)}
    if kms_key_id is not None:
        resources["VolumeKmsKeyId"] = kms_key_id
        output["KmsKeyId"] = kms_key_id
    return {
        "TrainingJobName": job_name,
        "RoleArn": naming.execution_role_arn(spec),
        "AlgorithmSpecification": {
            "TrainingImage": image_uri,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": name, "Regex": rf"#metric {name}=([-+0-9.eE]+)"} for name in metric_names],
        },
        "HyperParameters": {
            **hyperparameters,
            "sagemaker_program": spec.training.entry_point,
            "sagemaker_submit_directory": str(source_archive_uri(output_prefix, job_name)),
            "sagemaker_region": spec.region,
        },
        "InputDataConfig": channels,
        "OutputDataConfig": output,
        "ResourceConfig": resources,
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.training.max_runtime_seconds},
        "Tags": resource_tags(spec),
    }
