"""Every name, default and contract constant of the pipeline, in one place."""

from __future__ import annotations

from typing import Final

# --- Configuration -----------------------------------------------------------------------------------
ENV_PREFIX: Final = "SAFEDEPLOY_"
"""Prefix of environment variables that set spec fields (``SAFEDEPLOY_GATE__CONDITIONS=...``)."""
ENV_CONFIG_FILE: Final = "SAFEDEPLOY_CONFIG"
"""Environment variable naming the pipeline config file."""
DEFAULT_CONFIG_FILE: Final = "pipeline.toml"
DEFAULT_MODEL_NAME: Final = "customerchurn"
MODEL_NAME_PATTERN: Final = r"^[a-z0-9](-*[a-z0-9])*$"
"""The seed's CloudFormation ``AllowedPattern`` for ModelName (lowercase letters, digits, inner dashes)."""
MODEL_NAME_MAX_LENGTH: Final = 15
ENVIRONMENT_PATTERN: Final = r"^[a-z][a-z0-9]{0,7}$"
LOCAL_ACCOUNT_ID: Final = "000000000000"
"""Account id the local backend uses when it builds AWS-shaped names and ARNs."""

# --- Raw churn table (the seed's format) -----------------------------------------------------------
LABEL_COLUMN: Final = "Churn?"
LABEL_POSITIVE: Final = "True."
LABEL_NEGATIVE: Final = "False."
STATES: Final = frozenset(
    {
        "AK",
        "AL",
        "AR",
        "AZ",
        "CA",
        "CO",
        "CT",
        "DC",
        "DE",
        "FL",
        "GA",
        "HI",
        "IA",
        "ID",
        "IL",
        "IN",
        "KS",
        "KY",
        "LA",
        "MA",
        "MD",
        "ME",
        "MI",
        "MN",
        "MO",
        "MS",
        "MT",
        "NC",
        "ND",
        "NE",
        "NH",
        "NJ",
        "NM",
        "NV",
        "NY",
        "OH",
        "OK",
        "OR",
        "PA",
        "RI",
        "SC",
        "SD",
        "TN",
        "TX",
        "UT",
        "VA",
        "VT",
        "WA",
        "WI",
        "WV",
        "WY",
    }
)
"""The 50 states plus DC, as they appear in the ``State`` column."""

# --- SageMaker training-container contract -----------------------------------------------------------
SM_BASE_DIR_ENV: Final = "SAGEMAKER_BASE_DIR"
"""Root of the container layout (``/opt/ml`` on SageMaker); the training toolkit honours the same variable."""
TRAIN_CHANNEL: Final = "train"
VALIDATION_CHANNEL: Final = "validation"
TEST_CHANNEL: Final = "test"
FEATURE_SCHEMA_FILE: Final = "feature-schema.json"
METRICS_FILE: Final = "metrics.json"
MODEL_ARCHIVE: Final = "model.tar.gz"
OUTPUT_ARCHIVE: Final = "output.tar.gz"
FAILURE_FILE: Final = "failure"
XGBOOST_FRAMEWORK_VERSION: Final = "3.2-0"
"""SageMaker XGBoost framework container version the AWS backend pins (never ``latest``): the newest that
sagemaker-core's image-URI table (``image_uri_config/xgboost.json``) lists."""
# The 3.2-0 image is built by aws/deep-learning-containers (aws/sagemaker-xgboost-container's README moves XGBoost
# upgrades there; its serving code still comes from that repository): docker/xgboost/Dockerfile
# (``ARG PYTHON_VERSION=3.12``, an Amazon Linux 2023 venv of python3.12) installs docker/xgboost/pyproject.toml's lock
# (``xgboost==3.2.0``, ``sagemaker-inference==1.5.5``, ``requires-python = ">=3.12,<3.13"``); its image config
# .github/config/image/xgboost/sagemaker.yml says ``python_version: "3.12"``, ``framework_version: "3.2.0"``.
XGBOOST_CONTAINER_PYTHON: Final = "3.12"
"""The Python of the pinned framework image: the code shipped into it (``model/``, ``features.py``, the monitor's
analyzer) must run on it (``scripts/python_compat.py``, vermin, in ``make lint``)."""
XGBOOST_CONTAINER_XGBOOST: Final = "3.2.0"
"""The XGBoost of the pinned framework image; pyproject.toml pins ``xgboost-cpu`` to exactly this version, so a local
training is the container's training (tests/test_python_compat.py checks the lock and the installed package)."""

# --- Data-source contract (the seed's data-source.zip) ---------------------------------------------
DATA_SOURCE_ARCHIVE: Final = "data-source.zip"
INPUT_DATA_FILE: Final = "inputData.json"
HYPERPARAMETERS_FILE: Final = "hyperparameters.json"

# --- Pipeline ---------------------------------------------------------------------------------------
STAGE_DATA: Final = "Data"
STAGE_TRAIN: Final = "Train"
STAGE_BASELINE: Final = "Baseline"
STAGE_REGISTER: Final = "Register"
STAGE_DEPLOY_DEV: Final = "DeployDev"
STAGE_APPROVAL: Final = "ApproveDeployment"
APPROVAL_TIMEOUT_SECONDS: Final = 7 * 24 * 3600
"""CodePipeline's manual approval expires after seven days."""
DEV_STAGE: Final = "dev"
PRD_STAGE: Final = "prd"
API_ROUTE_SUFFIX: Final = "api"
"""REST APIs are ``/<model>/api`` (production, blue/green behind it) and ``/<model>/dev/api`` (the dev stage):
each model its own, as the seed gave each stack its own API Gateway."""
STAGE_DEPLOY_PRD: Final = "DeployPrd"
SYNTHETIC_HEADER: Final = "x-synthetic-canary"
"""Marks the deployment's own canary requests; their inference ids start with ``synthetic-``."""

# --- Model registry (SageMaker Model Registry semantics) --------------------------------------------
APPROVAL_PENDING: Final = "PendingManualApproval"
APPROVAL_APPROVED: Final = "Approved"
APPROVAL_REJECTED: Final = "Rejected"

# --- SageMaker serving contract (containers, InvokeEndpoint) ------------------------------------------
SM_PROGRAM_ENV: Final = "SAGEMAKER_PROGRAM"
SM_SUBMIT_DIRECTORY_ENV: Final = "SAGEMAKER_SUBMIT_DIRECTORY"
SM_BIND_PORT_ENV: Final = "SAGEMAKER_BIND_TO_PORT"
SM_DEFAULT_ACCEPT_ENV: Final = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
"""The serving toolkits' answer type for a request without ``Accept`` or with ``*/*`` (unset: application/json)."""
DEFAULT_INVOCATIONS_ACCEPT: Final = "text/csv"
"""What the model's environment sets it to: such a request gets one probability per line (the seed's clients)."""
TOOLKIT_DEFAULT_ACCEPT: Final = "application/json"
"""sagemaker-inference's and sagemaker-containers' default when ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` is unset."""
LISTEN_FD_ENV: Final = "SAFEDEPLOY_LISTEN_FD"
"""File descriptor of the listening socket a local serving instance inherits from the runtime."""
INFERENCE_PROGRAM: Final = "inference.py"
INVOKE_MAX_PAYLOAD_BYTES: Final = 6 * 1024 * 1024
"""InvokeEndpoint's request and response payload limit (6 MB)."""
DEFAULT_VARIANT: Final = "AllTraffic"
SAGEMAKER_JSON_TARGET_PREFIX: Final = "SageMaker."
"""``X-Amz-Target`` prefix of the SageMaker control-plane API (JSON 1.1 protocol)."""
METRICS_NAMESPACE: Final = "AWS/SageMaker"
INVOCATION_METRICS: Final = (
    "Invocations",
    "Invocation4XXErrors",
    "Invocation5XXErrors",
    "ModelLatency",
    "OverheadLatency",
)
"""The per-variant endpoint metrics SageMaker publishes (latencies in microseconds)."""
CAPTURE_EVENT_VERSION: Final = "0"
API_KEY_HEADER: Final = "x-api-key"
RUNTIME_METRICS_NAMESPACE: Final = "SafeDeploy/LocalRuntime"
"""The local runtime's own metrics (``CaptureRecordsDropped``), published to the metric log."""
LEASE_HEADER: Final = "X-Safedeploy-Lease"
"""The header a production route change carries: the deployment whose lease fences it (local runtime)."""
HEADER_ENDPOINT: Final = "X-SageMaker-Endpoint"
HEADER_VARIANT: Final = "x-Amzn-Invoked-Production-Variant"
HEADER_MODEL_VERSION: Final = "X-Model-Version"
MAX_LOCAL_INSTANCES: Final = 8
"""Most serving processes one local variant may start (``InitialInstanceCount``)."""
REPORT_FILE: Final = "build/report/report.html"
"""Where ``safedeploy report`` (``make report``) writes the HTML report by default (from the working directory)."""

# --- AWS backend (model/run.py, the per-model CloudFormation stacks) -----------------------------------
STAGE_BUILD: Final = "Build"
"""The CodePipeline stage whose CodeBuild action runs ``model/run.py`` (its execution id names the stacks' jobs)."""
LAMBDA_ALIAS: Final = "live"
"""The API function's alias: API Gateway invokes it, CodeDeploy shifts it between versions."""
LAMBDA_RUNTIME: Final = "python3.11"
"""The Lambda functions' runtime (the stacks' ``Runtime``): ``lambdas/`` and the ``safedeploy`` modules its bundle
carries must run on it (``scripts/python_compat.py``)."""

# --- AWS destroy --------------------------------------------------------------------------------------------------
STACK_DELETE_TIMEOUT_S: Final = 1800.0
"""How long ``destroy --target aws`` waits for each per-model stack's deletion by default."""

# --- The alarm catalog (spec.alarms): defaults of every alarm, rendered locally, to CloudFormation and to CDKTF ---
ALARM_PERIOD_SECONDS: Final = 60
"""Deployment alarms' period: CloudWatch's endpoint metrics are published per minute."""
DEPLOYMENT_ALARM_EVALUATION_PERIODS: Final = 2
DEPLOYMENT_ALARM_DATAPOINTS_TO_ALARM: Final = 1
DEPLOYMENT_ALARM_MISSING_DATA: Final = "breaching"
"""A period green served too few requests in is evidence of nothing: it counts against green, so that no traffic
never means "shift to 100 %" (CodeDeploy and SageMaker's guardrails roll back on ALARM only)."""
ALARM_MIN_REQUESTS: Final = 10
"""Fewer requests to green in a period leave that period's datapoint missing."""
MAX_ERROR_RATE: Final = 0.02
LATENCY_RATIO: Final = 2.0
LATENCY_SLACK_MS: Final = 25.0
MAX_LATENCY_MS: Final = 100.0
"""Green's p99 budget when there is no blue (or no blue traffic) to compare with."""
MAX_PREDICTION_SHIFT: Final = 0.2
CANARY_METRICS_NAMESPACE: Final = "SafeDeploy/Canary"
"""The synthetic canary's custom metrics (its role may put metrics to this namespace only)."""
PREDICTION_SHIFT_METRIC: Final = "PredictionShift"
"""|green score - blue score| per held-out row the canary sent to green (dimension ``EndpointName``: green)."""
STANDING_ALARM_PERIOD_SECONDS: Final = 300
STANDING_ALARM_EVALUATION_PERIODS: Final = 3
STANDING_ALARM_DATAPOINTS_TO_ALARM: Final = 2
MAX_API_LATENCY_MS: Final = 1000.0
"""The production API's p99 (gateway to endpoint and back) that alarms (a standing alarm)."""
RETRAINING_TRIGGER_ALARMS: Final = ("drift", "model-quality")
"""The alarms whose ALARM state retrains, by purpose (``naming.alarm_name``: ``<pipeline>-drift``, ...)."""
RETRAINING_ALARM_PERIODS: Final = 2
"""Consecutive evaluation periods an alarm must have been in ALARM before a retraining starts (debounce)."""
RETRAINING_COOLDOWN_SECONDS: Final = 24 * 3600
"""Model time on the monitoring clock after a retraining ends before another may start."""

# --- The approval gate ---------------------------------------------------------------------------------------------
APPROVAL_COMMENT_MAX_LENGTH: Final = 512
"""``PutApprovalResult``'s limit on the approval summary (the comment): the console and the AWS target keep to it."""

# --- The runtime's live console (/console) -------------------------------------------------------------------------
CONSOLE_TOKEN_TTL_S: Final = 300.0
"""A console link's one-time token is good for one first visit within 5 minutes (`make console` prints a new one)."""
CONSOLE_SESSION_TTL_S: Final = 8 * 3600.0
"""A console session (the HttpOnly cookie the token was exchanged for) lasts 8 hours from the first visit."""
CONSOLE_POLL_INTERVAL_MS: Final = 1500
"""How often the console page asks the runtime for the pipeline's state."""

# --- The standing synthetic probe (monitoring.synthetic_canary): CloudWatch Synthetics' own metric names ---------
SYNTHETICS_NAMESPACE: Final = "CloudWatchSynthetics"
"""Where CloudWatch Synthetics canaries publish; the standing probe publishes there too, locally and on AWS."""
SYNTHETICS_SUCCESS_METRIC: Final = "SuccessPercent"
"""Per run: 100 when every known row passed (status 200, score within tolerance, within the latency budget), else 0."""
SYNTHETICS_DURATION_METRIC: Final = "Duration"
"""Per run: how long the run took, in milliseconds."""
SYNTHETICS_CANARY_DIMENSION: Final = "CanaryName"
SYNTHETICS_NAME_MAX_LENGTH: Final = 21
"""CloudWatch Synthetics: a canary name is at most 21 characters of ``[0-9a-z_-]``."""
PROBE_SCHEDULE: Final = "rate(5 minutes)"
PROBE_ROWS: Final = 10
PROBE_TOLERANCE: Final = 1e-6
PROBE_TIMEOUT_SECONDS: Final = 60
PROBE_LATENCY_BUDGET_MS: Final = 1000.0
PRE_TRAFFIC_LATENCY_BUDGET_MS: Final = 500.0
"""The BeforeAllowTraffic hook's budget for green's answer to the known rows (one batch), locally and on AWS."""
PROBE_SUCCESS_THRESHOLD: Final = 90.0
PROBE_ALARM_PERIOD_SECONDS: Final = 300
PROBE_ALARM_EVALUATION_PERIODS: Final = 2
PROBE_ALARM_DATAPOINTS_TO_ALARM: Final = 2
