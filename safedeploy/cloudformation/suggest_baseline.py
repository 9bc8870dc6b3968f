"""``<model>-suggest-baseline``: Model Monitor's own baseline, only with ``monitoring.use_model_monitor``.

This project's baselines (the training features and the model's validation scores, the local Baseline stage's two
Processing jobs) run in the training state machine (:mod:`.training_job`), after training and the gate and before
registration, so the version is registered with both baselines' sha256. This stack stays in the stack list (the
workshop's Train stage deploys and runs it beside the training job), but runs nothing twice:

* by default its state machine is one ``Pass`` state naming where the training state machine's baseline jobs write;
* with ``monitoring.use_model_monitor``, one ``createProcessingJob.sync``: Model Monitor's analyzer image
  (``model_monitor_baseline_job_request``) baselining the training features for Model Monitor's
  ``MonitoringSchedule``, under ``<execution prefix>/model-monitor/`` (``BuildContext.model_monitor_baseline``),
  beside, never over, the files the registry's digests describe.
"""

from __future__ import annotations

from safedeploy import naming
from safedeploy.cloudformation.context import BuildContext
from safedeploy.cloudformation.state_machine import add_state_machine
from safedeploy.cloudformation.template import KMS_KEY_PARAMETER, Json, Template, parameterize, ref, token
from safedeploy.sagemaker_requests.processing import model_monitor_baseline_job_request

BASELINE_STATE = "SuggestBaseline"
PROCESSING_TASK = "arn:aws:states:::sagemaker:createProcessingJob.sync"


def baseline_request(ctx: BuildContext, kms_key_id: str | None) -> Json:
    """Model Monitor's ``CreateProcessingJob`` request (``monitoring.use_model_monitor``)."""
    output = naming.execution_baseline_prefix(ctx.spec, ctx.execution_id).join("model-monitor")
    return dict(
        model_monitor_baseline_job_request(
            ctx.spec,
            job_name=ctx.baseline_job_name,
            baseline_uri=ctx.contract.uri("BaselineUri"),
            output=output,
            image_uri=ctx.images.model_monitor,
            kms_key_id=kms_key_id,
        )
    )


def definition(ctx: BuildContext) -> Json:
    """The state machine definition."""
    if not ctx.spec.monitoring.use_model_monitor:
        baseline = ctx.baseline
        return {
            "Comment": f"{ctx.spec.model_name}'s baselines are suggested by its training state machine",
            "QueryLanguage": "JSONata",
            "StartAt": BASELINE_STATE,
            "States": {
                BASELINE_STATE: {
                    "Type": "Pass",
                    "Comment": "No job here: the training state machine runs both baseline jobs before registering",
                    "Output": {
                        "Statistics": baseline.statistics,
                        "Constraints": baseline.constraints,
                        "OutputStatistics": baseline.output_statistics,
                        "OutputConstraints": baseline.output_constraints,
                    },
                    "End": True,
                }
            },
        }
    return {
        "Comment": f"Model Monitor's baseline of {ctx.spec.model_name}'s training features (for its schedule)",
        "QueryLanguage": "JSONata",
        "StartAt": BASELINE_STATE,
        "States": {
            BASELINE_STATE: {
                "Type": "Task",
                "Resource": PROCESSING_TASK,
                "Arguments": parameterize(baseline_request(ctx, token(KMS_KEY_PARAMETER))),
                "Output": "{% {"
                '"ProcessingJobName": $states.result.ProcessingJobName, '
                '"ProcessingJobStatus": $states.result.ProcessingJobStatus} %}',
                "End": True,
            }
        },
    }


def suggest_baseline_template(ctx: BuildContext) -> Json:
    """The ``<model>-suggest-baseline`` stack."""
    spec = ctx.spec
    if spec.monitoring.use_model_monitor:
        description = f"{spec.pipeline_name}: baseline of the training data by Model Monitor's analyzer"
        baseline, job, writer = ctx.model_monitor_baseline, ctx.baseline_job_name, "Model Monitor's job writes"
    else:
        description = f"{spec.pipeline_name}: baselines (suggested by the training state machine)"
        baseline, job, writer = ctx.baseline, ctx.baseline_job("data"), "the training state machine's job writes"
        if ctx.reused is not None:  # no job runs: the reused version's baselines, its execution's jobs wrote them
            job, writer = "none", f"v{ctx.reused.version}'s baseline job wrote (reused: identical training inputs)"
    template = Template(f"{description} ({ctx.execution_id})")
    kms = template.kms_key_parameter(naming.kms_alias(spec))
    machine = add_state_machine(template, spec, "suggest-baseline", definition(ctx), kms)
    template.output("StateMachineArn", ref(machine), "The state machine the Train stage runs")
    template.output("BaselineJobName", job, "This execution's features baseline job")
    template.output("BaselineStatistics", baseline.statistics, f"statistics.json {writer}")
    template.output("BaselineConstraints", baseline.constraints, f"constraints.json {writer}")
    return template.to_dict()
