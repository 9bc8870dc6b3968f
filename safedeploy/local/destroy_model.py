"""``make destroy MODEL=name``: one model's pipeline out of a shared state directory and runtime, nothing else.

Several pipelines (models) can share a state directory and its runtime; ``destroy --model`` removes one of them:

* in the runtime, through its own API (started for the purpose if it is not running, and stopped again): the
  model's REST API routes (``/<model>/api``, ``/<model>/dev/api`` and any other route of its usage plan), then its
  endpoints, endpoint configs and models (SageMaker's Delete calls; a model is the pipeline's when its archive is in
  the pipeline's buckets, a config when it serves such a model, an endpoint when it serves such a config), then its
  usage plan's API key; each endpoint's instance logs;
* in the state directory: the pipeline's artifact-store buckets (data, artifacts, capture, reports: every object
  of the model is under its two buckets), its registry group, executions, lock, deployment ledger, monitoring
  schedules and their executions, the standing probe's schedule, runs and log, alarm states, training and
  processing job directories, and the retraining runs started for it.

What is not per pipeline stays: the runtime itself and its credentials, the custom-metric logs (one per namespace,
as CloudWatch keeps metrics apart from the resources that published them), the event log (one bus, as
EventBridge's default bus), and the retraining trigger's state and decision log, which the state directory
keeps once for all its pipelines. Another model's pipeline keeps serving throughout.

Refused, with nothing removed: an unknown model (the message lists the known ones), a model with a pipeline in
another environment of the same state directory (what belongs to the model would go from under it), and a model
whose execution is running (its pipeline lock is held). The lock is then held to the end, so no execution starts
meanwhile. Schedules go first (no probe or monitoring run starts meanwhile) and what makes the model known (registry
group, executions, ledger) last, so a destroy that failed half-way is finished by running it again.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.errors import ConfigError, PipelineLockedError
from safedeploy.local import daemon
from safedeploy.local.routes import api_route
from safedeploy.locking import LockHeldError, exclusive_lock
from safedeploy.monitoring.probe import probes_root
from safedeploy.runtime.paths import RuntimePaths
from safedeploy.runtime.state import RuntimeState
from safedeploy.runtime.state_file import read_state
from safedeploy.spec import PipelineSpec, spec_for_model
from safedeploy.store import S3Uri

CAPTURE_SETTLE_S = 1.5
"""The runtime flushes captured records every second: after deleting endpoints, wait for the last flush."""
REMOVE_ATTEMPTS = 3
"""A folder that a scheduled run (probe, monitoring) wrote into while it was removed is removed again this often."""


@dataclass(frozen=True)
class ModelDestroyReport:
    """What ``destroy --model`` removed.

    Attributes:
        model: The model whose pipeline went.
        pipeline: Its pipeline name.
        runtime: The runtime resources deleted (``route x``, ``endpoint y``, ...).
        removed: The state directory's paths removed, relative to it.
    """

    model: str
    pipeline: str
    runtime: tuple[str, ...]
    removed: tuple[str, ...]

    def text(self) -> str:
        """For a person."""
        lines = [f"destroyed {self.pipeline} locally (other models' pipelines untouched):"]
        if self.runtime:
            lines.append(f"  deleted from the runtime: {', '.join(self.runtime)}")
        if self.removed:
            lines.append(f"  removed {', '.join(self.removed)}")
        if len(lines) == 1:
            lines.append("  nothing left to remove")
        return "\n".join(lines)


@dataclass(frozen=True)
class _RuntimeShare:
    """One model's resources in the runtime's state."""

    routes: tuple[str, ...]
    endpoints: tuple[str, ...]
    configs: tuple[str, ...]
    models: tuple[str, ...]
    key: bool

    def __bool__(self) -> bool:
        return bool(self.routes or self.endpoints or self.configs or self.models or self.key)

    def names(self) -> list[str]:
        return [
            *(f"route {r}" for r in self.routes),
            *(f"endpoint {e}" for e in self.endpoints),
            *(f"endpoint config {c}" for c in self.configs),
            *(f"model {m}" for m in self.models),
            *(["API key"] if self.key else []),
        ]


def known_models(spec: PipelineSpec) -> list[str]:
    """The models with a pipeline (of ``spec``'s environment) in ``spec``'s state directory."""
    root = spec.state_dir.resolve()
    suffix = f"-{spec.environment}"
    found: set[str] = set()
    registry = root / "registry"
    if registry.is_dir():
        found.update(p.name for p in registry.iterdir() if p.is_dir())
    executions = root / "executions"
    if executions.is_dir():
        found.update(p.name.removesuffix(suffix) for p in executions.iterdir() if p.name.endswith(suffix))
    deployments = root / "deployments"
    if deployments.is_dir():
        found.update(p.stem.removesuffix(suffix) for p in deployments.glob(f"*{suffix}.jsonl"))
    state = read_state(RuntimePaths(root).state)
    found.update(r.UsagePlan for r in state.Routes.values() if r.UsagePlan)
    return sorted(found)


def _pipelines(root: Path) -> set[tuple[str, str]]:
    """Every (model, environment) with executions or a ledger in the state directory, whatever the environment.

    A pipeline is named ``<model>-<environment>`` and an environment has no hyphen: the last one splits them.
    """
    names: set[str] = set()
    executions = root / "executions"
    if executions.is_dir():
        names.update(p.name for p in executions.iterdir() if p.is_dir())
    deployments = root / "deployments"
    if deployments.is_dir():
        names.update(p.name.removesuffix(".jsonl") for p in deployments.glob("*.jsonl"))
    pipelines = set()
    for name in names:
        model, _, environment = name.rpartition("-")
        if model and re.fullmatch(C.ENVIRONMENT_PATTERN, environment):
            pipelines.add((model, environment))
    return pipelines


def _all_models(spec: PipelineSpec) -> set[str]:
    """Every model with anything in the state directory, in any environment (the guard against prefix matches)."""
    return set(known_models(spec)) | {model for model, _ in _pipelines(spec.state_dir.resolve())}


def _model_spec(spec: PipelineSpec, model: str) -> PipelineSpec:
    target = spec_for_model(spec, model)
    known = known_models(spec)
    if model not in known:
        listing = ", ".join(known) if known else "none: nothing was deployed here"
        raise ConfigError(
            f"no model {model!r} in {spec.state_dir.resolve()} (environment {spec.environment}); known models: "
            f"{listing}"
        )
    others = sorted(env for m, env in _pipelines(spec.state_dir.resolve()) if m == model and env != spec.environment)
    if others:
        raise ConfigError(
            f"model {model!r} also has a pipeline in environment {', '.join(others)} of {spec.state_dir.resolve()}: "
            "its registry group, REST APIs, API key, jobs and retraining runs belong to the model, shared by every "
            f"environment, so removing {target.pipeline_name} alone would break the other; nothing was removed. "
            "Use a state directory per environment (`state_dir`), or `make destroy` to remove them all"
        )
    return target


def _uri_bucket(uri: str | None) -> str | None:
    try:
        return S3Uri.parse(uri).bucket if uri else None
    except ValueError:
        return None


def _runtime_share(state: RuntimeState, spec: PipelineSpec) -> _RuntimeShare:
    model = spec.model_name
    buckets = {naming.data_bucket(spec), naming.artifact_bucket(spec)}
    models = []
    for name, record in state.Models.items():
        container = record.PrimaryContainer
        source = container.ModelDataSource.S3DataSource.S3Uri if container.ModelDataSource else None
        if _uri_bucket(source or container.ModelDataUrl) in buckets:
            models.append(name)
    configs = [
        name
        for name, config in state.EndpointConfigs.items()
        if any(v.ModelName in models for v in config.ProductionVariants)
    ]
    endpoints = [name for name, endpoint in state.Endpoints.items() if endpoint.EndpointConfigName in configs]
    named = {api_route(model, stage)[0] for stage in (C.PRD_STAGE, C.DEV_STAGE)}
    routes = [name for name, route in state.Routes.items() if name in named or route.UsagePlan == model]
    return _RuntimeShare(
        tuple(sorted(routes)), tuple(sorted(endpoints)), tuple(sorted(configs)), tuple(sorted(models)),
        model in state.ApiKeys,
    )  # fmt: skip


def _owned(names: Iterable[str], prefix: str, others: Iterable[str]) -> list[str]:
    """Names starting with ``prefix`` that do not belong to another model whose own prefix is longer."""
    longer = [o for o in others if o.startswith(prefix) and o != prefix]
    return sorted(n for n in names if n.startswith(prefix) and not any(n.startswith(o) for o in longer))


def _state_paths(spec: PipelineSpec, root: Path) -> list[Path]:
    """The state directory's files and folders of ``spec``'s pipeline (existing ones)."""
    model, pipeline = spec.model_name, spec.pipeline_name
    models = _all_models(spec)
    others_models = [f"{m}-" for m in models if m != model]
    others_pipelines = [f"{m}-{spec.environment}-" for m in models if m != model]
    canary = naming.probe_canary_name(spec)
    # What runs on a schedule goes first (no run starts meanwhile), what makes the model known last: a destroy
    # that fails half-way finds the model again and finishes the job.
    paths: list[Path] = [
        probes_root(root) / canary / "schedule.json",
        probes_root(root) / canary,
        root / "runtime" / "logs" / "probes" / f"{canary}.log",
    ]
    job_name = re.compile(r"^(?:[a-z-]+-)?\d{8}-\d{6}-")
    for folder in ("jobs", "processing-jobs"):
        directory = root / folder
        if directory.is_dir():
            names = [p.name for p in directory.iterdir() if job_name.match(p.name.removeprefix(f"{model}-"))]
            paths += [directory / n for n in _owned(names, f"{model}-", others_models)]
    for folder, suffix in (("monitoring", ""), ("alarms", ".json"), (str(Path("runtime") / "logs" / "monitoring"), "")):
        directory = root / folder
        if directory.is_dir():
            names = [p.name for p in directory.iterdir() if p.name.endswith(suffix)]
            paths += [directory / n for n in _owned(names, f"{pipeline}-", others_pipelines)]
    runs = root / "retraining" / "runs"
    if runs.is_dir():
        paths += [run for run in sorted(runs.iterdir()) if _retraining_model(run) == model]
    for bucket in (naming.data_bucket(spec), naming.artifact_bucket(spec)):
        paths += [root / "s3" / bucket, root / "s3" / ".meta" / bucket]
    deployments = root / "deployments"
    if deployments.is_dir():
        paths += sorted(deployments.glob(f"{pipeline}.jsonl.torn-*"))
    paths += [
        root / "registry" / naming.model_package_group(spec),
        root / "executions" / pipeline,
        root / "deployments" / f"{pipeline}.jsonl",
    ]
    return [p for p in paths if p.exists() or p.is_symlink()]


def _retraining_model(run: Path) -> str | None:
    try:
        return str(json.loads((run / "spec.json").read_text("utf-8"))["model_name"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def model_destroy_plan(spec: PipelineSpec, model: str) -> str:
    """What :func:`destroy_model` removes, for a person to confirm.

    Raises:
        ConfigError: ``model`` is not a valid name, or has no pipeline here (the message lists the known models).
    """
    target = _model_spec(spec, model)
    root = spec.state_dir.resolve()
    share = _runtime_share(read_state(RuntimePaths(root).state), target)
    runtime = ", ".join(share.names()) or "nothing"
    files = ", ".join(str(p.relative_to(root)) for p in _state_paths(target, root)) or "nothing"
    return (
        f"{target.pipeline_name} will be destroyed locally, and nothing of another model. "
        f"Runtime: {runtime}. Files under {root}: {files}."
    )


@contextlib.contextmanager
def _pipeline_locked(spec: PipelineSpec, root: Path) -> Iterator[None]:
    """Hold the pipeline's lock (as an execution does) for the whole destroy; remove the lock file last, still held.

    Raises:
        PipelineLockedError: an execution (a run, a retraining, a console decision) holds it: nothing is removed.
    """
    lock = root / "locks" / f"{spec.pipeline_name}.lock"
    held = contextlib.ExitStack()
    try:
        held.enter_context(exclusive_lock(lock, {"destroying": spec.pipeline_name}))
    except LockHeldError as exc:
        holder = f"pid {exc.holder['pid']}" if "pid" in exc.holder else "another process"
        raise PipelineLockedError(
            f"an execution of {spec.pipeline_name} is running ({holder} holds {lock}): wait for it to finish or stop "
            "it first; nothing was removed"
        ) from None
    with held:
        yield
        lock.unlink(missing_ok=True)


def _remove(path: Path) -> None:
    """Remove a file or a folder; a folder a last scheduled run wrote into meanwhile is emptied again."""
    if not path.is_dir() or path.is_symlink():
        path.unlink(missing_ok=True)
        return
    for attempt in range(REMOVE_ATTEMPTS):
        try:
            shutil.rmtree(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY or attempt == REMOVE_ATTEMPTS - 1:
                raise
            time.sleep(CAPTURE_SETTLE_S)


def _delete(call: Callable[[], object]) -> None:
    """A SageMaker Delete call; one that finds nothing (deleted meanwhile) is fine."""
    try:
        call()
    except ClientError as exc:
        if "Could not find" not in str(exc):
            raise


def _delete_in_runtime(spec: PipelineSpec, root: Path, share: _RuntimeShare, progress: Callable[[str], None]) -> None:
    paths = RuntimePaths(root)
    info = daemon.read_info(paths)
    started = info is None
    if info is None:
        progress("  starting the local runtime to delete the model's endpoints and REST APIs through its API")
        info = daemon.ensure_running(root, spec.region, spec.account_id)
    try:
        for route in share.routes:
            daemon.delete_route(info, route)
        sagemaker = daemon.sagemaker_client(info)
        for endpoint in share.endpoints:
            _delete(functools.partial(sagemaker.delete_endpoint, EndpointName=endpoint))
        for config in share.configs:
            _delete(functools.partial(sagemaker.delete_endpoint_config, EndpointConfigName=config))
        for model in share.models:
            _delete(functools.partial(sagemaker.delete_model, ModelName=model))
        if share.key:
            daemon.local_call(info, "DELETE", f"/_local/api-keys/{spec.model_name}")
        if share.endpoints:
            time.sleep(CAPTURE_SETTLE_S)
    finally:
        if started:
            daemon.stop(root)
    for endpoint in share.endpoints:
        shutil.rmtree(paths.root / "logs" / endpoint, ignore_errors=True)


def destroy_model(spec: PipelineSpec, model: str, progress: Callable[[str], None] = print) -> ModelDestroyReport:
    """Remove ``model``'s pipeline from ``spec``'s state directory and runtime; every other model's stays.

    Raises:
        ConfigError: ``model`` is not a valid name, or has no pipeline here (the message lists the known models).
        PipelineLockedError: an execution of that pipeline is running (nothing removed).
    """
    target = _model_spec(spec, model)
    root = spec.state_dir.resolve()
    with _pipeline_locked(target, root):
        share = _runtime_share(read_state(RuntimePaths(root).state), target)
        if share:
            _delete_in_runtime(target, root, share, progress)
        removed = []
        for path in _state_paths(target, root):
            _remove(path)
            removed.append(str(path.relative_to(root)))
    return ModelDestroyReport(model, target.pipeline_name, tuple(share.names()), tuple(removed))
