"""One alarm catalog (``spec.alarms``): the local evaluator, the deploy-prd stack and the base infrastructure agree.

Every rendering is compared field by field with the others: name, threshold, comparison, period, evaluation
periods, datapoints to alarm, missing data, statistic. A ``--set``-style override must reach all of them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from safedeploy import naming
from safedeploy.alarm_catalog import local_alarm_settings, local_rule
from safedeploy.alarms import AlarmRule, AlarmState, evaluate
from safedeploy.cloudformation.alarms import ALARM_LOGICAL_IDS, latency_expression
from safedeploy.errors import ConfigError
from safedeploy.spec import PipelineSpec
from tests.conftest import REPO_ROOT
from tests.test_templates import ACCOUNT, fixture_spec, render

VALUE_METRIC_IDS = {"error_rate": "errors", "latency": "green_p99", "prediction_shift": "shift"}
"""The metric of each deployment alarm's expression that is the catalog's metric (its statistic and period)."""
FIELDS = ("AlarmName", "Threshold", "ComparisonOperator", "Period", "EvaluationPeriods", "DatapointsToAlarm",
          "TreatMissingData", "Statistic")  # fmt: skip


def local_fields(spec: PipelineSpec, rule: AlarmRule) -> dict[str, Any]:
    """What the local evaluator judges by, in CloudWatch's field names (AWS names it ``<pipeline>-<name>``)."""
    return {
        "AlarmName": naming.alarm_name(spec, rule.name),
        "Threshold": rule.threshold,
        "ComparisonOperator": rule.comparison,
        "Period": rule.period_seconds,
        "EvaluationPeriods": rule.evaluation_periods,
        "DatapointsToAlarm": rule.datapoints_to_alarm,
        "TreatMissingData": rule.treat_missing_data,
        "Statistic": rule.statistic,
    }


def stack_fields(properties: dict[str, Any], value_metric: str) -> dict[str, Any]:
    """The same fields of a deploy-prd ``AWS::CloudWatch::Alarm`` (a metric-math alarm)."""
    metrics = {m["Id"]: m for m in properties["Metrics"]}
    stat = metrics[value_metric]["MetricStat"]
    periods = {m["MetricStat"]["Period"] for m in properties["Metrics"] if "MetricStat" in m}
    assert len(periods) == 1, "every metric of an alarm has the alarm's period"
    return {
        **{field: properties[field] for field in FIELDS if field in properties},
        "Period": periods.pop(),
        "Statistic": stat["Stat"],
    }


def deployment_renderings(spec: PipelineSpec, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``{catalog field: fields}`` of the local evaluator's rules and of the deploy-prd stack's alarms."""
    stacks = render(tmp_path, **_overrides(spec))
    resources = stacks["deploy-prd"].template["Resources"]
    settings = local_alarm_settings(spec)
    rules = dict(zip(ALARM_LOGICAL_IDS, settings.rules(compare_predictions=True), strict=True))
    local = {key: local_fields(spec, rule) for key, rule in rules.items()}
    aws = {
        key: stack_fields(resources[logical_id]["Properties"], VALUE_METRIC_IDS[key])
        for key, logical_id in ALARM_LOGICAL_IDS.items()
    }
    return local, aws


def _overrides(spec: PipelineSpec) -> dict[str, Any]:
    return {"alarms": spec.alarms.model_dump()}


def test_local_and_stack_deployment_alarms_are_one_definition(tmp_path: Path) -> None:
    spec = fixture_spec()
    local, aws = deployment_renderings(spec, tmp_path)
    assert local == aws
    assert local["error_rate"] == {
        "AlarmName": "customerchurn-dev-green-error-rate",
        "Threshold": 0.02,
        "ComparisonOperator": "GreaterThanThreshold",
        "Period": 60,
        "EvaluationPeriods": 2,
        "DatapointsToAlarm": 1,
        "TreatMissingData": "breaching",  # no traffic never means "shift to 100 %"
        "Statistic": "Sum",
    }
    assert {fields["TreatMissingData"] for fields in aws.values()} == {"breaching"}
    assert [local[key]["Statistic"] for key in ("latency", "prediction_shift")] == ["p99", "Average"]


def test_a_set_override_reaches_every_rendering(tmp_path: Path) -> None:
    overrides = {
        "alarms.deployment.error_rate.threshold": 0.05,
        "alarms.deployment.latency.evaluation_periods": 3,
        "alarms.deployment.latency.datapoints_to_alarm": 2,
        "alarms.deployment.prediction_shift.threshold": 0.1,
        "alarms.deployment.prediction_shift.treat_missing_data": "missing",
        "alarms.deployment.min_requests": 20,
        "alarms.deployment.latency_ratio": 1.5,
        "alarms.standing.gateway_5xx.threshold": 0.1,
        "alarms.standing.lambda_errors.evaluation_periods": 5,
    }
    spec = fixture_spec(**overrides)
    assert spec.alarms.deployment.error_rate.statistic == "Sum"  # a partial override keeps the other defaults
    local, aws = deployment_renderings(spec, tmp_path)
    assert local == aws
    assert aws["error_rate"]["Threshold"] == 0.05
    assert (aws["latency"]["EvaluationPeriods"], aws["latency"]["DatapointsToAlarm"]) == (3, 2)
    assert (aws["prediction_shift"]["Threshold"], aws["prediction_shift"]["TreatMissingData"]) == (0.1, "missing")
    settings = local_alarm_settings(spec)
    assert (settings.min_requests, settings.latency_ratio, settings.max_error_rate) == (20, 1.5, 0.05)
    resources = render(tmp_path / "again", **overrides)["deploy-prd"].template["Resources"]
    latency = resources["LatencyAlarm"]["Properties"]["Metrics"][-1]["Expression"]
    assert latency == latency_expression(spec, with_blue=True) and "green_n >= 20" in latency and "1.5 *" in latency
    assert resources["ErrorRateAlarm"]["Properties"]["Metrics"][-1]["Expression"].startswith("IF(invocations >= 20,")
    post = resources["PostTrafficHook"]["Properties"]["Environment"]["Variables"]
    assert (post["MAX_ERROR_RATE"], post["MIN_REQUESTS"]) == ("0.05", "20")
    standing = standing_renderings(spec)
    assert standing["gateway-5xx"]["threshold"] == 0.1
    assert standing["lambda-errors"]["evaluation_periods"] == 5


def test_the_environment_overrides_the_catalog_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFEDEPLOY_ALARMS__DEPLOYMENT__LATENCY__THRESHOLD", "5")
    spec = fixture_spec()
    assert spec.alarms.deployment.latency.threshold == 5.0
    assert spec.alarms.deployment.latency.metric.name == "ModelLatency"
    assert local_alarm_settings(spec).rules()[1].threshold == 5.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"alarms.deployment.error_rate.period_seconds": 90}, "multiple of 60"),
        ({"alarms.deployment.latency.period_seconds": 120}, "share one period_seconds"),
        ({"alarms.deployment.latency.datapoints_to_alarm": 3}, "must not exceed evaluation_periods"),
        ({"alarms.deployment.error_rate.threshold": 1.5}, "share of requests"),
        ({"alarms.deployment.latency.treat_missing_data": "sometimes"}, "treat_missing_data"),
        ({"alarms.standing.gateway_5xx.statistic": "median"}, "statistic"),
    ],
)
def test_invalid_alarms_are_refused_naming_the_field(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        fixture_spec(**overrides)


def test_the_local_evaluator_applies_the_catalogs_missing_data_and_m_of_n() -> None:
    spec = fixture_spec(**{"alarms.deployment.error_rate.evaluation_periods": 3,
                           "alarms.deployment.error_rate.datapoints_to_alarm": 2})  # fmt: skip
    rule = local_rule(spec.alarms.deployment.error_rate)
    assert evaluate(rule, [0.5, 0.0, 0.0]) == AlarmState.OK  # 1 of 3 breaching
    assert evaluate(rule, [0.5, 0.0, 0.5]) == AlarmState.ALARM  # 2 of 3
    assert evaluate(rule, [0.0, None, None]) == AlarmState.ALARM  # missing is breaching: 2 of 3
    assert evaluate(rule, [0.0, 0.0, None]) == AlarmState.OK


def standing_renderings(spec: PipelineSpec) -> dict[str, dict[str, Any]]:
    """The base infrastructure's ``aws_cloudwatch_metric_alarm`` arguments for ``spec``'s catalog."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from cdktf_app.config import EnvironmentConfig
    from cdktf_app.monitoring import alarm_arguments, api_alarms
    from cdktf_app.names import TerraformNames

    names = TerraformNames.for_config(EnvironmentConfig.from_spec(spec), account_id=ACCOUNT, region=spec.region)
    return {alarm.purpose: alarm_arguments(names, alarm) for alarm in api_alarms(names, names.spec.alarms.standing)}


def standing_local_fields(spec: PipelineSpec, rule: AlarmRule) -> dict[str, Any]:
    fields = local_fields(spec, rule)
    snake = {
        "alarm_name": fields["AlarmName"],
        "threshold": fields["Threshold"],
        "comparison_operator": fields["ComparisonOperator"],
        "period": fields["Period"],
        "evaluation_periods": fields["EvaluationPeriods"],
        "datapoints_to_alarm": fields["DatapointsToAlarm"],
        "treat_missing_data": fields["TreatMissingData"],
    }
    statistic = rule.statistic
    snake["extended_statistic" if statistic.startswith("p") else "statistic"] = statistic
    return snake


def test_standing_alarms_are_the_catalogs(tmp_path: Path) -> None:
    spec = fixture_spec()
    rendered = standing_renderings(spec)
    for alarm in spec.alarms.standing.all:
        local = standing_local_fields(spec, local_rule(alarm))
        assert {key: rendered[alarm.name][key] for key in local} == local
        assert rendered[alarm.name]["namespace"] == alarm.metric.namespace
        assert set(rendered[alarm.name]["dimensions"]) == set(alarm.metric.dimensions)
    # The committed Terraform root is the default catalog's (`make synth`).
    document = json.loads((REPO_ROOT / "terraform" / "dev" / "cdk.tf.json").read_text("utf-8"))
    alarms = document["resource"]["aws_cloudwatch_metric_alarm"]
    for alarm in spec.alarms.standing.all:
        synthesized = alarms[f"monitoring_{alarm.name.replace('-', '_')}"]
        local = standing_local_fields(spec, local_rule(alarm))
        for key in set(local) - {"alarm_name"}:
            assert synthesized[key] == local[key], (alarm.name, key)


# --- the local controller judges by the catalog (missing data breaching) ---------------------------------------


def _catalog_deployment(host: Any, tmp_path: Path, **overrides: Any) -> Any:
    from tests.test_blue_green import _deployment

    deployment = _deployment(host, tmp_path)
    deployment.alarms = local_alarm_settings(fixture_spec(**overrides))
    return deployment


def test_the_controller_with_the_catalog_fails_a_quiet_step_as_insufficient_data(tmp_path: Path) -> None:
    from safedeploy.blue_green import RolledBackError
    from tests.test_blue_green import BLUE, SimulatedHost

    host = SimulatedHost(feed=False)
    deployment = _catalog_deployment(host, tmp_path)
    assert {rule.treat_missing_data for rule in deployment.alarms.rules(compare_predictions=True)} == {"breaching"}
    with pytest.raises(RolledBackError, match="insufficient data during the 10% step: green-error-rate, "):
        deployment.run(BLUE, "churn-prd-v2", version=2)
    assert host.routes[-1] == ("churn-prd-v1", None, 0.0)


def test_the_controller_with_the_catalog_passes_a_healthy_green_and_uses_its_names(tmp_path: Path) -> None:
    from safedeploy.blue_green import RolledBackError
    from tests.test_blue_green import BLUE, SimulatedHost

    healthy = _catalog_deployment(SimulatedHost(), tmp_path / "a")
    assert healthy.run(BLUE, "churn-prd-v2", version=2).endpoint == "churn-prd-v2"
    renamed = _catalog_deployment(
        SimulatedHost(green_error_rate=0.3), tmp_path / "b", **{"alarms.deployment.error_rate.name": "green-5xx"}
    )
    with pytest.raises(RolledBackError, match="alarm green-5xx in ALARM"):
        renamed.run(BLUE, "churn-prd-v2", version=2)


# --- the stacks: the canary, the deployment alarms' wiring, the smoke test ---------------------------------------


def test_the_prd_stack_wires_the_canary_blue_and_the_prediction_shift_alarm(tmp_path: Path) -> None:
    stacks = render(tmp_path)
    prd = stacks["deploy-prd"]
    resources = prd.template["Resources"]
    assert prd.template["Parameters"]["BlueEndpoint"]["Type"] == "AWS::SSM::Parameter::Value<String>"
    assert prd.configuration["Parameters"]["BlueEndpoint"] == "/safedeploy/customerchurn-dev/production-endpoint"
    latency = {m["Id"]: m for m in resources["LatencyAlarm"]["Properties"]["Metrics"]}
    blue = latency["blue_p99"]["MetricStat"]["Metric"]["Dimensions"]
    assert {"Name": "EndpointName", "Value": {"Ref": "BlueEndpoint"}} in blue
    assert latency["judged"]["Expression"] == (
        "IF(green_n >= 10, IF(FILL(blue_n, 0) >= 10, green_p99 / 1000 - (2 * FILL(blue_p99, 0) / 1000 + 25), "
        "green_p99 / 1000 - 100))"
    )
    shift = {m["Id"]: m for m in resources["PredictionShiftAlarm"]["Properties"]["Metrics"]}
    assert shift["rows"]["MetricStat"]["Stat"] == "SampleCount"
    assert shift["shift"]["MetricStat"]["Metric"]["Namespace"] == "SafeDeploy/Canary"
    assert shift["judged"]["Expression"] == "IF(rows >= 10, shift)"
    canary = resources["CanaryFunction"]["Properties"]
    assert canary["Handler"] == "lambdas.canary.app.handler"
    assert canary["Role"] == f"arn:aws:iam::{ACCOUNT}:role/customerchurn-dev-canary-lambda"
    variables = canary["Environment"]["Variables"]
    assert variables["BLUE_ENDPOINT"] == {"Ref": "BlueEndpoint"}
    assert variables["ENDPOINT_NAME"] == {"Fn::GetAtt": ["Endpoint", "EndpointName"]}
    assert variables["ROWS_PER_RUN"] == "30" and variables["CANARY_NAMESPACE"] == "SafeDeploy/Canary"
    assert variables["CHECKS_URI"].endswith("/output/model.tar.gz")
    assert canary["Events"]["EveryMinute"]["Properties"]["Schedule"] == "rate(1 minute)"
    post = resources["PostTrafficHook"]["Properties"]["Environment"]["Variables"]
    assert post["PRODUCTION_PARAMETER"] == variables["PRODUCTION_PARAMETER"]
    # The canary feeds green for the alarms' evaluation periods (+1) before the alias moves (missing is breaching).
    warm_up = resources["CanaryWarmUp"]
    assert warm_up["Type"] == "Custom::CanaryWarmUp" and warm_up["Properties"]["WarmUpRuns"] == 3
    assert warm_up["Properties"]["ServiceToken"] == {"Fn::GetAtt": ["CanaryFunction", "Arn"]}
    assert "CanaryWarmUp" in resources["ApiFunction"]["DependsOn"]
    assert canary["Timeout"] >= 60 * 3
    quiet = render(tmp_path / "quiet", **{"production.synthetic_traffic": False})["deploy-prd"].template["Resources"]
    assert "CanaryFunction" not in quiet and "PredictionShiftAlarm" not in quiet


def test_the_dev_stack_smoke_tests_the_endpoint_before_the_approval(tmp_path: Path) -> None:
    dev = render(tmp_path, **{"serving.smoke_test_rows": 20})["deploy-dev"].template
    test = dev["Resources"]["SmokeTest"]
    assert test["Type"] == "Custom::SmokeTest"
    properties = test["Properties"]
    assert properties["ServiceToken"] == {"Fn::GetAtt": ["SmokeTestFunction", "Arn"]}
    assert properties["EndpointName"] == {"Fn::GetAtt": ["Endpoint", "EndpointName"]}
    assert properties["Rows"] == 20 and properties["Tolerance"] == 1e-6
    assert properties["ModelVersion"] == {"Ref": "ModelVersion"}  # every version runs it again
    function = dev["Resources"]["SmokeTestFunction"]["Properties"]
    assert function["Handler"] == "lambdas.smoke_test.app.handler"
    assert function["Role"] == f"arn:aws:iam::{ACCOUNT}:role/customerchurn-dev-smoke-test-lambda"
    assert dev["Outputs"]["SmokeTest"]["Value"] == {"Fn::GetAtt": ["SmokeTest", "Summary"]}


def test_periods_before_the_first_datapoint_are_missing_unless_judged_elsewhere() -> None:
    rule = local_rule(fixture_spec().alarms.deployment.error_rate)  # 1 of 2, missing data breaching
    assert evaluate(rule, [0.0]) == AlarmState.ALARM  # CloudWatch on a new metric: the unseen period breaches
    assert evaluate(rule, [0.0], unseen_missing=False) == AlarmState.OK  # the controller: a step's own periods
    assert evaluate(rule, [0.0, None], unseen_missing=False) == AlarmState.ALARM
    assert evaluate(rule, [], unseen_missing=False) == AlarmState.INSUFFICIENT_DATA


def probe_renderings(spec: PipelineSpec, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The standing probe's alarm: the local evaluator's fields and the deploy-prd stack's ``ProbeAlarm``."""
    local = local_fields(spec, local_rule(spec.monitoring.synthetic_canary.alarm))
    properties = render(tmp_path, **_probe_overrides(spec))["deploy-prd"].template["Resources"]["ProbeAlarm"]
    aws = {field: properties["Properties"][field] for field in FIELDS}
    return local, aws


def _probe_overrides(spec: PipelineSpec) -> dict[str, Any]:
    return {"monitoring": {"synthetic_canary": spec.monitoring.synthetic_canary.model_dump()}}


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "monitoring.synthetic_canary.alarm.threshold": 75,
            "monitoring.synthetic_canary.alarm.evaluation_periods": 3,
            "monitoring.synthetic_canary.alarm.datapoints_to_alarm": 1,
            "monitoring.synthetic_canary.alarm.period_seconds": 600,
            "monitoring.synthetic_canary.alarm.treat_missing_data": "breaching",
        },
    ],
)
def test_the_probe_alarm_is_one_definition_locally_and_in_the_stack(tmp_path: Path, overrides: dict[str, Any]) -> None:
    spec = fixture_spec(**overrides)
    local, aws = probe_renderings(spec, tmp_path)
    assert local == aws
    assert aws["AlarmName"] == "customerchurn-dev-probe-success"
    assert aws["Threshold"] == float(overrides.get("monitoring.synthetic_canary.alarm.threshold", 90))
    properties = render(tmp_path / "again", **overrides)["deploy-prd"].template["Resources"]["ProbeAlarm"]["Properties"]
    assert (properties["Namespace"], properties["MetricName"]) == ("CloudWatchSynthetics", "SuccessPercent")
    assert properties["Dimensions"] == [{"Name": "CanaryName", "Value": naming.probe_canary_name(spec)}]


def test_the_prd_stack_schedules_the_probe_with_the_api_key_and_its_known_rows(tmp_path: Path) -> None:
    spec = fixture_spec(**{"monitoring.synthetic_canary.schedule_expression": "rate(10 minutes)"})
    resources = render(tmp_path, **{"monitoring.synthetic_canary.schedule_expression": "rate(10 minutes)"})[
        "deploy-prd"
    ].template["Resources"]
    function = resources["ProbeFunction"]["Properties"]
    variables = function["Environment"]["Variables"]
    assert function["Handler"] == "lambdas.probe.app.handler" and function["Runtime"] == "python3.11"
    assert function["Role"].endswith(":role/customerchurn-dev-probe-lambda")
    assert function["Events"]["Probe"]["Properties"]["Schedule"] == "rate(10 minutes)"
    assert variables["API_KEY_ID"] == {"Ref": "ApiKey"} and "RestApi" in variables["API_URL"]["Fn::Sub"]
    assert variables["API_URL"]["Fn::Sub"].endswith("/prd/customerchurn/api")
    assert (
        variables["CHECKS_URI"] == resources["PreTrafficHook"]["Properties"]["Environment"]["Variables"]["CHECKS_URI"]
    )
    assert (variables["CANARY_NAME"], variables["METRICS_NAMESPACE"]) == (
        naming.probe_canary_name(spec),
        "CloudWatchSynthetics",
    )
    assert (variables["ROWS"], variables["TOLERANCE"]) == ("10", "1e-06")
    disabled = render(tmp_path / "off", **{"monitoring.synthetic_canary.enabled": False})["deploy-prd"]
    assert "ProbeFunction" not in disabled.template["Resources"]
    assert "ProbeAlarm" not in disabled.template["Resources"]
