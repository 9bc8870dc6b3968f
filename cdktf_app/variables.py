"""The Terraform variables of an environment's root: what a reviewer sets per deployment in ``terraform.tfvars.json``.

Every variable is typed, described, validated and defaults to the environment's :class:`EnvironmentConfig` value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cdktf import Fn, Op, TerraformVariable, Token
from constructs import Construct

from cdktf_app.config import (
    EMAIL_PATTERN,
    LOG_RETENTION_DAYS,
    MIN_LOG_RETENTION_DAYS,
    REGION_PATTERN,
    SCHEDULE_PATTERN,
    SECURITY_GROUP_PATTERN,
    SUBNET_PATTERN,
    EnvironmentConfig,
)


@dataclass(frozen=True, kw_only=True)
class Variables:
    """Terraform expressions of the variables.

    Attributes:
        aws_region: Region the provider deploys to.
        notebook_instance_type: The notebook instance type.
        approval_email: Subscribed to the approval topic ("" for none).
        alarm_email: Subscribed to the alarm topic ("" for none).
        retrain_schedule: EventBridge schedule that retrains ("" for none).
        log_retention_days: Retention of the build and notebook log groups.
        notebook_network: The notebook's private subnet and security groups (environments with
            ``notebook_in_vpc`` only; ``None`` otherwise).
    """

    aws_region: str
    notebook_instance_type: str
    approval_email: str
    alarm_email: str
    retrain_schedule: str
    log_retention_days: float
    notebook_network: NotebookNetwork | None = None


@dataclass(frozen=True, kw_only=True)
class NotebookNetwork:
    """Where a VPC-mode notebook instance runs.

    Attributes:
        subnet_id: A private subnet (no route to an internet gateway).
        security_group_ids: Its security groups (a list expression).
    """

    subnet_id: str
    security_group_ids: list[str]


def count_unless_empty(value: str) -> float:
    """A ``count`` expression: 1 unless the string expression ``value`` is empty, then 0."""
    return Token.as_number(Fn.conditional(_is_empty(value), 0, 1))


def _is_empty(value: str) -> Any:
    # Not ``Op.eq(value, "")``: cdktf renders a falsy operand ("", 0) as ``undefined``.
    return Op.lt(Fn.length_of(value), 1)


def _email(scope: Construct, id_: str, purpose: str) -> TerraformVariable:
    variable = TerraformVariable(
        scope, id_, type="string", default="", description=f"E-mail address subscribed to the {purpose} (empty: none)."
    )
    variable.add_validation(
        condition=Op.or_(_is_empty(variable.string_value), Fn.can(Fn.regex(EMAIL_PATTERN, variable.string_value))),
        error_message=f"{id_} must be empty or an e-mail address.",
    )
    return variable


def declare_variables(scope: Construct, config: EnvironmentConfig) -> Variables:
    """Declare the root's variables with ``config``'s defaults."""
    region = TerraformVariable(
        scope,
        "aws_region",
        type="string",
        default=config.region,
        description="AWS region to deploy to (resource names include it, as safedeploy.naming builds them).",
    )
    region.add_validation(
        condition=Fn.can(Fn.regex(REGION_PATTERN, region.string_value)),
        error_message="aws_region must be a region name such as us-east-1.",
    )
    instance_type = TerraformVariable(
        scope,
        "notebook_instance_type",
        type="string",
        default=config.notebook_instance_type,
        description="Instance type of the SageMaker notebook instance.",
    )
    instance_type.add_validation(
        condition=Fn.startswith(instance_type.string_value, "ml."),
        error_message="notebook_instance_type must be a SageMaker instance type (ml.*).",
    )
    schedule = TerraformVariable(
        scope,
        "retrain_schedule",
        type="string",
        default=config.retrain_schedule or "",
        description="EventBridge schedule expression (rate(...) or cron(...)) that starts the pipeline to retrain; "
        "empty: no schedule (retraining still follows data uploads and the drift alarm).",
    )
    schedule.add_validation(
        condition=Op.or_(_is_empty(schedule.string_value), Fn.can(Fn.regex(SCHEDULE_PATTERN, schedule.string_value))),
        error_message="retrain_schedule must be empty, rate(...) or cron(...).",
    )
    retention = TerraformVariable(
        scope,
        "log_retention_days",
        type="number",
        default=config.log_retention_days,
        description=f"Retention in days of the build and notebook log groups (a CloudWatch Logs period, at least "
        f"{MIN_LOG_RETENTION_DAYS}).",
    )
    retention.add_validation(
        condition=Op.and_(
            Fn.contains([d for d in LOG_RETENTION_DAYS if d >= MIN_LOG_RETENTION_DAYS], retention.number_value),
            Op.gte(retention.number_value, MIN_LOG_RETENTION_DAYS),
        ),
        error_message=f"log_retention_days must be one of CloudWatch's periods of at least {MIN_LOG_RETENTION_DAYS}.",
    )
    return Variables(
        notebook_network=_notebook_network(scope) if config.notebook_in_vpc else None,
        aws_region=region.string_value,
        notebook_instance_type=instance_type.string_value,
        approval_email=_email(scope, "approval_email", "manual approval topic").string_value,
        alarm_email=_email(scope, "alarm_email", "alarm topic (API alarms, failed pipeline executions)").string_value,
        retrain_schedule=schedule.string_value,
        log_retention_days=retention.number_value,
    )


def _notebook_network(scope: Construct) -> NotebookNetwork:
    """The VPC-mode notebook's variables: required (no default), typed, described and validated."""
    subnet = TerraformVariable(
        scope,
        "notebook_subnet_id",
        type="string",
        description="Private subnet of the notebook instance (it has no direct internet access). The subnet must "
        "reach CodeCommit, S3, SageMaker, CloudWatch Logs and a Python package index through VPC endpoints or a "
        "NAT gateway: the lifecycle script clones the repository and pip-installs the project at every start.",
    )
    subnet.add_validation(
        condition=Fn.can(Fn.regex(SUBNET_PATTERN, subnet.string_value)),
        error_message="notebook_subnet_id must be a subnet id (subnet-...).",
    )
    groups = TerraformVariable(
        scope,
        "notebook_security_group_ids",
        type="list(string)",
        description="Security groups of the notebook instance's network interface (1 to 5, in the subnet's VPC): "
        "outbound HTTPS to the endpoints above; no inbound rule is needed (users open the notebook through "
        "presigned URLs).",
    )
    groups.add_validation(
        condition=Op.and_(Op.gte(Fn.length_of(groups.list_value), 1), Op.lte(Fn.length_of(groups.list_value), 5)),
        error_message="notebook_security_group_ids must hold 1 to 5 security group ids.",
    )
    pattern = json.dumps(SECURITY_GROUP_PATTERN)
    groups.add_validation(
        # a for expression, which cdktf has no builder for: Terraform reads the string as an expression
        condition=f"${{alltrue([for id in var.notebook_security_group_ids : can(regex({pattern}, id))])}}",
        error_message="notebook_security_group_ids must be security group ids (sg-...).",
    )
    return NotebookNetwork(subnet_id=subnet.string_value, security_group_ids=groups.list_value)
