"""The Step Functions state machines of the stacks: standard, traced, logging to a KMS-encrypted group."""

from __future__ import annotations

from collections.abc import Sequence

from safedeploy import naming
from safedeploy.cloudformation.template import Json, Template, get_att, log_group
from safedeploy.spec import PipelineSpec

LOG_RETENTION_DAYS = 365
STATE_MACHINE = "StateMachine"


def role_arn(spec: PipelineSpec, service: str) -> str:
    """An IAM role of the base infrastructure (``naming.role_name``); the stacks create no roles."""
    return f"arn:aws:iam::{spec.account_id}:role/{naming.role_name(spec, service)}"


def add_state_machine(
    template: Template,
    spec: PipelineSpec,
    kind: str,
    definition: Json,
    kms_key: Json,
    depends_on: Sequence[str] = (),
    *,
    logical_id: str = STATE_MACHINE,
) -> str:
    """Add the ``kind`` state machine (``naming.state_machine_name``) and its log group (``<logical_id>Logs``)."""
    name = naming.state_machine_name(spec, kind)
    logs = log_group(template, f"{logical_id}Logs", f"/aws/vendedlogs/states/{name}", kms_key, LOG_RETENTION_DAYS)
    return template.add(
        logical_id,
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineName": name,
            "StateMachineType": "STANDARD",
            "RoleArn": role_arn(spec, "stepfunctions"),
            "Definition": definition,
            "LoggingConfiguration": {
                "Level": "ALL",
                "IncludeExecutionData": True,
                "Destinations": [{"CloudWatchLogsLogGroup": {"LogGroupArn": get_att(logs, "Arn")}}],
            },
            "TracingConfiguration": {"Enabled": True},
        },
        depends_on=depends_on,
    )
