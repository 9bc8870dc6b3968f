"""Model-quality monitoring of the production endpoint on AWS: the local monitor's job, scheduled.

No Model Monitor (closed to new customers): the analyzer's ``MODEL_QUALITY`` job runs as a plain SageMaker
Processing job, as the data-quality one does (:mod:`.monitoring`, whose pieces this module reuses):

* ``AWS::Scheduler::Schedule`` ``naming.model_quality_schedule_name`` (``monitoring.model_quality``'s cron in
  Scheduler's syntax, UTC, KMS) starts the ``model-quality`` state machine with the scheduled time.
* The state machine (JSONata) computes the window as the local monitor does: the schedule period ending
  ``label_delay_periods`` periods before the fire time (SageMaker's ``EndOffset``: labels had time to arrive), the
  job name, the report and merged-records prefixes, the capture folders (the hour before the window up to the fire
  time, as the local monitor stages them) and the ground-truth folders (``naming.ground_truth_uri``, by the hour
  labels were collected, from the window's start up to the fire time: late labels count for their inference's
  window). Hour folders, or whole days (or the ground-truth root) when they would not fit in
  ``CreateProcessingJob``'s 10 inputs. Each folder is listed (``listObjectsV2``, one key) and only non-empty ones
  are kept (SageMaker fails a job whose S3 input is empty); no capture or no label at all ends the execution
  ``InsufficientData`` without a job: no metric, so the AUC alarm sees missing data.
* Otherwise ``createProcessingJob.sync`` with
  :func:`safedeploy.sagemaker_requests.processing.model_quality_job_request` (the local monitor's builder) against
  the served version's model-quality constraints (this execution's ``quality`` baseline job, which its version is
  registered with) and ``metrics_publisher=cloudwatch``: the job publishes ``auc``, ``f1``... itself.
* The alarm ``naming.model_quality_alarm_name`` is :func:`model_quality_alarm_rule` (the rule the local monitor
  evaluates) on ``auc``; its threshold is the spec's ``auc_threshold`` or, unset, the one the version's baseline
  suggested (the ``AucThreshold`` parameter: the SSM parameter the training state machine wrote).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from safedeploy import naming
from safedeploy.cloudformation.context import BuildContext
from safedeploy.cloudformation.monitoring import (
    END_PLACEHOLDER,
    HOUR_MS,
    JOB_PLACEHOLDER,
    PROCESSING_TASK,
    REPORT_PLACEHOLDER,
    START_PLACEHOLDER,
    add_schedule,
    capture_root,
    find_folders,
    folders_expression,
    window_expression,
    window_table,
)
from safedeploy.cloudformation.monitoring import (
    jsonata_literal as literal,
)
from safedeploy.cloudformation.state_machine import add_state_machine
from safedeploy.cloudformation.template import KMS_KEY_PARAMETER, Json, Template, parameterize, token
from safedeploy.errors import ConfigError
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.model_quality_monitor import AUC_METRIC, model_quality_alarm_rule
from safedeploy.monitoring.schedule import parse_schedule
from safedeploy.sagemaker_requests.processing import MAX_PROCESSING_INPUTS, model_quality_job_request
from safedeploy.spec import PipelineSpec
from safedeploy.store import S3Uri

STATE_MACHINE = "ModelQualityStateMachine"
SCHEDULE = "ModelQualitySchedule"
ALARM = "ModelQualityAlarm"
WINDOW_STATE, FIND_CAPTURE, FIND_LABELS = "Window", "FindCapture", "FindGroundTruth"
LIST_CAPTURE, LIST_LABELS = "ListCaptureFolder", "ListGroundTruthFolder"
CHOICE_STATE, NO_DATA_STATE, ANALYZE_STATE = "AnyLabelledCapture", "NoData", "Analyze"
_MERGED = "MERGED-GROUND-TRUTH"
_SAMPLE = "0000/00/00/00"
"""The capture and ground-truth folder handed to the request builder, replaced by each found folder's suffix
(``/yyyy/mm/dd/hh``, ``/yyyy/mm/dd`` or empty: the root)."""
MAX_ALARM_RANGE_SECONDS = 604_800
"""PutMetricAlarm: ``Period`` x ``EvaluationPeriods`` at most 7 days (periods of an hour or more)."""
GRANULARITIES: tuple[tuple[str, str], ...] = (
    ("hour", "hour"),
    ("day", "hour"),
    ("hour", "day"),
    ("day", "day"),
    ("day", "root"),
    ("root", "root"),
)
"""(capture, ground truth) folder granularities, finest first: the first whose folders fit the job's inputs."""


def delay_hours(spec: PipelineSpec) -> int:
    """Hours between a window's end and the fire time analysing it (``label_delay_periods`` schedule periods)."""
    quality = spec.monitoring.model_quality
    return quality.label_delay_periods * parse_schedule(quality.schedule_expression).every_hours


def _days(hours: int) -> int:
    """The most day folders ``hours`` consecutive hours can touch."""
    return (hours + 22) // 24 + 1


def folder_granularity(spec: PipelineSpec) -> tuple[str, str]:
    """(capture, ground truth): ``hour``, ``day`` or ``root`` folders, the finest that fits the job's inputs.

    Both spans run ``longest window + delay + 1`` hours; the code and the baseline constraints take two inputs.
    The analyzer filters records by inference time and labels by what was captured, so a coarser folder only
    reads more.
    """
    schedule = parse_schedule(spec.monitoring.model_quality.schedule_expression)
    hours = max(entry["hours"] for entry in window_table(schedule).values()) + delay_hours(spec) + 1
    capacity = MAX_PROCESSING_INPUTS - 2
    count = {"hour": hours, "day": _days(hours), "root": 1}
    for capture, labels in GRANULARITIES:
        if count[capture] + count[labels] <= capacity:
            return capture, labels
    raise ConfigError(f"no folder granularity fits {MAX_PROCESSING_INPUTS} Processing inputs")  # pragma: no cover


def _suffixes(first: str, span: str, granularity: str) -> str:
    """JSONata: the folders' suffixes under their root (``/yyyy/mm/dd/hh``, ``/yyyy/mm/dd``; ``root``: ``""``)."""
    if granularity == "root":
        return '[""]'
    return f'$map({folders_expression(first, span, granularity)}, function($f) {{ "/" & $f }})[]'


def _window(spec: PipelineSpec, endpoint: str) -> str:
    quality = spec.monitoring.model_quality
    schedule_name = naming.model_quality_schedule_name(spec)
    capture, labels = folder_granularity(spec)
    span = f"($w.hours + {delay_hours(spec)} + 1)"
    merged = naming.merged_ground_truth_uri(spec).join(endpoint)
    return window_expression(
        parse_schedule(quality.schedule_expression),
        job_prefix=f"{spec.model_name}-quality-",
        reports=naming.monitoring_reports_prefix(spec).join(endpoint, schedule_name),
        delay_hours=delay_hours(spec),
        fields={
            "Merged": f'{json.dumps(str(merged) + "/")} & $fromMillis($start, "[Y0001]/[M01]/[D01]/[H01]")',
            "CaptureFolders": _suffixes(f"($start - {HOUR_MS})", span, capture),
            "GroundTruthFolders": _suffixes("$start", span, labels),
        },
    )


def _mapped(inputs: Sequence[Json], items: str, replacements: dict[str, str]) -> str:
    """JSONata mapping ``$states.input.<items>`` to one input each (``$f`` the item, ``$i`` its position)."""
    if len(inputs) != 1:
        raise ValueError(f"expected one templated input, got {len(inputs)}")
    one = literal(inputs[0])
    for placeholder, expression in replacements.items():
        if placeholder not in one:
            raise ValueError(f"placeholder {placeholder!r} not in {one}")
        one = one.replace(placeholder, expression)
    return f"$map($states.input.{items}, function($f, $i) {{ {one} }})"


def analyze_arguments(ctx: BuildContext, endpoint: str, kms_key_id: str) -> Json:
    """The model-quality job's request: the local builder's output with the execution's values as JSONata."""
    spec = ctx.spec
    root, labels = capture_root(spec, endpoint), naming.ground_truth_uri(spec)
    request: Json = dict(
        model_quality_job_request(
            spec,
            job_name=JOB_PLACEHOLDER,
            schedule_name=naming.model_quality_schedule_name(spec),
            endpoint=endpoint,
            capture_prefixes=[root.join(_SAMPLE)],
            ground_truth_prefixes=[labels.join(_SAMPLE)],
            start=START_PLACEHOLDER,
            end=END_PLACEHOLDER,
            baseline_constraints=ctx.quality_baseline.constraints,
            output=S3Uri(root.bucket, REPORT_PLACEHOLDER),
            merged_output=S3Uri(root.bucket, _MERGED),
            code=ctx.analyzer_code,
            image_uri=ctx.images.processing,
            kms_key_id=kms_key_id,
            publish_to_cloudwatch=True,
        )
    )
    code, *rest = request["ProcessingInputs"]
    captures = [i for i in rest if i["InputName"].startswith("endpoint-")]
    truths = [i for i in rest if i["InputName"].startswith("ground-truth-")]
    constraints = [i for i in rest if i not in captures and i not in truths]
    capture_inputs = _mapped(
        captures, "Capture", {'"endpoint-0"': '"endpoint-" & $string($i)', f'/{_SAMPLE}"': '" & $f'}
    )
    label_inputs = _mapped(
        truths, "GroundTruth", {'"ground-truth-0"': '"ground-truth-" & $string($i)', f'/{_SAMPLE}"': '" & $f'}
    )
    request["ProcessingInputs"] = (
        f"{{% $append($append($append([{literal(code)}], {capture_inputs}), {label_inputs}),"
        f" {literal(constraints)}) %}}"
    )
    request["ProcessingJobName"] = "{% $states.input.JobName %}"
    report, merged = (o["S3Output"] for o in request["ProcessingOutputConfig"]["Outputs"])
    report["S3Uri"], merged["S3Uri"] = "{% $states.input.Report %}", "{% $states.input.Merged %}"
    stamps = {
        f"{START_PLACEHOLDER:%Y-%m-%dT%H:%M:%S}Z": "Start",
        f"{END_PLACEHOLDER:%Y-%m-%dT%H:%M:%S}Z": "End",
        JOB_PLACEHOLDER: "JobName",  # merged_file_name
    }
    request["Environment"] = {
        key: f"{{% $states.input.{stamps[value]} %}}" if value in stamps else value
        for key, value in request["Environment"].items()
    }
    leftover = [p for p in (JOB_PLACEHOLDER, REPORT_PLACEHOLDER, _MERGED, _SAMPLE) if p in json.dumps(request)]
    if leftover:
        raise ValueError(f"placeholders left in the model-quality request: {leftover}")
    return request


def definition(ctx: BuildContext, endpoint: str) -> Json:
    """The model-quality state machine (``endpoint`` may carry the ``${ModelVersion}`` token)."""
    spec = ctx.spec
    root, labels = capture_root(spec, endpoint), naming.ground_truth_uri(spec)
    arguments = analyze_arguments(ctx, endpoint, token(KMS_KEY_PARAMETER))
    rendered: Json = parameterize(
        {
            "Comment": f"Model-quality monitoring of {spec.model_name}'s production endpoint: one schedule period, "
            "its labels",
            "QueryLanguage": "JSONata",
            "StartAt": WINDOW_STATE,
            "States": {
                WINDOW_STATE: {
                    "Type": "Pass",
                    "Comment": "The window (the period ending label_delay_periods before the scheduled time), job "
                    "name, report, merged records, capture and ground-truth folders",
                    "Output": _window(spec, endpoint),
                    "Next": FIND_CAPTURE,
                },
                FIND_CAPTURE: find_folders(
                    "Keep the capture folders holding at least one object (an empty S3 input fails a job)",
                    list_state=LIST_CAPTURE,
                    bucket=root.bucket,
                    prefix="{% " + json.dumps(root.key) + ' & $states.input & "/" %}',
                    items="CaptureFolders",
                    found="Capture",
                    next_state=FIND_LABELS,
                ),
                FIND_LABELS: find_folders(
                    "Keep the ground-truth folders holding at least one label file",
                    list_state=LIST_LABELS,
                    bucket=labels.bucket,
                    prefix="{% " + json.dumps(labels.key) + ' & $states.input & "/" %}',
                    items="GroundTruthFolders",
                    found="GroundTruth",
                    next_state=CHOICE_STATE,
                ),
                CHOICE_STATE: {
                    "Type": "Choice",
                    "Choices": [
                        {
                            "Condition": "{% $count($states.input.Capture) > 0 and "
                            "$count($states.input.GroundTruth) > 0 %}",
                            "Next": ANALYZE_STATE,
                        }
                    ],
                    "Default": NO_DATA_STATE,
                },
                NO_DATA_STATE: {
                    "Type": "Succeed",
                    "Comment": "No capture or no label: no job, no metric (the AUC alarm sees missing data)",
                    "Output": '{% {"MonitoringExecutionStatus": "InsufficientData", '
                    '"WindowStart": $states.input.Start, "WindowEnd": $states.input.End, '
                    '"Reason": $count($states.input.Capture) = 0 ? "no captured data in the window" '
                    ': "no ground-truth labels since the window started"} %}',
                },
                ANALYZE_STATE: {
                    "Type": "Task",
                    "Resource": PROCESSING_TASK,
                    "Arguments": arguments,
                    "Output": '{% {"ProcessingJobName": $states.result.ProcessingJobName, '
                    '"ProcessingJobStatus": $states.result.ProcessingJobStatus, '
                    '"ExitMessage": $states.result.ExitMessage, "ReportUri": $states.input.Report, '
                    '"MergedUri": $states.input.Merged & "/" & $states.input.JobName & ".jsonl", '
                    '"WindowStart": $states.input.Start, "WindowEnd": $states.input.End} %}',
                    "End": True,
                },
            },
        }
    )
    return rendered


def alarm_evaluation_periods(spec: PipelineSpec) -> int:
    """CloudWatch's evaluation periods: the rule's, plus the label delay.

    The job timestamps its datapoint at the window's end, ``label_delay_periods`` periods before it publishes it;
    CloudWatch evaluates the periods ending now, so the range reaches back over the delay. Those newest periods
    hold no datapoint yet and, missing data being ``missing``, are not counted: the rule's datapoints decide.
    """
    quality = spec.monitoring.model_quality
    periods = quality.alarm_evaluation_periods + quality.label_delay_periods
    period = parse_schedule(quality.schedule_expression).every_hours * 3600
    if periods * period > MAX_ALARM_RANGE_SECONDS:
        raise ConfigError(
            f"monitoring.model_quality: the AUC alarm would evaluate {periods} periods of {period} s (alarm "
            f"evaluation periods + label delay), more than CloudWatch's {MAX_ALARM_RANGE_SECONDS} s (7 days): "
            "lower label_delay_periods or alarm_evaluation_periods"
        )
    return periods


def add_model_quality_alarm(template: Template, spec: PipelineSpec, endpoint: Json, threshold: Json | float) -> str:
    """The AUC alarm: :func:`model_quality_alarm_rule` on the job's ``auc`` (``threshold``: a number or a ``Ref``)."""
    rule = model_quality_alarm_rule(spec, 0.0)  # the threshold is rendered apart: known only at deployment
    return template.add(
        ALARM,
        "AWS::CloudWatch::Alarm",
        {
            "AlarmName": rule.name,
            "AlarmDescription": f"Model quality (AUC) of {spec.model_name}'s production endpoint below its threshold",
            "Namespace": F.MODEL_METRIC_NAMESPACE_ENDPOINT,
            "MetricName": AUC_METRIC,
            "Dimensions": [
                {"Name": F.DIMENSION_ENDPOINT, "Value": endpoint},
                {"Name": F.DIMENSION_SCHEDULE, "Value": naming.model_quality_schedule_name(spec)},
            ],
            "Statistic": "Minimum",
            "Period": int(rule.period_seconds),
            "EvaluationPeriods": alarm_evaluation_periods(spec),
            "DatapointsToAlarm": rule.datapoints_to_alarm,
            "Threshold": threshold,
            "ComparisonOperator": rule.comparison,
            # Too few labels publish no datapoint: missing, so the alarm goes INSUFFICIENT_DATA, never OK.
            "TreatMissingData": rule.treat_missing_data,
        },
    )


def add_model_quality_monitoring(
    template: Template,
    ctx: BuildContext,
    endpoint_name: str,
    endpoint: Json,
    kms_key: Json,
    threshold: Json | float,
    depends_on: Sequence[str] = (),
) -> str:
    """The state machine, its schedule and the AUC alarm; return the schedule's logical id.

    ``endpoint_name``: as the request builders see it (``${ModelVersion}`` token allowed); ``endpoint``: the
    alarm's dimension value (``GetAtt``).
    """
    spec = ctx.spec
    quality = spec.monitoring.model_quality
    machine = add_state_machine(
        template, spec, "model-quality", definition(ctx, endpoint_name), kms_key, logical_id=STATE_MACHINE
    )
    schedule = add_schedule(
        template,
        spec,
        SCHEDULE,
        name=naming.model_quality_schedule_name(spec),
        description=f"Model-quality monitoring of {spec.model_name}'s production endpoint "
        f"({quality.schedule_expression} UTC, labels {quality.label_delay_periods} period(s) late)",
        expression=quality.schedule_expression,
        machine=machine,
        kms_key=kms_key,
        depends_on=depends_on,
    )
    add_model_quality_alarm(template, spec, endpoint, threshold)
    return schedule
