"""The CodeBuild project running ``model/buildspec.yml``.

``model/run.py`` turns the data-source contract into the per-model CloudFormation templates and their template
configurations (``<kind>.template.json`` and ``<kind>.config.json``).
"""

from __future__ import annotations

from dataclasses import dataclass

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
from constructs import Construct

from cdktf_app.names import TerraformNames
from safedeploy import constants as C
from safedeploy import naming

BUILDSPEC = "model/buildspec.yml"


@dataclass(frozen=True, kw_only=True)
class BuildProjectConfig:
    """The build.

    Attributes:
        names: The environment's names.
        key_arn: The pipeline key (build output, logs).
        role_arn: The CodeBuild service role.
        log_retention_days: Retention of the build log group (a Terraform number expression).
        image: The build image.
        compute_type: The build compute type.
        timeout_minutes: The build timeout.
    """

    names: TerraformNames
    key_arn: str
    role_arn: str
    log_retention_days: float
    image: str
    compute_type: str
    timeout_minutes: int


def build_environment(names: TerraformNames) -> dict[str, str]:
    """What ``model/run.py`` reads to rebuild the pipeline spec: model, environment, region, account, pipeline."""
    return {
        f"{C.ENV_PREFIX}MODEL_NAME": names.model,
        f"{C.ENV_PREFIX}ENVIRONMENT": names.spec.environment,
        f"{C.ENV_PREFIX}REGION": names.region,
        f"{C.ENV_PREFIX}ACCOUNT_ID": names.account_id,
        "PIPELINE_NAME": names.name(naming.codepipeline_name),
    }


class BuildProject(Construct):
    """The CodeBuild project (input and output through CodePipeline) and its encrypted log group."""

    def __init__(self, scope: Construct, id_: str, *, config: BuildProjectConfig) -> None:
        super().__init__(scope, id_)
        name = config.names.name(naming.codebuild_project)
        self.log_group = CloudwatchLogGroup(
            self,
            "logs",
            name=f"/aws/codebuild/{name}",
            retention_in_days=config.log_retention_days,
            kms_key_id=config.key_arn,
        )
        self.project = CodebuildProject(
            self,
            "project",
            name=name,
            description=f"{config.names.pipeline}: runs {BUILDSPEC} (model/run.py writes the stack templates)",
            service_role=config.role_arn,
            encryption_key=config.key_arn,
            build_timeout=config.timeout_minutes,
            queued_timeout=60,
            source=CodebuildProjectSource(type="CODEPIPELINE", buildspec=BUILDSPEC),
            artifacts=CodebuildProjectArtifacts(type="CODEPIPELINE"),
            environment=CodebuildProjectEnvironment(
                type="LINUX_CONTAINER",
                image=config.image,
                compute_type=config.compute_type,
                image_pull_credentials_type="CODEBUILD",
                privileged_mode=False,
                environment_variable=[
                    CodebuildProjectEnvironmentEnvironmentVariable(name=key, value=value, type="PLAINTEXT")
                    for key, value in build_environment(config.names).items()
                ],
            ),
            logs_config=CodebuildProjectLogsConfig(
                cloudwatch_logs=CodebuildProjectLogsConfigCloudwatchLogs(
                    status="ENABLED", group_name=self.log_group.name
                )
            ),
        )

    @property
    def name(self) -> str:
        """The project name."""
        return self.project.name
