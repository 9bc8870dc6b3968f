"""Model Monitor on the production endpoint: an hourly data-quality schedule against the suggested baseline.

Captured requests are compared with ``constraints.json`` / ``statistics.json`` from the suggest-baseline
stack; reports (``constraint_violations.json``, statistics) go to ``naming.monitoring_reports_prefix`` and the
drift metrics to CloudWatch, where the drift alarm reads them.
"""

from __future__ import annotations

from typing import Any

from safedeploy import naming
from safedeploy.cloudformation.context import BuildContext
from safedeploy.cloudformation.template import Json, Template, get_att
from safedeploy.sagemaker_requests import MONITOR_OUTPUT_PATH, baseline_files

SCHEDULE_EXPRESSION = "cron(0 * ? * * *)"
"""Hourly, on the hour (Model Monitor's finest schedule)."""
ENDPOINT_INPUT_PATH = "/opt/ml/processing/input/endpoint"
MONITOR_INSTANCE_TYPE = "ml.m5.xlarge"
MONITOR_MAX_RUNTIME_SECONDS = 1800
JOB_DEFINITION, SCHEDULE = "DataQualityJobDefinition", "MonitoringSchedule"


def add_data_quality_monitoring(template: Template, ctx: BuildContext, endpoint: Any, kms_key: Json) -> str:
    """Add the job definition and the schedule on ``endpoint``; return the schedule's logical id.

    The job definition has no fixed name: every property change replaces it, and a generated name lets the
    new definition exist beside the old one while the schedule switches over.
    """
    spec = ctx.spec
    statistics, constraints = baseline_files(spec)
    definition = template.add(
        JOB_DEFINITION,
        "AWS::SageMaker::DataQualityJobDefinition",
        {
            "DataQualityAppSpecification": {
                "ImageUri": ctx.images.model_monitor,
                # The captured data's format comes from data capture; the drift alarm reads the published metrics.
                "Environment": {"publish_cloudwatch_metrics": "Enabled"},
            },
            "DataQualityBaselineConfig": {
                "ConstraintsResource": {"S3Uri": str(constraints)},
                "StatisticsResource": {"S3Uri": str(statistics)},
            },
            "DataQualityJobInput": {
                "EndpointInput": {
                    "EndpointName": endpoint,
                    "LocalPath": ENDPOINT_INPUT_PATH,
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "DataQualityJobOutputConfig": {
                "KmsKeyId": kms_key,
                "MonitoringOutputs": [
                    {
                        "S3Output": {
                            "S3Uri": str(naming.monitoring_reports_prefix(spec)),
                            "LocalPath": MONITOR_OUTPUT_PATH,
                            "S3UploadMode": "EndOfJob",
                        }
                    }
                ],
            },
            "JobResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": MONITOR_INSTANCE_TYPE,
                    "VolumeSizeInGB": 20,
                    "VolumeKmsKeyId": kms_key,
                }
            },
            "NetworkConfig": {"EnableInterContainerTrafficEncryption": True},
            "RoleArn": naming.execution_role_arn(spec),
            "StoppingCondition": {"MaxRuntimeInSeconds": MONITOR_MAX_RUNTIME_SECONDS},
        },
    )
    return template.add(
        SCHEDULE,
        "AWS::SageMaker::MonitoringSchedule",
        {
            "MonitoringScheduleName": naming.monitoring_schedule_name(spec),
            "EndpointName": endpoint,
            "MonitoringScheduleConfig": {
                "MonitoringJobDefinitionName": get_att(definition, "JobDefinitionName"),
                "MonitoringType": "DataQuality",
                "ScheduleConfig": {"ScheduleExpression": SCHEDULE_EXPRESSION},
            },
        },
    )
