"""``<model>-deploy-prd``: blue/green production, monitored, behind the REST API.

Two shapes, chosen by ``production.strategy`` (see :mod:`.traffic_shifting`):

* **CodeDeploy** (its configs, or ``Custom``): every version gets its own endpoint (green) beside the
  previous one (blue, kept by the previous stack state until CloudFormation's cleanup); the API function's
  new version points at green and CodeDeploy shifts the ``live`` alias from blue's version to green's per the
  schedule, watching the alarms (the catalog's: error rate, latency relative to blue, prediction shift; missing
  data breaching), with the pre/post-traffic hooks and the synthetic canary feeding green and blue held-out rows
  (:mod:`.synthetic`). An alarm or a failed hook rolls the alias and the stack back, which deletes green.
* **Guardrails** (``CANARY``/``LINEAR``/``ALL_AT_ONCE``): one stable endpoint whose config changes; SageMaker
  shifts capacity per the endpoint's ``DeploymentConfig`` and rolls back on the alarms.

Either way: data capture (KMS), data-quality monitoring against the served version's baseline (the monitor's
Processing job on an EventBridge Scheduler schedule, or Model Monitor with ``monitoring.use_model_monitor``), the
drift alarms, model-quality monitoring (:mod:`.model_quality`: the analyzer's job on its own schedule, against the
version's model-quality baseline, and the AUC alarm), autoscaling, the API, and the API's standing probe
(:func:`.synthetic.add_probe`, a scheduled Lambda, with its alarm).
"""

from __future__ import annotations

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.cloudformation.alarms import alarm_refs, deployment_alarms, drift_alarms, endpoint_dimensions
from safedeploy.cloudformation.autoscaling import add_autoscaling, variant_resource_id
from safedeploy.cloudformation.context import BuildContext
from safedeploy.cloudformation.endpoints import ENDPOINT, add_serving
from safedeploy.cloudformation.functions import add_api_function, add_hook_functions
from safedeploy.cloudformation.model_quality import add_model_quality_monitoring
from safedeploy.cloudformation.monitoring import add_model_monitor_schedule, add_monitoring_schedule
from safedeploy.cloudformation.rest_api import add_rest_api
from safedeploy.cloudformation.state_machine import role_arn
from safedeploy.cloudformation.synthetic import add_canary, add_probe
from safedeploy.cloudformation.template import (
    MODEL_VERSION_PARAMETER,
    Json,
    Template,
    get_att,
    parameterize,
    ref,
    token,
)
from safedeploy.cloudformation.traffic_shifting import codedeploy_type, guardrails_deployment_config, uses_guardrails
from safedeploy.sagemaker_requests.serving import DeploymentNames, deployment_names, green_endpoint_name


def prd_names(ctx: BuildContext) -> DeploymentNames:
    """Production's names: a green endpoint per version (CodeDeploy), or the stable endpoint (guardrails)."""
    version = token(MODEL_VERSION_PARAMETER)
    green = None
    if not uses_guardrails(ctx.spec.production):
        green = green_endpoint_name(ctx.spec, version, ctx.execution_id)
    return deployment_names(
        ctx.spec, stage=C.PRD_STAGE, version=version, execution_id=ctx.execution_id, endpoint_name=green
    )


def deploy_prd_template(ctx: BuildContext) -> Json:
    """The ``<model>-deploy-prd`` stack."""
    spec = ctx.spec
    production = spec.production
    guardrails = uses_guardrails(production)
    mode = "SageMaker deployment guardrails" if guardrails else "CodeDeploy"
    template = Template(
        f"{spec.pipeline_name}: production, blue/green by {mode} ({production.strategy}), monitored, REST API",
        serverless=True,
    )
    kms = template.kms_key_parameter(naming.kms_alias(spec))
    version = template.model_version_parameter()
    names = prd_names(ctx)
    endpoint = get_att(ENDPOINT, "EndpointName")

    preference: Json | None = None
    before_shift: list[str] = []
    if guardrails:
        # Literal names, not GetAtt: the endpoint's rollback configuration refers to these alarms.
        alarms = deployment_alarms(
            template, spec, endpoint_dimensions(names.endpoint, parameterize(names.endpoint_config))
        )
        add_serving(
            template,
            ctx,
            names,
            instance_count=production.instance_count,
            instance_type=production.instance_type,
            endpoint_properties={"DeploymentConfig": guardrails_deployment_config(production, alarm_refs(alarms))},
        )
    else:
        add_serving(
            template, ctx, names, instance_count=production.instance_count, instance_type=production.instance_type
        )
        blue = template.blue_endpoint_parameter()
        canary = production.synthetic_traffic
        alarms = deployment_alarms(
            template,
            spec,
            endpoint_dimensions(endpoint),
            blue_dimensions=endpoint_dimensions(blue),
            canary_endpoint=endpoint if canary else None,
        )
        if canary:  # created before the alias moves, so it feeds green while the pre-traffic hook runs
            before_shift.append(add_canary(template, ctx, endpoint=endpoint, blue_endpoint=blue, kms_key=kms))
        pre, post = add_hook_functions(template, ctx, endpoint=endpoint, kms_key=kms)
        preference = {
            "Type": codedeploy_type(template, production),
            "Alarms": [ref(alarm) for alarm in alarms],
            "Hooks": {"PreTraffic": ref(pre), "PostTraffic": ref(post)},
            "Role": role_arn(spec, "codedeploy"),
        }

    if spec.monitoring.use_model_monitor:
        add_model_monitor_schedule(template, ctx, endpoint, kms)
    else:
        add_monitoring_schedule(template, ctx, names.endpoint, kms, depends_on=[ENDPOINT])
    drift_alarms(template, spec, endpoint)
    quality = spec.monitoring.model_quality
    if quality.enabled:
        threshold = quality.auc_threshold if quality.auc_threshold is not None else template.auc_threshold_parameter()
        add_model_quality_monitoring(template, ctx, names.endpoint, endpoint, kms, threshold, depends_on=[ENDPOINT])
    function = add_api_function(
        template,
        ctx,
        endpoint=endpoint,
        model_version=version,
        kms_key=kms,
        deployment_preference=preference,
        depends_on=before_shift,
    )
    add_rest_api(template, ctx, function, kms)
    if spec.monitoring.synthetic_canary.enabled:
        add_probe(template, ctx, kms_key=kms)
        template.output("ProbeCanaryName", naming.probe_canary_name(spec), "The standing probe (CanaryName)")
    add_autoscaling(template, spec, variant_resource_id("${Endpoint.EndpointName}"))
    template.output("ModelVersion", version, "The registry version in production")
    template.output("Strategy", production.strategy, f"Traffic shifting ({mode})")
    template.output("MonitoringScheduleName", naming.monitoring_schedule_name(spec), "Data-quality schedule")
    monitored = ctx.model_monitor_baseline if spec.monitoring.use_model_monitor else ctx.baseline
    template.output("BaselineStatistics", monitored.statistics, "The served version's baseline statistics")
    template.output("BaselineConstraints", monitored.constraints, "The served version's baseline constraints")
    if not spec.monitoring.use_model_monitor:
        template.output(
            "BaselineOutputStatistics", str(ctx.baseline.output_statistics), "The served version's scores baseline"
        )
    template.output("DriftAlarmName", naming.drift_alarm_name(spec), "Retrains the model when in ALARM")
    if quality.enabled:
        template.output("ModelQualityScheduleName", naming.model_quality_schedule_name(spec), "Model-quality schedule")
        template.output("ModelQualityAlarmName", naming.model_quality_alarm_name(spec), "AUC below its threshold")
        template.output(
            "BaselineQualityConstraints", ctx.quality_baseline.constraints, "The model-quality baseline served"
        )
    return template.to_dict()
