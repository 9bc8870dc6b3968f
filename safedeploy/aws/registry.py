"""The model registry on AWS: SageMaker Model Registry, with the local registry's view of each version.

:class:`AwsModelRegistry` reads and updates a model package group through an injected SageMaker client and speaks
:class:`~safedeploy.registry.ModelRegistry`'s methods, so ``make registry`` and the approval record the same things on
both backends: the approval (``ModelApprovalStatus``, ``ApprovalDescription`` = the comment, and
``ApprovalDecidedBy``/``ApprovalDecidedAt``/``ApprovalComment`` in ``CustomerMetadataProperties``), where a version
serves (``ServesIn``, ``<Stage>Endpoint``, ``<Stage>Since``, ``<Stage>Until``) and its rollback (``RolledBackAt``,
``RolledBackReason``, ``RolledBackBy``), with the metadata changes of :mod:`safedeploy.registry`.

Registration itself is the training state machine's (``createModelPackage``, with ``PipelineExecutionId`` in the
version's metadata): :func:`version_of_execution` finds the version a CodePipeline execution registered, which is how
``approve --target aws`` knows which package its decision is about.

Every update sends the version's whole metadata (and its current status and description when they do not change):
SageMaker merges ``CustomerMetadataProperties`` into what the version has, while moto replaces them, and both end with
the same properties.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.errors import RegistryError, SafeDeployError
from safedeploy.registry import (
    ALLOWED_TRANSITIONS,
    APPROVAL_STATUSES,
    META_DECIDED_BY,
    ApprovalStatus,
    MetadataChange,
    ModelPackage,
    ModelRegistration,
    ServingStage,
    VersionAttachments,
    approval_change,
    best_match,
    leaving_change,
    rollback_change,
    serving_change,
    serving_stages,
)
from safedeploy.training.production import Production

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker.type_defs import DescribeModelPackageOutputTypeDef

    from safedeploy.aws.clients import AwsClients
    from safedeploy.aws.codepipeline import ApprovalDecision
    from safedeploy.spec import PipelineSpec

EXECUTION_SEARCH_LIMIT = 50
"""How many of the newest versions :func:`version_of_execution` looks through."""
METRIC_PREFIX = "metric:"
"""The training state machine records each final metric as ``metric:<name>`` in the version's metadata."""


def _error(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Unknown')}: {error.get('Message', str(exc))}"


def _to_package(raw: DescribeModelPackageOutputTypeDef) -> ModelPackage:
    """A ``DescribeModelPackage`` answer in the local registry's shape (what SageMaker does not keep stays empty)."""
    containers = raw.get("InferenceSpecification", {}).get("Containers", [])
    container = containers[0] if containers else {}
    inference = raw.get("InferenceSpecification", {})
    metadata = dict(raw.get("CustomerMetadataProperties", {}))
    metrics: dict[str, float] = {}
    for key, value in metadata.items():
        if key.startswith(METRIC_PREFIX):
            try:
                metrics[key[len(METRIC_PREFIX) :]] = float(value)
            except ValueError:
                continue
    created = raw.get("CreationTime") or datetime.now(UTC)
    status = raw.get("ModelApprovalStatus", C.APPROVAL_PENDING)
    return ModelPackage(
        ModelPackageGroupName=raw.get("ModelPackageGroupName", ""),
        ModelPackageVersion=raw.get("ModelPackageVersion", 0),
        ModelPackageArn=raw["ModelPackageArn"],
        ModelApprovalStatus=status if status in APPROVAL_STATUSES else C.APPROVAL_PENDING,
        ApprovalDescription=raw.get("ApprovalDescription", ""),
        CreationTime=created,
        LastModifiedTime=raw.get("LastModifiedTime") or created,
        ModelDataUrl=container.get("ModelDataUrl", ""),
        ModelDataETag=container.get("ModelDataETag", ""),
        Framework=container.get("Framework", "XGBOOST"),
        FrameworkVersion=container.get("FrameworkVersion", ""),
        SupportedContentTypes=list(inference.get("SupportedContentTypes", [])),
        SupportedResponseMIMETypes=list(inference.get("SupportedResponseMIMETypes", [])),
        Metrics=metrics,
        Hyperparameters={},
        CustomerMetadataProperties=metadata,
    )


class AwsModelRegistry:
    """A model package group in SageMaker Model Registry, read and updated with an injected client."""

    def __init__(self, sagemaker: SageMakerClient, region: str, account_id: str) -> None:
        self.sagemaker = sagemaker
        self.region = region
        self.account_id = account_id

    def arn(self, group: str, version: int) -> str:
        """The version's ARN."""
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:model-package/{group}/{version}"

    def register(
        self, group: str, registration: ModelRegistration, attach: VersionAttachments | None = None
    ) -> ModelPackage:
        """Not here: on AWS the training state machine registers each version (``createModelPackage``)."""
        raise RegistryError(
            f"versions of {group} are registered on AWS by the pipeline's training state machine, not from here"
        )

    def describe_arn(self, arn: str) -> ModelPackage:
        """One version, by ARN."""
        try:
            return _to_package(self.sagemaker.describe_model_package(ModelPackageName=arn))
        except ClientError as exc:
            raise RegistryError(f"DescribeModelPackage {arn} failed: {_error(exc)}") from None

    def describe(self, group: str, version: int) -> ModelPackage:
        """One version (``RegistryError`` if SageMaker does not have it)."""
        return self.describe_arn(self.arn(group, version))

    def package_arns(self, group: str, newest_first: bool = False) -> Iterator[str]:
        """The ARNs of ``group``'s versions, by creation time."""
        token: str | None = None
        order: Any = "Descending" if newest_first else "Ascending"
        try:
            while True:
                page = (
                    self.sagemaker.list_model_packages(
                        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder=order, NextToken=token
                    )
                    if token
                    else self.sagemaker.list_model_packages(
                        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder=order
                    )
                )
                for summary in page.get("ModelPackageSummaryList", []):
                    yield summary["ModelPackageArn"]
                token = page.get("NextToken")
                if not token:
                    return
        except ClientError as exc:
            raise RegistryError(f"ListModelPackages of {group} failed: {_error(exc)}") from None

    def list_versions(self, group: str) -> list[ModelPackage]:
        """Every version of ``group``, oldest first (empty if the group has none)."""
        packages = [self.describe_arn(arn) for arn in self.package_arns(group)]
        return sorted(packages, key=lambda p: p.ModelPackageVersion)

    def find_by_inputs(self, group: str, inputs_sha256: str) -> ModelPackage | None:
        """The non-rejected version whose ``InputsSha256`` metadata is ``inputs_sha256`` (:func:`best_match`)."""
        return best_match(self.list_versions(group), inputs_sha256) if inputs_sha256 else None

    def production(self, group: str) -> ModelPackage | None:
        """The version whose ``ServesIn`` names ``prd`` (newest first), per the registry."""
        for arn in self.package_arns(group, newest_first=True):
            package = self.describe_arn(arn)
            if C.PRD_STAGE in package.serves_in:
                return package
        return None

    def _update(
        self,
        package: ModelPackage,
        change: MetadataChange,
        *,
        status: ApprovalStatus | None = None,
        description: str | None = None,
    ) -> ModelPackage:
        metadata = change.apply(package.CustomerMetadataProperties)
        request: dict[str, Any] = {
            "ModelPackageArn": package.ModelPackageArn,
            "ModelApprovalStatus": status or package.ModelApprovalStatus,
            "CustomerMetadataProperties": metadata,
        }
        text = description if description is not None else package.ApprovalDescription
        if text:
            request["ApprovalDescription"] = text[:1024]  # SageMaker's limit
        removed = [key for key in change.remove if key in package.CustomerMetadataProperties]
        if removed:
            request["CustomerMetadataPropertiesToRemove"] = removed
        try:
            self.sagemaker.update_model_package(**request)
        except ClientError as exc:
            raise RegistryError(f"UpdateModelPackage {package.ModelPackageArn} failed: {_error(exc)}") from None
        return self.describe_arn(package.ModelPackageArn)

    def update_approval(
        self, group: str, version: int, status: ApprovalStatus, *, changed_by: str, reason: str
    ) -> ModelPackage:
        """Approve or reject a version: its status, the comment as ``ApprovalDescription``, who and when as metadata.

        Raises:
            RegistryError: an empty actor or reason, an illegal transition, or SageMaker refused.
        """
        if not changed_by.strip():
            raise RegistryError("an approval change needs the name of who made it")
        if not reason.strip():
            raise RegistryError("an approval change needs a reason")
        package = self.describe(group, version)
        if status not in ALLOWED_TRANSITIONS[package.ModelApprovalStatus]:
            raise RegistryError(
                f"model package {group}/{version} is {package.ModelApprovalStatus}; it cannot become {status}"
            )
        change = approval_change(status, by=changed_by, comment=reason, at=datetime.now(UTC))
        return self._update(package, change, status=status, description=reason)

    def record_serving(
        self, group: str, version: int, stage: ServingStage, endpoint: str, *, at: datetime | None = None
    ) -> ModelPackage:
        """``version`` serves ``stage`` on ``endpoint`` since ``at``; the version serving it before gets an Until."""
        now = at or datetime.now(UTC)
        package = self.describe(group, version)
        for other in self.list_versions(group):
            if other.ModelPackageVersion != version and stage in serving_stages(other.CustomerMetadataProperties):
                self._update(other, leaving_change(other.CustomerMetadataProperties, stage, now))
        change = serving_change(package.CustomerMetadataProperties, stage, endpoint, now)
        return self._update(package, change) if change else package

    def record_rollback(
        self, group: str, version: int, *, reason: str, by: str, at: datetime | None = None
    ) -> ModelPackage:
        """``version`` was rolled back from production: ``RolledBackAt``/``Reason``/``By``; it leaves ``prd``."""
        if not reason.strip():
            raise RegistryError("a rollback needs a reason")
        package = self.describe(group, version)
        change = rollback_change(package.CustomerMetadataProperties, reason=reason, by=by, at=at or datetime.now(UTC))
        return self._update(package, change)


def published_version(ssm: Any, spec: PipelineSpec, execution_id: str) -> int | None:
    """The version an execution's training state machine published (``naming.model_version_parameter``), if any.

    What the execution's deploy stacks serve: the version it registered, or the one it reused (identical training
    inputs register nothing, so no version carries the execution's id). ``ssm`` is a boto3 SSM client.
    """
    name = naming.model_version_parameter(spec, execution_id)
    try:
        value = str(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise RegistryError(f"GetParameter {name} failed: {_error(exc)}") from None
    except BotoCoreError as exc:
        raise RegistryError(f"GetParameter {name} failed: {exc}") from None
    return int(value) if value.strip().isdigit() else None


def version_of_execution(
    registry: AwsModelRegistry,
    group: str,
    execution_id: str,
    published: Callable[[str], int | None] | None = None,
) -> ModelPackage:
    """The version a CodePipeline execution registered (its ``PipelineExecutionId`` metadata), newest first.

    Else, with ``published`` (:func:`published_version`), the version the execution published for its deploy stacks:
    the one it reused.

    Raises:
        RegistryError: none of the latest :data:`EXECUTION_SEARCH_LIMIT` versions was registered by it (nor
            published by it).
    """
    for count, arn in enumerate(registry.package_arns(group, newest_first=True)):
        if count >= EXECUTION_SEARCH_LIMIT:
            break
        package = registry.describe_arn(arn)
        if package.CustomerMetadataProperties.get("PipelineExecutionId") == execution_id:
            return package
    version = published(execution_id) if published is not None else None
    if version is not None:
        return registry.describe(group, version)
    raise RegistryError(
        f"no version of {group} among the latest {EXECUTION_SEARCH_LIMIT} was registered by execution {execution_id}"
    )


def record_decision(
    registry: AwsModelRegistry,
    group: str,
    execution_id: str,
    *,
    approved: bool,
    by: str,
    comment: str,
    dev_endpoint: str,
    dev_since: datetime | None,
    published: Callable[[str], int | None] | None = None,
) -> ModelPackage:
    """The manual approval's decision on the version ``execution_id`` registered, in the registry.

    The version serves the dev endpoint while its approval waits (DeployDev deploys it first), so that is recorded
    too, since the approval was requested.
    """
    package = version_of_execution(registry, group, execution_id, published)
    version = package.ModelPackageVersion
    if C.DEV_STAGE not in package.serves_in:
        registry.record_serving(group, version, C.DEV_STAGE, dev_endpoint, at=dev_since)
    status: ApprovalStatus = C.APPROVAL_APPROVED if approved else C.APPROVAL_REJECTED
    current = registry.describe(group, version)
    if current.ModelApprovalStatus == status:
        return current
    return registry.update_approval(group, version, status, changed_by=by, reason=comment)


def registry_of(clients: AwsClients, spec: PipelineSpec) -> AwsModelRegistry:
    """The spec's registry on AWS."""
    return AwsModelRegistry(clients.sagemaker, spec.region, spec.account_id)


def record_approval(clients: AwsClients, spec: PipelineSpec, decision: ApprovalDecision) -> str:
    """Put a CodePipeline approval decision in the registry; return one line saying what the registry now holds.

    Never raises for a registry or AWS failure: the decision itself is already made (CodePipeline has it), so a
    version that cannot be found or updated is reported in the returned line instead.
    """
    approval = decision.approval
    group = naming.model_package_group(spec)
    if approval.execution_id is None:
        return f"the registry was not updated: CodePipeline did not say which execution {group}'s approval was for"
    try:
        package = record_decision(
            registry_of(clients, spec),
            group,
            approval.execution_id,
            approved=decision.status == "Approved",
            by=clients.caller_arn,
            comment=decision.comment,
            dev_endpoint=naming.endpoint_name(spec, C.DEV_STAGE),
            dev_since=approval.requested_at,
            published=lambda execution: published_version(clients.ssm, spec, execution),
        )
    except (SafeDeployError, BotoCoreError, ClientError) as exc:
        return f"the registry was not updated ({' '.join(str(exc).split())}): set the status by hand if needed"
    return (
        f"model package {package.ModelPackageGroupName}/{package.ModelPackageVersion} is now "
        f"{package.ModelApprovalStatus} (ApprovalDescription {package.ApprovalDescription!r}, "
        f"ApprovalDecidedBy {package.CustomerMetadataProperties.get(META_DECIDED_BY, '?')})"
    )


SERVING_STACKS: tuple[tuple[ServingStage, str], ...] = ((C.DEV_STAGE, "deploy-dev"), (C.PRD_STAGE, "deploy-prd"))
"""Which per-model stack serves which stage (its ``ModelVersion`` output names the version)."""
SETTLED_STACK_STATUSES = frozenset(("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"))
"""Stack statuses whose outputs say what serves now (after a rolled-back update: the version from before)."""


def sync_from_aws(
    registry: AwsModelRegistry,
    spec: PipelineSpec,
    cloudformation: CloudFormationClient,
    codepipeline: CodePipelineClient,
    ssm: Any = None,
) -> list[str]:
    """Bring the registry's ``ServesIn`` and rollback marks up to date with what AWS runs; return what changed.

    * the deploy-dev and deploy-prd stacks' ``ModelVersion`` output is the version serving that stage (since the
      stack's last update);
    * a DeployPrd stage whose latest execution failed (CodeDeploy rolled the canary back, or the stack update
      failed and CloudFormation rolled it back) marks the version that execution registered as rolled back, with the
      action's error as the reason.

    Anything that cannot be read is skipped with a note (the listing still shows what the registry holds).
    """
    from safedeploy.aws import codepipeline as cp

    group = naming.model_package_group(spec)
    notes: list[str] = []
    for stage, kind in SERVING_STACKS:
        name = naming.stack_name(spec, kind)
        try:
            stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            if "does not exist" not in _error(exc):
                notes.append(f"{name} could not be read ({_error(exc)})")
            continue
        stack = stacks[0] if stacks else None
        if stack is None or stack["StackStatus"] not in SETTLED_STACK_STATUSES:
            continue
        outputs = {o.get("OutputKey", ""): o.get("OutputValue", "") for o in stack.get("Outputs", [])}
        if not outputs.get("ModelVersion", "").isdigit():
            continue
        version = int(outputs["ModelVersion"])
        since = stack.get("LastUpdatedTime") or stack.get("CreationTime")
        try:
            if stage not in registry.describe(group, version).serves_in:
                endpoint = outputs.get("EndpointName") or naming.endpoint_name(spec, stage)
                registry.record_serving(group, version, stage, endpoint, at=since)
                notes.append(f"v{version} serves {stage} ({name})")
        except RegistryError as exc:
            notes.append(f"{name} serves v{version}, which the registry cannot record: {exc}")
    try:
        states = cp.stage_states(codepipeline, naming.codepipeline_name(spec))
    except cp.PipelineQueryError as exc:
        notes.append(f"the pipeline's DeployPrd could not be read ({exc})")
        return notes
    deploy_prd = next((s for s in states if s.name == C.STAGE_DEPLOY_PRD), None)
    if deploy_prd is None or deploy_prd.status != "Failed" or deploy_prd.execution_id is None:
        return notes
    failed = next((a for a in deploy_prd.actions if a.status == "Failed"), None)
    try:
        published = (lambda execution: published_version(ssm, spec, execution)) if ssm is not None else None
        package = version_of_execution(registry, group, deploy_prd.execution_id, published)
        if C.PRD_STAGE not in package.serves_in and not package.rolled_back:
            why = failed.error if failed and failed.error else "no error message"
            registry.record_rollback(
                group,
                package.ModelPackageVersion,
                reason=f"DeployPrd of execution {deploy_prd.execution_id} failed: {why}",
                by=f"CodePipeline {naming.codepipeline_name(spec)}",
                at=failed.changed_at if failed else None,
            )
            notes.append(f"v{package.ModelPackageVersion} marked rolled back (its DeployPrd failed)")
    except RegistryError as exc:
        notes.append(f"the version of the failed DeployPrd is unknown: {exc}")
    return notes


def synced_versions(clients: AwsClients, spec: PipelineSpec) -> tuple[list[ModelPackage], list[str]]:
    """``make registry TARGET=aws``: the versions, after bringing the registry up to date with AWS; and what changed."""
    registry = registry_of(clients, spec)
    notes = sync_from_aws(registry, spec, clients.cloudformation, clients.codepipeline, clients.ssm)
    return registry.list_versions(naming.model_package_group(spec)), notes


def production_version_of(spec: PipelineSpec, endpoint: str) -> int | None:
    """The version a production endpoint serves, from its name (``naming.green_endpoint_name``); None if not one."""
    match = re.fullmatch(rf"{re.escape(spec.model_name)}-{C.PRD_STAGE}-v(\d+)-[A-Za-z0-9]+", endpoint)
    return int(match.group(1)) if match else None


def resolve_production(ssm: Any, registry: AwsModelRegistry, spec: PipelineSpec) -> Production | None:
    """The version serving production on AWS and its model archive: what the comparative quality gate scores.

    The SSM parameter ``naming.production_endpoint_parameter`` names the endpoint production serves (the
    post-traffic hook sets it once green passed; ``none`` before a first deployment); the endpoint's name carries
    its version; the registry gives that version's ``ModelDataUrl`` and sha256. None: no production yet.
    ``ssm`` is a boto3 SSM client (injected).

    Raises:
        RegistryError: the parameter cannot be read, names an endpoint that is not a production one, or the
            registry has no such version (the gate must not silently become absolute).
    """
    name = naming.production_endpoint_parameter(spec)
    try:
        endpoint = str(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise RegistryError(f"GetParameter {name} failed: {_error(exc)}") from None
    except BotoCoreError as exc:
        raise RegistryError(f"GetParameter {name} failed: {exc}") from None
    if endpoint.strip().lower() in ("", "none"):
        return None
    version = production_version_of(spec, endpoint)
    if version is None:
        raise RegistryError(f"{name} names {endpoint!r}, which is not a production endpoint of {spec.model_name}")
    package = registry.describe(naming.model_package_group(spec), version)
    return Production(version, package.ModelDataUrl, package.ModelDataETag)
