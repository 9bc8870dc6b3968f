"""Retraining on AWS: an alarm (or the retrain schedule) → the retraining state machine → the retraining build.

The drift and model-quality alarms go to ALARM after their own M-of-N periods. EventBridge sends that state change
to the ``<pipeline>-retraining`` state machine, which waits ``retraining.alarm_periods`` monitoring periods (the
debounce: an alarm that recovers meanwhile is not acted on) and then runs the ``<pipeline>-retrain`` CodeBuild
project with the trigger. The build runs ``safedeploy retraining check --target aws`` from the pipeline's repository:
the same retraining code as the local backend (the decision, the new data: the current data source plus the labelled
capture, through the Data stage), against AWS's state: the alarm still in ALARM since the same time, no execution
running, the cooldown over. It uploads the new data-source contract, whose upload starts the pipeline (the
data-upload rule), so the new model goes through every gate. The project runs one build at a time
(``concurrent_build_limit``), and the state machine is the only thing allowed to start it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.codebuild_project import (
    CodebuildProject,
    CodebuildProjectArtifacts,
    CodebuildProjectEnvironment,
    CodebuildProjectEnvironmentEnvironmentVariable,
    CodebuildProjectLogsConfig,
    CodebuildProjectLogsConfigCloudwatchLogs,
    CodebuildProjectSource,
)
from cdktf_cdktf_provider_aws.sfn_state_machine import (
    SfnStateMachine,
    SfnStateMachineEncryptionConfiguration,
    SfnStateMachineLoggingConfiguration,
    SfnStateMachineTracingConfiguration,
)
from constructs import Construct

from cdktf_app.build import build_environment
from cdktf_app.names import TerraformNames
from safedeploy import naming

BUILDSPEC = "model/retrain-buildspec.yml"
TRIGGER_VARIABLE = "SAFEDEPLOY_RETRAIN_TRIGGER"
"""The build's environment: the trigger as the execution records it ("alarm X in ALARM since T")."""
ALARM_VARIABLE = "SAFEDEPLOY_RETRAIN_ALARM"
"""The alarm that triggered it (empty for the schedule): the build checks it is still in ALARM since ``SINCE``."""
SINCE_VARIABLE = "SAFEDEPLOY_RETRAIN_SINCE"


def debounce_seconds(alarm_periods: int, schedule_expression: str) -> int:
    """How long an alarm must hold before the build runs: ``alarm_periods`` periods of the monitoring schedule.

    The alarms are fed once per monitoring execution, so their period is the schedule's.
    """
    from safedeploy.monitoring.schedule import parse_schedule  # croniter: only when the stack is synthesized

    return int(alarm_periods) * parse_schedule(schedule_expression).every_hours * 3600


def state_machine_definition(project: str) -> dict[str, Any]:
    """The retraining state machine: wait out the debounce, then run the retraining build to its end.

    Its input is what the EventBridge rules make of the event: ``trigger``, ``alarm``, ``since`` and
    ``waitSeconds`` (:func:`cdktf_app.events.retraining_input`).
    """
    return {
        "Comment": "Debounce a retraining alarm, then build the new data (safedeploy retraining check --target aws).",
        "QueryLanguage": "JSONata",
        "StartAt": "Debounce",
        "States": {
            "Debounce": {"Type": "Wait", "Seconds": "{% $states.input.waitSeconds %}", "Next": "Retrain"},
            "Retrain": {
                "Type": "Task",
                "Resource": "arn:aws:states:::codebuild:startBuild.sync",
                "Arguments": {
                    "ProjectName": project,
                    "EnvironmentVariablesOverride": [
                        {"Name": TRIGGER_VARIABLE, "Type": "PLAINTEXT", "Value": "{% $states.input.trigger %}"},
                        {"Name": ALARM_VARIABLE, "Type": "PLAINTEXT", "Value": "{% $states.input.alarm %}"},
                        {"Name": SINCE_VARIABLE, "Type": "PLAINTEXT", "Value": "{% $states.input.since %}"},
                    ],
                },
                "End": True,
            },
        },
    }


@dataclass(frozen=True, kw_only=True)
class RetrainingConfig:
    """The retraining build and its state machine.

    Attributes:
        names: The environment's names.
        key_arn: The pipeline key (logs, the state machine's data).
        build_role_arn: The retraining build's role (``<pipeline>-retrain``).
        states_role_arn: The state machine's role (``<pipeline>-retraining``).
        repository_clone_url: The pipeline's CodeCommit repository (HTTPS clone URL).
        branch: The branch the pipeline builds.
        log_retention_days: Retention of both log groups (a Terraform number expression).
        image: The build image.
        compute_type: The build compute type.
        timeout_minutes: The build timeout.
    """

    names: TerraformNames
    key_arn: str
    build_role_arn: str
    states_role_arn: str
    repository_clone_url: str
    branch: str
    log_retention_days: float
    image: str
    compute_type: str
    timeout_minutes: int


class Retraining(Construct):
    """The ``<pipeline>-retrain`` CodeBuild project and the ``<pipeline>-retraining`` state machine."""

    def __init__(self, scope: Construct, id_: str, *, config: RetrainingConfig) -> None:
        super().__init__(scope, id_)
        names = config.names
        project = names.name(naming.retraining_project)
        build_logs = CloudwatchLogGroup(
            self,
            "build_logs",
            name=f"/aws/codebuild/{project}",
            retention_in_days=config.log_retention_days,
            kms_key_id=config.key_arn,
        )
        self.project = CodebuildProject(
            self,
            "project",
            name=project,
            description=f"{names.pipeline}: builds the retraining data and submits it ({BUILDSPEC})",
            service_role=config.build_role_arn,
            encryption_key=config.key_arn,
            build_timeout=config.timeout_minutes,
            queued_timeout=60,
            concurrent_build_limit=1,
            source=CodebuildProjectSource(
                type="CODECOMMIT", location=config.repository_clone_url, git_clone_depth=1, buildspec=BUILDSPEC
            ),
            source_version=f"refs/heads/{config.branch}",
            artifacts=CodebuildProjectArtifacts(type="NO_ARTIFACTS"),
            environment=CodebuildProjectEnvironment(
                type="LINUX_CONTAINER",
                image=config.image,
                compute_type=config.compute_type,
                image_pull_credentials_type="CODEBUILD",
                privileged_mode=False,
                environment_variable=[
                    CodebuildProjectEnvironmentEnvironmentVariable(name=key, value=value, type="PLAINTEXT")
                    for key, value in {**build_environment(names), TRIGGER_VARIABLE: "manual (codebuild)"}.items()
                ],
            ),
            logs_config=CodebuildProjectLogsConfig(
                cloudwatch_logs=CodebuildProjectLogsConfigCloudwatchLogs(status="ENABLED", group_name=build_logs.name)
            ),
        )
        machine = names.name(naming.state_machine_name, "retraining")
        machine_logs = CloudwatchLogGroup(
            self,
            "state_machine_logs",
            name=f"/aws/vendedlogs/states/{machine}",
            retention_in_days=config.log_retention_days,
            kms_key_id=config.key_arn,
        )
        self.state_machine = SfnStateMachine(
            self,
            "state_machine",
            name=machine,
            type="STANDARD",
            role_arn=config.states_role_arn,
            definition=json.dumps(state_machine_definition(project), sort_keys=True),
            logging_configuration=SfnStateMachineLoggingConfiguration(
                level="ALL", include_execution_data=True, log_destination=f"{machine_logs.arn}:*"
            ),
            tracing_configuration=SfnStateMachineTracingConfiguration(enabled=True),
            encryption_configuration=SfnStateMachineEncryptionConfiguration(
                type="CUSTOMER_MANAGED_KMS_KEY", kms_key_id=config.key_arn, kms_data_key_reuse_period_seconds=300
            ),
        )

    @property
    def state_machine_arn(self) -> str:
        """The state machine the retraining rules start."""
        return self.state_machine.arn
