"""All four per-model stacks of one build, each a template and its CodePipeline template configuration."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from safedeploy import naming
from safedeploy.cloudformation.context import BuildContext
from safedeploy.cloudformation.deploy_dev import deploy_dev_template
from safedeploy.cloudformation.deploy_prd import deploy_prd_template
from safedeploy.cloudformation.suggest_baseline import suggest_baseline_template
from safedeploy.cloudformation.template import (
    AUC_THRESHOLD_PARAMETER,
    BLUE_ENDPOINT_PARAMETER,
    KMS_KEY_PARAMETER,
    MODEL_VERSION_PARAMETER,
    Json,
)
from safedeploy.cloudformation.training_job import training_job_template

BUILDERS: Mapping[str, Callable[[BuildContext], Json]] = {
    "training-job": training_job_template,
    "suggest-baseline": suggest_baseline_template,
    "deploy-dev": deploy_dev_template,
    "deploy-prd": deploy_prd_template,
}


@dataclass(frozen=True)
class StackDocuments:
    """One stack's files: ``<kind>.template.json`` and ``<kind>.config.json``."""

    kind: str
    template: Json
    configuration: Json


def template_configuration(ctx: BuildContext, template: Json, kms_key_arn: str) -> Json:
    """CodePipeline's template configuration: a value for every parameter the template declares, and tags."""
    known = {
        KMS_KEY_PARAMETER: kms_key_arn,
        MODEL_VERSION_PARAMETER: naming.model_version_parameter(ctx.spec, ctx.execution_id),
        BLUE_ENDPOINT_PARAMETER: naming.production_endpoint_parameter(ctx.spec),
        AUC_THRESHOLD_PARAMETER: naming.auc_threshold_parameter(ctx.spec, ctx.execution_id),
    }
    declared = list(template.get("Parameters", {}))
    unknown = [name for name in declared if name not in known]
    if unknown:
        raise ValueError(f"no value for template parameter(s) {', '.join(unknown)}")
    return {
        "Parameters": {name: known[name] for name in declared},
        "Tags": {
            naming.MODEL_TAG_KEY: ctx.spec.model_name,
            naming.ENVIRONMENT_TAG_KEY: ctx.spec.environment,
            "safedeploy:pipeline-execution": ctx.execution_id,
            "safedeploy:code-revision": ctx.code_revision[:256],
        },
    }


def render_stacks(ctx: BuildContext, kms_key_arn: str) -> dict[str, StackDocuments]:
    """Every stack of ``naming.STACK_KINDS``, in that order; nothing is written here."""
    stacks: dict[str, StackDocuments] = {}
    for kind in naming.STACK_KINDS:
        template = BUILDERS[kind](ctx)
        stacks[kind] = StackDocuments(kind, template, template_configuration(ctx, template, kms_key_arn))
    return stacks
