"""One environment's Terraform root: provider, partial S3 backend, variables, every construct, outputs."""

from __future__ import annotations

import re

from cdktf import TerraformBackend, TerraformElement, TerraformOutput, TerraformRemoteState, TerraformStack
from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_region import DataAwsRegion
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
from constructs import Construct, Node

from cdktf_app import names as R
from cdktf_app.buckets import PipelineBuckets, PipelineBucketsConfig
from cdktf_app.build import BuildProject, BuildProjectConfig
from cdktf_app.config import EnvironmentConfig
from cdktf_app.events import PipelineTriggers, PipelineTriggersConfig, trigger_rules
from cdktf_app.kms import PipelineKey, PipelineKeyConfig
from cdktf_app.monitoring import Monitoring, MonitoringConfig
from cdktf_app.names import TerraformNames
from cdktf_app.notebook import Notebook, NotebookConfig
from cdktf_app.pipeline import DeliveryPipeline, DeliveryPipelineConfig
from cdktf_app.registry import ModelRegistry, ModelRegistryConfig
from cdktf_app.retraining import Retraining, RetrainingConfig, debounce_seconds
from cdktf_app.roles import PipelineRoles, PipelineRolesConfig
from cdktf_app.source import SourceRepository, SourceRepositoryConfig
from cdktf_app.variables import declare_variables
from safedeploy import naming

RETRAINING_ALARMS = ("drift", "model-quality")
"""The alarms (``naming.alarm_name`` purposes) whose ALARM state starts retraining."""

AWS_PROVIDER_SOURCE = "hashicorp/aws"
AWS_PROVIDER_CONSTRAINT = ">= 5.100, < 7"
"""Tested with 5.100.0 (the prebuilt bindings); 6.x keeps every argument used here."""
TERRAFORM_VERSION_CONSTRAINT = ">= 1.10"
"""1.10 brought the S3 backend's native state locking (``use_lockfile`` in ``backend.hcl``). Written to
``versions.tf`` beside ``cdk.tf.json`` (see :func:`cdktf_app.app.versions_tf`), not into the stack."""
_LOGICAL_ID = re.compile(r"^[a-z][a-z0-9_]*$")


class PartialS3Backend(TerraformBackend):
    """``backend "s3" {}``: the bucket, key, region and locking come from ``terraform init -backend-config=...``."""

    def __init__(self, scope: Construct) -> None:
        super().__init__(scope, "backend", "s3")

    def get_remote_state_data_source(self, scope: Construct, name: str, from_stack: str) -> TerraformRemoteState:
        """Not used: the environments do not read each other's state."""
        raise NotImplementedError("cross-stack references between environments are not supported")


class BaseInfrastructureStack(TerraformStack):
    """The base infrastructure of one environment (``config``), named as :mod:`safedeploy.naming` names it.

    Terraform addresses are the construct paths below the stack joined by ``_`` (``buckets_data_bucket``), so they
    read like the code and do not carry cdktf's hash suffixes.
    """

    def __init__(self, scope: Construct, id_: str, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, id_)
        self._logical_ids: dict[tuple[str, str], str] = {}
        self.config = config
        variables = declare_variables(self, config)
        AwsProvider(
            self, "aws", region=variables.aws_region, default_tags=[AwsProviderDefaultTags(tags=config.default_tags)]
        )
        PartialS3Backend(self)
        caller = DataAwsCallerIdentity(self, "caller")
        caller.override_logical_id("current")
        region = DataAwsRegion(self, "region")
        region.override_logical_id("current")
        self.names = names = TerraformNames.for_config(config, account_id=caller.account_id, region=region.name)
        spec = config.spec()

        key = PipelineKey(
            self, "kms", config=PipelineKeyConfig(names=names, deletion_window_days=config.kms_deletion_window_days)
        )
        buckets = PipelineBuckets(
            self,
            "buckets",
            config=PipelineBucketsConfig(
                names=names,
                kms_key_arn=key.arn,
                noncurrent_version_days=config.noncurrent_version_days,
                access_log_days=config.access_log_days,
                abort_multipart_days=config.abort_multipart_days,
            ),
        )
        roles = PipelineRoles(self, "roles", config=PipelineRolesConfig(names=names, key_arn=key.arn))
        ModelRegistry(self, "registry", config=ModelRegistryConfig(names=names, key_arn=key.arn))
        repository = SourceRepository(
            self, "source", config=SourceRepositoryConfig(names=names, key_arn=key.arn, branch=config.source_branch)
        )
        build = BuildProject(
            self,
            "build",
            config=BuildProjectConfig(
                names=names,
                key_arn=key.arn,
                role_arn=roles[R.CODEBUILD].arn,
                log_retention_days=variables.log_retention_days,
                image=config.build_image,
                compute_type=config.build_compute_type,
                timeout_minutes=config.build_timeout_minutes,
            ),
        )
        retraining = Retraining(
            self,
            "retraining",
            config=RetrainingConfig(
                names=names,
                key_arn=key.arn,
                build_role_arn=roles[R.RETRAIN].arn,
                states_role_arn=roles[R.RETRAINING].arn,
                repository_clone_url=repository.repository.clone_url_http,
                branch=config.source_branch,
                log_retention_days=variables.log_retention_days,
                image=config.build_image,
                compute_type=config.build_compute_type,
                timeout_minutes=config.build_timeout_minutes,
            ),
        )
        pipeline = DeliveryPipeline(
            self,
            "pipeline",
            config=DeliveryPipelineConfig(
                names=names,
                key_arn=key.arn,
                role_arn=roles[R.CODEPIPELINE].arn,
                cloudformation_role_arn=roles[R.CLOUDFORMATION].arn,
                artifact_bucket=buckets.artifacts.name,
                data_bucket=buckets.data.name,
                repository=repository.name,
                branch=config.source_branch,
                build_project=build.name,
                approval_email=variables.approval_email,
            ),
        )
        notebook = Notebook(
            self,
            "notebook",
            config=NotebookConfig(
                names=names,
                key_arn=key.arn,
                role_arn=roles[R.NOTEBOOK].arn,
                instance_type=variables.notebook_instance_type,
                volume_size_gb=config.notebook_volume_size_gb,
                repository=repository.name,
                clone_url=repository.repository.clone_url_http,
                network=variables.notebook_network,
            ),
        )
        monitoring = Monitoring(
            self,
            "monitoring",
            config=MonitoringConfig(
                names=names,
                key_arn=key.arn,
                alarm_email=variables.alarm_email,
                standing=spec.alarms.standing,
                event_rules=tuple(trigger_rules(names, start_on_commit=config.start_on_commit)),
            ),
        )
        PipelineTriggers(
            self,
            "events",
            config=PipelineTriggersConfig(
                names=names,
                pipeline_arn=pipeline.arn,
                role_arn=roles[R.EVENTS].arn,
                data_bucket=buckets.data.name,
                repository_arn=repository.arn,
                branch=config.source_branch,
                start_on_commit=config.start_on_commit,
                retrain_schedule=variables.retrain_schedule,
                alarm_topic_arn=monitoring.topic.arn,
                retraining_arn=retraining.state_machine_arn,
                retraining_alarms=tuple(names.name(naming.alarm_name, purpose) for purpose in RETRAINING_ALARMS),
                debounce_seconds=debounce_seconds(
                    spec.monitoring.alarm_evaluation_periods, spec.monitoring.schedule_expression
                ),
            ),
        )
        outputs = {
            "data_bucket": (buckets.data.name, "Data bucket: raw data, datasets, the data-source contract."),
            "artifact_bucket": (buckets.artifacts.name, "Artifact bucket: pipeline artifacts, models, capture."),
            "logs_bucket": (buckets.logs.name, "Bucket receiving the other buckets' server access logs."),
            "kms_key_arn": (key.arn, "ARN of the pipeline's KMS key."),
            "kms_alias": (key.alias.name, "Alias of the pipeline's KMS key."),
            "pipeline_name": (pipeline.name, "The CodePipeline."),
            "repository_clone_url_http": (repository.repository.clone_url_http, "HTTPS clone URL of the repository."),
            "notebook_instance_name": (notebook.name, "The SageMaker notebook instance."),
            "sagemaker_execution_role_arn": (roles[R.SAGEMAKER].arn, "SageMaker execution role (jobs, endpoints)."),
            "approval_topic_arn": (pipeline.approval_topic.arn, "SNS topic of the manual approval."),
            "alarm_topic_arn": (monitoring.topic.arn, "SNS topic of the alarms and failed executions."),
            "dashboard_name": (monitoring.dashboard.dashboard_name, "The CloudWatch dashboard."),
        }
        for output, (value, description) in outputs.items():
            TerraformOutput(self, output, value=value, description=description)
        self.add_override(
            "terraform.required_providers.aws", {"source": AWS_PROVIDER_SOURCE, "version": AWS_PROVIDER_CONSTRAINT}
        )

    def _allocate_logical_id(self, tf_element: Node | TerraformElement) -> str:
        """Address an element by its construct path below the stack: ``roles/codebuild/role``: ``roles_codebuild_role``.

        Raises:
            ValueError: two elements of the same type would get the same address.
        """
        node = tf_element if isinstance(tf_element, Node) else tf_element.node
        path = node.path.split("/")[1:]
        logical_id = "_".join(path).replace("-", "_").lower()
        if not _LOGICAL_ID.match(logical_id):
            raise ValueError(f"construct path {node.path!r} does not make a Terraform name ({logical_id!r})")
        # Terraform names are per block type (resource type, data source, output, ...): one binding class each.
        owner = self._logical_ids.setdefault((type(tf_element).__name__, logical_id), node.path)
        if owner != node.path:
            raise ValueError(f"{node.path!r} and {owner!r} would both be named {logical_id!r}")
        return logical_id
