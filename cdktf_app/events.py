"""EventBridge rules: what starts the pipeline, what starts retraining, and failure notices.

The data upload and a code push start the pipeline; the drift and model-quality alarms and the schedule start
retraining.
Retraining never restarts the pipeline on the data it already has (the workshop's drift rule re-ran the same
``data-source.zip``, producing the same model): the alarms and the schedule start the retraining state machine
(:mod:`cdktf_app.retraining`), whose build submits new data; that upload starts the pipeline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cdktf_cdktf_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktf_cdktf_provider_aws.cloudwatch_event_target import (
    CloudwatchEventTarget,
    CloudwatchEventTargetInputTransformer,
)
from constructs import Construct

from cdktf_app.names import TerraformNames
from cdktf_app.variables import count_unless_empty
from safedeploy import naming

DATA_UPLOAD = "data-upload"
CODE_PUSH = "code-push"
DRIFT_RETRAIN = "drift-retrain"
RETRAIN_SCHEDULE = "retrain-schedule"
PIPELINE_FAILED = "pipeline-failed"


@dataclass(frozen=True, kw_only=True)
class PipelineTriggersConfig:
    """The rules.

    Attributes:
        names: The environment's names.
        pipeline_arn: The pipeline the rules start.
        role_arn: The EventBridge role allowed to start it.
        data_bucket: The data bucket (its EventBridge notifications are on).
        repository_arn: The CodeCommit repository.
        branch: The branch whose pushes start the pipeline.
        start_on_commit: Whether pushes start it at all.
        retrain_schedule: Schedule expression (a Terraform expression; empty: no schedule rule).
        alarm_topic_arn: Where failed pipeline executions are reported.
        retraining_arn: The retraining state machine the alarms and the schedule start.
        retraining_alarms: The alarms whose ALARM state retrains.
        debounce_seconds: How long an alarm must stay in ALARM before the retraining build runs.
    """

    names: TerraformNames
    pipeline_arn: str
    role_arn: str
    data_bucket: str
    repository_arn: str
    branch: str
    start_on_commit: bool
    retrain_schedule: str
    alarm_topic_arn: str
    retraining_arn: str
    retraining_alarms: tuple[str, ...]
    debounce_seconds: int


def trigger_rules(names: TerraformNames, *, start_on_commit: bool) -> list[str]:
    """The names of the rules that start the pipeline."""
    purposes = (DATA_UPLOAD, DRIFT_RETRAIN, *((CODE_PUSH,) if start_on_commit else ()), RETRAIN_SCHEDULE)
    return [names.name(naming.event_rule_name, purpose) for purpose in purposes]


def event_patterns(config: PipelineTriggersConfig) -> dict[str, dict[str, Any]]:
    """The event pattern of each pattern rule that starts the pipeline, by purpose."""
    names = config.names
    patterns: dict[str, dict[str, Any]] = {
        DATA_UPLOAD: {
            "source": ["aws.s3"],
            "detail-type": ["Object Created"],
            "detail": {
                "bucket": {"name": [config.data_bucket]},
                "object": {"key": [names.uri(naming.data_source_uri).key]},
            },
        },
        DRIFT_RETRAIN: {
            "source": ["aws.cloudwatch"],
            "detail-type": ["CloudWatch Alarm State Change"],
            "detail": {"alarmName": list(config.retraining_alarms), "state": {"value": ["ALARM"]}},
        },
    }
    if config.start_on_commit:
        patterns[CODE_PUSH] = {
            "source": ["aws.codecommit"],
            "detail-type": ["CodeCommit Repository State Change"],
            "resources": [config.repository_arn],
            "detail": {
                "event": ["referenceCreated", "referenceUpdated"],
                "referenceType": ["branch"],
                "referenceName": [config.branch],
            },
        }
    return patterns


def alarm_input(debounce_seconds: int) -> CloudwatchEventTargetInputTransformer:
    """The retraining state machine's input from an alarm's state change: the trigger as executions record it."""
    return CloudwatchEventTargetInputTransformer(
        input_paths={"alarm": "$.detail.alarmName", "since": "$.detail.state.timestamp"},
        input_template=(
            '{"trigger": "alarm <alarm> in ALARM since <since>", "alarm": <alarm>, "since": <since>, '
            f'"waitSeconds": {int(debounce_seconds)}}}'
        ),
    )


def schedule_input(expression: str) -> CloudwatchEventTargetInputTransformer:
    """The retraining state machine's input from the retrain schedule: no alarm, no wait."""
    return CloudwatchEventTargetInputTransformer(
        input_paths={"time": "$.time"},
        input_template=json.dumps(
            {"trigger": f"schedule {expression} at <time>", "alarm": "", "since": "", "waitSeconds": 0}
        ),
    )


class PipelineTriggers(Construct):
    """The rules starting the pipeline, the optional retrain schedule, and the failed-execution notice."""

    def __init__(self, scope: Construct, id_: str, *, config: PipelineTriggersConfig) -> None:
        super().__init__(scope, id_)
        self._names = names = config.names
        descriptions = {
            DATA_UPLOAD: "A new data-source contract in the data bucket starts the pipeline.",
            CODE_PUSH: f"A push to {config.branch} starts the pipeline.",
            DRIFT_RETRAIN: "A retraining alarm (drift, model quality) starts retraining on new data.",
        }
        for purpose, pattern in event_patterns(config).items():
            rule = CloudwatchEventRule(
                self,
                purpose.replace("-", "_"),
                name=self._name(purpose),
                description=descriptions[purpose],
                event_pattern=json.dumps(pattern, sort_keys=True),
            )
            if purpose == DRIFT_RETRAIN:
                self._target(purpose, rule.name, config, alarm_input(config.debounce_seconds))
            else:
                self._target(purpose, rule.name, config)
        schedule_count = count_unless_empty(config.retrain_schedule)
        schedule = CloudwatchEventRule(
            self,
            "retrain_schedule",
            count=schedule_count,
            name=self._name(RETRAIN_SCHEDULE),
            description="Retrains on a schedule (variable retrain_schedule).",
            schedule_expression=config.retrain_schedule,
        )
        # The target names the rule by its (known) name: a counted rule has no single reference.
        self._target(
            RETRAIN_SCHEDULE,
            self._name(RETRAIN_SCHEDULE),
            config,
            schedule_input(config.retrain_schedule),
            count=schedule_count,
            after=schedule,
        )

        failed = CloudwatchEventRule(
            self,
            "pipeline_failed",
            name=self._name(PIPELINE_FAILED),
            description="A failed pipeline execution is reported on the alarm topic.",
            event_pattern=json.dumps(
                {
                    "source": ["aws.codepipeline"],
                    "detail-type": ["CodePipeline Pipeline Execution State Change"],
                    "resources": [config.pipeline_arn],
                    "detail": {"state": ["FAILED"]},
                },
                sort_keys=True,
            ),
        )
        CloudwatchEventTarget(
            self,
            "pipeline_failed_notice",
            rule=failed.name,
            target_id="alarm-topic",
            arn=config.alarm_topic_arn,
            input_transformer=CloudwatchEventTargetInputTransformer(
                input_paths={"pipeline": "$.detail.pipeline", "execution": "$.detail.execution-id"},
                input_template=f'"Pipeline <pipeline> execution <execution> failed (account {names.account_id}, '
                f'region {names.region})."',
            ),
        )

    def _name(self, purpose: str) -> str:
        return self._names.name(naming.event_rule_name, purpose)

    def _target(
        self,
        purpose: str,
        rule: str,
        config: PipelineTriggersConfig,
        transformer: CloudwatchEventTargetInputTransformer | None = None,
        *,
        count: float | None = None,
        after: CloudwatchEventRule | None = None,
    ) -> None:
        """The rule's one target: the retraining state machine given an input ``transformer``, else the pipeline."""
        retraining = transformer is not None
        CloudwatchEventTarget(
            self,
            f"{purpose.replace('-', '_')}_target",
            rule=rule,
            target_id="retraining" if retraining else "pipeline",
            arn=config.retraining_arn if retraining else config.pipeline_arn,
            role_arn=config.role_arn,
            input_transformer=transformer,
            count=count,
            depends_on=[after] if after is not None else None,
        )
