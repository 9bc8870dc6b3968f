"""Model-quality monitoring on AWS: the deploy-prd stack's schedule, state machine and AUC alarm.

One spec, two backends: the state machine's window, folders and request are the local monitor's for the same
scheduled time, and the alarm is the rule the local monitor evaluates.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from safedeploy import naming
from safedeploy.cloudformation import model_quality as cf_quality
from safedeploy.cloudformation.build import MAX_TEMPLATE_BYTES, document_text
from safedeploy.cloudformation.context import resolve_images
from safedeploy.cloudformation.stacks import render_stacks
from safedeploy.errors import ConfigError
from safedeploy.monitoring.model_quality_monitor import ModelQualityMonitor, model_quality_alarm_rule
from safedeploy.monitoring.monitor import Monitor
from safedeploy.sagemaker_requests import processing as requests
from safedeploy.store import S3Uri
from tests.test_templates import (
    ANALYZER_SHA256,
    EXECUTION_ID,
    KMS_ARN,
    VARIANTS,
    VERSION,
    _definition,
    _described,
    _evaluate_all,
    _machine,
    _run_gate,
    _through_baselines,
    build_context,
    fixture_spec,
    jsonata,  # noqa: F401  (the fixture)
    render,
)

MACHINE = "ModelQualityStateMachine"


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _under(root: S3Uri, suffix: str) -> S3Uri:
    """The folder a found suffix names (``/yyyy/mm/dd[/hh]``, or ``""``: the root itself)."""
    return root.join(suffix.lstrip("/")) if suffix else root


@pytest.mark.parametrize(
    ("expression", "delay", "scheduled", "window", "granularity"),
    [
        ("cron(0 * ? * * *)", 1, "2025-01-02T08:00:00Z", ("2025-01-02T06:00:00Z", "2025-01-02T07:00:00Z"), "hour/hour"),
        # 5 + 5 hour folders, the code and the constraints would need 12 inputs: the capture in days
        ("cron(0 * ? * * *)", 3, "2025-01-02T08:00:00Z", ("2025-01-02T04:00:00Z", "2025-01-02T05:00:00Z"), "day/hour"),
        ("cron(0 0 ? * * *)", 1, "2025-01-03T00:00:00Z", ("2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z"), "day/day"),
        ("cron(0 0 ? * * *)", 5, "2025-01-08T00:00:00Z", ("2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z"), "day/root"),
        ("cron(0 0 ? * * *)", 6, "2025-01-09T00:00:00Z", ("2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z"), "root/root"),
    ],
)
def test_model_quality_state_machine_runs_the_local_model_quality_request(
    expression: str,
    delay: int,
    scheduled: str,
    window: tuple[str, str],
    granularity: str,
    tmp_path: Path,
    jsonata: Callable[[str, dict[str, Any]], Any],  # noqa: F811
) -> None:
    """The window (shifted by the label delay), names, capture and ground-truth folders for a fixed scheduled time,
    and the Analyze request equal to ``model_quality_job_request`` for the same values; empty folders skipped."""

    def run(value: Any, states_: dict[str, Any]) -> Any:
        return _evaluate_all(value, states_, jsonata)

    spec = fixture_spec(
        **{
            "monitoring.model_quality.schedule_expression": expression,
            "monitoring.model_quality.label_delay_periods": delay,
        }
    )
    assert "/".join(cf_quality.folder_granularity(spec)) == granularity
    ctx = build_context(tmp_path, spec)
    states = _machine(render_stacks(ctx, KMS_ARN)["deploy-prd"], MACHINE)["States"]
    data = run(states["Window"]["Output"], {"input": {"ScheduledTime": scheduled, "InvocationId": "d3-2c5kdd"}})
    start, end, fire = _time(window[0]), _time(window[1]), _time(scheduled)
    assert (data["Start"], data["End"], data["ScheduledTime"]) == (*window, scheduled)
    job_name = naming.monitoring_job_name(spec, "quality", end, "d32c5kdd")
    assert data["JobName"] == job_name and len(job_name) <= 63
    endpoint = naming.green_endpoint_name(spec, VERSION, EXECUTION_ID)
    schedule_name = naming.model_quality_schedule_name(spec)
    report = naming.monitoring_reports_prefix(spec).join(endpoint, schedule_name, f"{end:%Y/%m/%d/%H}", job_name)
    merged = naming.merged_ground_truth_uri(spec).join(endpoint, f"{start:%Y/%m/%d/%H}")
    assert (data["Report"], data["Merged"]) == (str(report), str(merged))

    # The folders the local monitor stages when it runs at the fire time (hours, or the days holding them).
    capture_root = naming.capture_uri(spec).join(endpoint, "AllTraffic")
    labels_root = naming.ground_truth_uri(spec)
    local = SimpleNamespace(spec=spec, now=lambda: fire)
    schedule = SimpleNamespace(
        CaptureUri=str(naming.capture_uri(spec)),
        EndpointName=endpoint,
        VariantName="AllTraffic",
        GroundTruthUri=str(labels_root),
    )
    hours = {
        "capture": [
            p.key.removeprefix(capture_root.key)
            for p in Monitor._capture_prefixes(cast(Any, local), cast(Any, schedule), start, fire)
        ],
        "labels": [
            p.key.removeprefix(labels_root.key)
            for p in ModelQualityMonitor._ground_truth_prefixes(cast(Any, local), cast(Any, schedule), start)
        ],
    }
    # The hour folders themselves (the local monitor stages them, or its root past its own limit).
    spans = {"capture": (start - timedelta(hours=1), fire - timedelta(hours=1)), "labels": (start, fire)}
    every = {
        kind: [
            f"/{first + timedelta(hours=i):%Y/%m/%d/%H}" for i in range(int((last - first) / timedelta(hours=1)) + 1)
        ]
        for kind, (first, last) in spans.items()
    }
    for kind in ("capture", "labels"):
        assert hours[kind] in (every[kind], [""]), kind
    forms = dict(zip(("capture", "labels"), granularity.split("/"), strict=True))
    for kind, field in (("capture", "CaptureFolders"), ("labels", "GroundTruthFolders")):
        if forms[kind] == "hour":
            assert data[field] == every[kind] == hours[kind], kind
        elif forms[kind] == "day":
            assert data[field] == sorted({h.rsplit("/", 1)[0] for h in every[kind]}), kind
        else:
            assert data[field] == [""], kind
    assert len(data["CaptureFolders"]) + len(data["GroundTruthFolders"]) + 2 <= requests.MAX_PROCESSING_INPUTS

    # FindCapture / FindGroundTruth: one listObjectsV2 per folder; the first capture folder (if several) is empty.
    def find(state: str, field: str, root: S3Uri, empty_first: bool) -> dict[str, Any]:
        listing = next(iter(states[state]["ItemProcessor"]["States"].values()))
        assert listing["Resource"] == "arn:aws:states:::aws-sdk:s3:listObjectsV2"
        results = []
        folders = data[field]
        for number, folder in enumerate(run(states[state]["Items"], {"input": data})):
            arguments = run(listing["Arguments"], {"input": folder})
            prefix = _under(root, folder).key + "/"
            assert arguments == {"Bucket": root.bucket, "Prefix": prefix, "MaxKeys": 1}
            empty = empty_first and number == 0 and len(folders) > 1
            results.append(run(listing["Output"], {"input": folder, "result": {"KeyCount": 0 if empty else 2}}))
        found: dict[str, Any] = run(states[state]["Output"], {"input": data, "result": results})
        return found

    data = find("FindCapture", "CaptureFolders", capture_root, True)
    kept = data["CaptureFolders"][1:] if len(data["CaptureFolders"]) > 1 else data["CaptureFolders"]
    assert data["Capture"] == kept
    data = find("FindGroundTruth", "GroundTruthFolders", labels_root, False)
    assert data["GroundTruth"] == data["GroundTruthFolders"]
    assert run(states["AnyLabelledCapture"]["Choices"][0]["Condition"], {"input": data}) is True
    arguments = run(states["Analyze"]["Arguments"], {"input": data})
    expected = requests.model_quality_job_request(
        spec,
        job_name=job_name,
        schedule_name=schedule_name,
        endpoint=endpoint,
        capture_prefixes=[_under(capture_root, f) for f in kept],
        ground_truth_prefixes=[_under(labels_root, f) for f in data["GroundTruth"]],
        start=start,
        end=end,
        baseline_constraints=ctx.quality_baseline.constraints,
        output=report,
        merged_output=merged,
        code=naming.analyzer_code_prefix(spec, ANALYZER_SHA256),
        image_uri=resolve_images(spec).training,
        kms_key_id=KMS_ARN,
        publish_to_cloudwatch=True,
    )
    assert arguments == expected
    assert len(arguments["ProcessingInputs"]) <= requests.MAX_PROCESSING_INPUTS
    assert len({i["S3Input"]["LocalPath"] for i in arguments["ProcessingInputs"]}) == len(arguments["ProcessingInputs"])
    assert arguments["Environment"]["metrics_publisher"] == "cloudwatch"
    assert arguments["Environment"]["baseline_constraints"].endswith("/constraints.json")
    assert ctx.quality_baseline.constraints.endswith(f"{EXECUTION_ID}/quality/constraints.json")
    output = run(states["Analyze"]["Output"], {"input": data, "result": {"ProcessingJobName": job_name}})
    assert output["MergedUri"] == str(merged.join(f"{job_name}.jsonl"))


def test_no_capture_or_no_label_ends_insufficient_data_without_a_job(
    tmp_path: Path,
    jsonata: Callable[[str, dict[str, Any]], Any],  # noqa: F811
) -> None:
    states = _machine(render(tmp_path)["deploy-prd"], MACHINE)["States"]
    choice = states["AnyLabelledCapture"]
    base = {"Start": "2025-01-02T06:00:00Z", "End": "2025-01-02T07:00:00Z"}
    for capture, labels, reason in (
        ([], ["/2025/01/02/06"], "no captured data in the window"),
        (["/2025/01/02/06"], [], "no ground-truth labels since the window started"),
    ):
        data = {**base, "Capture": capture, "GroundTruth": labels}
        assert jsonata(choice["Choices"][0]["Condition"], {"input": data}) is False
        assert choice["Default"] == "NoData" and states["NoData"]["Type"] == "Succeed"
        outcome = jsonata(states["NoData"]["Output"], {"input": data})
        assert outcome == {
            "MonitoringExecutionStatus": "InsufficientData",
            "WindowStart": base["Start"],
            "WindowEnd": base["End"],
            "Reason": reason,
        }


def _alarm_fields(alarm: dict[str, Any]) -> dict[str, Any]:
    return {
        key: alarm[key]
        for key in ("AlarmName", "ComparisonOperator", "Period", "DatapointsToAlarm", "TreatMissingData", "Threshold")
    }


@pytest.mark.parametrize("auc_threshold", [None, 0.8])
def test_the_auc_alarm_is_the_local_rule(tmp_path: Path, auc_threshold: float | None) -> None:
    """One definition, two renderings: the CloudWatch alarm's fields are ``model_quality_alarm_rule``'s.

    The threshold is the spec's, else the version's suggested one (an SSM parameter the training state machine
    wrote); the evaluation range reaches back over the label delay (the datapoint is stamped at the window's end).
    """
    overrides = {
        "monitoring.model_quality.schedule_expression": "cron(0 1/2 ? * * *)",
        "monitoring.model_quality.alarm_evaluation_periods": 3,
        "monitoring.model_quality.alarm_datapoints_to_alarm": 2,
        "monitoring.model_quality.label_delay_periods": 2,
        "monitoring.model_quality.auc_threshold": auc_threshold,
    }
    spec = fixture_spec(**overrides)
    prd = render(tmp_path, **overrides)["deploy-prd"]
    alarm = prd.template["Resources"]["ModelQualityAlarm"]
    assert alarm["Type"] == "AWS::CloudWatch::Alarm"
    properties = alarm["Properties"]
    rule = model_quality_alarm_rule(spec, auc_threshold if auc_threshold is not None else 0.87)
    threshold: Any = rule.threshold if auc_threshold is not None else {"Ref": "AucThreshold"}
    assert _alarm_fields(properties) == {
        "AlarmName": rule.name,
        "ComparisonOperator": rule.comparison,
        "Period": int(rule.period_seconds),
        "DatapointsToAlarm": rule.datapoints_to_alarm,
        "TreatMissingData": rule.treat_missing_data,
        "Threshold": threshold,
    }
    assert properties["EvaluationPeriods"] == rule.evaluation_periods + 2
    assert (properties["Period"], rule.name) == (7200, naming.model_quality_alarm_name(spec))
    assert rule.treat_missing_data == "missing"  # too few labels publish nothing: INSUFFICIENT_DATA, never OK
    assert properties["Namespace"] == "aws/sagemaker/Endpoints/model-metrics" and properties["MetricName"] == "auc"
    assert properties["Dimensions"] == [
        {"Name": "Endpoint", "Value": {"Fn::GetAtt": ["Endpoint", "EndpointName"]}},
        {"Name": "MonitoringSchedule", "Value": naming.model_quality_schedule_name(spec)},
    ]
    parameters = prd.configuration["Parameters"]
    if auc_threshold is None:
        assert prd.template["Parameters"]["AucThreshold"]["Type"] == "AWS::SSM::Parameter::Value<String>"
        assert parameters["AucThreshold"] == naming.auc_threshold_parameter(spec, EXECUTION_ID)
    else:
        assert "AucThreshold" not in parameters


def test_the_schedule_starts_the_model_quality_state_machine(tmp_path: Path) -> None:
    spec = fixture_spec()
    prd = render(tmp_path)["deploy-prd"]
    resources = prd.template["Resources"]
    schedule = resources["ModelQualitySchedule"]["Properties"]
    assert schedule["Name"] == naming.model_quality_schedule_name(spec)
    assert schedule["ScheduleExpression"] == "cron(0 * * * ? *)"
    assert schedule["Target"]["Arn"] == {"Ref": MACHINE}
    assert schedule["Target"]["RoleArn"].endswith(f":role/{naming.role_name(spec, 'scheduler')}")
    assert json.loads(schedule["Target"]["Input"]) == {
        "InvocationId": "<aws.scheduler.execution-id>",
        "ScheduledTime": "<aws.scheduler.scheduled-time>",
    }
    machine = resources[MACHINE]["Properties"]
    assert machine["StateMachineName"] == naming.state_machine_name(spec, "model-quality")
    assert resources["ModelQualitySchedule"]["DependsOn"] == ["Endpoint"]
    outputs = prd.template["Outputs"]
    assert outputs["ModelQualityAlarmName"]["Value"] == naming.model_quality_alarm_name(spec)


def test_model_quality_disabled_renders_no_job_schedule_alarm_or_parameter(tmp_path: Path) -> None:
    stacks = render(tmp_path, **{"monitoring.model_quality.enabled": False})
    prd = stacks["deploy-prd"].template
    assert not {"ModelQualityStateMachine", "ModelQualitySchedule", "ModelQualityAlarm"} & set(prd["Resources"])
    assert "AucThreshold" not in prd["Parameters"]
    states = _machine(stacks["training-job"], "StateMachine")["States"]
    assert len(states["SuggestBaselines"]["Branches"]) == 2
    assert states["ReadOutputDigests"]["Next"] == "RegisterModel"
    assert states["PublishModelVersion"]["End"] is True
    assert "ModelQuality" not in states["RegisterModel"]["Arguments"]["DriftCheckBaselines"]
    assert not {"ReadQualityDigests", "ReadQualityConstraints", "PublishAucThreshold"} & set(states)


def test_every_template_fits_what_cloudformation_takes_as_the_build_writes_it(tmp_path: Path) -> None:
    """The production stack carries both monitoring state machines: every variant still fits the request body."""
    for variant, overrides in VARIANTS.items():
        for kind, stack in render(tmp_path / variant, **overrides).items():
            size = len(document_text(stack.template).encode())
            assert size <= MAX_TEMPLATE_BYTES, (variant, kind, size)
            assert json.loads(document_text(stack.template)) == stack.template


def test_an_alarm_range_beyond_cloudwatchs_seven_days_is_refused_naming_why(tmp_path: Path) -> None:
    daily = {"monitoring.model_quality.schedule_expression": "cron(0 0 ? * * *)"}
    render(tmp_path / "ok", **daily, **{"monitoring.model_quality.label_delay_periods": 6})  # 7 days: the limit
    with pytest.raises(ConfigError, match=r"8 periods of 86400 s .* lower label_delay_periods"):
        render(tmp_path / "long", **daily, **{"monitoring.model_quality.label_delay_periods": 7})


def test_the_training_state_machine_publishes_the_baselines_auc_threshold_for_the_alarm(
    tmp_path: Path,
    jsonata: Callable[[str, dict[str, Any]], Any],  # noqa: F811
) -> None:
    """ReadQualityConstraints -> RegisterModel -> PublishModelVersion -> PublishAucThreshold: the threshold of the
    quality baseline's constraints.json reaches the SSM parameter the deploy-prd stack's ``AucThreshold`` names."""
    stacks = render(tmp_path)
    definition = _definition(stacks)
    states = definition["States"]
    data = _through_baselines(definition, _run_gate(definition, _described(**{"test:auc": 0.93}), jsonata)[1], jsonata)
    assert data["AucThreshold"] == 0.87
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/customerchurn/12"
    data = jsonata(states["RegisterModel"]["Output"], {"input": data, "result": {"ModelPackageArn": arn}})
    data = jsonata(states["PublishModelVersion"]["Output"], {"input": data, "result": {}})
    arguments = _evaluate_all(states["PublishAucThreshold"]["Arguments"], {"input": data}, jsonata)
    assert arguments["Value"] == "0.87" and arguments["Type"] == "String"
    assert arguments["Name"] == stacks["deploy-prd"].configuration["Parameters"]["AucThreshold"]
