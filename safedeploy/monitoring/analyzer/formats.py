"""Model Monitor's names: files, environment variables, check types, metric names, defaults.

One module so the analyzer, the local scheduler, the CloudFormation rendering and the tests agree on every
name (sources: the SageMaker developer guide's bring-your-own-container pages on inputs, outputs, statistics,
constraints, violations and CloudWatch metrics).
"""

from __future__ import annotations

from typing import Final

# --- Files ------------------------------------------------------------------------------------------------
STATISTICS_FILE: Final = "statistics.json"
CONSTRAINTS_FILE: Final = "constraints.json"
VIOLATIONS_FILE: Final = "constraint_violations.json"
OUTPUT_STATISTICS_FILE: Final = "output_statistics.json"
"""Beyond Model Monitor: statistics of the model's scores in the window (same schema as statistics.json)."""
OUTPUT_CONSTRAINTS_FILE: Final = "output_constraints.json"
"""Beyond Model Monitor: the scores' baseline constraints (the validation set's scores)."""
DIGESTS_FILE: Final = "digests.json"
"""Beyond Model Monitor: a baseline job's ``{"statistics.json": "sha256:<hex>", "constraints.json": ...}`` (the
registry's ``ContentDigest`` of the files it wrote)."""
MODEL_FILE: Final = "xgboost-model.json"
"""The model in the training job's ``model.tar.gz`` (``SUGGEST_OUTPUT_BASELINE`` scores with it)."""
EXECUTION_SUMMARY_FILE: Final = "execution_summary.json"
"""Beyond Model Monitor: counts (records, excluded, malformed by kind), verdicts per feature, timings."""
MESSAGE_FILE: Final = "message"
CLOUDWATCH_METRICS_FILE: Final = "cloudwatch_metrics.jsonl"

# --- Container layout (SageMaker Processing) ---------------------------------------------------------------
OPT_ML: Final = "/opt/ml"
PROCESSING_ROOT: Final = "/opt/ml/processing"
ENV_BASE_DIR: Final = "SAGEMAKER_BASE_DIR"
"""Root standing in for ``/opt/ml`` locally (the same variable the training jobs honour)."""

# --- BYOC contract inputs (environment) -----------------------------------------------------------------------
ENV_DATASET_FORMAT: Final = "dataset_format"
ENV_DATASET_SOURCE: Final = "dataset_source"
ENV_OUTPUT_PATH: Final = "output_path"
ENV_START_TIME: Final = "start_time"
ENV_END_TIME: Final = "end_time"
ENV_BASELINE_CONSTRAINTS: Final = "baseline_constraints"
ENV_BASELINE_STATISTICS: Final = "baseline_statistics"
ENV_PUBLISH_METRICS: Final = "publish_cloudwatch_metrics"
ENV_ENDPOINT_NAME: Final = "sagemaker_endpoint_name"
ENV_SCHEDULE_NAME: Final = "sagemaker_monitoring_schedule_name"
# Beyond the contract (this project's analyzer only):
ENV_FEATURE_SCHEMA: Final = "feature_schema"
"""Local path of the model's ``feature-schema.json``: decodes raw JSON records to the model's columns."""
ENV_OUTPUT_BASELINE_STATISTICS: Final = "baseline_output_statistics"
ENV_OUTPUT_BASELINE_CONSTRAINTS: Final = "baseline_output_constraints"
ENV_EXCLUDE_INFERENCE_ID_PREFIXES: Final = "exclude_inference_id_prefixes"
"""Comma-separated inference-id prefixes kept out of the window (default: ``synthetic-``)."""
ENV_SIGNIFICANCE: Final = "drift_significance"
"""Family-wise false-alarm rate of the power-aware drift verdicts (default 0.05)."""
ENV_COMPARISON_THRESHOLD: Final = "comparison_threshold"
"""suggest-baseline: the ``distribution_constraints.comparison_threshold`` to write (default 0.1)."""
ENV_COMPARISON_METHOD: Final = "comparison_method"
"""suggest-baseline: the ``distribution_constraints.comparison_method`` to write (default Robust)."""
ENV_METRICS_PUBLISHER: Final = "metrics_publisher"
"""``cloudwatch``: the job publishes its metric lines itself with PutMetricData (a Processing job on AWS has no
Model Monitor platform to do it); anything else: the lines are only written (the local runner reads them)."""
ENV_WORKERS: Final = "decode_workers"
"""Processes that decode the capture (default: one per core, at most 8)."""
ENV_ANALYSIS_TYPE: Final = "analysis_type"
"""``MODEL_MONITOR`` (a monitoring window), ``SUGGEST_BASELINE`` (a dataset to baseline) or
``SUGGEST_OUTPUT_BASELINE`` (the model's scores on a dataset to baseline)."""
ENV_MODEL_ARCHIVE: Final = "model_archive"
"""``SUGGEST_OUTPUT_BASELINE``: the training job's ``model.tar.gz`` (or the folder holding it)."""

DATASET_FORMAT_CAPTURE: Final = '{"sagemakerCaptureJson": {"captureIndexNames": ["endpointInput", "endpointOutput"]}}'
DATASET_FORMAT_CSV_HEADER: Final = '{"csv": {"header": true, "output_columns_position": "START"}}'

# --- Statistics -------------------------------------------------------------------------------------------------
INTEGRAL: Final = "Integral"
FRACTIONAL: Final = "Fractional"
STRING: Final = "String"
UNKNOWN: Final = "Unknown"
KLL_BUCKETS: Final = 10
KLL_SKETCH_SIZE: Final = 2048
KLL_SHRINKING_FACTOR: Final = 0.64
CATEGORICAL_DOMAIN_MAX: Final = 20
"""Largest number of distinct values a String column may have for its values to be suggested as a domain."""

# --- Constraints / monitoring_config defaults (as the analyzer suggests them) ------------------------------------
DEFAULT_DATATYPE_CHECK_THRESHOLD: Final = 1.0
DEFAULT_DOMAIN_CONTENT_THRESHOLD: Final = 1.0
DEFAULT_COMPARISON_THRESHOLD: Final = 0.1
DEFAULT_COMPARISON_METHOD: Final = "Robust"
DEFAULT_CATEGORICAL_COMPARISON_THRESHOLD: Final = 0.1
DEFAULT_CATEGORICAL_DRIFT_METHOD: Final = "LInfinity"
COMPARISON_METHODS: Final = ("Simple", "Robust")
CATEGORICAL_DRIFT_METHODS: Final = ("LInfinity", "ChiSquared")

# --- Violations ----------------------------------------------------------------------------------------------------
DATA_TYPE_CHECK: Final = "data_type_check"
COMPLETENESS_CHECK: Final = "completeness_check"
BASELINE_DRIFT_CHECK: Final = "baseline_drift_check"
MISSING_COLUMN_CHECK: Final = "missing_column_check"
EXTRA_COLUMN_CHECK: Final = "extra_column_check"
CATEGORICAL_VALUES_CHECK: Final = "categorical_values_check"
CHECK_TYPES: Final = (
    DATA_TYPE_CHECK,
    COMPLETENESS_CHECK,
    BASELINE_DRIFT_CHECK,
    MISSING_COLUMN_CHECK,
    EXTRA_COLUMN_CHECK,
    CATEGORICAL_VALUES_CHECK,
)

# --- CloudWatch metrics ------------------------------------------------------------------------------------------
METRIC_NAMESPACE_ENDPOINT: Final = "/aws/sagemaker/Endpoints/data-metric"
METRIC_NAMESPACE_BATCH: Final = "/aws/sagemaker/ModelMonitoring/data-metric"
DIMENSION_ENDPOINT: Final = "Endpoint"
DIMENSION_SCHEDULE: Final = "MonitoringSchedule"
DRIFT_METRIC_PREFIX: Final = "feature_baseline_drift_"
NON_NULL_METRIC_PREFIX: Final = "feature_non_null_"
DATA_METRIC_PREFIX: Final = "feature_data_"
OUTPUT_FEATURE: Final = "score"
"""Name the model's output column carries in the output statistics, violations and metrics."""

# --- Capture ---------------------------------------------------------------------------------------------------------
SYNTHETIC_INFERENCE_PREFIX: Final = "synthetic-"
KNOWN_ROWS_INFERENCE_PREFIX: Final = "known-rows-"
"""The pre-traffic hook's known-row checks (kept out of windows like the synthetic canary)."""

# --- Execution outcome (ListMonitoringExecutions / DescribeProcessingJob ExitMessage) -----------------------------
COMPLETED: Final = "Completed"
COMPLETED_WITH_VIOLATIONS: Final = "CompletedWithViolations"
FAILED: Final = "Failed"
INSUFFICIENT_DATA: Final = "InsufficientData"

# --- Model quality (analysis_type MODEL_QUALITY / SUGGEST_MODEL_QUALITY_BASELINE) ------------------------------------
ANALYSIS_MODEL_QUALITY: Final = "MODEL_QUALITY"
ANALYSIS_SUGGEST_MODEL_QUALITY_BASELINE: Final = "SUGGEST_MODEL_QUALITY_BASELINE"
ENV_GROUND_TRUTH_SOURCE: Final = "ground_truth_source"
"""Folder of ground-truth JSONL (``yyyy/mm/dd/hh/*.jsonl`` by the hour collected)."""
ENV_PROBLEM_TYPE: Final = "problem_type"
"""``BinaryClassification`` (the only problem type this analyzer evaluates)."""
ENV_PROBABILITY_THRESHOLD: Final = "probability_threshold_attribute"
"""A score at or above it predicts 1 (default 0.5), as Model Monitor's attribute of the same name."""
ENV_BOOTSTRAP_SEED: Final = "bootstrap_seed"
"""Seed of the standard deviations' 5 subsamples (the same input and seed give byte-identical statistics)."""
ENV_MIN_LABELLED_RECORDS: Final = "min_labelled_records"
"""Fewer labelled records in the window end ``InsufficientData`` (no metric published)."""
ENV_AUC_THRESHOLD: Final = "auc_threshold"
"""Replaces the AUC threshold the baseline's constraints suggest (the spec's override)."""
ENV_MERGED_OUTPUT_PATH: Final = "merged_output_path"
"""Where the merged records (capture record + ``groundTruthData``) are written, as ``<merged_file_name>.jsonl``."""
ENV_MERGED_FILE_NAME: Final = "merged_file_name"
PROBLEM_TYPE_BINARY: Final = "BinaryClassification"
MODEL_METRIC_NAMESPACE_ENDPOINT: Final = "aws/sagemaker/Endpoints/model-metrics"
"""Model quality's CloudWatch namespace for real-time endpoints (the developer guide's spelling)."""
