"""Retraining on AWS: the local retraining's decision and new data, against AWS's state (the retrain build runs it).

The ``<pipeline>-retraining`` state machine starts the ``<pipeline>-retrain`` build once a retraining alarm has
stayed in ALARM for the debounce (or the retrain schedule fires); the build runs ``safedeploy retraining check
--target aws`` with the trigger. One look, with the same pure decision as the local backend
(:func:`safedeploy.retraining.policy.decide`), fed from AWS:

* **debounce**: the alarm's ``DescribeAlarms`` record: still in ALARM, and since when (``StateTransitionedTimestamp``);
  the periods it has held are counted on the monitoring schedule's period. An alarm that left ALARM (or left and came
  back: a new episode) during the wait is not acted on. The schedule's trigger has no alarm and no debounce;
* **one at a time**: ``ListPipelineExecutions``: an execution in progress (or stopping) is running;
* **cooldown**: the last retraining is the SSM parameter ``naming.retraining_parameter``; it ended when the pipeline
  execution its contract upload started (matched by the contract's S3 version in the execution's source revisions)
  ended, or, while none is found, when it started.

To start: the new data is the current data source (the raw table of the data-source contract in the data bucket,
whose ``DataSha256`` names it) plus every labelled record the model-quality jobs merged
(:func:`safedeploy.retraining.new_data.combine`, the local code), submitted through the Data stage
(:func:`safedeploy.aws.submit.submit`): its contract upload starts the pipeline, whose gates (absolute and against
production) judge the new model. Every look is recorded in the parameter (decision, reason, trigger, the contract
version it uploaded), which ``make status TARGET=aws`` shows.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError
from pydantic import BaseModel

from safedeploy import naming
from safedeploy.aws.s3_store import S3ArtifactStore, list_s3_objects, read_object
from safedeploy.aws.submit import submit
from safedeploy.data.prepare import read_data_source
from safedeploy.errors import ConfigError
from safedeploy.features import FeatureSchema
from safedeploy.monitoring.schedule import parse_schedule
from safedeploy.retraining.new_data import combine
from safedeploy.retraining.policy import ALARM, Action, PolicyState, Streak, decide
from safedeploy.spec import PipelineSpec
from safedeploy.store import ArtifactRef, S3Uri

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient

LOG = logging.getLogger(__name__)
RAW_TABLE_NAME = "retraining.csv"
RUNNING_STATUSES = ("InProgress", "Stopping")
EXECUTIONS_LOOKED_AT = 50
"""How many of the pipeline's latest executions the running check and the cooldown read."""


@dataclass(frozen=True)
class RetrainingTrigger:
    """What started this look: the trigger text the execution records, and the alarm (none for the schedule)."""

    trigger: str
    alarm: str = ""
    since: str = ""


class AwsRetrainingRecord(BaseModel):
    """The SSM parameter: the latest look, and the last retraining started."""

    decided_at: datetime
    action: Action
    reason: str
    trigger: str
    started_at: datetime | None = None
    started_trigger: str | None = None
    contract_version: str | None = None
    data_sha256: str | None = None
    new_rows: int | None = None


LAST_RETRAINING_FIELDS = {"started_at", "started_trigger", "contract_version", "data_sha256", "new_rows"}
"""What a look that starts nothing carries over from the record: the last retraining started."""


class JobOutputs:
    """The model-quality jobs' merged records in S3, read as job outputs.

    SageMaker uploads a Processing job's outputs itself, without the sha256 metadata the pipeline's own writes carry
    (:class:`~safedeploy.aws.s3_store.S3ArtifactStore` lists only those), so these are listed and read as they are;
    a record that does not parse is counted by the reader, never used.
    """

    def __init__(self, s3: S3Client) -> None:
        self.s3 = s3

    def list_objects(self, prefix: S3Uri) -> list[ArtifactRef]:
        """Every object under ``prefix`` (the ETag stands in for the digest SageMaker does not record)."""
        return [
            ArtifactRef(uri=found.uri, sha256=found.etag, size=found.size, last_modified=found.last_modified)
            for found in list_s3_objects(self.s3, prefix)
        ]

    def get_bytes(self, uri: S3Uri) -> bytes:
        """The object's content (checked against a recorded sha256 when there is one)."""
        return read_object(self.s3, uri, require_checksum=False)


def read_record(ssm: SSMClient, spec: PipelineSpec) -> AwsRetrainingRecord | None:
    """The saved record (``None`` before the first look)."""
    try:
        value = ssm.get_parameter(Name=naming.retraining_parameter(spec))["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise
    return AwsRetrainingRecord.model_validate_json(value)


def _save(ssm: SSMClient, spec: PipelineSpec, record: AwsRetrainingRecord) -> None:
    ssm.put_parameter(
        Name=naming.retraining_parameter(spec),
        Description=f"{spec.pipeline_name}: the last retraining decision and the last retraining started",
        Value=record.model_dump_json(),
        Type="String",
        Overwrite=True,
    )


def period_seconds(spec: PipelineSpec) -> int:
    """The retraining alarms' period: the monitoring schedule's (they are fed once per execution)."""
    return parse_schedule(spec.monitoring.schedule_expression).every_hours * 3600


def alarm_streaks(
    cloudwatch: CloudWatchClient, spec: PipelineSpec, request: RetrainingTrigger, now: datetime
) -> PolicyState:
    """The trigger alarm's run in ALARM as the policy counts it (none if it is not in ALARM since ``since``).

    The schedule's trigger (no alarm) counts as an alarm held for the whole debounce: a schedule is no noise.
    """
    if not request.alarm:
        since = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        return PolicyState(
            streaks={"schedule": Streak(since=since, evaluated=None, periods=spec.retraining.alarm_periods)}
        )
    described = cloudwatch.describe_alarms(AlarmNames=[request.alarm], AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    alarms = [*described.get("MetricAlarms", []), *described.get("CompositeAlarms", [])]
    if not alarms:
        raise ConfigError(f"retraining: alarm {request.alarm} does not exist in {spec.region}")
    alarm = alarms[0]
    if alarm.get("StateValue") != ALARM:
        return PolicyState()
    entered = alarm.get("StateTransitionedTimestamp") or alarm.get("StateUpdatedTimestamp")
    if entered is None:
        return PolicyState()
    entered = entered.astimezone(UTC)
    if request.since:
        event_time = datetime.fromisoformat(request.since.replace("Z", "+00:00")).astimezone(UTC)
        if entered > event_time + timedelta(seconds=1):  # left ALARM and came back: a new episode, judged on its own
            return PolicyState()
    held = int((now - entered).total_seconds() // period_seconds(spec)) + 1
    return PolicyState(
        streaks={request.alarm: Streak(since=entered.strftime("%Y-%m-%dT%H:%M:%SZ"), evaluated=None, periods=held)}
    )


def running_execution(codepipeline: CodePipelineClient, pipeline: str) -> str | None:
    """An execution of ``pipeline`` in progress, in words (``None``: none)."""
    summaries = codepipeline.list_pipeline_executions(pipelineName=pipeline, maxResults=EXECUTIONS_LOOKED_AT)
    for summary in summaries.get("pipelineExecutionSummaries", []):
        if summary.get("status") in RUNNING_STATUSES:
            return f"execution {summary.get('pipelineExecutionId')} of {pipeline} is {summary.get('status')}"
    return None


def last_ended(codepipeline: CodePipelineClient, pipeline: str, record: AwsRetrainingRecord | None) -> datetime | None:
    """When the last retraining ended: its execution's end, else its start (``None``: never retrained)."""
    if record is None or record.started_at is None:
        return None
    summaries = codepipeline.list_pipeline_executions(pipelineName=pipeline, maxResults=EXECUTIONS_LOOKED_AT)
    for summary in summaries.get("pipelineExecutionSummaries", []):
        revisions = [r.get("revisionId") for r in summary.get("sourceRevisions", [])]
        if record.contract_version and record.contract_version in revisions and "lastUpdateTime" in summary:
            return summary["lastUpdateTime"].astimezone(UTC)
    return record.started_at


def current_table(s3: S3Client, spec: PipelineSpec, workdir: Path) -> tuple[Path, FeatureSchema | None]:
    """The raw table of the current data-source contract, downloaded to ``workdir``, and its feature schema."""
    store = S3ArtifactStore(s3)
    contract = naming.data_source_uri(spec)
    try:
        input_data, _ = read_data_source(store, contract)
    except ClientError as exc:
        raise ConfigError(f"retraining: no data-source contract at {contract} ({exc}); deploy once first") from None
    sha256 = str(input_data["DataSha256"])
    folder = naming.raw_data_uri(spec, sha256, "x")
    prefix = S3Uri(folder.bucket, folder.key.rsplit("/", 1)[0])
    tables = sorted(ref.uri for ref in store.list_objects(prefix) if not ref.uri.endswith("/"))
    if not tables:  # the same bytes submitted under two names are two objects: any of them is the table
        raise ConfigError(f"retraining: the raw table of data {sha256[:16]} is gone from {prefix}")
    uri = S3Uri.parse(tables[0])
    path = workdir / uri.key.rsplit("/", 1)[-1]
    path.write_bytes(store.get_bytes(uri))
    schema = None
    if input_data.get("FeatureSchemaUri"):
        schema = FeatureSchema.from_json(store.get_bytes(S3Uri.parse(str(input_data["FeatureSchemaUri"]))))
    return path, schema


def check_on_aws(
    spec: PipelineSpec,
    *,
    s3: S3Client,
    ssm: SSMClient,
    cloudwatch: CloudWatchClient,
    codepipeline: CodePipelineClient,
    request: RetrainingTrigger,
    now: datetime | None = None,
) -> AwsRetrainingRecord:
    """One look on AWS: decide, and start a retraining (new data, contract upload) if due; return the record saved."""
    now = now or datetime.now(UTC)
    pipeline = naming.codepipeline_name(spec)
    previous = read_record(ssm, spec)
    decision = decide(
        spec.retraining,
        alarm_streaks(cloudwatch, spec, request, now),
        running=running_execution(codepipeline, pipeline),
        now=now,
        last_ended=last_ended(codepipeline, pipeline, previous),
    )
    last = previous.model_dump(include=LAST_RETRAINING_FIELDS) if previous else {}
    record = AwsRetrainingRecord(
        decided_at=now, action=decision.action, reason=decision.reason, trigger=request.trigger, **last
    )
    if decision.action == Action.START:
        record = _start(spec, s3, request, record)
    _save(ssm, spec, record)
    LOG.info("retraining: %s: %s", record.action, record.reason)
    return record


def _start(
    spec: PipelineSpec, s3: S3Client, request: RetrainingTrigger, record: AwsRetrainingRecord
) -> AwsRetrainingRecord:
    """The new data through the Data stage: its contract upload starts the pipeline (or why nothing was new)."""
    with tempfile.TemporaryDirectory(prefix="safedeploy-retraining-") as tmp:
        base, schema = current_table(s3, spec, Path(tmp))
        table = combine(spec, JobOutputs(s3), base, schema)
        if table.new_rows == 0:
            reason = f"skipped: no new labelled data ({table.report.summary()}); {record.reason}"
            return record.model_copy(update={"action": Action.SKIPPED, "reason": reason})
        source = Path(tmp) / RAW_TABLE_NAME
        source.write_bytes(table.content)
        retrained = spec.model_copy(update={"data": spec.data.model_copy(update={"source": source})})
        submitted = submit(retrained, s3, source)
    reason = (
        f"{record.reason}: retraining on {table.base_rows} + {table.new_rows} rows ({table.report.summary()}); "
        f"contract {submitted.contract_uri} version {submitted.contract_version} starts {submitted.pipeline}"
    )
    return record.model_copy(
        update={
            "reason": reason,
            "started_at": record.decided_at,
            "started_trigger": request.trigger,
            "contract_version": submitted.contract_version,
            "data_sha256": submitted.prepared.data_sha256,
            "new_rows": table.new_rows,
        }
    )


def describe(record: AwsRetrainingRecord | None) -> str:
    """``make status TARGET=aws``'s retraining lines."""
    if record is None:
        return "Retraining: no decision yet"
    lines = [f"Retraining: {record.decided_at:%Y-%m-%d %H:%M:%S}Z {record.action}: {record.reason}"]
    if record.started_at is not None:
        lines.append(
            f"  last retraining {record.started_at:%Y-%m-%d %H:%M:%S}Z, trigger: {record.started_trigger} "
            f"(+{record.new_rows} labelled rows, contract version {record.contract_version})"
        )
    return "\n".join(lines)


def as_json(record: AwsRetrainingRecord) -> str:
    """The record as JSON (``--json``)."""
    return json.dumps(record.model_dump(mode="json"), indent=2)
