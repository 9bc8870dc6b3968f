"""Pipeline control on AWS: the pipeline's CodePipeline, its stacks and its base infrastructure.

``start`` validates, encodes and uploads the data (the data-source contract's upload starts CodePipeline through the
EventBridge rule); ``status`` reads ``GetPipelineState``; ``decide`` answers the manual approval with
``PutApprovalResult``; ``destroy`` deletes the per-model stacks in order and then the Terraform base infrastructure
(with a model: that model's stacks only); ``rollback`` is refused, saying what AWS does instead.
``start`` and ``destroy`` first check that the credentials belong to the spec's account; the read-only calls and
``decide`` find no pipeline in another account, and say so.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from safedeploy import naming
from safedeploy.approval import Decision
from safedeploy.aws import cleanup
from safedeploy.aws import codepipeline as cp
from safedeploy.aws.clients import AwsClients, verify_account
from safedeploy.aws.registry import record_approval, synced_versions
from safedeploy.aws.retraining import AwsRetrainingRecord, RetrainingTrigger, check_on_aws, read_record
from safedeploy.aws.retraining import describe as describe_retraining
from safedeploy.aws.submit import Submission, submit
from safedeploy.control import ControlReport, DestroyOptions, Progress, Target
from safedeploy.errors import ConfigError
from safedeploy.infra.terraform_cli import working_copy
from safedeploy.registry import ModelPackage
from safedeploy.report import format_registry
from safedeploy.spec import PipelineSpec, spec_for_model

LOG = logging.getLogger(__name__)

HISTORY_LIMIT = 100
"""How many of CodePipeline's executions ``history`` lists."""


@dataclasses.dataclass(frozen=True)
class AwsStatus:
    """``GetPipelineState`` and the execution asked about."""

    pipeline: str
    execution: cp.ExecutionSummary | None
    stages: list[cp.StageState]
    pending_approval: cp.PendingApproval | None


class AwsControl:
    """:class:`safedeploy.control.PipelineControl` on the spec's AWS account and region."""

    def __init__(self, spec: PipelineSpec, clients: Callable[[PipelineSpec], AwsClients]) -> None:
        self.spec = spec
        self._clients = clients
        self.pipeline_name = naming.codepipeline_name(spec)

    @property
    def target(self) -> Target:
        """``aws``."""
        return "aws"

    @cached_property
    def clients(self) -> AwsClients:
        """The AWS clients, created on first use."""
        return self._clients(self.spec)

    @cached_property
    def caller(self) -> str:
        """Who the credentials are (checked to be in the spec's account once, on first use)."""
        return verify_account(self.clients.sts, self.spec)

    def start(self, trigger: str) -> ControlReport[Submission]:
        """Upload the prepared data; the contract's upload starts the CodePipeline."""
        source = self.spec.data.source
        if source is None:
            raise ConfigError("no input data: pass --data <path> (make deploy TARGET=aws DATA=<path>)")
        _ = self.caller
        submitted = submit(self.spec, self.clients.s3, source)
        rows = submitted.prepared.rows
        text = (
            f"uploaded {sum(rows.values())} rows (train {rows['train']} / validation {rows['validation']} / "
            f"test {rows['test']}) and {submitted.contract_uri} (version {submitted.contract_version}):\n"
            f"CodePipeline {submitted.pipeline} starts on it (EventBridge rule on the upload).\n"
            f"  follow:  make status TARGET=aws\n"
            f"  approve: make approve TARGET=aws COMMENT='why' once ApproveDeployment waits"
        )
        return ControlReport(submitted, text)

    def retry(self, execution_id: str | None = None) -> ControlReport[cp.RetriedStage]:
        """Retry the failed actions of the latest (or the given) execution's failed stage (``RetryStageExecution``)."""
        retried = cp.retry_failed_stage(self.clients.codepipeline, self.pipeline_name, execution_id)
        text = (
            f"retrying the failed actions of stage {retried.stage_name} of {self.pipeline_name} execution "
            f"{retried.execution_id}: follow it with `make status TARGET=aws`"
        )
        return ControlReport(retried, text)

    def status(self, execution_id: str | None = None, *, as_json: bool = False) -> ControlReport[AwsStatus]:
        """The latest (or the given) execution and every stage's latest state."""
        client, name = self.clients.codepipeline, self.pipeline_name
        execution = cp.find_execution(client, name, execution_id) if execution_id else cp.latest_execution(client, name)
        stages = cp.stage_states(client, name)
        try:
            approval = cp.pending_approval(client, name, states=stages)
        except cp.PipelineQueryError as exc:  # a pipeline without the approval action still has a status
            LOG.debug("no approval to show: %s", exc)
            approval = None
        status = AwsStatus(name, execution, stages, approval)
        if as_json:
            document = {
                "pipeline": name,
                "execution": dataclasses.asdict(execution) if execution else None,
                "stages": [dataclasses.asdict(stage) for stage in stages],
                "pending_approval": dataclasses.asdict(approval) if approval else None,
            }
            return ControlReport(status, json.dumps(document, indent=2, default=str))
        return ControlReport(status, cp.format_status(name, execution, stages, approval))

    def history(self) -> ControlReport[list[cp.ExecutionSummary]]:
        """The latest executions, newest first, as CodePipeline lists them."""
        executions = cp.list_executions(self.clients.codepipeline, self.pipeline_name, limit=HISTORY_LIMIT)
        lines = [
            f"{e.started_at:%Y-%m-%d %H:%M:%S}  {e.execution_id}  {e.status}"
            if e.started_at
            else f"-  {e.execution_id}  {e.status}"
            for e in executions
        ]
        return ControlReport(executions, "\n".join(lines))

    def decide(self, decision: Decision, execution_id: str | None = None) -> ControlReport[cp.ApprovalDecision]:
        """Answer the manual approval (CodePipeline records the caller's identity with it)."""
        answered = cp.decide(
            self.clients.codepipeline,
            self.pipeline_name,
            approved=decision.outcome == "Approved",
            comment=decision.comment,
            execution_id=execution_id,
        )
        approval = answered.approval
        then = "it goes on to DeployPrd" if answered.status == "Approved" else "the execution stops there"
        text = (
            f"{answered.status} {self.pipeline_name} execution {approval.execution_id} at "
            f"{approval.stage_name}/{approval.action_name}: {answered.comment!r}; {then}. "
            "CodePipeline records your AWS identity with the decision.\n"
            f"{record_approval(self.clients, self.spec, answered)}"
        )
        return ControlReport(answered, text)

    def registry(self) -> ControlReport[list[ModelPackage]]:
        """SageMaker's registry, first brought up to date with what the stacks serve and a failed DeployPrd."""
        packages, notes = synced_versions(self.clients, self.spec)
        return ControlReport(packages, format_registry(packages, naming.model_package_group(self.spec), notes))

    def check_retraining(self, trigger: str, alarm: str = "", since: str = "") -> ControlReport[AwsRetrainingRecord]:
        """The retraining build's look: the decision against AWS's state, then the new data's contract upload."""
        _ = self.caller
        clients = self.clients
        record = check_on_aws(
            self.spec,
            s3=clients.s3,
            ssm=clients.ssm,
            cloudwatch=clients.cloudwatch,
            codepipeline=clients.codepipeline,
            request=RetrainingTrigger(trigger, alarm, since),
        )
        return ControlReport(record, describe_retraining(record))

    def retraining_status(self) -> ControlReport[AwsRetrainingRecord | None]:
        """The retraining record the last look saved (SSM)."""
        record = read_record(self.clients.ssm, self.spec)
        return ControlReport(record, describe_retraining(record))

    def rollback(self, version: int | None, by: str) -> ControlReport[object]:
        """Refused: on AWS production rolls back by itself (CodeDeploy), and no command deploys an earlier version.

        Raises:
            ConfigError: always, saying what AWS does and what to run instead.
        """
        del by
        named = f" to v{version}" if version is not None else ""
        stack = naming.stack_name(self.spec, "deploy-prd")
        raise ConfigError(
            f"rollback{named} --target aws is not available: on AWS, CodeDeploy rolls a failing deployment back "
            f"by itself (its alarms or hooks put the API alias back on the previous Lambda version and the {stack} "
            "stack update rolls back; `make registry TARGET=aws` marks that version rolled back). To serve an earlier "
            "version there, run the pipeline on that version's data and code (`make deploy TARGET=aws DATA=...`): "
            "identical inputs reuse the registered version, and its approval deploys it through the same canary"
        )

    def _for(self, options: DestroyOptions) -> AwsControl:
        """Control of ``options.model``'s pipeline (this one without a model)."""
        if options.model is None or options.model == self.spec.model_name:
            return self
        return AwsControl(spec_for_model(self.spec, options.model), self._clients)

    def _terraform_dir(self, options: DestroyOptions) -> Path | None:
        if options.keep_base_infra or options.model is not None:
            return None
        # The reviewed root stays free of .terraform state: terraform runs in the same working copy `make plan` uses
        # (the state itself is in the S3 backend that backend.hcl names).
        source = options.terraform_dir or Path("terraform") / self.spec.environment
        return working_copy(source, Path("build") / "terraform" / source.name) if source.is_dir() else source

    def destroy_plan(self, options: DestroyOptions) -> str:
        """The stacks in deletion order, then the base infrastructure (with a model: its stacks only)."""
        if (other := self._for(options)) is not self:
            return other.destroy_plan(options)
        spec = self.spec
        stacks = ", ".join(naming.stack_name(spec, kind) for kind in naming.DESTROY_ORDER)
        root = options.terraform_dir or Path("terraform") / spec.environment
        base = (
            f"keep the base infrastructure (MODEL={spec.model_name}: its stacks only; `make destroy TARGET=aws` "
            "without MODEL removes the base infrastructure too)"
            if options.model is not None
            else "keep the base infrastructure"
            if options.keep_base_infra
            else f"empty the buckets {', '.join(cleanup.destroy_buckets(spec))} (every object version), delete "
            f"the registry's model packages and group {naming.model_package_group(spec)}, "
            f"then terraform destroy {root}"
        )
        return (
            f"destroy {spec.pipeline_name} on AWS account {spec.account_id} ({spec.region}) as {self.caller}: "
            f"stop the running executions of CodePipeline {self.pipeline_name}, "
            f"delete the stacks {stacks} (in this order), then {base}"
        )

    def destroy(self, options: DestroyOptions, progress: Progress) -> ControlReport[cleanup.AwsDestroyReport]:
        """Stop running executions, delete the stacks in order, then destroy the base infrastructure.

        With ``options.model``: that model's running executions and stacks only; the base infrastructure stays.
        """
        if (other := self._for(options)) is not self:
            return other.destroy(options, progress)
        spec = self.spec
        _ = self.caller
        progress(f"destroying {spec.pipeline_name} on AWS account {spec.account_id} ({spec.region}):")
        width = cleanup.report_width(spec)
        report = cleanup.destroy_aws(
            self.clients.cloudformation,
            spec,
            terraform_dir=self._terraform_dir(options),
            codepipeline=self.clients.codepipeline,
            timeout_s=options.stack_timeout_s,
            progress=lambda done: progress(cleanup.format_stack_line(done, width)),
            s3=self.clients.s3,
            sagemaker=self.clients.sagemaker,
            resource_progress=lambda done: progress(cleanup.format_resource_line(done, width)),
        )
        base = report.base
        if options.model is not None and base.detail == "kept (--keep-base-infra)":
            base = cleanup.BaseInfraOutcome("skipped", f"kept (MODEL={spec.model_name}: that model's stacks only)")
        lines = [cleanup.format_base_line(base, width)]
        lines += [f"  (stopped execution {e} of {self.pipeline_name} first)" for e in report.stopped]
        return ControlReport(report, "\n".join(lines), report.ok)
