"""The typed pipeline spec: the single source of truth both backends execute or render.

Values are resolved with explicit precedence, highest first:

1. arguments (``load_spec(overrides=...)``; the CLI's ``--set key=value`` and ``--data``),
2. environment variables ``SAFEDEPLOY_<FIELD>`` (nested fields joined by ``__``, e.g.
   ``SAFEDEPLOY_HYPERPARAMETERS__MAX_DEPTH=4``; lists and objects as JSON),
3. the config file (``--config``, else ``$SAFEDEPLOY_CONFIG``, else ``./pipeline.toml`` if present),
4. the defaults below.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from safedeploy import constants as C
from safedeploy.errors import ConfigError, ConfigFileError, OverrideError
from safedeploy.faults import FAULT_PATTERN
from safedeploy.traffic import Schedule, build_schedule

_STRICT = ConfigDict(extra="forbid", frozen=True)


class DataSpec(BaseModel):
    """Where the raw table comes from and how it is split."""

    model_config = _STRICT

    source: Path | None = Field(default=None, description="Raw churn table in the seed's format (21 columns, header).")
    validation_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    seed: int = Field(default=42, ge=0, description="Seed of the stratified split.")


class Hyperparameters(BaseModel):
    """XGBoost hyperparameters, passed to the training job as SageMaker passes them (strings)."""

    model_config = _STRICT

    objective: Literal["binary:logistic"] = "binary:logistic"
    eval_metric: tuple[str, ...] = ("auc", "logloss")
    max_depth: int = Field(default=6, ge=1, le=20)
    eta: float = Field(default=0.05, gt=0, le=1)
    gamma: float = Field(default=1.0, ge=0)
    min_child_weight: float = Field(default=3.0, ge=0)
    subsample: float = Field(default=0.8, gt=0, le=1)
    colsample_bytree: float = Field(default=0.8, gt=0, le=1)
    num_round: int = Field(default=1000, ge=1, le=100_000)
    early_stopping_rounds: int = Field(default=50, ge=1)
    seed: int = Field(default=42, ge=0)

    def as_sagemaker(self) -> dict[str, str]:
        """Return the hyperparameters as the SageMaker API carries them: every value a string."""
        out: dict[str, str] = {}
        for name, value in self.model_dump().items():
            out[name] = ",".join(value) if isinstance(value, tuple) else str(value)
        return out


class GateCondition(BaseModel):
    """One condition a trained model must meet, e.g. ``test:auc >= 0.90``."""

    model_config = _STRICT

    metric: str = Field(pattern=r"^(train|validation|test):[a-z_0-9]+$")
    op: Literal[">=", "<="]
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"


class GateSpec(BaseModel):
    """The quality gate between training and registration."""

    model_config = _STRICT

    conditions: tuple[GateCondition, ...] = (GateCondition(metric="test:auc", op=">=", threshold=0.90),)
    compare_with_production: bool = Field(
        default=True,
        description="Besides the conditions, the candidate's test:auc must not be below the production version's "
        "test:auc on the same held-out rows (minus production_tolerance); no production yet: conditions only.",
    )
    production_tolerance: float = Field(
        default=0.005,
        ge=0.0,
        le=1.0,
        description="How far below production's test:auc a candidate may be and still pass (AUC is in [0, 1]).",
    )

    @field_validator("conditions")
    @classmethod
    def _not_empty(cls, value: tuple[GateCondition, ...]) -> tuple[GateCondition, ...]:
        if not value:
            raise ValueError("the quality gate needs at least one condition")
        return value


class TrainingSpec(BaseModel):
    """How the training job runs (the same request on both backends)."""

    model_config = _STRICT

    entry_point: str = "train.py"
    source_dir: Path = Path("model")
    framework_version: str = C.XGBOOST_FRAMEWORK_VERSION
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = Field(default=1, ge=1, le=1)
    max_runtime_seconds: int = Field(default=3600, ge=60)


class ServingSpec(BaseModel):
    """How the dev endpoint serves the model (the REST API fronts it)."""

    model_config = _STRICT

    enabled: bool = Field(default=True, description="Deploy the registered model to the dev endpoint.")
    instance_type: str = "ml.m5.large"
    instance_count: int = Field(default=1, ge=1, le=C.MAX_LOCAL_INSTANCES)
    capture_percentage: int = Field(default=100, ge=0, le=100, description="Data capture sampling percentage.")
    api_key_required: bool = True
    ready_timeout_seconds: int = Field(default=300, ge=10)
    smoke_test_rows: int = Field(
        default=50, ge=1, le=10_000, description="Held-out test rows the smoke test sends to a new endpoint."
    )
    smoke_test_tolerance: float = Field(
        default=1e-6, gt=0, le=0.01, description="Largest allowed |endpoint - offline| probability difference."
    )
    runtime_port: int = Field(
        default=0, ge=0, le=65535, description="The local runtime API's port (0: the one used before, else a free one)."
    )
    gateway_port: int = Field(
        default=0, ge=0, le=65535, description="The local REST API gateway's port (0: as for runtime_port)."
    )


class ApprovalSpec(BaseModel):
    """The manual approval gate between the dev and prod deployments."""

    model_config = _STRICT

    timeout_seconds: int = Field(
        default=C.APPROVAL_TIMEOUT_SECONDS,
        ge=60,
        le=C.APPROVAL_TIMEOUT_SECONDS,
        description="How long an approval waits before it expires (CodePipeline: at most 7 days).",
    )


Comparison = Literal[
    "GreaterThanThreshold", "GreaterThanOrEqualToThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold"
]
TreatMissing = Literal["missing", "notBreaching", "breaching", "ignore"]


class MetricSpec(BaseModel):
    """The metric an alarm watches: namespace, name and the names of its dimensions (values bound when rendered)."""

    model_config = _STRICT

    namespace: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1, max_length=255)
    dimensions: tuple[str, ...] = ()


class AlarmSpec(BaseModel):
    """One alarm, defined once: rendered to the local evaluator, CloudFormation and Terraform alike.

    Field names are ``PutMetricAlarm``'s, snake-cased; ``name`` is the alarm's purpose (AWS names it
    ``naming.alarm_name(spec, name)``; the local evaluator and the deployment ledger use it as it is).
    """

    model_config = _STRICT

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)
    description: str
    metric: MetricSpec
    statistic: str = Field(pattern=r"^(SampleCount|Average|Sum|Minimum|Maximum|p\d{1,2}(\.\d+)?)$")
    threshold: float
    comparison: Comparison = "GreaterThanThreshold"
    period_seconds: int = Field(default=C.ALARM_PERIOD_SECONDS, ge=10)
    evaluation_periods: int = Field(default=C.DEPLOYMENT_ALARM_EVALUATION_PERIODS, ge=1)
    datapoints_to_alarm: int = Field(default=C.DEPLOYMENT_ALARM_DATAPOINTS_TO_ALARM, ge=1)
    treat_missing_data: TreatMissing = C.DEPLOYMENT_ALARM_MISSING_DATA

    @model_validator(mode="after")
    def _cloudwatch_rules(self) -> AlarmSpec:
        if self.period_seconds not in (10, 30) and self.period_seconds % 60:
            raise ValueError(
                f"period_seconds must be 10, 30 or a multiple of 60 (CloudWatch), got {self.period_seconds}"
            )
        if self.datapoints_to_alarm > self.evaluation_periods:
            raise ValueError("datapoints_to_alarm must not exceed evaluation_periods")
        return self


def _deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        out[key] = (
            _deep_merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
        )
    return out


class _AlarmGroup(BaseModel):
    """A group of alarms, each with its own default.

    A partial setting (``--set alarms.deployment.latency.threshold=5``) changes only that field of the default
    alarm, as nested settings do everywhere else in the spec.
    """

    model_config = _STRICT

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        merged = dict(data)
        for name, field in cls.model_fields.items():
            default, given = field.default, data.get(name)
            if isinstance(default, AlarmSpec) and isinstance(given, Mapping):
                merged[name] = _deep_merge(default.model_dump(), given)
        return merged


def _endpoint_metric(name: str, namespace: str = C.METRICS_NAMESPACE) -> MetricSpec:
    return MetricSpec(namespace=namespace, name=name, dimensions=("EndpointName", "VariantName"))


class DeploymentAlarmsSpec(_AlarmGroup):
    """Green's alarms while traffic shifts and bakes: the local controller's, CodeDeploy's (or guardrails').

    The three share one period (the local controller judges windows of it). The latency datapoint is green's p99
    minus what blue allows (``latency_ratio`` x blue's p99 + ``latency_slack_ms``; ``max_latency_ms`` with no
    blue), alarming above ``latency.threshold`` (0 ms). The prediction shift is the mean |green - blue| score on
    the held-out rows the synthetic canary sent to green.
    """

    model_config = _STRICT

    min_requests: int = Field(default=C.ALARM_MIN_REQUESTS, ge=1, description="Fewer requests in a period: missing.")
    latency_ratio: float = Field(default=C.LATENCY_RATIO, ge=1.0, description="Green p99 may be this times blue's ...")
    latency_slack_ms: float = Field(default=C.LATENCY_SLACK_MS, ge=0, description="... plus this many milliseconds.")
    max_latency_ms: float = Field(default=C.MAX_LATENCY_MS, gt=0, description="Green's p99 budget with no blue.")
    error_rate: AlarmSpec = AlarmSpec(
        name="green-error-rate",
        description="Green's share of requests answered 5XX (model errors included)",
        metric=_endpoint_metric("Invocation5XXErrors"),
        statistic="Sum",
        threshold=C.MAX_ERROR_RATE,
    )
    latency: AlarmSpec = AlarmSpec(
        name="green-p99-latency",
        description="Green's p99 model latency minus what blue allows, in ms",
        metric=_endpoint_metric("ModelLatency"),
        statistic="p99",
        threshold=0.0,
    )
    prediction_shift: AlarmSpec = AlarmSpec(
        name="green-prediction-shift",
        description="Mean |green - blue| score on the held-out rows the synthetic canary sent to green",
        metric=MetricSpec(
            namespace=C.CANARY_METRICS_NAMESPACE, name=C.PREDICTION_SHIFT_METRIC, dimensions=("EndpointName",)
        ),
        statistic="Average",
        threshold=C.MAX_PREDICTION_SHIFT,
    )

    @property
    def all(self) -> tuple[AlarmSpec, AlarmSpec, AlarmSpec]:
        """Error rate, latency, prediction shift."""
        return (self.error_rate, self.latency, self.prediction_shift)

    @model_validator(mode="after")
    def _one_period(self) -> DeploymentAlarmsSpec:
        periods = {alarm.period_seconds for alarm in self.all}
        if len(periods) != 1:
            raise ValueError(f"the deployment alarms must share one period_seconds, got {sorted(periods)}")
        if len({alarm.name for alarm in self.all}) != 3:
            raise ValueError("the deployment alarms need distinct names")
        if not 0 < self.error_rate.threshold < 1:
            raise ValueError("error_rate.threshold is a share of requests: it must be in (0, 1)")
        if not 0 < self.prediction_shift.threshold <= 1:
            raise ValueError("prediction_shift.threshold is a score difference: it must be in (0, 1]")
        return self


def _standing(
    name: str, description: str, namespace: str, metric: str, dimension: str, statistic: str, threshold: float
) -> AlarmSpec:
    return AlarmSpec(
        name=name,
        description=description,
        metric=MetricSpec(namespace=namespace, name=metric, dimensions=(dimension,)),
        statistic=statistic,
        threshold=threshold,
        comparison="GreaterThanOrEqualToThreshold",
        period_seconds=C.STANDING_ALARM_PERIOD_SECONDS,
        evaluation_periods=C.STANDING_ALARM_EVALUATION_PERIODS,
        datapoints_to_alarm=C.STANDING_ALARM_DATAPOINTS_TO_ALARM,
        treat_missing_data="notBreaching",  # a quiet API is a healthy one; these alarms notify, never roll back
    )


class StandingAlarmsSpec(_AlarmGroup):
    """The base infrastructure's alarms on the production API and its function (notify the alarm topic)."""

    model_config = _STRICT

    gateway_5xx: AlarmSpec = _standing(
        "gateway-5xx",
        "Share of the production API's requests answered 5XX",  # 5XXError is 0/1 per request: Average is the rate
        "AWS/ApiGateway",
        "5XXError",
        "ApiName",
        "Average",
        C.MAX_ERROR_RATE,
    )
    gateway_latency: AlarmSpec = _standing(
        "gateway-latency",
        "The production API's p99 latency (ms)",
        "AWS/ApiGateway",
        "Latency",
        "ApiName",
        "p99",
        C.MAX_API_LATENCY_MS,
    )
    lambda_errors: AlarmSpec = _standing(
        "lambda-errors", "The production API's Lambda function raised errors", "AWS/Lambda", "Errors",
        "FunctionName", "Sum", 5,
    )  # fmt: skip
    lambda_throttles: AlarmSpec = _standing(
        "lambda-throttles", "The production API's Lambda function was throttled", "AWS/Lambda", "Throttles",
        "FunctionName", "Sum", 1,
    )  # fmt: skip

    @property
    def all(self) -> tuple[AlarmSpec, ...]:
        """Every standing alarm."""
        return (self.gateway_5xx, self.gateway_latency, self.lambda_errors, self.lambda_throttles)


class AlarmsSpec(BaseModel):
    """The alarm catalog: every alarm of the pipeline, defined once."""

    model_config = _STRICT

    deployment: DeploymentAlarmsSpec = DeploymentAlarmsSpec()
    standing: StandingAlarmsSpec = StandingAlarmsSpec()


class ProductionSpec(BaseModel):
    """How a version is deployed to production: blue/green traffic shifting, bake, alarms, automatic rollback."""

    model_config = _STRICT

    enabled: bool = Field(default=True, description="Deploy approved versions to production (blue/green).")
    strategy: str = Field(
        default="Canary10Percent5Minutes",
        description="A CodeDeploy config (Canary10Percent5Minutes, Linear10PercentEvery1Minute, AllAtOnce, ...), "
        "a guardrails mode (CANARY, LINEAR, ALL_AT_ONCE) or Custom.",
    )
    canary_percent: int = Field(default=10, ge=1, le=99, description="CANARY mode: green's share in the canary.")
    linear_step_percent: int = Field(default=10, ge=1, le=99, description="LINEAR mode: the share added per step.")
    wait_interval_seconds: float = Field(default=300, ge=0, description="CANARY/LINEAR: the wait after each step.")
    custom_steps: tuple[tuple[int, float], ...] = Field(default=(), description="Custom: [[percent, wait_s], ...].")
    bake_seconds: float = Field(default=300, ge=0, description="The final bake at 100 % before blue is removed.")
    pre_traffic_latency_budget_ms: float = Field(
        default=C.PRE_TRAFFIC_LATENCY_BUDGET_MS,
        gt=0,
        description="The BeforeAllowTraffic hook fails green when its answer to the known rows (one request) takes "
        "longer than this.",
    )
    time_scale: float = Field(
        default=60.0,
        ge=1.0,
        description="How much faster than real time the waits run locally (60: five minutes take five seconds).",
    )
    instance_count: int = Field(
        default=2,
        ge=1,
        le=C.MAX_LOCAL_INSTANCES,
        description="Production instances per endpoint: with 2, a lost instance costs only its in-flight requests.",
    )
    instance_type: str = "ml.m5.large"
    synthetic_traffic: bool = Field(
        default=True, description="Feed held-out rows through the API during the shift so alarms see enough data."
    )
    fault: str | None = Field(
        default=None,
        pattern=FAULT_PATTERN,
        description="Game day: make this deployment's green misbehave (load-failure, errors:0.2, latency:200ms, "
        "crash); the ledger marks the deployment as a rehearsal.",
    )

    @model_validator(mode="after")
    def _known_strategy(self) -> ProductionSpec:
        try:
            self.schedule()
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def schedule(self) -> Schedule:
        """The traffic schedule of the strategy."""
        return build_schedule(
            self.strategy,
            bake_seconds=self.bake_seconds,
            canary_percent=self.canary_percent,
            linear_step_percent=self.linear_step_percent,
            wait_interval_seconds=self.wait_interval_seconds,
            custom_steps=self.custom_steps,
        )


class ModelQualitySpec(BaseModel):
    """Model-quality monitoring of production: captured predictions joined to ground-truth labels."""

    model_config = _STRICT

    enabled: bool = Field(
        default=True, description="Baseline every version's model quality and run the model-quality schedule."
    )
    schedule_expression: str = Field(
        default="cron(0 * ? * * *)",
        description="When the model-quality schedule runs (SageMaker's cron forms, UTC; on monitoring.time_scale).",
    )
    label_delay_periods: int = Field(
        default=1,
        ge=0,
        le=48,
        description="Schedule periods labels get to arrive: a run at T analyses the window ending this many periods "
        "before T (SageMaker's model-quality StartOffset/EndOffset).",
    )
    min_labelled_records: int = Field(
        default=30,
        ge=1,
        description="Fewer labelled records in a window make the execution InsufficientData (no metric published).",
    )
    probability_threshold: float = Field(
        default=0.5, ge=0, le=1, description="A score at or above it predicts churn (probability_threshold_attribute)."
    )
    auc_threshold: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="AUC below which the model-quality alarm fires; unset: the version's baseline suggests it "
        "(baseline AUC minus max(3 sd, 0.02)).",
    )
    bootstrap_seed: int = Field(
        default=0, ge=0, description="Seed of the standard deviations' 5 x 80 % subsamples (reproducible reports)."
    )
    alarm_evaluation_periods: int = Field(default=1, ge=1, description="Schedule periods the AUC alarm looks at.")
    alarm_datapoints_to_alarm: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _valid(self) -> ModelQualitySpec:
        from safedeploy.monitoring.schedule import parse_schedule  # the spec is imported first

        try:
            parse_schedule(self.schedule_expression)
        except ConfigError as exc:
            raise ValueError(f"model_quality.schedule_expression: {exc}") from None
        if self.alarm_datapoints_to_alarm > self.alarm_evaluation_periods:
            raise ValueError("model_quality.alarm_datapoints_to_alarm must not exceed alarm_evaluation_periods")
        return self


_RATE = r"^rate\((?P<value>[1-9]\d{0,3}) (?P<unit>minutes?|hours?|days?)\)$"
_RATE_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86_400}


def rate_seconds(expression: str) -> int:
    """Seconds between runs of an EventBridge ``rate(N unit)`` expression (``rate(1 minute)``, ``rate(5 minutes)``).

    Raises:
        ConfigError: naming what EventBridge would refuse (a value of 1 takes the singular unit, others the plural).
    """
    import re

    match = re.match(_RATE, expression.strip())
    if match is None:
        raise ConfigError(f"schedule {expression!r} is not rate(N minutes|hours|days) with N from 1 to 9999")
    value, unit = int(match.group("value")), match.group("unit")
    if (value == 1) == unit.endswith("s"):
        raise ConfigError(f"schedule {expression!r}: EventBridge wants 'rate(1 {unit.rstrip('s')})' or N > 1 {unit}")
    return value * _RATE_UNIT_SECONDS[unit.rstrip("s")]


class SyntheticCanarySpec(BaseModel):
    """The standing probe of the production REST API (CloudWatch Synthetics' canary, rendered twice).

    Every ``schedule_expression`` (monitoring clock locally, EventBridge on AWS) it sends ``rows`` known rows (held-out
    test rows of the serving version with their offline scores) through the production REST API with the API key
    and the synthetic header (their inference ids start ``synthetic-``: monitoring leaves them out). A run passes
    when every answer is 200, within ``tolerance`` of the offline score and within ``latency_budget_ms``; it
    publishes Synthetics' ``SuccessPercent`` (100 or 0) and ``Duration`` with dimension ``CanaryName``
    (``naming.probe_canary_name``), which ``alarm`` watches.
    """

    model_config = _STRICT

    enabled: bool = Field(default=True, description="Probe the production REST API on a schedule.")
    schedule_expression: str = Field(
        default=C.PROBE_SCHEDULE,
        description="How often: rate(N minutes|hours|days) (EventBridge; locally on the "
        "monitoring clock, monitoring.time_scale).",
    )
    rows: int = Field(default=C.PROBE_ROWS, ge=1, le=100, description="Known rows sent per run, one request each.")
    tolerance: float = Field(
        default=C.PROBE_TOLERANCE, gt=0, le=0.5, description="Largest allowed |answer - offline score|."
    )
    latency_budget_ms: float = Field(
        default=C.PROBE_LATENCY_BUDGET_MS, gt=0, description="A request slower than this fails the run."
    )
    timeout_seconds: int = Field(
        default=C.PROBE_TIMEOUT_SECONDS, ge=5, le=840, description="Per-request timeout; the Lambda's is a minute more."
    )
    alarm: AlarmSpec = AlarmSpec(
        name="probe-success",
        description="Share of the standing probe's runs that passed (CloudWatch Synthetics SuccessPercent)",
        metric=MetricSpec(
            namespace=C.SYNTHETICS_NAMESPACE,
            name=C.SYNTHETICS_SUCCESS_METRIC,
            dimensions=(C.SYNTHETICS_CANARY_DIMENSION,),
        ),
        statistic="Average",
        threshold=C.PROBE_SUCCESS_THRESHOLD,
        comparison="LessThanThreshold",
        period_seconds=C.PROBE_ALARM_PERIOD_SECONDS,
        evaluation_periods=C.PROBE_ALARM_EVALUATION_PERIODS,
        datapoints_to_alarm=C.PROBE_ALARM_DATAPOINTS_TO_ALARM,
        # A failed run publishes 0, so missing data never hides a failure: it only means that the probe did not run
        # (no production yet, by design, or the scheduler was stopped). Breaching would page whenever nothing serves.
        treat_missing_data="notBreaching",
    )

    @model_validator(mode="before")
    @classmethod
    def _alarm_over_default(cls, data: Any) -> Any:
        """A partial ``alarm`` setting keeps the default alarm's other fields (as in ``spec.alarms``)."""
        if isinstance(data, Mapping) and isinstance(data.get("alarm"), Mapping):
            default = cls.model_fields["alarm"].default
            return {**data, "alarm": _deep_merge(default.model_dump(), data["alarm"])}
        return data

    @model_validator(mode="after")
    def _valid(self) -> SyntheticCanarySpec:
        try:
            rate_seconds(self.schedule_expression)
        except ConfigError as exc:
            raise ValueError(f"synthetic_canary.schedule_expression: {exc}") from None
        if self.alarm.metric.dimensions != (C.SYNTHETICS_CANARY_DIMENSION,):
            raise ValueError(f"synthetic_canary.alarm: the metric's one dimension is {C.SYNTHETICS_CANARY_DIMENSION}")
        if not 0 < self.alarm.threshold <= 100:
            raise ValueError("synthetic_canary.alarm.threshold is a SuccessPercent: it must be in (0, 100]")
        return self

    @property
    def every_seconds(self) -> int:
        """Seconds between runs (model time locally)."""
        return rate_seconds(self.schedule_expression)


class MonitoringSpec(BaseModel):
    """Data-quality monitoring of production: the baseline job, the schedule, drift verdicts and alarms."""

    model_config = _STRICT

    enabled: bool = Field(default=True, description="Baseline every version and monitor production's capture.")
    schedule_expression: str = Field(
        default="cron(0 * ? * * *)",
        description="When monitoring runs, as SageMaker accepts it: cron(0 * ? * * *) hourly, cron(0 H ? * * *) "
        "daily, cron(0 H/N ? * * *) every N hours (UTC).",
    )
    time_scale: float = Field(
        default=1.0,
        ge=1.0,
        description="How much faster than real time the local schedule runs (60: an hourly schedule fires every "
        "minute and analyses that minute's capture).",
    )
    comparison_threshold: float = Field(
        default=0.1, gt=0, le=1, description="baseline_drift_check: the largest distribution distance allowed."
    )
    comparison_method: Literal["Simple", "Robust"] = Field(
        default="Robust", description="Simple: the L-infinity distance; Robust: minus its sampling noise (deequ)."
    )
    significance: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="Family-wise false-alarm rate of the power-aware drift verdicts (spread over the features).",
    )
    drift_alarms: dict[str, float] = Field(
        default_factory=lambda: {"CustServ Calls": 0.2},
        description="Feature -> drift distance above which its alarm goes to ALARM (feature_baseline_drift_<name>).",
    )
    alarm_evaluation_periods: int = Field(default=1, ge=1, description="Schedule periods the drift alarm looks at.")
    alarm_datapoints_to_alarm: int = Field(default=1, ge=1)
    instance_type: str = "ml.m5.xlarge"
    max_runtime_seconds: int = Field(default=1800, ge=60, le=86_400)
    model_quality: ModelQualitySpec = Field(
        default_factory=ModelQualitySpec, description="Model quality: predictions against ground-truth labels."
    )
    synthetic_canary: SyntheticCanarySpec = Field(
        default_factory=SyntheticCanarySpec, description="The standing probe of the production REST API."
    )
    use_model_monitor: bool = Field(
        default=False,
        description="AWS only: run SageMaker Model Monitor's analyzer (accounts that still have it) instead of this "
        "project's monitor as a Processing job.",
    )

    @model_validator(mode="after")
    def _valid(self) -> MonitoringSpec:
        from safedeploy.monitoring.schedule import parse_schedule  # the spec is imported first

        try:
            parse_schedule(self.schedule_expression)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if self.alarm_datapoints_to_alarm > self.alarm_evaluation_periods:
            raise ValueError("alarm_datapoints_to_alarm must not exceed alarm_evaluation_periods")
        for feature, threshold in self.drift_alarms.items():
            if not feature.strip() or not 0 < threshold <= 1:
                raise ValueError(f"drift_alarms[{feature!r}]: the threshold must be in (0, 1], got {threshold}")
        return self


class RetrainingSpec(BaseModel):
    """Retraining on new data when an alarm fires: which alarms, debounce, cooldown, the approval gate."""

    model_config = _STRICT

    enabled: bool = Field(default=True, description="Retrain when a trigger alarm stays in ALARM (local backend).")
    trigger_alarms: tuple[str, ...] = Field(
        default=C.RETRAINING_TRIGGER_ALARMS,
        description="Alarm purposes whose ALARM state retrains (<pipeline>-<purpose>: drift, model-quality).",
    )
    alarm_periods: int = Field(
        default=C.RETRAINING_ALARM_PERIODS,
        ge=1,
        description="Consecutive evaluation periods in ALARM before a retraining starts.",
    )
    cooldown_seconds: float = Field(
        default=C.RETRAINING_COOLDOWN_SECONDS,
        ge=0,
        description="Model time (monitoring clock) after a retraining ends before another may start.",
    )
    auto_approve: bool = Field(
        default=False, description="Answer the approval gate yes (tests); else the retraining waits at the gate."
    )

    @field_validator("trigger_alarms")
    @classmethod
    def _named(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(not purpose.strip() for purpose in value):
            raise ValueError("trigger_alarms needs at least one alarm purpose, none empty")
        return value


class PipelineSpec(BaseSettings):
    """Everything that defines one pipeline: model, environment, data, training, gate."""

    model_config = SettingsConfigDict(
        env_prefix=C.ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        protected_namespaces=(),
        toml_file=None,
    )

    model_name: str = Field(
        default=C.DEFAULT_MODEL_NAME,
        max_length=C.MODEL_NAME_MAX_LENGTH,
        pattern=C.MODEL_NAME_PATTERN,
        description="Lowercase letters and digits with inner dashes, at most 15 characters (as the seed).",
    )
    environment: str = Field(default="dev", pattern=C.ENVIRONMENT_PATTERN)
    backend: Literal["local"] = "local"
    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    account_id: str = Field(default=C.LOCAL_ACCOUNT_ID, pattern=r"^\d{12}$")
    state_dir: Path = Field(
        default=Path(".safedeploy"), description="Local backend's root: artifact store, runs, registry."
    )
    data: DataSpec = DataSpec()
    hyperparameters: Hyperparameters = Hyperparameters()
    training: TrainingSpec = TrainingSpec()
    gate: GateSpec = GateSpec()
    serving: ServingSpec = ServingSpec()
    approval: ApprovalSpec = ApprovalSpec()
    production: ProductionSpec = ProductionSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    alarms: AlarmsSpec = AlarmsSpec()
    retraining: RetrainingSpec = RetrainingSpec()

    @field_validator("account_id", mode="before")
    @classmethod
    def _account_as_text(cls, value: Any) -> Any:
        """``--set account_id=123456789012`` parses as a number; an account id is 12 digits of text."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _split_leaves_training_data(self) -> PipelineSpec:
        if self.data.validation_fraction + self.data.test_fraction >= 0.6:
            raise ValueError("validation_fraction + test_fraction must leave at least 40% for training")
        return self

    @property
    def pipeline_name(self) -> str:
        """Name of this pipeline, namespaced by model and environment."""
        return f"{self.model_name}-{self.environment}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then environment, then the config file (then field defaults)."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def resolve_config_file(config_file: Path | None) -> Path | None:
    """Return the config file to read: the argument, else ``$SAFEDEPLOY_CONFIG``, else ``./pipeline.toml``."""
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigFileError(f"config file not found: {config_file}")
        return config_file
    if env := os.environ.get(C.ENV_CONFIG_FILE):
        path = Path(env)
        if not path.is_file():
            raise ConfigFileError(f"config file not found: {path} (from ${C.ENV_CONFIG_FILE})")
        return path
    default = Path(C.DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse a ``dotted.key=value`` argument; the value is read as JSON when it parses, else kept a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise OverrideError(f"expected KEY=VALUE, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def nest(assignments: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``{"a.b": 1}`` into ``{"a": {"b": 1}}``, merging keys that share a prefix."""
    out: dict[str, Any] = {}
    for dotted, value in assignments.items():
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise OverrideError(f"{dotted!r} conflicts with another setting of {part!r}")
            node = child
        node[leaf] = value
    return out


def _describe(err: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(root)"
    value = err.get("input")
    got = f" (got {value!r})" if isinstance(value, str | int | float) else ""
    return f"  {where}: {err['msg']}{got}"


def load_spec(config_file: Path | None = None, overrides: Mapping[str, Any] | None = None) -> PipelineSpec:
    """Resolve the spec from arguments > environment > config file > defaults.

    Args:
        config_file: Explicit config file; see :func:`resolve_config_file` for the fallbacks.
        overrides: Dotted keys to values (``{"gate.conditions": [...], "data.source": "x.csv"}``).

    Raises:
        ConfigError: naming every invalid field and where the values came from.
    """
    path = resolve_config_file(config_file)
    bound = type(
        "PipelineSpec",
        (PipelineSpec,),
        {"model_config": SettingsConfigDict(**{**PipelineSpec.model_config, "toml_file": path})},
    )
    try:
        spec = bound(**nest(overrides or {}))
    except ValidationError as exc:
        problems = "\n".join(_describe(err) for err in exc.errors())
        origin = f"config file {path}" if path else "no config file"
        raise ConfigError(
            f"invalid pipeline spec ({origin}; arguments and {C.ENV_PREFIX}* variables):\n{problems}"
        ) from None
    except (OSError, ValueError) as exc:  # unreadable or malformed TOML
        raise ConfigFileError(f"cannot read config file {path}: {exc}") from None
    return PipelineSpec.model_validate(spec.model_dump())


def spec_for_model(spec: PipelineSpec, model: str) -> PipelineSpec:
    """``spec`` with another model name: that model's pipeline (its buckets, endpoints, stacks... follow the name).

    Raises:
        ConfigError: ``model`` is not a valid model name.
    """
    try:
        return PipelineSpec.model_validate({**spec.model_dump(), "model_name": model})
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"] if exc.errors() else str(exc)
        raise ConfigError(f"{model!r} is not a model name: {problem}") from None
