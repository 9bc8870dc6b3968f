"""Retraining on AWS (what the retrain build runs): the local decision against AWS's state, then the new data.

S3, SSM and CloudWatch are moto's; CodePipeline's ``ListPipelineExecutions`` goes through ``Stubber``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.aws.retraining import RetrainingTrigger, check_on_aws, describe, read_record
from safedeploy.aws.submit import submit
from safedeploy.retraining.policy import Action
from safedeploy.spec import PipelineSpec, load_spec
from tests.conftest import churn_rows, write_table
from tests.test_retraining_data import _api_record, _label, merged

ACCOUNT = "123456789012"  # moto's
REGION = "us-east-1"
BASE_ROWS = 600


@dataclass
class Aws:
    spec: PipelineSpec
    s3: Any
    ssm: Any
    cloudwatch: Any
    codepipeline: Any
    alarm: str
    entered: datetime


def _client(service: str) -> Any:
    make: Callable[..., Any] = boto3.client  # a service chosen at run time: no typed overload to pick
    return make(service, region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t")


@pytest.fixture
def aws(tmp_path: Path) -> Iterator[Aws]:
    spec = load_spec(
        overrides={
            "account_id": ACCOUNT,
            "region": REGION,
            "state_dir": str(tmp_path / "state"),
            "retraining": {"alarm_periods": 2, "cooldown_seconds": 86_400},
        }
    )
    with mock_aws():
        s3 = _client("s3")
        for bucket in (naming.data_bucket(spec), naming.artifact_bucket(spec)):
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        base = write_table(tmp_path / "churn.csv", churn_rows(BASE_ROWS, seed=5))
        submit(spec, s3, base)  # the first deployment's data: the contract the retraining starts from
        cloudwatch = _client("cloudwatch")
        alarm = naming.alarm_name(spec, "model-quality")
        cloudwatch.put_metric_alarm(
            AlarmName=alarm,
            Namespace="aws/sagemaker/Endpoints/model-metrics",
            MetricName="auc",
            Statistic="Minimum",
            Period=3600,
            EvaluationPeriods=1,
            Threshold=0.85,
            ComparisonOperator="LessThanThreshold",
        )
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="auc 0.41 < 0.85")
        (described,) = cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"]
        entered = (described.get("StateTransitionedTimestamp") or described["StateUpdatedTimestamp"]).astimezone(UTC)
        yield Aws(spec, s3, _client("ssm"), cloudwatch, _client("codepipeline"), alarm, entered)


def _label_records(aws: Aws, count: int, seed: int = 77) -> None:
    rows = churn_rows(count, seed=seed)
    records = [merged(f"i-{n}", json.dumps(_api_record(row)), _label(row)) for n, row in enumerate(rows)]
    uri = naming.merged_ground_truth_uri(aws.spec).join("customerchurn-prd-v1-x", "2026/12/03/10", "job-1.jsonl")
    body = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    aws.s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=body)


def _contract(aws: Aws) -> tuple[str, dict[str, str]]:
    contract = naming.data_source_uri(aws.spec)
    got = aws.s3.get_object(Bucket=contract.bucket, Key=contract.key)
    with zipfile.ZipFile(io.BytesIO(got["Body"].read())) as archive:
        return got["VersionId"], json.loads(archive.read(C.INPUT_DATA_FILE))


def _look(
    aws: Aws,
    now: datetime,
    executions: list[dict[str, Any]] | None = None,
    *,
    alarm: str | None = None,
    since: datetime | None = None,
) -> Any:
    name = naming.codepipeline_name(aws.spec)
    with Stubber(aws.codepipeline) as stub:
        for _ in range(2):  # the running check, then the cooldown's
            stub.add_response(
                "list_pipeline_executions",
                {"pipelineExecutionSummaries": executions or []},
                {"pipelineName": name, "maxResults": 50},
            )
        event_time = (since or aws.entered).strftime("%Y-%m-%dT%H:%M:%SZ")
        chosen = aws.alarm if alarm is None else alarm
        trigger = f"alarm {chosen} in ALARM since {event_time}" if chosen else "schedule cron(0 3 ? * MON *) at T"
        return check_on_aws(
            aws.spec,
            s3=aws.s3,
            ssm=aws.ssm,
            cloudwatch=aws.cloudwatch,
            codepipeline=aws.codepipeline,
            request=RetrainingTrigger(trigger, chosen, event_time if chosen else ""),
            now=now,
        )


def test_debounced_until_the_alarm_held_its_periods_then_new_data_starts_the_pipeline(aws: Aws) -> None:
    _label_records(aws, 120)
    version, before = _contract(aws)

    early = _look(aws, aws.entered + timedelta(minutes=30))
    assert early.action == Action.DEBOUNCED and "1 of the 2 consecutive periods" in early.reason
    assert _contract(aws)[0] == version  # nothing uploaded

    record = _look(aws, aws.entered + timedelta(hours=1, minutes=5))
    assert record.action == Action.START, record.reason
    new_version, after = _contract(aws)
    assert new_version != version and record.contract_version == new_version
    assert after["DataSha256"] != before["DataSha256"] and record.data_sha256 == after["DataSha256"]
    assert record.new_rows == 120 and f"{BASE_ROWS} + 120 rows" in record.reason
    assert record.started_trigger == f"alarm {aws.alarm} in ALARM since {aws.entered:%Y-%m-%dT%H:%M:%SZ}"
    saved = read_record(aws.ssm, aws.spec)
    assert saved == record
    assert "last retraining" in describe(saved) and record.started_trigger in describe(saved)


def test_one_at_a_time_an_execution_in_progress_starts_nothing(aws: Aws) -> None:
    _label_records(aws, 50)
    version, _ = _contract(aws)
    running = [{"pipelineExecutionId": "e-1", "status": "InProgress"}]
    record = _look(aws, aws.entered + timedelta(hours=3), running)
    assert record.action == Action.ALREADY_RUNNING and "execution e-1" in record.reason
    assert _contract(aws)[0] == version


def test_a_cooldown_follows_the_end_of_the_last_retraining(aws: Aws) -> None:
    _label_records(aws, 50)
    first = _look(aws, aws.entered + timedelta(hours=2))
    assert first.action == Action.START
    ended = aws.entered + timedelta(hours=3)
    finished = [
        {
            "pipelineExecutionId": "e-2",
            "status": "Succeeded",
            "sourceRevisions": [{"actionName": "DataSource", "revisionId": first.contract_version}],
            "lastUpdateTime": ended,
        }
    ]
    _label_records(aws, 50, seed=78)  # more labels arrived: only the cooldown holds the next one back
    cooling = _look(aws, aws.entered + timedelta(hours=5), finished)
    assert cooling.action == Action.COOLING_DOWN
    assert f"cooling down until {ended + timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}" in cooling.reason
    assert cooling.started_at == first.started_at  # the last retraining is kept across looks
    later = _look(aws, ended + timedelta(days=1, minutes=1), finished)
    assert later.action == Action.START, later.reason


def test_an_alarm_that_left_alarm_or_came_back_during_the_wait_is_not_acted_on(aws: Aws) -> None:
    _label_records(aws, 50)
    aws.cloudwatch.set_alarm_state(AlarmName=aws.alarm, StateValue="OK", StateReason="recovered")
    assert _look(aws, aws.entered + timedelta(hours=3)).action == Action.IDLE
    aws.cloudwatch.set_alarm_state(AlarmName=aws.alarm, StateValue="ALARM", StateReason="again")
    # the state machine was started for an earlier episode (its event 10 minutes before this one): this one is
    # judged on its own, by the state machine its own event starts
    (again,) = aws.cloudwatch.describe_alarms(AlarmNames=[aws.alarm])["MetricAlarms"]
    reentered = (again.get("StateTransitionedTimestamp") or again["StateUpdatedTimestamp"]).astimezone(UTC)
    earlier = reentered - timedelta(minutes=10)
    assert _look(aws, reentered + timedelta(hours=3), since=earlier).action == Action.IDLE
    # the new episode's own event, once it held the debounce
    assert _look(aws, reentered + timedelta(hours=3), since=reentered).action == Action.START


def test_no_labelled_data_is_skipped_and_the_schedule_needs_no_debounce(aws: Aws) -> None:
    version, _ = _contract(aws)
    skipped = _look(aws, aws.entered + timedelta(hours=3))
    assert skipped.action == Action.SKIPPED and "no new labelled data" in skipped.reason
    assert _contract(aws)[0] == version
    _label_records(aws, 40)
    scheduled = _look(aws, aws.entered + timedelta(minutes=1), alarm="")
    assert scheduled.action == Action.START and scheduled.started_trigger.startswith("schedule ")


def test_the_buildspec_command_runs_the_look_and_status_shows_it(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``safedeploy retraining check --target aws`` as ``model/retrain-buildspec.yml`` runs it, then the status."""
    from safedeploy import cli
    from safedeploy.aws.clients import AwsClients

    _label_records(aws, 60)
    session = boto3.Session(region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t")
    clients = AwsClients(session)
    clients.__dict__.update(s3=aws.s3, ssm=aws.ssm, cloudwatch=aws.cloudwatch, codepipeline=aws.codepipeline)
    monkeypatch.setattr(cli, "aws_clients", lambda spec: clients)
    buildspec = (Path(__file__).parents[1] / "model" / "retrain-buildspec.yml").read_text("utf-8")
    assert "safedeploy retraining check --target aws" in buildspec
    version, _ = _contract(aws)
    since = aws.entered.strftime("%Y-%m-%dT%H:%M:%SZ")
    overrides = [
        *("--set", f"account_id={ACCOUNT}", "--set", f"region={REGION}", "--set", f"state_dir={aws.spec.state_dir}"),
        *("--set", "retraining.alarm_periods=1"),  # the alarm went to ALARM just now (moto): one period held
    ]
    argv = ["retraining", "check", "--target", "aws", "--trigger", f"alarm {aws.alarm} in ALARM since {since}"]
    with Stubber(aws.codepipeline) as stub:
        for _ in range(2):
            stub.add_response("list_pipeline_executions", {"pipelineExecutionSummaries": []})
        code = cli.main([*argv, "--alarm", aws.alarm, "--since", since, *overrides])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"Retraining: {datetime.now(UTC):%Y-%m-%d}" in out and "started: " in out, out
    assert _contract(aws)[0] != version  # the new contract: its upload starts the pipeline
    assert cli.main(["retraining", "status", "--target", "aws", *overrides]) == 0
    status = capsys.readouterr().out
    assert f"trigger: alarm {aws.alarm} in ALARM since {since} (+60 labelled rows" in status
    assert not (aws.spec.state_dir / "retraining").exists()  # an AWS command leaves no local state
