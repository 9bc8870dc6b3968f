"""The pipeline's stages: Data -> Train (+ gate) -> Register -> DeployDev -> ApproveDeployment -> DeployPrd.

Each stage is a small class with a ``run(context)`` that calls the backend's interfaces; none of them knows
whether the backend is local or AWS.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.alarm_catalog import local_alarm_settings
from safedeploy.approval import ApprovalPending, ApprovalRejectedError, Approver, Deferred, ManualApproval
from safedeploy.backends import Backend
from safedeploy.blue_green import BlueGreenDeployment, RolledBackError
from safedeploy.clock import ScaledClock
from safedeploy.data.prepare import prepare_dataset, read_data_source
from safedeploy.deployment import ModelSource, deploy
from safedeploy.errors import ArtifactError, ConfigError, SafeDeployError, TrainingJobError
from safedeploy.ledger import ServedModel
from safedeploy.monitoring.probe import ensure_schedule as ensure_probe_schedule
from safedeploy.monitoring.probe import write_known_rows
from safedeploy.progress import PlainProgress, ProgressReporter
from safedeploy.registry import ApprovalStatus, ModelPackage, ModelRegistration, ModelRegistry
from safedeploy.revision import code_revision
from safedeploy.runner import PipelineExecution, Stage, StageContext, StageResult
from safedeploy.sagemaker_requests.training import source_archive_uri, training_job_request
from safedeploy.shipping import PROJECT_ROOT, source_archive
from safedeploy.smoke import held_out_rows, offline_predictions, smoke_test
from safedeploy.spec import PipelineSpec
from safedeploy.stage_outputs import (
    ApprovalOutputs,
    BaselineOutputs,
    DataOutputs,
    DeployDevOutputs,
    DeployPrdOutputs,
    InputData,
    RegisterOutputs,
    SmokeTestSummary,
    TrainOutputs,
)
from safedeploy.store import S3Uri
from safedeploy.traffic import Schedule
from safedeploy.training.gate import candidate_metrics, check_gate, compare_with_production, production_measured
from safedeploy.training.inputs import TrainingInputs, code_identity
from safedeploy.training.production import Production, find_production, measure_on_test, verified_archive

LOG = logging.getLogger(__name__)
FIRST_DEPLOYMENT_STRATEGY = "AllAtOnce"
"""What a first deployment does whatever the configured strategy: with no blue, green takes all traffic at once."""


@dataclass(frozen=True)
class DataStage:
    """Validate the raw table, encode and split it, write datasets and the data-source contract."""

    spec: PipelineSpec
    backend: Backend
    name: str = C.STAGE_DATA

    def run(self, context: StageContext) -> StageResult:
        """Prepare the dataset from ``spec.data.source``."""
        source = self.spec.data.source
        if source is None:
            raise ConfigError(
                "no input data: pass DATA=<path> (a churn table in the seed's format, e.g. ../shared/data/churn.txt), "
                "or run `make deploy`, which fetches the demo dataset"
            )
        prepared = prepare_dataset(self.spec, self.backend.store, source)
        rows = prepared.rows
        return StageResult(
            summary=(
                f"{sum(rows.values())} rows, {prepared.feature_count} features -> "
                f"train {rows['train']} / validation {rows['validation']} / test {rows['test']}"
            ),
            outputs=DataOutputs(
                dataset_id=prepared.dataset_id,
                data_sha256=prepared.data_sha256,
                rows=rows,
                positives=prepared.positives,
                input_data=InputData.model_validate(prepared.input_data),
            ),
            artifacts=prepared.artifacts,
        )


_ROUND = re.compile(r"^\[(?P<round>\d+)\]\s+(?P<metrics>.*)$")


def training_rounds(progress: ProgressReporter, job_name: str, rounds: object) -> Callable[[str], None]:
    """Follow XGBoost's evaluation lines (``[25]  validation-auc:0.96...``) in a job's log as progress steps."""

    def on_line(line: str) -> None:
        match = _ROUND.match(line)
        if match:
            metrics = "  ".join(match["metrics"].split())
            progress.step(f"training job {job_name}: round {match['round']} of up to {rounds}: {metrics}")

    return on_line


@dataclass(frozen=True)
class TrainStage:
    """Run the training job from the data-source contract, then hold the model to the quality gate.

    The gate is absolute (``spec.gate.conditions``) and comparative: the candidate's ``test:auc`` may not be below
    production's on the same held-out rows by more than ``spec.gate.production_tolerance``. Identical inputs (data,
    code, hyperparameters, image) to a registered, non-rejected version train nothing: that version is reused.
    """

    spec: PipelineSpec
    backend: Backend
    name: str = C.STAGE_TRAIN
    project_root: Path = PROJECT_ROOT

    def run(self, context: StageContext) -> StageResult:
        """Train (or reuse), then raise :class:`GateFailedError` if the gate fails (nothing gets registered)."""
        contract = context.artifacts(C.STAGE_DATA)["data_source"]
        if not self.backend.store.verify(contract):
            raise ArtifactError(f"{contract.uri} changed since the Data stage wrote it; run the pipeline again")
        input_data, hyperparameters = read_data_source(self.backend.store, S3Uri.parse(contract.uri))

        source_dir = self.spec.training.source_dir
        if not (source_dir / self.spec.training.entry_point).is_file():
            raise ConfigError(f"training entry point {source_dir / self.spec.training.entry_point} not found")
        archive = source_archive(source_dir)  # model/ + features.py (safedeploy/shipping.py)
        inputs = TrainingInputs(
            data_sha256=input_data["DataSha256"],
            code_revision=code_identity(code_revision(self.project_root), hashlib.sha256(archive).hexdigest()),
            hyperparameters=dict(hyperparameters),
            image=self.backend.training_image,
        )
        production = find_production(self.spec, self.backend) if self.spec.gate.compare_with_production else None
        # a fault rehearsal (game day) deploys a version of its own to roll back, never the one production serves
        reusable = self._reusable(inputs) if self.spec.production.fault is None else None
        if reusable is not None:
            return self._reuse(context, reusable, inputs, production, input_data)

        job_name = naming.training_job_name(self.spec, context.execution_id, datetime.now(UTC))
        output_prefix = naming.training_output_prefix(self.spec)
        source = self.backend.store.put_bytes(source_archive_uri(output_prefix, job_name), archive, "application/gzip")
        if production is not None:  # the job reads it: make sure it is the archive the registry recorded
            verified_archive(self.backend.store, production.model_data_url, production.model_data_sha256)
        request = training_job_request(
            self.spec,
            job_name=job_name,
            input_data=input_data,
            hyperparameters=hyperparameters,
            output_prefix=output_prefix,
            image_uri=self.backend.training_image,
            production_model_uri=production.model_data_url if production else None,
        )
        rounds = hyperparameters.get("num_round", "?")
        context.progress.step(f"training job {job_name}: up to {rounds} rounds, early stopping on validation")
        job = self.backend.training.run(request, on_log_line=training_rounds(context.progress, job_name, rounds))
        context.progress.step("quality gate")
        if job.training_job_status != "Completed" or job.model_artifacts is None:
            raise TrainingJobError(
                f"training job {job_name} {job.training_job_status}: {job.failure_reason} (log: {job.log_file})"
            )
        metrics = candidate_metrics(job.final_metrics)
        gate = self._gate(metrics, production, production_measured(job.final_metrics), context)
        model = self.backend.store.head(S3Uri.parse(job.model_artifacts))
        if model is None:
            raise ArtifactError(f"training job {job_name} reported {job.model_artifacts}, which does not exist")
        return StageResult(
            summary=f"job {job_name}; {gate}",
            outputs=TrainOutputs(
                training_job_name=job_name,
                model_data_url=job.model_artifacts,
                metrics=metrics,
                hyperparameters=dict(hyperparameters),
                feature_schema_uri=input_data["FeatureSchemaUri"],
                log_file=job.log_file,
                inputs_sha256=inputs.digest,
                production_version=production.version if production else None,
                production_metrics=production_measured(job.final_metrics),
            ),
            artifacts={"model": model, "source": source},
        )

    def _gate(
        self,
        metrics: dict[str, float],
        production: Production | None,
        measured: dict[str, float],
        context: StageContext,
    ) -> str:
        """Both gates (raising :class:`GateFailedError` naming the values); what passed, for the summary."""
        checks = check_gate(self.spec.gate, metrics)
        passed = ", ".join(
            f"{c.condition.metric} {c.value:.4f} {c.condition.op} {c.condition.threshold:g}" for c in checks
        )
        if not self.spec.gate.compare_with_production:
            return f"gate passed: {passed} (comparison with production disabled)"
        if production is None:
            return f"gate passed: {passed}; no production yet (first deployment): absolute gate only"
        rows = context.output(DataOutputs).rows.get("test")
        comparison = compare_with_production(self.spec.gate, metrics, measured, production.version, rows)
        return (
            f"gate passed: {passed}; {comparison.describe()} "
            f"(tolerance {self.spec.gate.production_tolerance:g}, same {rows} held-out rows)"
        )

    def _reusable(self, inputs: TrainingInputs) -> ModelPackage | None:
        """The registered, non-rejected version with these inputs whose archive and code still verify; else None."""
        package = self.backend.registry.find_by_inputs(self.spec.model_name, inputs.digest)
        if package is None:
            return None
        store, version = self.backend.store, package.ModelPackageVersion
        job = package.CustomerMetadataProperties.get("TrainingJobName", "")
        source = source_archive_uri(naming.training_output_prefix(self.spec), job)
        try:
            verified_archive(store, package.ModelDataUrl, package.ModelDataETag)
        except (ArtifactError, SafeDeployError, OSError) as exc:
            LOG.warning(
                "v%s has identical inputs but its model archive does not verify (%s): training anew", version, exc
            )
            return None
        if not job or store.head(source) is None:
            LOG.warning("v%s has identical inputs but its source archive %s is gone: training anew", version, source)
            return None
        return package

    def _reuse(
        self,
        context: StageContext,
        package: ModelPackage,
        inputs: TrainingInputs,
        production: Production | None,
        input_data: dict[str, str],
    ) -> StageResult:
        """No job: the registered twin is the candidate; it still faces the gates (production may have changed)."""
        store, version = self.backend.store, package.ModelPackageVersion
        job = package.CustomerMetadataProperties["TrainingJobName"]
        said = f"identical inputs to v{version} ({inputs.describe()}): reusing v{version}, no new version"
        LOG.info("%s", said)
        measured: dict[str, float] = {}
        if production is not None and production.version == version:
            gate = f"v{version} already serves production"
            production = None
        else:
            if production is not None:
                archive = verified_archive(store, production.model_data_url, production.model_data_sha256)
                measured = measure_on_test(store, archive, input_data["TestUri"], input_data["FeatureSchemaUri"])
            gate = self._gate(dict(package.Metrics), production, measured, context)
        model = store.head(S3Uri.parse(package.ModelDataUrl))
        source = store.head(source_archive_uri(naming.training_output_prefix(self.spec), job))
        if model is None or source is None:
            raise ArtifactError(f"v{version}'s model or source archive disappeared while it was being reused")
        return StageResult(
            summary=f"{said}; {gate}",
            outputs=TrainOutputs(
                training_job_name=job,
                model_data_url=package.ModelDataUrl,
                metrics=dict(package.Metrics),
                hyperparameters=dict(package.Hyperparameters),
                feature_schema_uri=package.CustomerMetadataProperties.get(
                    "FeatureSchemaUri", input_data["FeatureSchemaUri"]
                ),
                inputs_sha256=inputs.digest,
                reused_version=version,
                production_version=production.version if production else None,
                production_metrics=measured,
            ),
            artifacts={"model": model, "source": source},
        )


@dataclass(frozen=True)
class BaselineStage:
    """Suggest the version's baselines: its training features, and its scores on the validation set.

    Model Monitor's suggest-baseline job beside Train (the workshop's Train stage runs both), here after it
    because the scores' baseline needs the trained model. Both are Processing jobs on the backend; the files
    stay under this execution's prefix until Register gives them to the new version.
    """

    spec: PipelineSpec
    backend: Backend
    name: str = C.STAGE_BASELINE

    def run(self, context: StageContext) -> StageResult:
        """Run both baseline jobs."""
        from safedeploy.monitoring.baseline import run_baseline_jobs  # numpy-heavy, one stage needs it

        context.progress.step("baseline processing jobs: training features, validation scores")
        jobs = run_baseline_jobs(
            self.spec,
            self.backend.store,
            self.backend.processing,
            self.backend.processing_image,
            execution_id=context.execution_id,
            input_data=context.output(DataOutputs).input_data.channels(),
            model_data_url=context.output(TrainOutputs).model_data_url,
        )
        return StageResult(
            summary=f"jobs {', '.join(jobs.jobs)}: training features and {jobs.rows['validation_scores']} "
            "validation scores baselined",
            outputs=BaselineOutputs(files=jobs.files, sha256=jobs.sha256, jobs=jobs.jobs),
        )


@dataclass(frozen=True)
class RegisterStage:
    """Register the gated model as a new version, pending manual approval."""

    spec: PipelineSpec
    backend: Backend
    project_root: Path
    name: str = C.STAGE_REGISTER

    def run(self, context: StageContext) -> StageResult:
        """Create the model package version (or name the reused one: identical inputs make no new version)."""
        data, train = context.output(DataOutputs), context.output(TrainOutputs)
        if train.reused_version is not None:
            reused = self.backend.registry.describe(self.spec.model_name, train.reused_version)
            return StageResult(
                summary=f"{reused.ModelPackageGroupName} v{reused.ModelPackageVersion} {reused.ModelApprovalStatus} "
                "(reused: identical inputs, no new package)",
                outputs=RegisterOutputs(
                    model_package_arn=reused.ModelPackageArn,
                    model_package_version=reused.ModelPackageVersion,
                    approval_status=reused.ModelApprovalStatus,
                ),
            )
        attach = None
        if self.spec.monitoring.enabled:
            from safedeploy.monitoring.baseline import attach_baseline  # see BaselineStage

            baseline = context.output(BaselineOutputs)
            attach = attach_baseline(self.spec, self.backend.store, baseline.files, baseline.sha256)
        package = self.backend.registry.register(
            self.spec.model_name,
            ModelRegistration(
                model_data_url=train.model_data_url,
                model_data_sha256=context.artifacts(C.STAGE_TRAIN)["model"].sha256,
                framework_version=self.spec.training.framework_version,
                metrics=train.metrics,
                hyperparameters=train.hyperparameters,
                data_sha256=data.data_sha256,
                code_revision=code_revision(self.project_root),
                training_job_name=train.training_job_name,
                pipeline_execution_id=context.execution_id,
                feature_schema_uri=train.feature_schema_uri,
                registered_by=f"pipeline {self.spec.pipeline_name} ({getpass.getuser()})",
                inputs_sha256=train.inputs_sha256,
            ),
            attach,
        )
        return StageResult(
            summary=f"{package.ModelPackageGroupName} v{package.ModelPackageVersion} {package.ModelApprovalStatus}",
            outputs=RegisterOutputs(
                model_package_arn=package.ModelPackageArn,
                model_package_version=package.ModelPackageVersion,
                approval_status=package.ModelApprovalStatus,
            ),
        )


@dataclass(frozen=True)
class DeployDevStage:
    """Serve the registered version on the dev endpoint (data capture on), smoke-test it, point the REST API at it.

    The smoke test sends held-out test rows and requires the endpoint's answers to equal the offline
    predictions of the same archive; a failure fails the stage and the REST API is not moved.
    """

    spec: PipelineSpec
    backend: Backend
    name: str = C.STAGE_DEPLOY_DEV

    def run(self, context: StageContext) -> StageResult:
        """Create or update ``<model>-dev`` and wait until it is InService."""
        train = context.output(TrainOutputs)
        version = context.output(RegisterOutputs).model_package_version
        host = self.backend.serving
        context.progress.step(f"{naming.endpoint_name(self.spec, C.DEV_STAGE)}: creating, waiting for InService")
        deployed = deploy(
            host.sagemaker(),
            self.spec,
            ModelSource(
                model_data_url=train.model_data_url,
                source_dir_uri=context.artifacts(C.STAGE_TRAIN)["source"].uri,
                image=self.backend.serving_image,
                version=version,
                model_data_sha256=registered_digest(
                    self.backend.registry,
                    self.spec.model_name,
                    version,
                    context.artifacts(C.STAGE_TRAIN)["model"].sha256,
                ),
            ),
            stage=C.DEV_STAGE,
            execution_id=context.execution_id,
        )
        store = self.backend.store
        rows = held_out_rows(store, context.output(DataOutputs).input_data.TestUri, self.spec.serving.smoke_test_rows)
        expected = offline_predictions(store.get_bytes(S3Uri.parse(train.model_data_url)), rows)
        context.progress.step(f"smoke test: {len(rows)} held-out rows against the offline predictions")
        smoke = smoke_test(
            host.runtime(), deployed.endpoint_name, rows, expected, tolerance=self.spec.serving.smoke_test_tolerance
        )
        api_url = host.publish_api(
            C.DEV_STAGE,
            deployed.endpoint_name,
            str(version),
            api_key_required=self.spec.serving.api_key_required,
        )
        record_in_registry(
            lambda: self.backend.registry.record_serving(
                self.spec.model_name, version, C.DEV_STAGE, deployed.endpoint_name
            )
        )
        return StageResult(
            summary=f"{deployed.endpoint_name} {deployed.status} v{version}; {smoke.describe()}; REST API {api_url}",
            outputs=DeployDevOutputs(
                endpoint_name=deployed.endpoint_name,
                endpoint_config_name=deployed.endpoint_config_name,
                model_name=deployed.model_name,
                model_package_version=version,
                api_url=api_url,
                smoke_test=SmokeTestSummary(rows=smoke.rows, max_abs_error=smoke.max_abs_error, seconds=smoke.seconds),
            ),
        )


@dataclass(frozen=True)
class ApprovalStage:
    """The manual approval gate: the seed's question, answered by the approver the run was started with.

    An unanswered gate pauses the execution (:class:`ApprovalPending`); the answer, whenever it comes, is
    recorded on the stage and in the registry's approval history, and a "no" fails the execution.
    """

    spec: PipelineSpec
    backend: Backend
    approver: Approver
    name: str = C.STAGE_APPROVAL

    def run(self, context: StageContext) -> StageResult:
        """Ask (or read the recorded answer), update the registry, pass or fail."""
        record = context.execution.stage(self.name)
        version = context.output(RegisterOutputs).model_package_version
        live = self.backend.deployments.live()
        if record.approval is None and live is not None and live.version == version:
            return StageResult(
                summary=f"v{version} already serves production ({live.endpoint}): nothing to approve",
                outputs=ApprovalOutputs(model_package_version=version, approval=None),
            )
        if record.approval is None:
            record.approval = ManualApproval.request(
                self._summary(context, version), self.spec.approval.timeout_seconds
            )
        approval = record.approval
        if approval.pending:
            with context.progress.suspended():  # a terminal prompt reads the answer: no spinner over it
                decision = self.approver.decide(approval)
            if decision is None:
                raise ApprovalPending(approval)
            approval.decide(decision)
        assert approval.approver is not None and approval.comment is not None  # noqa: S101 - set by decide()
        status: ApprovalStatus = C.APPROVAL_APPROVED if approval.status == "Approved" else C.APPROVAL_REJECTED
        package = self.backend.registry.describe(self.spec.model_name, version)
        if package.ModelApprovalStatus != status:
            self.backend.registry.update_approval(
                self.spec.model_name, version, status, changed_by=approval.approver, reason=approval.comment
            )
        if approval.status != "Approved":
            raise ApprovalRejectedError(f"{self.spec.model_name} v{version} was not approved: {approval.describe()}")
        return StageResult(
            summary=approval.describe(),
            outputs=ApprovalOutputs(model_package_version=version, approval=approval),
        )

    def _summary(self, context: StageContext, version: int) -> str:
        train = context.output(TrainOutputs)
        metrics = train.metrics
        shown = ", ".join(f"{name} {metrics[name]:.4f}" for name in ("test:auc", "test:f1") if name in metrics)
        comparison = train.comparison()
        if comparison is not None:
            against = f" Against production: {comparison} on the same held-out rows."
        elif self.spec.gate.compare_with_production:
            against = " No production yet: the absolute gate only."
        else:
            against = ""
        dev = context.output(DeployDevOutputs)
        return (
            f"{self.spec.model_name} v{version} ({shown}) is serving on {dev.endpoint_name} "
            f"(REST API {dev.api_url}); smoke test: {dev.smoke_test.rows} held-out rows equal the offline "
            f"predictions.{against}"
        )


def registered_digest(registry: ModelRegistry, model_name: str, version: int, trained_sha256: str) -> str:
    """The sha256 of ``version``'s model archive as the registry recorded it (``ModelDataETag``).

    A version registered before the registry recorded it falls back to the training job's artifact record.
    """
    return registry.describe(model_name, version).ModelDataETag or trained_sha256


@dataclass(frozen=True)
class ProductionRelease:
    """A registered version as production needs it: its model, code, version and held-out rows."""

    source: ModelSource
    execution_id: str
    test_uri: str
    model_package_arn: str

    @classmethod
    def of_execution(
        cls, execution: PipelineExecution, image: str, registry: ModelRegistry, model_name: str
    ) -> ProductionRelease:
        """The version an execution trained and registered (with the archive digest the registry recorded)."""
        train = execution.stage(C.STAGE_TRAIN)
        register = execution.output(RegisterOutputs)
        version = register.model_package_version
        return cls(
            source=ModelSource(
                model_data_url=execution.output(TrainOutputs).model_data_url,
                source_dir_uri=train.artifacts["source"].uri,
                image=image,
                version=version,
                model_data_sha256=registered_digest(registry, model_name, version, train.artifacts["model"].sha256),
            ),
            execution_id=execution.execution_id,
            test_uri=execution.output(DataOutputs).input_data.TestUri,
            model_package_arn=register.model_package_arn,
        )


def deploy_to_production(
    spec: PipelineSpec,
    backend: Backend,
    release: ProductionRelease,
    *,
    details: dict[str, object],
    schedule: Schedule | None = None,
    deployment_execution_id: str | None = None,
    progress: ProgressReporter | None = None,
) -> tuple[BlueGreenDeployment, ServedModel | None, ServedModel]:
    """Blue/green ``release`` into production beside what the ledger says serves now; return (controller, blue, green).

    Raises:
        RolledBackError: it was rolled back (the message says why).
    """
    production = spec.production
    probe = spec.monitoring.synthetic_canary
    store = backend.store
    rows = held_out_rows(store, release.test_uri, max(spec.serving.smoke_test_rows, probe.rows))
    synthetic = [",".join(f"{v:.9g}" for v in row) for row in rows[: spec.serving.smoke_test_rows]]
    known = [",".join(f"{v:.9g}" for v in row) for row in rows[: max(10, probe.rows)]]
    scores = offline_predictions(store.get_bytes(S3Uri.parse(release.source.model_data_url)), rows[: len(known)])
    expected = scores[:10]
    if probe.enabled:  # the standing probe: this version's known rows, and its schedule (before anything serves)
        write_known_rows(spec, store, release.source.version, known, [float(v) for v in scores])
    ensure_probe_schedule(spec, spec.state_dir.resolve())  # disabled: its schedule is removed
    execution_id = deployment_execution_id or release.execution_id
    host = backend.serving.production(
        spec, release.source, execution_id, synthetic, known=(known[:10], [float(v) for v in expected])
    )
    blue = backend.deployments.live()
    if blue is not None and not backend.serving.endpoint_exists(blue.endpoint):
        LOG.warning("the ledger's production endpoint %s is gone; deploying as a first deployment", blue.endpoint)
        blue = None
    controller = BlueGreenDeployment(
        host=host,
        ledger=backend.deployments,
        schedule=schedule or production.schedule(),
        alarms=local_alarm_settings(spec),
        clock=ScaledClock(scale=production.time_scale),
        synthetic=production.synthetic_traffic,
        progress=progress or PlainProgress(),
    )
    green_name = naming.green_endpoint_name(spec, release.source.version, execution_id)
    details = {"execution_id": release.execution_id, "model_package_arn": release.model_package_arn, **details}
    registry, version = backend.registry, release.source.version
    try:
        green = controller.run(blue, green_name, version=version, details=details)
    except RolledBackError as exc:
        why = f"deployment {controller.deployment_id} to production rolled back: {exc}"
        by = f"pipeline {spec.pipeline_name} automatic rollback"
        record_in_registry(lambda: registry.record_rollback(spec.model_name, version, reason=why, by=by))
        raise
    record_in_registry(lambda: registry.record_serving(spec.model_name, version, C.PRD_STAGE, green.endpoint))
    if spec.monitoring.enabled:
        monitor_production(spec, backend, green)
    return controller, blue, green


def monitor_production(spec: PipelineSpec, backend: Backend, served: ServedModel) -> None:
    """Point the data-quality schedule at what production now serves, with that version's own baseline."""
    from safedeploy.monitoring.baseline import version_baseline  # see BaselineStage
    from safedeploy.monitoring.monitor import Monitor

    package = backend.registry.describe(spec.model_name, served.version)
    baseline = version_baseline(package)
    if baseline is None:
        LOG.warning("v%s has no baseline (registered before monitoring): production is not monitored", served.version)
        return
    monitor = Monitor(spec, backend.store, backend.processing, backend.processing_image)
    monitor.ensure_schedule(served.endpoint, C.DEFAULT_VARIANT, served.version, baseline)
    if spec.monitoring.model_quality.enabled:
        monitor_model_quality(spec, backend, served)


def monitor_model_quality(spec: PipelineSpec, backend: Backend, served: ServedModel) -> None:
    """Point the model-quality schedule at what production serves, with that version's model-quality baseline."""
    from safedeploy.monitoring.baseline import quality_baseline
    from safedeploy.monitoring.model_quality_monitor import ModelQualityMonitor

    baseline = quality_baseline(backend.registry.describe(spec.model_name, served.version))
    if baseline is None:
        LOG.warning("v%s has no model-quality baseline: its model quality is not monitored", served.version)
        return
    monitor = ModelQualityMonitor(spec, backend.store, backend.processing, backend.processing_image)
    monitor.ensure_schedule(served.endpoint, C.DEFAULT_VARIANT, served.version, baseline)


@dataclass(frozen=True)
class DeployPrdStage:
    """Blue/green to production: green beside blue, traffic shifted per the strategy, alarms, automatic rollback.

    Blue is what the deployment ledger says production serves (if its endpoint still exists). A rollback
    fails the stage with the alarm or check that caused it; the ledger keeps every step either way.
    """

    spec: PipelineSpec
    backend: Backend
    name: str = C.STAGE_DEPLOY_PRD

    def run(self, context: StageContext) -> StageResult:
        """Deploy the approved version to production (nothing, if it already serves there)."""
        version = context.output(RegisterOutputs).model_package_version
        live = self.backend.deployments.live()
        if live is not None and live.version == version and self.backend.serving.endpoint_exists(live.endpoint):
            return StageResult(
                summary=f"v{version} already serves production on {live.endpoint}; nothing changed",
                outputs=DeployPrdOutputs(
                    deployment_id=None,
                    endpoint_name=live.endpoint,
                    model_package_version=version,
                    blue=None,
                    strategy=self.spec.production.strategy,
                    api_url=self.backend.serving.outputs().get("ApiUrl"),
                ),
            )
        release = ProductionRelease.of_execution(
            context.execution, self.backend.serving_image, self.backend.registry, self.spec.model_name
        )
        approval = context.execution.stage(C.STAGE_APPROVAL).approval
        controller, blue, green = deploy_to_production(
            self.spec,
            self.backend,
            release,
            details={
                "approver": approval.approver if approval else None,
                "rehearsal": self.spec.production.fault,
                "trigger": context.execution.trigger,
            },
            progress=context.progress,
        )
        version = release.source.version
        outputs = self.backend.serving.outputs()
        configured = self.spec.production.strategy
        if blue is None:  # nothing serves yet: green takes every request at once, the strategy has nothing to shift
            strategy = FIRST_DEPLOYMENT_STRATEGY
            how = f"AllAtOnce: first deployment, nothing to shift from; {configured} applies from the next one"
            shifted = "first deployment: "
        else:
            strategy, how, shifted = configured, configured, f"{blue.endpoint} (v{blue.version}) -> "
        return StageResult(
            summary=f"{shifted}{green.endpoint} (v{version}) at 100% ({how}); {outputs.get('ApiUrl')}",
            outputs=DeployPrdOutputs(
                deployment_id=controller.deployment_id,
                endpoint_name=green.endpoint,
                model_package_version=version,
                blue=blue,
                strategy=strategy,
                api_url=outputs.get("ApiUrl"),
            ),
        )


def record_in_registry(write: Callable[[], object]) -> None:
    """Record where a version serves (or its rollback) in the registry; a failure is logged, not raised.

    The deployment it records has already happened: failing it now would misreport what production serves.
    """
    try:
        write()
    except (SafeDeployError, OSError) as exc:
        LOG.warning("the registry could not record the deployment: %s", exc)


@dataclass(frozen=True)
class UnlessReused:
    """A stage that makes a new version's artifacts (Baseline): skipped when Train reused a registered version.

    The reused version keeps its own registered baselines; running the jobs again would only make orphans.
    """

    stage: Stage

    @property
    def name(self) -> str:
        """The wrapped stage's name."""
        return self.stage.name

    def run(self, context: StageContext) -> StageResult:
        """Run the stage, unless Train reused a version."""
        reused = context.output(TrainOutputs).reused_version
        if reused is None:
            return self.stage.run(context)
        return StageResult(
            summary=f"v{reused} reused: its registered baselines stand, no jobs run",
            outputs=BaselineOutputs(files={}, sha256={}, jobs=[]),
        )


def pipeline_stages(
    spec: PipelineSpec, backend: Backend, project_root: Path, approver: Approver | None = None
) -> list[Stage]:
    """The stages of the pipeline, in order (the approval gate pauses unless an ``approver`` answers)."""
    stages: list[Stage] = [
        DataStage(spec, backend),
        TrainStage(spec, backend, project_root=project_root),
    ]
    if spec.monitoring.enabled:
        stages.append(UnlessReused(BaselineStage(spec, backend)))
    stages.append(RegisterStage(spec, backend, project_root))
    if spec.serving.enabled:
        stages.append(DeployDevStage(spec, backend))
        stages.append(ApprovalStage(spec, backend, approver or Deferred()))
        if spec.production.enabled:
            stages.append(DeployPrdStage(spec, backend))
    return stages
