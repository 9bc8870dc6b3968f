"""Data-quality monitoring of the production endpoint.

By default (SageMaker Model Monitor is closed to new customers) the monitor's own analyzer runs as a plain
SageMaker **Processing** job, scheduled by **EventBridge Scheduler**:

* ``AWS::Scheduler::Schedule`` ``naming.monitoring_schedule_name`` (the spec's cron converted to Scheduler's
  syntax, UTC, flexible window off, KMS) starts the ``monitoring`` state machine with the scheduled time.
* The state machine (JSONata) computes the window (the schedule period ending at the scheduled time, from a table
  of the 24 hours built by :func:`safedeploy.monitoring.schedule.parse_schedule`), the job name, the report prefix
  and the capture folders of the window (``<capture>/<endpoint>/AllTraffic/yyyy/mm/dd/hh``, one before the window
  as the local monitor stages them; whole days when the hours would not fit in ``CreateProcessingJob``'s 10
  inputs). It lists each folder (``listObjectsV2``, one key) and keeps the non-empty ones: SageMaker fails a job
  whose S3 input is empty. No capture at all ends the execution ``InsufficientData`` without a job, so no metric
  is published and the drift alarms see missing data (``TreatMissingData: missing``), as the local monitor's empty
  window does. Otherwise ``createProcessingJob.sync`` with
  :func:`safedeploy.sagemaker_requests.processing.monitoring_job_request` (the local monitor's builder) and
  ``metrics_publisher=cloudwatch``: the job publishes its metrics itself.
* The baseline is the serving version's: this stack serves the version this execution registers, whose
  ``DriftCheckBaselines`` (training features) and ``Output*`` metadata (the model's validation scores) are the
  files of this execution's two baseline jobs (``BuildContext.baseline``): features and scores are both watched.

With ``monitoring.use_model_monitor`` (accounts that still have Model Monitor): a ``DataQualityJobDefinition`` and
``MonitoringSchedule`` on the analyzer image instead, against Model Monitor's own baseline of the same execution's
training features (``BuildContext.model_monitor_baseline``, the suggest-baseline stack's job).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.cloudformation.context import BuildContext
from safedeploy.cloudformation.state_machine import add_state_machine, role_arn
from safedeploy.cloudformation.template import KMS_KEY_PARAMETER, Json, Template, get_att, parameterize, ref, token
from safedeploy.monitoring.schedule import CronSchedule, parse_schedule
from safedeploy.sagemaker_requests.processing import (
    MAX_PROCESSING_INPUTS,
    MONITOR_OUTPUT_PATH,
    BaselineUris,
    monitoring_job_request,
)
from safedeploy.spec import PipelineSpec
from safedeploy.store import S3Uri

ENDPOINT_INPUT_PATH = "/opt/ml/processing/input/endpoint"
JOB_DEFINITION, SCHEDULE = "DataQualityJobDefinition", "MonitoringSchedule"
STATE_MACHINE = "MonitoringStateMachine"
WINDOW_STATE, FIND_STATE, CHOICE_STATE = "Window", "FindCapture", "AnyCapture"
LIST_STATE, NO_CAPTURE_STATE, ANALYZE_STATE = "ListCaptureFolder", "NoCapture", "Analyze"
PROCESSING_TASK = "arn:aws:states:::sagemaker:createProcessingJob.sync"
LIST_TASK = "arn:aws:states:::aws-sdk:s3:listObjectsV2"
HOUR_MS = 3_600_000
SCHEDULER_INPUT = {"ScheduledTime": "<aws.scheduler.scheduled-time>", "InvocationId": "<aws.scheduler.execution-id>"}
"""What the schedule passes: EventBridge Scheduler's context attributes, substituted at each invocation."""

# Placeholders handed to the request builder and replaced by the state machine's values.
JOB_PLACEHOLDER = "MONITORING-JOB-NAME"
_FOLDER = "CAPTURE-FOLDER"
REPORT_PLACEHOLDER = "MONITORING-REPORT"
START_PLACEHOLDER = datetime(2000, 1, 1, tzinfo=UTC)
END_PLACEHOLDER = datetime(2000, 1, 2, tzinfo=UTC)


def scheduler_expression(schedule: CronSchedule) -> str:
    """SageMaker's monitoring cron as EventBridge Scheduler's (day-of-week ``?`` when day-of-month is ``*``)."""
    if schedule.start_hour is None and schedule.every_hours == 1:
        hours = "*"
    elif schedule.every_hours == 24:
        hours = str(schedule.start_hour)
    else:
        hours = f"{schedule.start_hour or 0}/{schedule.every_hours}"
    return f"cron(0 {hours} * * ? *)"


def window_table(schedule: CronSchedule) -> dict[str, dict[str, int]]:
    """For each UTC hour ``HH``: ``back`` hours to the last fire time at or before it, and that window's ``hours``.

    A scheduled execution starts on a fire time (``back`` 0); one started by hand analyses the last full period.
    """
    table = {}
    day = datetime(2000, 1, 3, tzinfo=UTC)  # any day: the forms repeat daily
    for hour in range(24):
        moment = day + timedelta(hours=hour)
        fire = schedule.previous_at_or_before(moment)
        start, end = schedule.window_ending(fire)
        table[f"{hour:02d}"] = {
            "back": int((moment - fire).total_seconds()) // 3600,
            "hours": int((end - start).total_seconds()) // 3600,
        }
    return table


def folder_granularity(spec: PipelineSpec, baseline: BaselineUris) -> str:
    """``hour`` folders when the window's (plus the one before) fit in the job's inputs, else ``day`` folders."""
    schedule = parse_schedule(spec.monitoring.schedule_expression)
    longest = max(entry["hours"] for entry in window_table(schedule).values())
    files = [baseline.statistics, baseline.constraints, baseline.feature_schema]
    files += [f for f in (baseline.output_statistics, baseline.output_constraints) if f]
    capacity = MAX_PROCESSING_INPUTS - 1 - len(files)  # the code input and the baseline files
    return "hour" if longest + 1 <= capacity else "day"


def capture_root(spec: PipelineSpec, endpoint: str) -> S3Uri:
    """``<capture>/<endpoint>/AllTraffic``: where data capture writes the endpoint's hour folders."""
    return naming.capture_uri(spec).join(endpoint, C.DEFAULT_VARIANT)


def window_expression(
    schedule: CronSchedule,
    *,
    job_prefix: str,
    reports: S3Uri,
    fields: dict[str, str],
    delay_hours: int = 0,
) -> str:
    """JSONata of a monitoring execution's window: ``ScheduledTime``, ``Start``, ``End``, ``JobName``, ``Report``.

    The window is the schedule period (:func:`window_table`) ending ``delay_hours`` before the fire time (the
    scheduled time, or for a hand-started execution the last fire time before it). ``fields`` adds more output
    fields: JSONata expressions that may use ``$fire``, ``$start``, ``$end``, ``$w.hours`` and ``$job``.
    """
    stamp = '"[Y0001]-[M01]-[D01]T[H01]:[m01]:[s01]Z"'
    shift = f" - {delay_hours} * {HOUR_MS}" if delay_hours else ""
    extra = "".join(f",\n    {json.dumps(name)}: {expression}" for name, expression in fields.items())
    return (
        "{% (\n"
        "  $t := $exists($states.input.ScheduledTime) ? $states.input.ScheduledTime"
        " : $states.context.Execution.StartTime;\n"
        f"  $hour := $floor($toMillis($t) / {HOUR_MS}) * {HOUR_MS};\n"
        f"  $w := $lookup({json.dumps(window_table(schedule), separators=(',', ':'))},"
        ' $fromMillis($hour, "[H01]"));\n'
        + (f"  $fire := $hour - $w.back * {HOUR_MS};\n" if delay_hours else "")
        + f"  $end := $hour - $w.back * {HOUR_MS}{shift};\n"
        f"  $start := $end - $w.hours * {HOUR_MS};\n"
        "  $id := $substring($replace($exists($states.input.InvocationId) ? $states.input.InvocationId"
        ' : $states.context.Execution.Name, /[^A-Za-z0-9]/, ""), 0, 8);\n'
        f'  $job := {json.dumps(job_prefix)} & $fromMillis($end, "[Y0001][M01][D01]-[H01][m01][s01]") & "-" & $id;\n'
        "  {\n"
        f'    "ScheduledTime": $fromMillis({"$fire" if delay_hours else "$end"}, {stamp}),\n'
        f'    "Start": $fromMillis($start, {stamp}),\n'
        f'    "End": $fromMillis($end, {stamp}),\n'
        '    "JobName": $job,\n'
        f'    "Report": {json.dumps(str(reports) + "/")}'
        f' & $fromMillis($end, "[Y0001]/[M01]/[D01]/[H01]") & "/" & $job{extra}\n'
        "  }\n"
        ") %}"
    )


def folders_expression(first: str, count: str, granularity: str) -> str:
    """JSONata: the distinct ``yyyy/mm/dd/hh`` (``hour``) or ``yyyy/mm/dd`` (``day``) folders of ``count`` hours.

    From the hour ``first`` (milliseconds) on; both are JSONata expressions.
    """
    folder = '"[Y0001]/[M01]/[D01]/[H01]"' if granularity == "hour" else '"[Y0001]/[M01]/[D01]"'
    return f"$distinct($map([0..{count} - 1], function($i) {{ $fromMillis({first} + $i * {HOUR_MS}, {folder}) }}))[]"


def _window_expression(spec: PipelineSpec, endpoint: str, baseline: BaselineUris) -> str:
    schedule = parse_schedule(spec.monitoring.schedule_expression)
    reports = naming.monitoring_reports_prefix(spec).join(endpoint, naming.monitoring_schedule_name(spec))
    folder = '"[Y0001]/[M01]/[D01]/[H01]"' if folder_granularity(spec, baseline) == "hour" else '"[Y0001]/[M01]/[D01]"'
    folders = (
        f"$distinct($map([0..$w.hours], function($i) {{ $fromMillis($start + ($i - 1) * {HOUR_MS}, {folder}) }}))[]"
    )
    return window_expression(
        schedule, job_prefix=f"{spec.model_name}-monitor-", reports=reports, fields={"Folders": folders}
    )


def jsonata_literal(value: Any) -> str:
    """A JSON value as a JSONata constructor (JSON is valid JSONata)."""
    return json.dumps(value, separators=(", ", ": "))


def _analyze_arguments(ctx: BuildContext, endpoint: str, kms_key_id: str) -> Json:
    """The monitoring job's request: the local builder's output with the execution's values as JSONata."""
    spec, baseline = ctx.spec, ctx.baseline
    root = capture_root(spec, endpoint)
    request: Json = dict(
        monitoring_job_request(
            spec,
            job_name=JOB_PLACEHOLDER,
            schedule_name=naming.monitoring_schedule_name(spec),
            endpoint=endpoint,
            capture_prefixes=[root.join(_FOLDER)],
            start=START_PLACEHOLDER,
            end=END_PLACEHOLDER,
            baseline=baseline,
            output=S3Uri(root.bucket, REPORT_PLACEHOLDER),
            code=ctx.analyzer_code,
            image_uri=ctx.images.processing,
            kms_key_id=kms_key_id,
            publish_to_cloudwatch=True,
        )
    )
    code, capture, *baselines = request["ProcessingInputs"]
    if capture["InputName"] != "endpoint-0":  # the builder names capture inputs by position
        raise ValueError(f"unexpected capture input {capture['InputName']}")
    one = jsonata_literal(capture).replace('"endpoint-0"', '"endpoint-" & $string($i)')
    one = one.replace(_FOLDER, '" & $f & "')
    request["ProcessingInputs"] = (
        f"{{% $append($append([{jsonata_literal(code)}], $map($states.input.Found, function($f, $i) {{ {one} }})),"
        f" {jsonata_literal(baselines)}) %}}"
    )
    request["ProcessingJobName"] = "{% $states.input.JobName %}"
    output = request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]
    output["S3Uri"] = "{% $states.input.Report %}"
    stamps = {f"{START_PLACEHOLDER:%Y-%m-%dT%H:%M:%S}Z": "Start", f"{END_PLACEHOLDER:%Y-%m-%dT%H:%M:%S}Z": "End"}
    request["Environment"] = {
        key: f"{{% $states.input.{stamps[value]} %}}" if value in stamps else value
        for key, value in request["Environment"].items()
    }
    leftover = [p for p in (JOB_PLACEHOLDER, REPORT_PLACEHOLDER, _FOLDER) if p in json.dumps(request)]
    if leftover:
        raise ValueError(f"placeholders left in the monitoring request: {leftover}")
    return request


def find_folders(
    comment: str, *, list_state: str, bucket: str, prefix: str, items: str, found: str, next_state: str
) -> Json:
    """A Map state listing each folder of ``$states.input.<items>`` (``prefix``: JSONata of the folder, one key).

    Adds the non-empty ones to the state's input as ``<found>``: SageMaker fails a job whose S3 input is empty.
    """
    return {
        "Type": "Map",
        "Comment": comment,
        "Items": f"{{% $states.input.{items} %}}",
        "MaxConcurrency": 10,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"},
            "StartAt": list_state,
            "States": {
                list_state: {
                    "Type": "Task",
                    "Resource": LIST_TASK,
                    "Arguments": {"Bucket": bucket, "Prefix": prefix, "MaxKeys": 1},
                    "Output": '{% {"Folder": $states.input, "Found": $states.result.KeyCount > 0} %}',
                    "End": True,
                }
            },
        },
        "Output": f'{{% $merge([$states.input, {{"{found}": $states.result[Found].Folder[]}}]) %}}',
        "Next": next_state,
    }


def definition(ctx: BuildContext, endpoint: str) -> Json:
    """The monitoring state machine (``endpoint`` may carry the ``${ModelVersion}`` token)."""
    spec = ctx.spec
    root = capture_root(spec, endpoint)
    arguments = _analyze_arguments(ctx, endpoint, token(KMS_KEY_PARAMETER))
    rendered: Json = parameterize(
        {
            "Comment": f"Data-quality monitoring of {spec.model_name}'s production endpoint: one schedule period",
            "QueryLanguage": "JSONata",
            "StartAt": WINDOW_STATE,
            "States": {
                WINDOW_STATE: {
                    "Type": "Pass",
                    "Comment": "The window (the period ending at the scheduled time), job name, report, folders",
                    "Output": _window_expression(spec, endpoint, ctx.baseline),
                    "Next": FIND_STATE,
                },
                FIND_STATE: find_folders(
                    "Keep the capture folders holding at least one object (an empty S3 input fails a job)",
                    list_state=LIST_STATE,
                    bucket=root.bucket,
                    prefix="{% " + json.dumps(root.key + "/") + ' & $states.input & "/" %}',
                    items="Folders",
                    found="Found",
                    next_state=CHOICE_STATE,
                ),
                CHOICE_STATE: {
                    "Type": "Choice",
                    "Choices": [{"Condition": "{% $count($states.input.Found) > 0 %}", "Next": ANALYZE_STATE}],
                    "Default": NO_CAPTURE_STATE,
                },
                NO_CAPTURE_STATE: {
                    "Type": "Succeed",
                    "Comment": "No capture in the window: no job, no metric (the drift alarms see missing data)",
                    "Output": '{% {"MonitoringExecutionStatus": "InsufficientData", '
                    '"WindowStart": $states.input.Start, "WindowEnd": $states.input.End, '
                    '"Reason": "no captured data in the window"} %}',
                },
                ANALYZE_STATE: {
                    "Type": "Task",
                    "Resource": PROCESSING_TASK,
                    "Arguments": arguments,
                    "Output": '{% {"ProcessingJobName": $states.result.ProcessingJobName, '
                    '"ProcessingJobStatus": $states.result.ProcessingJobStatus, '
                    '"ExitMessage": $states.result.ExitMessage, "ReportUri": $states.input.Report, '
                    '"WindowStart": $states.input.Start, "WindowEnd": $states.input.End} %}',
                    "End": True,
                },
            },
        }
    )
    return rendered


def add_monitoring_schedule(
    template: Template, ctx: BuildContext, endpoint: str, kms_key: Json, depends_on: Sequence[str] = ()
) -> str:
    """The state machine and the EventBridge Scheduler schedule starting it; return the schedule's logical id.

    ``endpoint`` is the endpoint's name as the request builders see it (``${ModelVersion}`` token allowed).
    """
    spec = ctx.spec
    machine = add_state_machine(
        template, spec, "monitoring", definition(ctx, endpoint), kms_key, logical_id=STATE_MACHINE
    )
    return add_schedule(
        template,
        spec,
        SCHEDULE,
        name=naming.monitoring_schedule_name(spec),
        description=f"Data-quality monitoring of {spec.model_name}'s production endpoint "
        f"({spec.monitoring.schedule_expression} UTC)",
        expression=spec.monitoring.schedule_expression,
        machine=machine,
        kms_key=kms_key,
        depends_on=depends_on,
    )


def add_schedule(
    template: Template,
    spec: PipelineSpec,
    logical_id: str,
    *,
    name: str,
    description: str,
    expression: str,
    machine: str,
    kms_key: Json,
    depends_on: Sequence[str] = (),
) -> str:
    """An EventBridge Scheduler schedule starting ``machine`` with the scheduled time (SageMaker's cron, UTC)."""
    return template.add(
        logical_id,
        "AWS::Scheduler::Schedule",
        {
            "Name": name,
            "Description": description,
            "ScheduleExpression": scheduler_expression(parse_schedule(expression)),
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "KmsKeyArn": kms_key,
            "State": "ENABLED",
            "Target": {
                "Arn": ref(machine),
                "RoleArn": role_arn(spec, "scheduler"),
                "Input": json.dumps(SCHEDULER_INPUT, sort_keys=True),
                "RetryPolicy": {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 3},
            },
        },
        depends_on=depends_on,
    )


def add_model_monitor_schedule(template: Template, ctx: BuildContext, endpoint: Any, kms_key: Json) -> str:
    """Model Monitor (``monitoring.use_model_monitor``): job definition and schedule on ``endpoint``.

    The job definition has no fixed name: every property change replaces it, and a generated name lets the
    new definition exist beside the old one while the schedule switches over.
    """
    spec = ctx.spec
    baseline = ctx.model_monitor_baseline
    definition_id = template.add(
        JOB_DEFINITION,
        "AWS::SageMaker::DataQualityJobDefinition",
        {
            "DataQualityAppSpecification": {
                "ImageUri": ctx.images.model_monitor,
                # The captured data's format comes from data capture; the drift alarms read the published metrics.
                "Environment": {"publish_cloudwatch_metrics": "Enabled"},
            },
            "DataQualityBaselineConfig": {
                "ConstraintsResource": {"S3Uri": baseline.constraints},
                "StatisticsResource": {"S3Uri": baseline.statistics},
            },
            "DataQualityJobInput": {
                "EndpointInput": {
                    "EndpointName": endpoint,
                    "LocalPath": ENDPOINT_INPUT_PATH,
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "DataQualityJobOutputConfig": {
                "KmsKeyId": kms_key,
                "MonitoringOutputs": [
                    {
                        "S3Output": {
                            "S3Uri": str(naming.monitoring_reports_prefix(spec)),
                            "LocalPath": MONITOR_OUTPUT_PATH,
                            "S3UploadMode": "EndOfJob",
                        }
                    }
                ],
            },
            "JobResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": spec.monitoring.instance_type,
                    "VolumeSizeInGB": 20,
                    "VolumeKmsKeyId": kms_key,
                }
            },
            "NetworkConfig": {"EnableInterContainerTrafficEncryption": True},
            "RoleArn": naming.execution_role_arn(spec),
            "StoppingCondition": {"MaxRuntimeInSeconds": spec.monitoring.max_runtime_seconds},
        },
    )
    return template.add(
        SCHEDULE,
        "AWS::SageMaker::MonitoringSchedule",
        {
            "MonitoringScheduleName": naming.monitoring_schedule_name(spec),
            "EndpointName": endpoint,
            "MonitoringScheduleConfig": {
                "MonitoringJobDefinitionName": get_att(definition_id, "JobDefinitionName"),
                "MonitoringType": "DataQuality",
                "ScheduleConfig": {"ScheduleExpression": spec.monitoring.schedule_expression},
            },
        },
    )
