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
from safedeploy.errors import ConfigError
from safedeploy.serving.faults import FAULT_PATTERN
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
    alarm_period_seconds: float = Field(default=60, gt=0)
    alarm_evaluation_periods: int = Field(default=2, ge=1)
    alarm_datapoints_to_alarm: int = Field(default=1, ge=1)
    alarm_min_requests: int = Field(default=10, ge=1, description="Fewer requests in a period: insufficient data.")
    max_error_rate: float = Field(default=0.02, gt=0, lt=1, description="Green's 5XX share that rolls back.")
    latency_ratio: float = Field(default=2.0, ge=1.0, description="Green p99 may be this times blue's ...")
    latency_slack_ms: float = Field(default=25.0, ge=0, description="... plus this many milliseconds.")
    max_latency_ms: float = Field(default=100.0, gt=0, description="Green's p99 budget with no blue to compare.")
    max_prediction_shift: float = Field(
        default=0.2, gt=0, le=1, description="Largest mean |green - blue| score on the same held-out rows."
    )
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
        if self.alarm_datapoints_to_alarm > self.alarm_evaluation_periods:
            raise ValueError("alarm_datapoints_to_alarm must not exceed alarm_evaluation_periods")
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
            raise ConfigError(f"config file not found: {config_file}")
        return config_file
    if env := os.environ.get(C.ENV_CONFIG_FILE):
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path} (from ${C.ENV_CONFIG_FILE})")
        return path
    default = Path(C.DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse a ``dotted.key=value`` argument; the value is read as JSON when it parses, else kept a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"expected KEY=VALUE, got {text!r}")
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
                raise ConfigError(f"{dotted!r} conflicts with another setting of {part!r}")
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
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    return PipelineSpec.model_validate(spec.model_dump())
