"""``<model>-deploy-dev``: the registered version on the stable ``<model>-dev`` endpoint, data capture on.

The same CreateModel / CreateEndpointConfig requests the local backend's DeployDev stage sends, rendered as
resources; a new version changes the endpoint's config, which CloudFormation applies as ``UpdateEndpoint``.
Then the smoke test (:func:`~safedeploy.cloudformation.synthetic.add_smoke_test`, as the local DeployDev's
``safedeploy/smoke.py``): held-out rows through ``InvokeEndpoint`` must equal the offline predictions, or the
stack fails (and rolls back) and the stage fails before the approval.
"""

from __future__ import annotations

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.cloudformation.context import BuildContext
from safedeploy.cloudformation.endpoints import add_serving
from safedeploy.cloudformation.synthetic import add_smoke_test
from safedeploy.cloudformation.template import MODEL_VERSION_PARAMETER, Json, Template, get_att, token
from safedeploy.sagemaker_requests.serving import DeploymentNames, deployment_names


def dev_names(ctx: BuildContext) -> DeploymentNames:
    """The dev deployment's names, with the registry version left to the ``ModelVersion`` parameter."""
    return deployment_names(
        ctx.spec, stage=C.DEV_STAGE, version=token(MODEL_VERSION_PARAMETER), execution_id=ctx.execution_id
    )


def deploy_dev_template(ctx: BuildContext) -> Json:
    """The ``<model>-deploy-dev`` stack."""
    spec = ctx.spec
    template = Template(
        f"{spec.pipeline_name}: the dev endpoint {naming.endpoint_name(spec, C.DEV_STAGE)}, smoke-tested",
        serverless=True,
    )
    kms = template.kms_key_parameter(naming.kms_alias(spec))
    version = template.model_version_parameter()
    serving = add_serving(
        template,
        ctx,
        dev_names(ctx),
        instance_count=spec.serving.instance_count,
        instance_type=spec.serving.instance_type,
    )
    smoke = add_smoke_test(template, ctx, endpoint=serving.endpoint, model_version=version, kms_key=kms)
    template.output("ModelVersion", version, "The registry version served")
    template.output("SmokeTest", get_att(smoke, "Summary"), "Held-out rows against the offline predictions")
    return template.to_dict()
