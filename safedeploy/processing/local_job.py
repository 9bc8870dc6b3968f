"""Local processing jobs: run a ``CreateProcessingJob`` request on this machine, in SageMaker's container layout.

The job gets a directory standing in for ``/opt/ml`` (``processing/<inputs>``, ``processing/<outputs>``,
``output/message``, ``output/metrics/cloudwatch``): every ``LocalPath`` and every environment value under
``/opt/ml`` is mapped into it, each ``S3Input`` prefix is downloaded (checksums verified) to its local path,
and ``AppSpecification.ContainerEntrypoint`` runs as a child process with this interpreter standing in for the
image's ``python3``. Afterwards each ``S3Output`` local path is uploaded to its ``S3Uri`` (``EndOfJob``), and the
job is described as ``DescribeProcessingJob`` does: status, ``ExitMessage`` (``/opt/ml/output/message``),
``FailureReason`` (``/opt/ml/output/failure``, else the log's tail).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from safedeploy import constants as C
from safedeploy.errors import ArtifactError
from safedeploy.filemodes import PRIVATE_UMASK
from safedeploy.processes import child_environment, die_with_parent
from safedeploy.store import ArtifactStore, S3Uri

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import CreateProcessingJobRequestTypeDef

LOG = logging.getLogger(__name__)
OPT_ML = "/opt/ml"
_LOG_TAIL_LINES = 15
_MAX_MESSAGE = 1024


class ProcessingJobDescription(BaseModel):
    """The part of ``DescribeProcessingJob`` callers read (plus the local work directory and log)."""

    processing_job_name: str
    processing_job_status: Literal["Completed", "Failed", "Stopped"]
    exit_message: str | None = None
    failure_reason: str | None = None
    outputs: dict[str, str] = {}
    """OutputName -> S3Uri the output was uploaded to."""
    processing_start_time: datetime
    processing_end_time: datetime
    work_dir: str
    log_file: str


class LocalProcessingJobs:
    """Runs ``CreateProcessingJob`` requests as child processes in an ``/opt/ml``-shaped directory."""

    def __init__(self, store: ArtifactStore, work_root: Path, python: str = sys.executable) -> None:
        self.store = store
        self.work_root = work_root
        self.python = python

    def run(self, request: CreateProcessingJobRequestTypeDef, keep: bool = False) -> ProcessingJobDescription:
        """Run the job to completion and describe it; failures are in the description, not raised."""
        name = request["ProcessingJobName"]
        base = (self.work_root / name).resolve()
        if base.exists():
            shutil.rmtree(base)
        base.mkdir(parents=True)
        log_file = base / "job.log"
        started = datetime.now(UTC)

        def local(path: str) -> Path:
            return base / path.removeprefix(OPT_ML).lstrip("/") if path.startswith(OPT_ML) else Path(path)

        def failed(reason: str, status: Literal["Failed", "Stopped"] = "Failed") -> ProcessingJobDescription:
            return ProcessingJobDescription(
                processing_job_name=name,
                processing_job_status=status,
                failure_reason=reason,
                exit_message=_read(base / "output" / "message"),
                processing_start_time=started,
                processing_end_time=datetime.now(UTC),
                work_dir=str(base),
                log_file=str(log_file),
            )

        try:
            for job_input in request.get("ProcessingInputs", []):
                s3 = job_input["S3Input"]
                self._download_prefix(S3Uri.parse(s3["S3Uri"]), local(s3["LocalPath"]))
        except (ArtifactError, OSError, KeyError, ValueError) as exc:
            log_file.write_text(f"input staging failed: {exc}\n", "utf-8")
            return failed(f"ClientError: cannot stage the job's inputs: {exc}")
        output_config = request.get("ProcessingOutputConfig")
        outputs = list(output_config["Outputs"]) if output_config else []
        for output in outputs:
            local(output["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
        (base / "output" / "metrics" / "cloudwatch").mkdir(parents=True, exist_ok=True)

        app = request["AppSpecification"]
        entrypoint = list(app.get("ContainerEntrypoint", [])) + list(app.get("ContainerArguments", []))
        if not entrypoint:
            return failed("ClientError: AppSpecification.ContainerEntrypoint is required for a local processing job")
        if entrypoint[0] in ("python3", "python"):
            entrypoint[0] = self.python
        environment: dict[str, Any] = dict(request.get("Environment", {}))
        env = child_environment(
            {key: str(local(value)) if value.startswith(OPT_ML) else value for key, value in environment.items()}
        )
        env[C.SM_BASE_DIR_ENV] = str(base)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        timeout = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86_400)
        LOG.info("processing job %s: running %s (log: %s)", name, " ".join(entrypoint), log_file)
        with log_file.open("wb") as log:
            try:
                proc = subprocess.run(
                    entrypoint,
                    preexec_fn=die_with_parent,
                    umask=PRIVATE_UMASK,  # its files (model, reports) are owner-only
                    cwd=base,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                return failed(f"MaxRuntimeExceeded: the job ran longer than {timeout} s", "Stopped")
            except OSError as exc:
                return failed(f"ClientError: cannot start {entrypoint[0]}: {exc}")
        if proc.returncode != 0:
            reason = _read(base / "output" / "failure")
            if not reason:
                tail = log_file.read_text("utf-8", errors="replace").splitlines()[-_LOG_TAIL_LINES:]
                reason = f"AlgorithmError: exit code {proc.returncode}; last log lines:\n" + "\n".join(tail)
            return failed(reason)
        uploaded: dict[str, str] = {}
        for output in outputs:
            s3_output = output["S3Output"]
            root, prefix = local(s3_output["LocalPath"]), S3Uri.parse(s3_output["S3Uri"])
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                self.store.put_file(prefix.join(path.relative_to(root).as_posix()), path, _content_type(path))
            uploaded[output["OutputName"]] = str(prefix)
        description = ProcessingJobDescription(
            processing_job_name=name,
            processing_job_status="Completed",
            exit_message=_read(base / "output" / "message"),
            outputs=uploaded,
            processing_start_time=started,
            processing_end_time=datetime.now(UTC),
            work_dir=str(base),
            log_file=str(log_file),
        )
        if not keep:  # inputs can be large (a window's capture); the outputs are uploaded
            shutil.rmtree(base / "processing", ignore_errors=True)
        return description

    def _download_prefix(self, prefix: S3Uri, target: Path) -> None:
        """Every object under ``prefix`` to ``target``, keeping the key's path below the prefix."""
        target.mkdir(parents=True, exist_ok=True)
        for ref in self.store.list_objects(prefix):
            key = S3Uri.parse(ref.uri).key
            relative = key[len(prefix.key) :].lstrip("/") or Path(key).name
            self.store.download(S3Uri.parse(ref.uri), target / relative)


def _read(path: Path) -> str | None:
    try:
        text = path.read_text("utf-8", errors="replace").strip()
    except OSError:
        return None
    return text[:_MAX_MESSAGE] or None


def _content_type(path: Path) -> str:
    return {".json": "application/json", ".jsonl": "application/jsonlines", ".csv": "text/csv"}.get(
        path.suffix, "application/octet-stream"
    )
