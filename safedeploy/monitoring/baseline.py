"""The Baseline stage's work: suggest-baseline jobs for a trained model, and handing the baseline to its version.

Two Processing jobs of the analyzer: ``SUGGEST_BASELINE`` on the Data stage's baseline dataset (the training
features with a header), and ``SUGGEST_OUTPUT_BASELINE`` on the validation set with the archive the Train stage
produced (the job scores it with XGBoost), so production's score distribution can be watched too. The AWS
training state machine runs the same two requests. They write under
the execution's own prefix; Register copies the files under the version's prefix
(``naming.version_baseline_prefix``) and records their URIs and sha256 in the registry, so every version keeps
its own baseline and production is always monitored against the baseline of the version it serves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from safedeploy import naming
from safedeploy.errors import ArtifactError
from safedeploy.ids import random_uuid
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.monitor import ProcessingJobs
from safedeploy.monitoring.records import BaselineFiles, MonitoringError
from safedeploy.registry import MetricsSource, VersionAttachments
from safedeploy.sagemaker_requests.processing import (
    baseline_job_request,
    model_quality_baseline_job_request,
    output_baseline_job_request,
)
from safedeploy.shipping import upload_analyzer
from safedeploy.spec import PipelineSpec
from safedeploy.store import ArtifactStore, S3Uri

FILES = ("statistics", "constraints", "output_statistics", "output_constraints")
QUALITY_FILES = ("quality_statistics", "quality_constraints")
"""The model-quality baseline (``monitoring.model_quality.enabled``): the model's metrics on the validation set."""


@dataclass(frozen=True)
class BaselineJobs:
    """What the Baseline stage produced: file URIs with their sha256, and the jobs that wrote them."""

    files: dict[str, str]
    sha256: dict[str, str]
    jobs: list[str]
    rows: dict[str, int]


def _run(processing: ProcessingJobs, request: object, what: str) -> str:
    job = processing.run(request)
    if job.processing_job_status != "Completed":
        raise MonitoringError(
            f"the {what} baseline job {job.processing_job_name} {job.processing_job_status}: "
            f"{job.failure_reason} (log: {job.log_file})"
        )
    return job.processing_job_name


def run_baseline_jobs(
    spec: PipelineSpec,
    store: ArtifactStore,
    processing: ProcessingJobs,
    image_uri: str,
    *,
    execution_id: str,
    input_data: Mapping[str, str],
    model_data_url: str,
) -> BaselineJobs:
    """Baseline the training features and the validation scores; raise :class:`MonitoringError` if a job fails."""
    prefix = naming.execution_baseline_prefix(spec, execution_id)
    code = upload_analyzer(store, spec)
    now = datetime.now(UTC)

    def name() -> str:
        return naming.monitoring_job_name(spec, "baseline", now, random_uuid().replace("-", ""))

    data_job = _run(
        processing,
        baseline_job_request(
            spec,
            job_name=name(),
            dataset=input_data["BaselineUri"],
            output=prefix.join("data"),
            code=code,
            image_uri=image_uri,
        ),
        "training-feature",
    )
    output_job = _run(
        processing,
        output_baseline_job_request(
            spec,
            job_name=name(),
            dataset=input_data["ValidationUri"],
            model_archive=model_data_url,
            output=prefix.join("output"),
            code=code,
            image_uri=image_uri,
        ),
        "model-output",
    )
    jobs = [data_job, output_job]
    files = {
        "statistics": prefix.join("data", F.STATISTICS_FILE),
        "constraints": prefix.join("data", F.CONSTRAINTS_FILE),
        "output_statistics": prefix.join("output", F.STATISTICS_FILE),
        "output_constraints": prefix.join("output", F.CONSTRAINTS_FILE),
    }
    folders: list[tuple[str, tuple[str, ...]]] = [
        ("data", ("statistics", "constraints")),
        ("output", ("output_statistics", "output_constraints")),
    ]
    if spec.monitoring.model_quality.enabled:
        jobs.append(
            _run(
                processing,
                model_quality_baseline_job_request(
                    spec,
                    job_name=name(),
                    dataset=input_data["ValidationUri"],
                    model_archive=model_data_url,
                    output=prefix.join("quality"),
                    code=code,
                    image_uri=image_uri,
                    evaluation_time=now,
                ),
                "model-quality",
            )
        )
        files["quality_statistics"] = prefix.join("quality", F.STATISTICS_FILE)
        files["quality_constraints"] = prefix.join("quality", F.CONSTRAINTS_FILE)
        folders.append(("quality", QUALITY_FILES))
    digests = {}
    for key, uri in files.items():
        head = store.head(uri)
        if head is None:
            raise MonitoringError(f"the baseline job did not write {uri}")
        digests[key] = head.sha256
    for folder, keys in folders:
        reported = _reported_digests(store, prefix.join(folder, F.DIGESTS_FILE))
        for key in keys:
            filename = files[key].key.rsplit("/", 1)[-1]
            if reported.get(filename) != f"sha256:{digests[key]}":
                raise MonitoringError(f"{files[key]}'s sha256 is not the one its job reported in {F.DIGESTS_FILE}")
    statistics = json.loads(store.get_bytes(files["output_statistics"]))
    return BaselineJobs(
        files={k: str(v) for k, v in files.items()},
        sha256=digests,
        jobs=jobs,
        rows={"validation_scores": int(statistics["dataset"]["item_count"])},
    )


def _reported_digests(store: ArtifactStore, uri: S3Uri) -> dict[str, str]:
    try:
        reported = json.loads(store.get_bytes(uri))
    except (ArtifactError, ValueError) as exc:
        raise MonitoringError(f"the baseline job's {uri} cannot be read: {exc}") from None
    if not isinstance(reported, dict):
        raise MonitoringError(f"the baseline job's {uri} is not a JSON object")
    return reported


def attach_baseline(
    spec: PipelineSpec, store: ArtifactStore, files: Mapping[str, str], sha256: Mapping[str, str]
) -> VersionAttachments:
    """Register's attachment: copy the execution's baseline under the version's prefix, verified, and describe it."""

    def attach(version: int) -> tuple[dict[str, dict[str, MetricsSource]], dict[str, str]]:
        target = naming.version_baseline_prefix(spec, version)
        copied: dict[str, MetricsSource] = {}
        for key in (*FILES, *(k for k in QUALITY_FILES if k in files)):
            source = S3Uri.parse(files[key])
            data = store.get_bytes(source)  # verified against the store's recorded checksum
            folder = key.split("_", 1)[0] if key.startswith(("output_", "quality_")) else "data"
            ref = store.put_bytes(target.join(folder, source.key.rsplit("/", 1)[-1]), data, "application/json")
            if ref.sha256 != sha256[key]:
                raise ArtifactError(f"{source} changed since the Baseline stage wrote it")
            copied[key] = MetricsSource(S3Uri=ref.uri, ContentDigest=f"sha256:{ref.sha256}")
        baselines = {"ModelDataQuality": {"Statistics": copied["statistics"], "Constraints": copied["constraints"]}}
        if "quality_statistics" in copied:
            baselines["ModelQuality"] = {
                "Statistics": copied["quality_statistics"],
                "Constraints": copied["quality_constraints"],
            }
        metadata = {
            "OutputStatisticsUri": copied["output_statistics"].S3Uri,
            "OutputStatisticsSha256": copied["output_statistics"].ContentDigest,
            "OutputConstraintsUri": copied["output_constraints"].S3Uri,
            "OutputConstraintsSha256": copied["output_constraints"].ContentDigest,
        }
        return baselines, metadata

    return attach


def version_baseline(package: object) -> BaselineFiles | None:
    """The baseline a registered version carries (None for versions registered before monitoring existed)."""
    baselines = getattr(package, "DriftCheckBaselines", {}).get("ModelDataQuality")
    metadata: Mapping[str, str] = getattr(package, "CustomerMetadataProperties", {})
    if not baselines or "FeatureSchemaUri" not in metadata:
        return None

    def digest(source: MetricsSource | str | None) -> str | None:
        text = source.ContentDigest if isinstance(source, MetricsSource) else source
        return text.split(":", 1)[1] if text else None

    sha = {
        "statistics": digest(baselines["Statistics"]),
        "constraints": digest(baselines["Constraints"]),
        "output_statistics": digest(metadata.get("OutputStatisticsSha256")),
        "output_constraints": digest(metadata.get("OutputConstraintsSha256")),
    }
    return BaselineFiles(
        statistics=baselines["Statistics"].S3Uri,
        constraints=baselines["Constraints"].S3Uri,
        feature_schema=metadata["FeatureSchemaUri"],
        output_statistics=metadata.get("OutputStatisticsUri"),
        output_constraints=metadata.get("OutputConstraintsUri"),
        sha256={k: v for k, v in sha.items() if v},
    )


def quality_baseline(package: object) -> BaselineFiles | None:
    """The version's model-quality baseline (``DriftCheckBaselines.ModelQuality``), None if it has none.

    ``statistics``/``constraints`` are the model-quality files; ``feature_schema`` is the version's (the
    schedule's record needs one).
    """
    baselines = getattr(package, "DriftCheckBaselines", {}).get("ModelQuality")
    metadata: Mapping[str, str] = getattr(package, "CustomerMetadataProperties", {})
    if not baselines:
        return None
    statistics, constraints = baselines["Statistics"], baselines["Constraints"]
    return BaselineFiles(
        statistics=statistics.S3Uri,
        constraints=constraints.S3Uri,
        feature_schema=metadata.get("FeatureSchemaUri", ""),
        sha256={
            "statistics": statistics.ContentDigest.split(":", 1)[1],
            "constraints": constraints.ContentDigest.split(":", 1)[1],
        },
    )
