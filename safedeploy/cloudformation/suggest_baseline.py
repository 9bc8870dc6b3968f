"""``<model>-suggest-baseline``: Model Monitor's baseline job over the Data stage's baseline dataset.

A Step Functions state machine running one ``createProcessingJob.sync`` (the analyzer image, CSV with a
header) that writes ``statistics.json`` and ``constraints.json`` to ``naming.baseline_prefix``, where the
production stack's data-quality schedule reads them.
"""

from __future__ import annotations

from safedeploy import naming
from safedeploy.cloudformation.context import BuildContext
from safedeploy.cloudformation.state_machine import add_state_machine
from safedeploy.cloudformation.template import KMS_KEY_PARAMETER, Json, Template, parameterize, ref, token
from safedeploy.sagemaker_requests import baseline_files, baseline_job_request

BASELINE_STATE = "SuggestBaseline"
PROCESSING_TASK = "arn:aws:states:::sagemaker:createProcessingJob.sync"


def baseline_request(ctx: BuildContext, kms_key_id: str | None) -> Json:
    """This execution's ``CreateProcessingJob`` request."""
    return dict(
        baseline_job_request(
            ctx.spec,
            job_name=ctx.baseline_job_name,
            baseline_uri=ctx.contract.uri("BaselineUri"),
            image_uri=ctx.images.model_monitor,
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
    template = Template(f"{spec.pipeline_name}: Model Monitor baseline of the training data ({ctx.execution_id})")
    kms = template.kms_key_parameter(naming.kms_alias(spec))
    machine = add_state_machine(template, spec, "suggest-baseline", definition(ctx), kms)
    statistics, constraints = baseline_files(spec)
    template.output("StateMachineArn", ref(machine), "The state machine the Train stage runs")
    template.output("BaselineJobName", ctx.baseline_job_name, "This execution's baseline job")
    template.output("BaselineStatistics", str(statistics), "statistics.json the job writes")
    template.output("BaselineConstraints", str(constraints), "constraints.json the job writes")
    return template.to_dict()
