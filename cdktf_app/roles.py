"""The pipeline's IAM roles, one per service, each with only what that service does for this pipeline.

Resources are named by :mod:`safedeploy.naming` (through :class:`~cdktf_app.names.TerraformNames`), so the
policies name them directly instead of referencing the resources: a role does not depend on what it acts on, and
the per-model stacks' resources (created later by CloudFormation) can be named before they exist. Everything the
per-model stacks create is named ``<model>-...``, which is what the CloudFormation role is scoped to.
"""

from __future__ import annotations

from dataclasses import dataclass

from constructs import Construct

from cdktf_app.cloudformation_grants import CloudFormationGrants
from cdktf_app.iam import (
    ServiceRole,
    ServiceRoleConfig,
    grant_key_to_services,
    pass_role,
    read_objects,
    use_key,
    write_logs,
    write_objects,
)
from cdktf_app.names import (
    API_LAMBDA,
    CANARY_LAMBDA,
    CLOUDFORMATION,
    CODEBUILD,
    CODEDEPLOY,
    CODEPIPELINE,
    EVENTS,
    HOOKS_LAMBDA,
    LOG_DELIVERY_ACTIONS,
    MONITOR,
    NOTEBOOK,
    PROBE_LAMBDA,
    RETRAIN,
    RETRAINING,
    SAGEMAKER,
    SCHEDULER,
    SMOKE_TEST_LAMBDA,
    STEPFUNCTIONS,
    TerraformNames,
)
from cdktf_app.policy import Statement, condition
from safedeploy import constants as C
from safedeploy import naming
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.store import S3Uri

FRAMEWORK_IMAGE = "sagemaker-xgboost"
"""The AWS-owned ECR repository of the pinned framework image (training, serving, the monitor's jobs)."""
MODEL_MONITOR_IMAGE = "sagemaker-model-monitor-analyzer"
"""Model Monitor's analyzer (only with ``monitoring.use_model_monitor``)."""
SAGEMAKER_METRIC_NAMESPACES = ("/aws/sagemaker/*", "aws/sagemaker/*")
MONITOR_METRIC_NAMESPACE = F.METRIC_NAMESPACE_ENDPOINT
"""The namespace the data-quality job publishes to (``feature_baseline_drift_<feature>``, ...)."""
MODEL_METRIC_NAMESPACE = F.MODEL_METRIC_NAMESPACE_ENDPOINT
"""The namespace the model-quality job publishes to (``auc``, ``f1``, ...)."""


@dataclass(frozen=True, kw_only=True)
class PipelineRolesConfig:
    """What the roles act on.

    Attributes:
        names: The environment's names.
        key_arn: The pipeline key.
    """

    names: TerraformNames
    key_arn: str


class PipelineRoles(Construct):
    """Every service role of the pipeline; ``self.roles[service]`` by :data:`cdktf_app.names.ROLE_SERVICES` key."""

    def __init__(self, scope: Construct, id_: str, *, config: PipelineRolesConfig) -> None:
        super().__init__(scope, id_)
        self.names = names = config.names
        self.key_arn = config.key_arn
        data, artifacts = names.name(naming.data_bucket), names.name(naming.artifact_bucket)
        self.data_arn, self.artifacts_arn = names.s3_arn(data), names.s3_arn(artifacts)
        self.model_prefix = f"{names.model}-*"
        specs = {
            CODEPIPELINE: ("codepipeline.amazonaws.com", "CodePipeline: runs the pipeline", self._codepipeline()),
            CODEBUILD: ("codebuild.amazonaws.com", "CodeBuild: runs model/buildspec.yml", self._codebuild()),
            CLOUDFORMATION: (
                "cloudformation.amazonaws.com",
                "CloudFormation: deploys the per-model stacks",
                self._cloudformation(),
            ),
            SAGEMAKER: ("sagemaker.amazonaws.com", "SageMaker: training and endpoints", self._sagemaker()),
            MONITOR: ("sagemaker.amazonaws.com", "The monitor's Processing jobs", self._monitor()),
            SCHEDULER: ("scheduler.amazonaws.com", "EventBridge Scheduler: starts monitoring", self._scheduler()),
            EVENTS: ("events.amazonaws.com", "EventBridge: starts the pipeline", self._events()),
            NOTEBOOK: ("sagemaker.amazonaws.com", "The project's notebook instance", self._notebook()),
            STEPFUNCTIONS: (
                "states.amazonaws.com",
                "Step Functions: training, baseline and monitoring",
                self._stepfunctions(),
            ),
            API_LAMBDA: ("lambda.amazonaws.com", "The REST API's Lambda function", self._api_lambda()),
            HOOKS_LAMBDA: ("lambda.amazonaws.com", "CodeDeploy's traffic hooks", self._hooks_lambda()),
            CANARY_LAMBDA: ("lambda.amazonaws.com", "The deployment's synthetic canary", self._canary_lambda()),
            SMOKE_TEST_LAMBDA: ("lambda.amazonaws.com", "The dev endpoint's smoke test", self._smoke_test_lambda()),
            PROBE_LAMBDA: ("lambda.amazonaws.com", "The standing probe of the production API", self._probe_lambda()),
            CODEDEPLOY: ("codedeploy.amazonaws.com", "CodeDeploy: shifts the API alias", self._codedeploy()),
            RETRAIN: ("codebuild.amazonaws.com", "The retraining build: new data, then the contract", self._retrain()),
            RETRAINING: (
                "states.amazonaws.com",
                "Step Functions: the retraining debounce, then the build",
                self._retraining(),
            ),
        }
        self.roles = {
            key: ServiceRole(
                self,
                key.replace("-", "_"),
                config=ServiceRoleConfig(
                    names=names,
                    service=key,
                    principal=principal,
                    description=f"{names.pipeline} {description}",
                    statements=statements,
                ),
            )
            for key, (principal, description, statements) in specs.items()
        }

    def __getitem__(self, service: str) -> ServiceRole:
        """The role of ``service``."""
        return self.roles[service]

    # --- ARNs of what the roles act on ------------------------------------------------------------------------

    def _arn(self, service: str, resource: str) -> str:
        return self.names.arn(service, resource)

    def _sagemaker_arns(self, *kinds: str) -> tuple[str, ...]:
        return tuple(self._arn("sagemaker", f"{kind}/{self.model_prefix}") for kind in kinds)

    @property
    def _pipeline_arn(self) -> str:
        return self._arn("codepipeline", self.names.name(naming.codepipeline_name))

    @property
    def _model_packages(self) -> tuple[str, ...]:
        group = self.names.name(naming.model_package_group)
        return (
            self._arn("sagemaker", f"model-package-group/{group}"),
            self._arn("sagemaker", f"model-package/{group}/*"),
        )

    @property
    def _production_endpoint_parameter(self) -> str:
        return self._arn("ssm", f"parameter{self.names.name(naming.production_endpoint_parameter)}")

    @property
    def _model_version_parameters(self) -> str:
        pipeline = self.names.name(naming.codepipeline_name)
        return self._arn("ssm", f"parameter/safedeploy/{pipeline}/executions/*")

    def _state_machines(self) -> tuple[str, ...]:
        return tuple(
            self._arn("states", f"stateMachine:{self.names.name(naming.state_machine_name, kind)}")
            for kind in ("training-job", "suggest-baseline")
        )

    def _functions(self) -> tuple[str, ...]:
        return (
            self._arn("lambda", f"function:{self.model_prefix}"),
            self._arn("lambda", f"function:{self.model_prefix}:*"),
        )

    # --- One method per role -----------------------------------------------------------------------------------

    def _codepipeline(self) -> list[Statement]:
        names = self.names
        stacks = tuple(
            self._arn("cloudformation", f"stack/{names.name(naming.stack_name, kind)}/*") for kind in naming.STACK_KINDS
        )
        data_source = names.uri(naming.data_source_uri)
        return [
            *read_objects("ReadArtifacts", [self.artifacts_arn], [f"{self.artifacts_arn}/*"]),
            write_objects("WriteArtifacts", [f"{self.artifacts_arn}/*"]),
            Statement(
                sid="ArtifactBucketVersioning",
                actions=("s3:GetBucketVersioning",),
                resources=(self.artifacts_arn, self.data_arn),
            ),
            *read_objects("ReadDataSource", [self.data_arn], [names.s3_arn(data_source.bucket, data_source.key)]),
            use_key(self.key_arn),
            Statement(
                sid="SourceRepository",
                actions=(
                    "codecommit:GetBranch",
                    "codecommit:GetCommit",
                    "codecommit:GetRepository",
                    "codecommit:UploadArchive",
                    "codecommit:GetUploadArchiveStatus",
                    "codecommit:CancelUploadArchive",
                ),
                resources=(self._arn("codecommit", names.name(naming.codecommit_repository)),),
            ),
            Statement(
                sid="BuildProject",
                actions=("codebuild:StartBuild", "codebuild:BatchGetBuilds", "codebuild:StopBuild"),
                resources=(self._arn("codebuild", f"project/{names.name(naming.codebuild_project)}"),),
            ),
            Statement(
                sid="ModelStacks",
                actions=(
                    "cloudformation:CreateStack",
                    "cloudformation:UpdateStack",
                    "cloudformation:DeleteStack",
                    "cloudformation:DescribeStacks",
                    "cloudformation:DescribeStackEvents",
                    "cloudformation:CreateChangeSet",
                    "cloudformation:DescribeChangeSet",
                    "cloudformation:ExecuteChangeSet",
                    "cloudformation:DeleteChangeSet",
                ),
                resources=stacks,
            ),
            Statement(
                sid="ServerlessTransform",
                actions=("cloudformation:CreateChangeSet",),
                resources=(self.names.arn("cloudformation", "transform/Serverless-2016-10-31", in_account=False),),
            ),
            pass_role("PassCloudFormationRole", [names.role_arn(CLOUDFORMATION)], "cloudformation.amazonaws.com"),
            Statement(
                sid="StartStateMachines",
                actions=("states:StartExecution", "states:DescribeStateMachine"),
                resources=self._state_machines(),
            ),
            Statement(
                sid="FollowStateMachineExecutions",
                actions=("states:DescribeExecution", "states:StopExecution"),
                resources=tuple(arn.replace(":stateMachine:", ":execution:") + ":*" for arn in self._state_machines()),
            ),
            Statement(
                sid="NotifyApprovers",
                actions=("sns:Publish",),
                resources=(self._arn("sns", names.name(naming.approval_topic)),),
            ),
        ]

    def _codebuild(self) -> list[Statement]:
        names = self.names
        project = names.name(naming.codebuild_project)
        return [
            write_logs("BuildLogs", names, f"/aws/codebuild/{project}", create=False),
            *read_objects("ReadArtifacts", [self.artifacts_arn], [f"{self.artifacts_arn}/*"]),
            write_objects("WriteArtifacts", [f"{self.artifacts_arn}/*"]),
            *read_objects("ReadData", [self.data_arn], [f"{self.data_arn}/{names.model}/*"]),
            use_key(self.key_arn),
            Statement(
                sid="DescribeTrainedModels",
                actions=(
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:DescribeModelPackageGroup",
                ),
                resources=(*self._sagemaker_arns("training-job"), *self._model_packages),
            ),
            Statement(
                sid="ReadProductionEndpoint",  # model/run.py: which version the quality gate compares with
                actions=("ssm:GetParameter",),
                resources=(self._production_endpoint_parameter,),
            ),
            Statement(
                sid="ListModelVersions",  # model/run.py: the version with identical training inputs (reused)
                actions=("sagemaker:ListModelPackages",),
                resources=self._model_packages,  # this model's group and its versions, as DescribeModelPackage
            ),
        ]

    def _cloudformation(self) -> list[Statement]:
        """The per-model stacks' resources: the table by resource type (:mod:`cdktf_app.cloudformation_grants`)."""
        grants = CloudFormationGrants(self.names, key_arn=self.key_arn, artifacts_arn=self.artifacts_arn)
        return [
            Statement(
                sid=grant.sid,
                actions=grant.actions,
                resources=grant.resources,
                conditions=tuple(condition(test, key, *values) for test, key, values in grant.conditions),
            )
            for grant in grants.statements(use_model_monitor=self._use_model_monitor)
        ]

    def _sagemaker(self) -> list[Statement]:
        names = self.names
        buckets = [self.data_arn, self.artifacts_arn]
        # every key SageMaker reads or writes is under <model>/ (safedeploy.naming); it writes only artifacts
        # (training output, capture, Model Monitor's baselines), never the data bucket
        objects = [f"{arn}/{names.model}/*" for arn in buckets]
        return [
            *read_objects("ReadPipelineData", buckets, objects),
            write_objects("WritePipelineData", [f"{self.artifacts_arn}/{names.model}/*"]),
            use_key(self.key_arn),
            grant_key_to_services(self.key_arn),
            write_logs("JobAndEndpointLogs", names, "/aws/sagemaker/*"),
            Statement(
                sid="PublishSageMakerMetrics",
                actions=("cloudwatch:PutMetricData",),
                # PutMetricData supports no resource but "*": the namespace condition limits it to SageMaker's.
                resources=("*",),
                conditions=(condition("StringLike", "cloudwatch:namespace", *SAGEMAKER_METRIC_NAMESPACES),),
            ),
            Statement(
                sid="RegistryLogin",
                actions=("ecr:GetAuthorizationToken",),
                # GetAuthorizationToken supports no resource but "*" and only returns a registry login token;
                # image pulls (below) are limited to the SageMaker image repositories.
                resources=("*",),
            ),
            Statement(
                sid="PullSageMakerImages",
                actions=("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"),
                resources=tuple(f"arn:aws:ecr:{names.region}:*:repository/{image}" for image in self._sagemaker_images),
            ),
        ]

    @property
    def _use_model_monitor(self) -> bool:
        return self.names.spec.monitoring.use_model_monitor

    @property
    def _model_quality(self) -> bool:
        return self.names.spec.monitoring.model_quality.enabled

    @property
    def _sagemaker_images(self) -> tuple[str, ...]:
        return (FRAMEWORK_IMAGE, MODEL_MONITOR_IMAGE) if self._use_model_monitor else (FRAMEWORK_IMAGE,)

    def _monitor(self) -> list[Statement]:
        """The monitor's Processing jobs: only what the analyzer touches.

        Read its code, the baseline dataset and feature schema, the baselines and the capture (and, with model
        quality, the ground-truth labels); write reports and baselines (and the merged records); the pipeline key;
        its logs; PutMetricData in the monitor's namespaces only.
        """
        names = self.names
        artifacts, data = self.artifacts_arn, self.data_arn

        def under(uri: S3Uri) -> str:
            return names.s3_arn(uri.bucket, uri.key.rstrip("/") + "/*")

        code = under(names.uri(naming.analyzer_code_prefix, ""))
        baselines = under(names.uri(naming.execution_baseline_prefix, ""))
        capture = under(names.uri(naming.capture_uri))
        reports = under(names.uri(naming.monitoring_reports_prefix))
        datasets = under(names.uri(naming.dataset_prefix, ""))
        models = under(names.uri(naming.training_output_prefix))  # the output baseline job scores model.tar.gz
        reads, writes, namespaces = (
            [code, baselines, capture, datasets, models],
            [reports, baselines],
            [MONITOR_METRIC_NAMESPACE],
        )
        if self._model_quality:  # labels in, merged records out, auc/f1/... metrics
            reads.append(under(names.uri(naming.ground_truth_uri)))
            writes.append(under(names.uri(naming.merged_ground_truth_uri)))
            namespaces.append(MODEL_METRIC_NAMESPACE)
        return [
            *read_objects("ReadMonitorInputs", [artifacts, data], reads),
            write_objects("WriteReportsAndBaselines", writes),
            use_key(self.key_arn),
            grant_key_to_services(self.key_arn),
            write_logs("ProcessingJobLogs", names, "/aws/sagemaker/ProcessingJobs"),
            Statement(
                sid="PublishMonitorMetrics",
                actions=("cloudwatch:PutMetricData",),
                # PutMetricData supports no resource but "*": the condition limits it to the monitor's namespaces.
                resources=("*",),
                conditions=(condition("StringEquals", "cloudwatch:namespace", *namespaces),),
            ),
            Statement(
                sid="RegistryLogin",
                actions=("ecr:GetAuthorizationToken",),
                # GetAuthorizationToken supports no resource but "*" and only returns a registry login token;
                # image pulls (below) are limited to the framework image's repository.
                resources=("*",),
            ),
            Statement(
                sid="PullFrameworkImage",
                actions=("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"),
                resources=(f"arn:aws:ecr:{names.region}:*:repository/{FRAMEWORK_IMAGE}",),
            ),
        ]

    def _scheduler(self) -> list[Statement]:
        """The monitoring schedules: start their state machines (data and model quality); decrypt with the key."""
        kinds = ("monitoring", "model-quality") if self._model_quality else ("monitoring",)
        machines = tuple(self.names.name(naming.state_machine_name, kind) for kind in kinds)
        return [
            Statement(
                sid="StartMonitoring",
                actions=("states:StartExecution",),
                resources=tuple(self._arn("states", f"stateMachine:{machine}") for machine in machines),
            ),
            use_key(self.key_arn, decrypt_only=True),
        ]

    def _events(self) -> list[Statement]:
        return [
            Statement(
                sid="StartPipeline", actions=("codepipeline:StartPipelineExecution",), resources=(self._pipeline_arn,)
            ),
            Statement(
                sid="StartRetraining",  # the retraining alarms and the retrain schedule
                actions=("states:StartExecution",),
                resources=(self._retraining_state_machine,),
            ),
        ]

    @property
    def _retraining_state_machine(self) -> str:
        return self._arn("states", f"stateMachine:{self.names.name(naming.state_machine_name, 'retraining')}")

    @property
    def _retraining_project(self) -> str:
        return self._arn("codebuild", f"project/{self.names.name(naming.retraining_project)}")

    def _retrain(self) -> list[Statement]:
        """The retraining build: read the data and the labelled capture, write the new data, start nothing else.

        Its contract upload starts the pipeline through the data-upload rule; it may not start the pipeline itself.
        """
        names = self.names
        project = names.name(naming.retraining_project)
        merged = names.uri(naming.merged_ground_truth_uri)
        return [
            write_logs("BuildLogs", names, f"/aws/codebuild/{project}", create=False),
            Statement(
                sid="CloneRepository",
                actions=("codecommit:GitPull",),
                resources=(self._arn("codecommit", names.name(naming.codecommit_repository)),),
            ),
            *read_objects("ReadData", [self.data_arn], [f"{self.data_arn}/{names.model}/*"]),
            write_objects("WriteData", [f"{self.data_arn}/{names.model}/*"]),
            *read_objects("ReadLabelledCapture", [self.artifacts_arn], [f"{self.artifacts_arn}/{merged.key}/*"]),
            use_key(self.key_arn),
            Statement(
                sid="PipelineRunning",  # at most one retraining: none while an execution is in progress
                actions=("codepipeline:ListPipelineExecutions", "codepipeline:GetPipelineState"),
                resources=(self._pipeline_arn,),
            ),
            Statement(
                sid="AlarmStillInAlarm",  # the debounce: the alarm is still in ALARM since the event's time
                actions=("cloudwatch:DescribeAlarms",),
                resources=(self._arn("cloudwatch", f"alarm:{names.pipeline}-*"),),
            ),
            Statement(
                sid="Cooldown",  # the last retraining's decision and times
                actions=("ssm:GetParameter", "ssm:PutParameter"),
                resources=(self._arn("ssm", f"parameter{names.name(naming.retraining_parameter)}"),),
            ),
        ]

    def _retraining(self) -> list[Statement]:
        """The retraining state machine: run the retraining build to its end (``startBuild.sync``)."""
        return [
            Statement(
                sid="RunRetrainingBuild",
                actions=("codebuild:StartBuild", "codebuild:StopBuild", "codebuild:BatchGetBuilds"),
                resources=(self._retraining_project,),
            ),
            Statement(
                sid="SyncBuildEvents",
                actions=("events:PutTargets", "events:PutRule", "events:DescribeRule"),
                resources=(self.names.arn("events", "rule/StepFunctionsGetEventsForCodeBuildStartBuildRule"),),
            ),
            use_key(self.key_arn),
            Statement(sid="ExecutionLogDelivery", actions=LOG_DELIVERY_ACTIONS, resources=("*",)),
        ]

    def _notebook(self) -> list[Statement]:
        names = self.names
        buckets = [self.data_arn, self.artifacts_arn]
        return [
            Statement(
                sid="ProjectRepository",
                actions=(
                    "codecommit:GitPull",
                    "codecommit:GitPush",
                    "codecommit:GetBranch",
                    "codecommit:GetCommit",
                    "codecommit:GetRepository",
                    "codecommit:ListBranches",
                ),
                resources=(self._arn("codecommit", names.name(naming.codecommit_repository)),),
            ),
            *read_objects("ReadPipelineData", buckets, [f"{arn}/{names.model}/*" for arn in buckets]),
            write_objects("UploadData", [f"{self.data_arn}/{names.model}/*"]),
            use_key(self.key_arn),
            write_logs("NotebookLogs", names, "/aws/sagemaker/NotebookInstances"),
            Statement(
                sid="FollowPipeline",
                actions=(
                    "codepipeline:GetPipeline",
                    "codepipeline:GetPipelineState",
                    "codepipeline:GetPipelineExecution",
                    "codepipeline:ListPipelineExecutions",
                ),
                resources=(self._pipeline_arn,),
            ),
            Statement(
                sid="InspectModels",
                actions=(
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:DescribeModelPackageGroup",
                ),
                resources=(*self._sagemaker_arns("training-job", "processing-job", "endpoint"), *self._model_packages),
            ),
            Statement(
                sid="InvokeEndpoints", actions=("sagemaker:InvokeEndpoint",), resources=self._sagemaker_arns("endpoint")
            ),
        ]

    def _baseline_digests(self) -> str:
        """``digests.json`` of every execution's baseline jobs (``naming.execution_baseline_prefix``)."""
        prefix = self.names.uri(naming.execution_baseline_prefix, "")
        return self.names.s3_arn(prefix.bucket, f"{prefix.key.rstrip('/')}/*/{F.DIGESTS_FILE}")

    def _model_quality_steps(self) -> list[Statement]:
        """Model quality: list the ground-truth folders; read the quality baseline's AUC threshold."""
        if not self._model_quality:
            return []
        labels = self.names.uri(naming.ground_truth_uri)
        prefix = self.names.uri(naming.execution_baseline_prefix, "")
        constraints = f"{prefix.key.rstrip('/')}/*/quality/{F.CONSTRAINTS_FILE}"
        return [
            Statement(
                sid="ListGroundTruth",  # the model-quality state machine's listObjectsV2 of the label folders
                actions=("s3:ListBucket",),
                resources=(self.data_arn,),
                conditions=(condition("StringLike", "s3:prefix", f"{labels.key}/*"),),
            ),
            Statement(
                sid="ReadQualityConstraints",  # the training state machine publishes the AUC threshold to SSM
                actions=("s3:GetObject",),
                resources=(self.names.s3_arn(prefix.bucket, constraints),),
            ),
        ]

    def _stepfunctions(self) -> list[Statement]:
        names = self.names
        return [
            Statement(
                sid="TrainingAndProcessingJobs",
                actions=(
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:AddTags",
                ),
                resources=self._sagemaker_arns("training-job", "processing-job"),
            ),
            Statement(
                sid="RegisterModels",
                actions=(
                    "sagemaker:CreateModelPackage",
                    "sagemaker:DescribeModelPackage",
                    "sagemaker:DescribeModelPackageGroup",
                    "sagemaker:AddTags",
                ),
                resources=self._model_packages,
            ),
            pass_role(
                "PassSageMakerRoles", [names.role_arn(SAGEMAKER), names.role_arn(MONITOR)], "sagemaker.amazonaws.com"
            ),
            Statement(
                sid="SyncJobEvents",
                actions=("events:PutTargets", "events:PutRule", "events:DescribeRule"),
                resources=tuple(
                    names.arn("events", f"rule/StepFunctionsGetEventsForSageMaker{kind}JobsRule")
                    for kind in ("Training", "Processing")
                ),
            ),
            Statement(
                sid="ListCapture",  # the monitoring state machine's listObjectsV2 of the capture folders
                actions=("s3:ListBucket", "s3:GetBucketLocation"),
                resources=(self.artifacts_arn,),
            ),
            Statement(
                sid="ReadBaselineDigests",  # the training state machine reads each baseline job's digests.json
                actions=("s3:GetObject",),
                resources=(self._baseline_digests(),),
            ),
            *self._model_quality_steps(),
            use_key(self.key_arn, decrypt_only=True),
            # no lambda:InvokeFunction: no state machine invokes a Lambda (the quality gate is JSONata Choice states;
            # tests/test_least_privilege.py fails if a definition ever gains a Lambda task)
            Statement(
                sid="PublishModelVersion",  # the registered version, read by the deploy stacks
                actions=("ssm:PutParameter",),
                resources=(self._model_version_parameters,),
            ),
            Statement(sid="ExecutionLogDelivery", actions=LOG_DELIVERY_ACTIONS, resources=("*",)),
        ]

    def _api_lambda(self) -> list[Statement]:
        names = self.names
        return [
            write_logs("FunctionLogs", names, f"/aws/lambda/{names.name(naming.function_name, 'api')}"),
            Statement(
                sid="InvokeEndpoints", actions=("sagemaker:InvokeEndpoint",), resources=self._sagemaker_arns("endpoint")
            ),
            use_key(self.key_arn, decrypt_only=True),
        ]

    def _hooks_lambda(self) -> list[Statement]:
        names = self.names
        hooks = [names.name(naming.function_name, hook) for hook in ("pre-traffic-hook", "post-traffic-hook")]
        return [
            write_logs("FunctionLogs", names, *(f"/aws/lambda/{hook}" for hook in hooks)),
            Statement(
                sid="ReportHookStatus",
                actions=("codedeploy:PutLifecycleEventHookExecutionStatus",),
                resources=(names.arn("codedeploy", f"deploymentgroup:{self.model_prefix}/*"),),
            ),
            Statement(
                sid="CheckGreenEndpoint",
                actions=("sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:InvokeEndpoint"),
                resources=self._sagemaker_arns("endpoint", "endpoint-config"),
            ),
            *read_objects("ReadCaptureAndChecks", [self.artifacts_arn], [f"{self.artifacts_arn}/{names.model}/*"]),
            use_key(self.key_arn, decrypt_only=True),
            Statement(
                sid="ReadEndpointMetrics",
                actions=("cloudwatch:GetMetricData",),
                # GetMetricData supports no resource but "*"; it only reads metrics (green's error rate).
                resources=("*",),
            ),
            Statement(
                sid="RecordProductionEndpoint",  # the post-traffic hook records green once it passed
                actions=("ssm:PutParameter",),
                resources=(self._production_endpoint_parameter,),
            ),
        ]

    def _canary_lambda(self) -> list[Statement]:
        """Invoke this model's production endpoints (green and blue), publish to the canary's namespace only."""
        names = self.names
        return [
            write_logs("FunctionLogs", names, f"/aws/lambda/{names.name(naming.function_name, 'canary')}"),
            Statement(
                sid="InvokeProductionEndpoints",
                actions=("sagemaker:InvokeEndpoint",),
                resources=(self._arn("sagemaker", f"endpoint/{names.model}-{C.PRD_STAGE}-*"),),
            ),
            Statement(
                sid="PublishPredictionShift",
                actions=("cloudwatch:PutMetricData",),
                resources=("*",),  # PutMetricData has no resource: the namespace condition scopes it
                conditions=(condition("StringEquals", "cloudwatch:namespace", C.CANARY_METRICS_NAMESPACE),),
            ),
            Statement(
                sid="ReadProductionEndpoint",
                actions=("ssm:GetParameter",),
                resources=(self._production_endpoint_parameter,),
            ),
            Statement(
                sid="ReadHeldOutRows",  # pre-traffic-checks.json inside green's model.tar.gz
                actions=("s3:GetObject",),
                resources=(f"{self.artifacts_arn}/{names.model}/*",),
            ),
            use_key(self.key_arn, decrypt_only=True),
        ]

    def _probe_lambda(self) -> list[Statement]:
        """Publish Synthetics' metrics only, read the model archives' known rows and this model's API key."""
        names = self.names
        return [
            write_logs("FunctionLogs", names, f"/aws/lambda/{names.name(naming.function_name, 'probe')}"),
            Statement(
                sid="PublishSuccessPercent",
                actions=("cloudwatch:PutMetricData",),
                resources=("*",),  # PutMetricData has no resource: the namespace condition scopes it
                conditions=(condition("StringEquals", "cloudwatch:namespace", C.SYNTHETICS_NAMESPACE),),
            ),
            Statement(
                sid="ReadKnownRows",  # pre-traffic-checks.json inside the served version's model.tar.gz
                actions=("s3:GetObject",),
                resources=(f"{self.artifacts_arn}/{names.model}/*",),
            ),
            Statement(
                sid="ReadApiKey",  # GetApiKey (includeValue) of the production REST API's key, tagged with the model
                actions=("apigateway:GET",),
                resources=(names.arn("apigateway", "/apikeys/*", in_account=False),),
                conditions=(condition("StringEquals", f"aws:ResourceTag/{naming.MODEL_TAG_KEY}", names.model),),
            ),
            use_key(self.key_arn, decrypt_only=True),
        ]

    def _smoke_test_lambda(self) -> list[Statement]:
        """Invoke the dev endpoint only and read the model archives' held-out rows."""
        names = self.names
        return [
            write_logs("FunctionLogs", names, f"/aws/lambda/{names.name(naming.function_name, 'smoke-test')}"),
            Statement(
                sid="InvokeDevEndpoint",
                actions=("sagemaker:InvokeEndpoint",),
                resources=(self._arn("sagemaker", f"endpoint/{names.name(naming.endpoint_name, C.DEV_STAGE)}"),),
            ),
            Statement(
                sid="ReadHeldOutRows",
                actions=("s3:GetObject",),
                resources=(f"{self.artifacts_arn}/{names.model}/*",),
            ),
            use_key(self.key_arn, decrypt_only=True),
        ]

    def _codedeploy(self) -> list[Statement]:
        names = self.names
        hooks = tuple(
            self._arn("lambda", f"function:{names.name(naming.function_name, hook)}")
            for hook in ("pre-traffic-hook", "post-traffic-hook")
        )
        return [
            Statement(
                sid="ShiftAlias",
                actions=(
                    "lambda:GetAlias",
                    "lambda:UpdateAlias",
                    "lambda:GetFunction",
                    "lambda:GetProvisionedConcurrencyConfig",
                ),
                resources=self._functions(),
            ),
            Statement(
                sid="RunHooks", actions=("lambda:InvokeFunction",), resources=(*hooks, *(f"{h}:*" for h in hooks))
            ),
            Statement(
                sid="WatchAlarms",
                actions=("cloudwatch:DescribeAlarms",),
                resources=(names.arn("cloudwatch", f"alarm:{self.model_prefix}"),),
            ),
        ]
