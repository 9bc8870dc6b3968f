"""Local training jobs: run a ``CreateTrainingJob`` request on this machine, in SageMaker's container layout.

The job gets a directory laid out like ``/opt/ml`` (``input/config``, ``input/data/<channel>``, ``model``,
``output``), its channels and source code downloaded from the artifact store, and the same ``SM_*``
environment the SageMaker training toolkit sets. The entry point runs in a child process with the
project's interpreter; afterwards ``model/`` and ``output/data/`` are archived to
``<S3OutputPath>/<job>/output/{model,output}.tar.gz`` as SageMaker does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from safedeploy import constants as C
from safedeploy.archives import pack_directory, read_member, unpack
from safedeploy.errors import ArtifactError
from safedeploy.filemodes import PRIVATE_UMASK
from safedeploy.processes import child_environment, die_with_parent
from safedeploy.store import ArtifactStore, S3Uri

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import CreateTrainingJobRequestTypeDef

LOG = logging.getLogger(__name__)
_LOG_TAIL_LINES = 15
_TAIL_POLL_S = 0.2


@contextlib.contextmanager
def _tailing(log_file: Path, on_line: Callable[[str], None] | None) -> Iterator[None]:
    """While the block runs, hand each complete line appended to ``log_file`` to ``on_line`` (from a thread)."""
    if on_line is None:
        yield
        return
    stop = threading.Event()

    def follow() -> None:
        with log_file.open("rb") as stream:
            pending = b""
            while True:
                finished = stop.wait(_TAIL_POLL_S)
                pending += stream.read()
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    on_line(line.decode("utf-8", errors="replace"))
                if finished:
                    return

    thread = threading.Thread(target=follow, name=f"tail {log_file.parent.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


class TrainingJobDescription(BaseModel):
    """The part of ``DescribeTrainingJob`` the pipeline reads."""

    training_job_name: str
    training_job_status: Literal["Completed", "Failed", "Stopped"]
    failure_reason: str | None = None
    model_artifacts: str | None = None
    output_artifacts: str | None = None
    final_metrics: dict[str, float] = {}
    training_start_time: datetime
    training_end_time: datetime
    log_file: str


class LocalTrainingJobs:
    """Runs training job requests as child processes in a SageMaker-style directory."""

    def __init__(self, store: ArtifactStore, work_root: Path, python: str = sys.executable) -> None:
        self.store = store
        self.work_root = work_root
        self.python = python

    def run(
        self, request: CreateTrainingJobRequestTypeDef, on_log_line: Callable[[str], None] | None = None
    ) -> TrainingJobDescription:
        """Run the job to completion and describe it. Failures are reported in the description, not raised.

        ``on_log_line`` receives each line of the job's log as it is written (the training rounds), from a thread.
        """
        name = request["TrainingJobName"]
        base = (self.work_root / name).resolve()
        if base.exists():
            shutil.rmtree(base)
        config_dir = base / "input" / "config"
        config_dir.mkdir(parents=True)
        log_file = base / "job.log"
        started = datetime.now(UTC)
        hyperparameters = dict(request.get("HyperParameters", {}))
        (config_dir / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=2), "utf-8")

        code_dir = base / "code"
        try:
            channels = self._stage_inputs(request, base, code_dir)
        except (ArtifactError, FileNotFoundError, KeyError) as exc:
            log_file.write_text(f"input staging failed: {exc}\n", "utf-8")
            return TrainingJobDescription(
                training_job_name=name,
                training_job_status="Failed",
                failure_reason=f"ClientError: cannot stage the job's inputs: {exc}",
                training_start_time=started,
                training_end_time=datetime.now(UTC),
                log_file=str(log_file),
            )

        env = self._environment(base, channels, hyperparameters, code_dir)
        entry_point = hyperparameters["sagemaker_program"]
        timeout = request["StoppingCondition"].get("MaxRuntimeInSeconds", 86_400)
        LOG.info("training job %s: running %s (log: %s)", name, entry_point, log_file)
        status: Literal["Completed", "Failed", "Stopped"] = "Completed"
        reason: str | None = None
        with log_file.open("wb") as log, _tailing(log_file, on_log_line):
            try:
                proc = subprocess.run(
                    [self.python, entry_point],
                    preexec_fn=die_with_parent,
                    umask=PRIVATE_UMASK,  # its files (model, reports) are owner-only
                    cwd=code_dir,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    check=False,
                )
                if proc.returncode != 0:
                    status = "Failed"
                    reason = self._failure_reason(base, log_file, proc.returncode)
            except subprocess.TimeoutExpired:
                status, reason = "Stopped", f"MaxRuntimeExceeded: the job ran longer than {timeout} s"

        description: dict[str, Any] = {}
        if status == "Completed":
            output = S3Uri.parse(request["OutputDataConfig"]["S3OutputPath"]).join(name, "output")
            model = self.store.put_bytes(
                output.join(C.MODEL_ARCHIVE), pack_directory(base / "model"), "application/gzip"
            )
            out_tar = pack_directory(base / "output" / "data")
            outputs = self.store.put_bytes(output.join(C.OUTPUT_ARCHIVE), out_tar, "application/gzip")
            metrics = json.loads(read_member(out_tar, C.METRICS_FILE)).get("metrics", {})
            description = {
                "model_artifacts": model.uri,
                "output_artifacts": outputs.uri,
                "final_metrics": {k: float(v) for k, v in metrics.items()},
            }
            for transient in ("input", "model", "code"):
                shutil.rmtree(base / transient, ignore_errors=True)
        return TrainingJobDescription(
            training_job_name=name,
            training_job_status=status,
            failure_reason=reason,
            training_start_time=started,
            training_end_time=datetime.now(UTC),
            log_file=str(log_file),
            **description,
        )

    def _stage_inputs(self, request: CreateTrainingJobRequestTypeDef, base: Path, code_dir: Path) -> dict[str, Path]:
        channels: dict[str, Path] = {}
        for channel in request["InputDataConfig"]:
            target = base / "input" / "data" / channel["ChannelName"]
            self._download_prefix(S3Uri.parse(channel["DataSource"]["S3DataSource"]["S3Uri"]), target)
            channels[channel["ChannelName"]] = target
        (base / "input" / "config" / "inputdataconfig.json").write_text(
            json.dumps({c: {"TrainingInputMode": "File", "ContentType": "text/csv"} for c in channels}),
            "utf-8",
        )
        submit_dir = request["HyperParameters"]["sagemaker_submit_directory"]
        unpack(self.store.get_bytes(S3Uri.parse(submit_dir)), code_dir)
        return channels

    def _download_prefix(self, prefix: S3Uri, target: Path) -> None:
        refs = self.store.list_objects(prefix)
        if not refs:
            raise FileNotFoundError(f"no objects under {prefix}")
        for ref in refs:
            key = S3Uri.parse(ref.uri).key
            relative = key[len(prefix.key) :].lstrip("/") or Path(key).name
            self.store.download(S3Uri.parse(ref.uri), target / relative)

    def _environment(
        self, base: Path, channels: Mapping[str, Path], hyperparameters: Mapping[str, str], code_dir: Path
    ) -> dict[str, str]:
        env = child_environment(
            {
                C.SM_BASE_DIR_ENV: str(base),
                "SM_MODEL_DIR": str(base / "model"),
                "SM_OUTPUT_DIR": str(base / "output"),
                "SM_OUTPUT_DATA_DIR": str(base / "output" / "data"),
                "SM_INPUT_DIR": str(base / "input"),
                "SM_INPUT_CONFIG_DIR": str(base / "input" / "config"),
                "SM_CHANNELS": json.dumps(sorted(channels)),
                "SM_HPS": json.dumps(dict(hyperparameters)),
                "SM_NUM_CPUS": str(os.cpu_count() or 1),
                "SM_NUM_GPUS": "0",
                "SM_CURRENT_HOST": "algo-1",
                "SM_HOSTS": json.dumps(["algo-1"]),
                "SM_MODULE_DIR": str(code_dir),
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        env.update({f"SM_CHANNEL_{name.upper()}": str(path) for name, path in channels.items()})
        return env

    @staticmethod
    def _failure_reason(base: Path, log_file: Path, returncode: int) -> str:
        failure = base / "output" / C.FAILURE_FILE
        if failure.is_file() and (text := failure.read_text("utf-8").strip()):
            return text
        tail = log_file.read_text("utf-8", errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        return f"AlgorithmError: exit code {returncode}; last log lines:\n" + "\n".join(tail)
