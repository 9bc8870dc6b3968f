"""``<model>-suggest-baseline``: the baseline of this execution's training features.

A Step Functions state machine running one ``createProcessingJob.sync``: this project's analyzer
(``SUGGEST_BASELINE``) as a plain Processing job on the pinned XGBoost framework image, its code a processing
input, the request built by :func:`safedeploy.monitoring.requests.baseline_job_request` (what the local Baseline
stage runs). It writes ``statistics.json`` and ``constraints.json`` under this execution's own prefix
(``naming.execution_baseline_prefix(...)/data/``), never a shared key: the training state machine registers those
URIs as the new version's ``DriftCheckBaselines`` and the deploy-prd stack of the same execution monitors against
them. With ``monitoring.use_model_monitor`` the job is Model Monitor's analyzer image instead, writing to the same
place.

The model's scores on the validation set (the local Baseline stage's second job) are not baselined here: this
stack runs beside training, before the model exists.
"""

from __future__ import annotations

from safedeploy import naming
from safedeploy.cloudformation.context import BuildContext
from safedeploy.cloudformation.state_machine import add_state_machine
from safedeploy.cloudformation.template import KMS_KEY_PARAMETER, Json, Template, parameterize, ref, token
from safedeploy.monitoring.requests import baseline_job_request
from safedeploy.sagemaker_requests import model_monitor_baseline_job_request

BASELINE_STATE = "SuggestBaseline"
PROCESSING_TASK = "arn:aws:states:::sagemaker:createProcessingJob.sync"


def baseline_request(ctx: BuildContext, kms_key_id: str | None) -> Json:
    """This execution's ``CreateProcessingJob`` request."""
    output = naming.execution_baseline_prefix(ctx.spec, ctx.execution_id).join("data")
    if ctx.spec.monitoring.use_model_monitor:
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
    return dict(
        baseline_job_request(
            ctx.spec,
            job_name=ctx.baseline_job_name,
            dataset=ctx.contract.uri("BaselineUri"),
            output=output,
            code=ctx.analyzer_code,
            image_uri=ctx.images.processing,
            kms_key_id=kms_key_id,
        )
    )


def definition(ctx: BuildContext) -> Json:
    """The state machine definition."""
    return {
        "Comment": f"Suggest the data-quality baseline of {ctx.spec.model_name} from its training features",
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
    analyzer = "Model Monitor's analyzer" if spec.monitoring.use_model_monitor else "the monitor's analyzer"
    template = Template(f"{spec.pipeline_name}: baseline of the training data by {analyzer} ({ctx.execution_id})")
    kms = template.kms_key_parameter(naming.kms_alias(spec))
    machine = add_state_machine(template, spec, "suggest-baseline", definition(ctx), kms)
    baseline = ctx.baseline
    template.output("StateMachineArn", ref(machine), "The state machine the Train stage runs")
    template.output("BaselineJobName", ctx.baseline_job_name, "This execution's baseline job")
    template.output("BaselineStatistics", baseline.statistics, "statistics.json the job writes")
    template.output("BaselineConstraints", baseline.constraints, "constraints.json the job writes")
    return template.to_dict()
