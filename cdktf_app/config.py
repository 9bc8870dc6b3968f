"""Per-environment settings of the base infrastructure: the one typed place dev and prod differ.

Each :class:`EnvironmentConfig` is derived from a :class:`~safedeploy.spec.PipelineSpec` (model name,
environment, default region), so Terraform names the resources exactly as the local backend and
:mod:`safedeploy.naming` do. Settings a reviewer tunes per deployment without touching code (notebook instance type,
notification e-mails, retrain schedule, ...) also become Terraform variables whose defaults come from here; see
:mod:`cdktf_app.variables`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from safedeploy import constants as C
from safedeploy.spec import AlarmsSpec, PipelineSpec

LOG_RETENTION_DAYS: tuple[int, ...] = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192)
"""Retention periods CloudWatch Logs accepts (``PutRetentionPolicy``); the longer ones are not needed here."""
MIN_LOG_RETENTION_DAYS = 365
"""Build logs are the audit trail of what produced a model: kept at least a year."""
REGION_PATTERN = "^[a-z]{2}(-gov)?-[a-z]+-[0-9]$"
EMAIL_PATTERN = "^[^@ ]+@[^@ ]+[.][^@ ]+$"
SCHEDULE_PATTERN = "^(rate|cron)[(][^()]+[)]$"
SUBNET_PATTERN = "^subnet-[0-9a-f]{8,17}$"
SECURITY_GROUP_PATTERN = "^sg-[0-9a-f]{8,17}$"
"""Patterns of the Terraform variables' validations (Terraform's RE2 and Python's re read them alike)."""
_SCHEDULE = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\))$")


def _spec(
    model_name: str, environment: str, region: str, account_id: str, alarms: AlarmsSpec | None = None
) -> PipelineSpec:
    # Every field that reaches a name or a resource is passed explicitly, so SAFEDEPLOY_* variables and
    # pipeline.toml (which configure the local backend) cannot change what is synthesized.
    return PipelineSpec.model_validate(
        {
            "model_name": model_name,
            "environment": environment,
            "region": region,
            "account_id": account_id,
            "alarms": (alarms or AlarmsSpec()).model_dump(),
        }
    )


@dataclass(frozen=True, kw_only=True)
class EnvironmentConfig:
    """What one environment's Terraform root is built from.

    Attributes:
        model_name: The model (``PipelineSpec.model_name``): the first part of every name.
        environment: ``dev`` or ``prod`` (``PipelineSpec.environment``).
        region: Default of the ``aws_region`` variable (names use the region Terraform runs in).
        notebook_instance_type: Default of the ``notebook_instance_type`` variable.
        notebook_volume_size_gb: EBS volume of the notebook instance.
        notebook_in_vpc: Run the notebook in a private subnet of the account's VPC (``DirectInternetAccess``
            disabled; the ``notebook_subnet_id`` and ``notebook_security_group_ids`` variables, which have no default)
            instead of with SageMaker's direct internet access.
        retrain_schedule: Default of ``retrain_schedule``: an EventBridge ``rate(...)``/``cron(...)`` expression that
            retrains on a schedule, or ``None`` for no schedule rule.
        log_retention_days: Default of ``log_retention_days`` (CodeBuild and notebook logs).
        noncurrent_version_days: Days a replaced object version is kept in the data and artifact buckets.
        access_log_days: Days the S3 server access logs are kept.
        abort_multipart_days: Days before an incomplete multipart upload is aborted (every bucket).
        source_branch: The CodeCommit branch the pipeline builds.
        start_on_commit: Whether a push to ``source_branch`` starts the pipeline (EventBridge rule).
        build_image: CodeBuild's image for ``model/buildspec.yml``.
        build_compute_type: CodeBuild's compute type.
        build_timeout_minutes: CodeBuild's build timeout.
        kms_deletion_window_days: Waiting period before the KMS key is deleted after a ``terraform destroy``.
        alarms: The alarm catalog (``PipelineSpec.alarms``): its standing alarms are this environment's.
    """

    model_name: str = C.DEFAULT_MODEL_NAME
    environment: str
    region: str = "us-east-1"
    notebook_instance_type: str = "ml.t3.medium"
    notebook_volume_size_gb: int = 20
    notebook_in_vpc: bool = False
    retrain_schedule: str | None = None
    log_retention_days: int = MIN_LOG_RETENTION_DAYS
    noncurrent_version_days: int = 90
    access_log_days: int = 365
    abort_multipart_days: int = 7
    source_branch: str = "main"
    start_on_commit: bool = True
    build_image: str = "aws/codebuild/standard:7.0"
    build_compute_type: str = "BUILD_GENERAL1_SMALL"
    build_timeout_minutes: int = 60
    kms_deletion_window_days: int = 30
    alarms: AlarmsSpec = field(default_factory=AlarmsSpec)

    def __post_init__(self) -> None:
        self.spec()  # the model name, environment and region must be a valid PipelineSpec
        if self.log_retention_days not in LOG_RETENTION_DAYS or self.log_retention_days < MIN_LOG_RETENTION_DAYS:
            raise ValueError(
                f"log_retention_days={self.log_retention_days}: expected one of CloudWatch's periods, "
                f"at least {MIN_LOG_RETENTION_DAYS}"
            )
        if self.retrain_schedule is not None and not _SCHEDULE.match(self.retrain_schedule):
            raise ValueError(f"retrain_schedule={self.retrain_schedule!r}: expected rate(...) or cron(...)")
        if not 7 <= self.kms_deletion_window_days <= 30:
            raise ValueError("kms_deletion_window_days must be between 7 and 30")
        for name in ("noncurrent_version_days", "access_log_days", "abort_multipart_days", "build_timeout_minutes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")

    @classmethod
    def from_spec(cls, spec: PipelineSpec, **settings: Any) -> EnvironmentConfig:
        """The configuration of ``spec``'s model and environment, with ``settings`` for the other fields."""
        return cls(
            model_name=spec.model_name,
            environment=spec.environment,
            region=spec.region,
            alarms=spec.alarms,
            **settings,
        )

    def spec(self, *, account_id: str = C.LOCAL_ACCOUNT_ID, region: str | None = None) -> PipelineSpec:
        """The pipeline spec of this environment in ``account_id`` and ``region`` (default: :attr:`region`)."""
        return _spec(self.model_name, self.environment, region or self.region, account_id, self.alarms)

    @property
    def pipeline_name(self) -> str:
        """``<model>-<environment>``, the namespace of this environment's resources."""
        return self.spec().pipeline_name

    @property
    def default_tags(self) -> dict[str, str]:
        """Tags the AWS provider puts on every resource."""
        return {
            "model": self.model_name,
            "environment": self.environment,
            "managed-by": "cdktf",
            "project": "safedeploy",
        }


def _environments() -> dict[str, EnvironmentConfig]:
    dev = _spec(C.DEFAULT_MODEL_NAME, "dev", "us-east-1", C.LOCAL_ACCOUNT_ID)
    prod = _spec(C.DEFAULT_MODEL_NAME, "prod", "us-east-1", C.LOCAL_ACCOUNT_ID)
    return {
        "dev": EnvironmentConfig.from_spec(dev, notebook_instance_type="ml.t3.medium", retrain_schedule=None),
        "prod": EnvironmentConfig.from_spec(
            prod,
            notebook_instance_type="ml.t3.large",
            notebook_in_vpc=True,  # production data: no direct internet access from the notebook
            retrain_schedule="cron(0 3 ? * MON *)",  # weekly, Monday 03:00 UTC, on top of the drift alarm
            log_retention_days=731,
            noncurrent_version_days=365,
        ),
    }


ENVIRONMENTS: dict[str, EnvironmentConfig] = _environments()
"""The environments ``python -m cdktf_app synth`` writes, one Terraform root each (``terraform/<name>/``)."""
