"""The CodePipeline: Source -> Build -> Train -> DeployDev -> ApproveDeployment (manual) -> DeployPrd.

Train deploys the ``training-job`` and ``suggest-baseline`` stacks side by side (runOrder 1) and then runs the
state machines they create side by side (runOrder 2): training, the quality gate and registration in one, the
Model Monitor baseline job in the other.

Duplicate versions: when the build reuses a registered version that production already serves (identical
training inputs, :mod:`safedeploy.cloudformation.reuse`), ApproveDeployment and DeployPrd are skipped by a V2
stage entry condition (:func:`skip_when_production_serves_it`) on the Build action's exported variable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf_cdktf_provider_aws.codepipeline import (
    Codepipeline,
    CodepipelineArtifactStore,
    CodepipelineArtifactStoreEncryptionKey,
    CodepipelineStage,
    CodepipelineStageAction,
    CodepipelineStageBeforeEntry,
    CodepipelineStageBeforeEntryCondition,
    CodepipelineStageBeforeEntryConditionRule,
    CodepipelineStageBeforeEntryConditionRuleRuleTypeId,
)
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from constructs import Construct

from cdktf_app.names import TerraformNames
from cdktf_app.variables import count_unless_empty
from safedeploy import constants as C
from safedeploy import naming

SOURCE_OUTPUT = "SourceOutput"
DATA_SOURCE_OUTPUT = "DataSourceOutput"
BUILD_OUTPUT = "BuildOutput"
STAGE_SOURCE = "Source"
CAPABILITIES = "CAPABILITY_IAM,CAPABILITY_AUTO_EXPAND"
EXECUTION_ID = "#{codepipeline.PipelineExecutionId}"
"""CodePipeline's variable of the running execution (resolved by CodePipeline, not Terraform)."""
APPROVAL_QUESTION = "Shall this model be put into production?"
BUILD_NAMESPACE = "BuildVariables"
"""The Build action's variables namespace (``model/buildspec.yml`` ``exported-variables``)."""
SERVES_PRODUCTION_VARIABLE = "VERSION_SERVES_PRODUCTION"
"""``true`` when the build reuses the version production serves (``reuse.pipeline_variables``)."""
SERVES_PRODUCTION_RULE = "VersionNotYetInProduction"
TRAINED_BY_STATE_MACHINE = ("training-job", "suggest-baseline")
"""The stacks whose state machines Train runs after deploying them (``naming.state_machine_name``)."""


@dataclass(frozen=True, kw_only=True)
class DeliveryPipelineConfig:
    """The pipeline.

    Attributes:
        names: The environment's names.
        key_arn: The pipeline key (artifact store, approval topic).
        role_arn: The CodePipeline service role.
        cloudformation_role_arn: The role the CloudFormation actions pass to CloudFormation.
        artifact_bucket: The artifact store bucket.
        data_bucket: The bucket holding the data-source contract.
        repository: The CodeCommit repository.
        branch: The branch the pipeline builds.
        build_project: The CodeBuild project.
        approval_email: E-mail subscribed to the approval topic (a Terraform expression; empty: none).
    """

    names: TerraformNames
    key_arn: str
    role_arn: str
    cloudformation_role_arn: str
    artifact_bucket: str
    data_bucket: str
    repository: str
    branch: str
    build_project: str
    approval_email: str


class DeliveryPipeline(Construct):
    """The pipeline, and the encrypted SNS topic its manual approval notifies."""

    def __init__(self, scope: Construct, id_: str, *, config: DeliveryPipelineConfig) -> None:
        super().__init__(scope, id_)
        names = config.names
        self.approval_topic = SnsTopic(
            self,
            "approval_topic",
            name=names.name(naming.approval_topic),
            display_name=f"{names.pipeline} deployment approvals",
            kms_master_key_id=config.key_arn,
        )
        SnsTopicSubscription(
            self,
            "approval_email",
            count=count_unless_empty(config.approval_email),
            topic_arn=self.approval_topic.arn,
            protocol="email",
            endpoint=config.approval_email,
        )
        self.pipeline = Codepipeline(
            self,
            "codepipeline",
            name=names.name(naming.codepipeline_name),
            role_arn=config.role_arn,
            pipeline_type="V2",
            execution_mode="SUPERSEDED",  # a newer execution supersedes one waiting at the approval, as locally
            artifact_store=[
                CodepipelineArtifactStore(
                    type="S3",
                    location=config.artifact_bucket,
                    encryption_key=CodepipelineArtifactStoreEncryptionKey(id=config.key_arn, type="KMS"),
                )
            ],
            stage=self._stages(config),
        )

    @property
    def name(self) -> str:
        """The pipeline name."""
        return self.pipeline.name

    @property
    def arn(self) -> str:
        """The pipeline ARN."""
        return self.pipeline.arn

    def _stages(self, config: DeliveryPipelineConfig) -> list[CodepipelineStage]:
        names = config.names
        data_source = names.uri(naming.data_source_uri)
        return [
            CodepipelineStage(
                name=STAGE_SOURCE,
                action=[
                    _action(
                        "SourceCode",
                        "Source",
                        "CodeCommit",
                        outputs=[SOURCE_OUTPUT],
                        configuration={
                            "RepositoryName": config.repository,
                            "BranchName": config.branch,
                            "PollForSourceChanges": "false",  # EventBridge starts the pipeline on a push
                            "OutputArtifactFormat": "CODE_ZIP",
                        },
                    ),
                    _action(
                        "DataSource",
                        "Source",
                        "S3",
                        outputs=[DATA_SOURCE_OUTPUT],
                        configuration={
                            "S3Bucket": config.data_bucket,
                            "S3ObjectKey": data_source.key,
                            "PollForSourceChanges": "false",  # EventBridge starts the pipeline on an upload
                        },
                    ),
                ],
            ),
            CodepipelineStage(
                name=C.STAGE_BUILD,
                action=[
                    _action(
                        "BuildTemplates",
                        "Build",
                        "CodeBuild",
                        inputs=[SOURCE_OUTPUT, DATA_SOURCE_OUTPUT],
                        outputs=[BUILD_OUTPUT],
                        namespace=BUILD_NAMESPACE,
                        configuration={
                            "ProjectName": config.build_project,
                            "PrimarySource": SOURCE_OUTPUT,
                            "EnvironmentVariables": json.dumps(
                                [{"name": "PIPELINE_EXECUTION_ID", "value": EXECUTION_ID, "type": "PLAINTEXT"}]
                            ),
                        },
                    )
                ],
            ),
            CodepipelineStage(
                name=C.STAGE_TRAIN,
                action=[
                    *(self._deploy_stack(config, kind, run_order=1) for kind in TRAINED_BY_STATE_MACHINE),
                    *(self._run_state_machine(names, kind, run_order=2) for kind in TRAINED_BY_STATE_MACHINE),
                ],
            ),
            CodepipelineStage(name=C.STAGE_DEPLOY_DEV, action=[self._deploy_stack(config, "deploy-dev", run_order=1)]),
            CodepipelineStage(
                name=C.STAGE_APPROVAL,
                before_entry=skip_when_production_serves_it(),
                action=[
                    _action(
                        C.STAGE_APPROVAL,
                        "Approval",
                        "Manual",
                        configuration={"NotificationArn": self.approval_topic.arn, "CustomData": APPROVAL_QUESTION},
                    ),
                ],
            ),
            CodepipelineStage(
                name=C.STAGE_DEPLOY_PRD,
                before_entry=skip_when_production_serves_it(),
                action=[self._deploy_stack(config, "deploy-prd", run_order=1)],
            ),
        ]

    @staticmethod
    def _deploy_stack(config: DeliveryPipelineConfig, kind: str, *, run_order: int) -> CodepipelineStageAction:
        return _action(
            _camel(kind) + "Stack",
            "Deploy",
            "CloudFormation",
            inputs=[BUILD_OUTPUT],
            run_order=run_order,
            configuration={
                "ActionMode": "CREATE_UPDATE",
                "StackName": config.names.name(naming.stack_name, kind),
                "TemplatePath": f"{BUILD_OUTPUT}::{kind}.template.json",
                "TemplateConfiguration": f"{BUILD_OUTPUT}::{kind}.config.json",
                "Capabilities": CAPABILITIES,
                "RoleArn": config.cloudformation_role_arn,
            },
        )

    @staticmethod
    def _run_state_machine(names: TerraformNames, kind: str, *, run_order: int) -> CodepipelineStageAction:
        state_machine = names.name(naming.state_machine_name, kind)
        return _action(
            _camel(kind),
            "Invoke",
            "StepFunctions",
            run_order=run_order,
            configuration={
                "StateMachineArn": names.arn("states", f"stateMachine:{state_machine}"),
                "ExecutionNamePrefix": kind,
                "InputType": "Literal",
                "Input": json.dumps({"PipelineExecutionId": EXECUTION_ID}),
            },
        )


def skip_when_production_serves_it() -> CodepipelineStageBeforeEntry:
    """The entry condition of ApproveDeployment and DeployPrd: skip them for the version production already serves.

    Why a stage condition: the decision is made once, by the build that reuses the version (it read the registry
    and the production-endpoint parameter), and CodePipeline V2 evaluates it before the stage, so nothing runs:
    no approval is asked, no CloudFormation change set, no green endpoint, no traffic shift. Rendering the
    deploy-prd stack from the deployed stack's parameters instead would still create a change set per execution
    (the template names its green endpoint after the execution) and could not skip the manual approval. An entry
    condition is met when its rules succeed: the ``VariableCheck`` rule succeeds when ``VERSION_SERVES_PRODUCTION``
    is not ``true``; when it is, the rule fails and the result ``SKIP`` passes the stage by (the execution goes
    on, and succeeds). ``SKIP`` takes only ``VariableCheck`` or ``LambdaInvoke`` rules, and cannot be overridden.
    The approval is a stage of its own for this: conditions are per stage, and DeployDev still smoke-tests the
    reused version, as locally.
    """
    return CodepipelineStageBeforeEntry(
        condition=CodepipelineStageBeforeEntryCondition(
            result="SKIP",
            rule=[
                CodepipelineStageBeforeEntryConditionRule(
                    name=SERVES_PRODUCTION_RULE,
                    rule_type_id=CodepipelineStageBeforeEntryConditionRuleRuleTypeId(
                        category="Rule", owner="AWS", provider="VariableCheck", version="1"
                    ),
                    configuration={
                        "Variable": f"#{{{BUILD_NAMESPACE}.{SERVES_PRODUCTION_VARIABLE}}}",
                        "Operator": "NE",
                        "Value": "true",
                    },
                )
            ],
        )
    )


def _action(
    name: str,
    category: str,
    provider: str,
    *,
    configuration: dict[str, str],
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
    run_order: int = 1,
    namespace: str | None = None,
) -> CodepipelineStageAction:
    return CodepipelineStageAction(
        name=name,
        category=category,
        owner="AWS",
        provider=provider,
        version="1",
        run_order=run_order,
        input_artifacts=inputs,
        output_artifacts=outputs,
        configuration=configuration,
        namespace=namespace,
    )


def _camel(kind: str) -> str:
    """``suggest-baseline`` -> ``SuggestBaseline``."""
    return "".join(part.capitalize() for part in kind.split("-"))
