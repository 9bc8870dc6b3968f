"""Serving instances: worker processes for the variants of a deployed endpoint config.

Each variant gets ``InitialInstanceCount`` processes (``python -m safedeploy.instance.worker``), each on its own
127.0.0.1 socket that the runtime binds and hands over, so ports are known before the child runs. An instance
is ready when ``GET /ping`` answers 200; one that exits before that fails the deployment with the last line it
wrote to stderr. Instances that die later are replaced (as SageMaker replaces unhealthy instances); requests
go to the healthy ones meanwhile. Instance logs are ``<logs>/<endpoint>/<variant>/<instance>.log``, like the
CloudWatch log streams of ``/aws/sagemaker/Endpoints/<endpoint>``. Before any instance starts, first or
replacement, the model's unpacked files are checked against their manifest
(:func:`~safedeploy.runtime.sagemaker.integrity.tree_problem`): an instance never runs files that changed on disk.

A variant of two or more instances also keeps one warm spare: started, loaded and answering ``/ping``, but out
of rotation. Starting a Python serving process (interpreter, XGBoost, the model, the fast path's verification)
takes 1.5-3 s on a busy machine; with a spare, an instance that dies is replaced by promoting the spare at once,
and a new spare is started in the background. One-instance variants (dev) keep none.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from safedeploy import constants as C
from safedeploy.processes import child_environment, die_with_parent
from safedeploy.runtime.sagemaker.integrity import tree_problem
from safedeploy.runtime.state import ProductionVariant

LOG = logging.getLogger(__name__)
READY_TIMEOUT_S = 120.0
_RESTART_DELAY_S = 1.0
_MAX_RESTART_DELAY_S = 30.0
SPARE_FROM_COUNT = 2
"""Variants of at least this many instances keep a warm spare."""


class DeploymentFailedError(Exception):
    """A variant's instances could not be started; the message is the endpoint's ``FailureReason``."""


class InstanceRefusedError(DeploymentFailedError):
    """An instance was not started: the model's files on disk no longer match its manifest."""


@dataclass(frozen=True)
class ModelFiles:
    """A model prepared on disk in the container layout: ``<base>/model`` and its handler code."""

    base_dir: Path
    code_dir: Path
    program: str
    image: str
    environment: dict[str, str] = field(default_factory=dict)
    """The container's ``Environment`` (CreateModel), which its processes see, as in SageMaker."""
    manifest: Mapping[str, str] | None = None
    """Digests of every file under ``base_dir`` (from the model's archives), checked before each instance starts."""


@dataclass(eq=False)
class Instance:
    """One serving process."""

    instance_id: str
    port: int
    process: asyncio.subprocess.Process
    log_path: Path
    healthy: bool = False
    standby: bool = False
    """A warm spare: ready, but out of rotation until an instance dies."""

    @property
    def url(self) -> str:
        """Base URL of the container's HTTP server."""
        return f"http://127.0.0.1:{self.port}"


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text("utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1].strip() if lines else "(no output)"


@dataclass(eq=False)
class VariantFleet:
    """The instances serving one production variant."""

    endpoint: str
    variant: ProductionVariant
    model: ModelFiles
    log_dir: Path
    python: str = sys.executable
    weight: float = 0.0
    instances: list[Instance] = field(default_factory=list)
    desired_count: int = 0
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _next: int = 0
    _closing: bool = False
    _monitors: set[asyncio.Task[None]] = field(default_factory=set)
    on_refused: Callable[[str], None] | None = None
    """Told why, when a replacement instance refuses to start (the control plane then fails the endpoint)."""

    def __post_init__(self) -> None:
        self.weight = self.variant.InitialVariantWeight
        self.desired_count = self.variant.InitialInstanceCount

    @property
    def name(self) -> str:
        """The variant's name."""
        return self.variant.VariantName

    def healthy_instances(self) -> list[Instance]:
        """Instances in rotation that answered ``/ping`` and are still running."""
        return [i for i in self.instances if i.healthy and not i.standby and i.process.returncode is None]

    def spare(self) -> Instance | None:
        """The warm spare, if one is ready."""
        return next((i for i in self.instances if i.standby and i.healthy and i.process.returncode is None), None)

    @property
    def wants_spare(self) -> bool:
        """Whether this variant keeps a warm spare (two or more instances)."""
        return self.desired_count >= SPARE_FROM_COUNT

    def pick(self, avoid: set[int] | frozenset[int] = frozenset()) -> Instance | None:
        """Round-robin over healthy instances (``avoid``: ports already tried for this request)."""
        healthy = [i for i in self.healthy_instances() if i.port not in avoid]
        if not healthy:
            return None
        self._next = (self._next + 1) % len(healthy)
        return healthy[self._next]

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Start every instance (and the spare) and wait until all answer ``/ping``.

        Raises :class:`DeploymentFailedError` otherwise. The spare starts with the others, not behind them: a
        process starting in the background would compete for the CPU while the new endpoint's first alarm periods
        judge its latency.
        """
        starting = [self._start_instance(session) for _ in range(self.desired_count)]
        if self.wants_spare:
            starting.append(self._start_instance(session, standby=True))
        try:
            await asyncio.gather(*starting)
        except BaseException:
            await self.stop()
            raise

    def _background(self, work: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.create_task(work, name=f"{what}-{self.endpoint}-{self.name}")
        self._monitors.add(task)
        task.add_done_callback(self._monitors.discard)

    async def _start_spare(self, session: aiohttp.ClientSession) -> None:
        """Start a warm spare (retrying with a delay: a failure here costs nothing that serves)."""
        failures = 0
        while not self._closing and self.wants_spare and self.spare() is None:
            try:
                await self._start_instance(session, standby=True)
                return
            except InstanceRefusedError as exc:  # the model's files changed on disk: nothing may start from them
                self._refused(exc)
                return
            except DeploymentFailedError as exc:
                failures += 1
                LOG.error("%s/%s: starting a spare failed: %s", self.endpoint, self.name, exc)
                await asyncio.sleep(min(_RESTART_DELAY_S * 2**failures, _MAX_RESTART_DELAY_S))

    async def _start_instance(self, session: aiohttp.ClientSession, standby: bool = False) -> Instance:
        instance_id = f"i-{self.name.lower()}-{next(self._counter):03d}"
        if self.model.manifest is not None:
            problem = await asyncio.to_thread(tree_problem, self.model.base_dir, self.model.manifest)
            if problem is not None:
                raise InstanceRefusedError(f"variant {self.name}: instance {instance_id} was not started: {problem}")
        log_path = self.log_dir / self.endpoint / self.name / f"{instance_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)
        env = child_environment(
            {
                **self.model.environment,
                C.SM_BASE_DIR_ENV: str(self.model.base_dir),
                C.SM_SUBMIT_DIRECTORY_ENV: str(self.model.code_dir),
                C.SM_PROGRAM_ENV: self.model.program,
                C.LISTEN_FD_ENV: str(sock.fileno()),
                "OMP_NUM_THREADS": "1",
                "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1",  # nothing but the archives' files in the model tree
            }
        )
        try:
            with log_path.open("ab") as log:
                process = await asyncio.create_subprocess_exec(
                    self.python,
                    "-m",
                    "safedeploy.instance.worker",
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    pass_fds=(sock.fileno(),),
                    preexec_fn=die_with_parent,  # the runtime's owner-only umask is inherited
                )
            instance = Instance(instance_id, sock.getsockname()[1], process, log_path, standby=standby)
        finally:
            sock.close()  # the child holds its own copy
        self.instances.append(instance)
        await self._wait_ready(instance, session)
        self._background(self._watch(instance, session), f"watch-{instance_id}")
        return instance

    async def _wait_ready(self, instance: Instance, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if instance.process.returncode is not None:
                raise DeploymentFailedError(
                    f"variant {self.name}: instance {instance.instance_id} exited with status "
                    f"{instance.process.returncode} before it was ready: {_last_line(instance.log_path)} "
                    f"(log: {instance.log_path})"
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{instance.url}/ping", timeout=aiohttp.ClientTimeout(total=2)) as reply:
                    if reply.status == 200:
                        instance.healthy = True
                        return
            await asyncio.sleep(0.05)
        raise DeploymentFailedError(
            f"variant {self.name}: instance {instance.instance_id} did not answer /ping within "
            f"{READY_TIMEOUT_S:.0f} s (log: {instance.log_path})"
        )

    async def _watch(self, instance: Instance, session: aiohttp.ClientSession) -> None:
        """Replace the instance if its process exits while the fleet is in use."""
        code = await instance.process.wait()
        instance.healthy = False
        if self._closing:
            return
        LOG.warning(
            "%s/%s: instance %s exited with %s (%s); replacing it",
            self.endpoint,
            self.name,
            instance.instance_id,
            code,
            _last_line(instance.log_path),
        )
        with contextlib.suppress(ValueError):
            self.instances.remove(instance)
        if instance.standby:  # the spare itself died: start another in the background
            self._background(self._start_spare(session), "spare")
            return
        spare = self.spare()
        if spare is not None:  # promote the warm spare at once; a new spare is started behind it
            spare.standby = False
            LOG.info("%s/%s: spare %s took over", self.endpoint, self.name, spare.instance_id)
            self._background(self._start_spare(session), "spare")
            return
        failures = 0
        while not self._closing:
            if failures:  # at once the first time (a killed instance is back within about a second), then back off
                delay = min(_RESTART_DELAY_S * 2 ** (failures - 1), _MAX_RESTART_DELAY_S)
                await asyncio.sleep(delay * (1 + random.random()))  # noqa: S311 - jitter
            try:
                await self._start_instance(session)
                return
            except InstanceRefusedError as exc:  # the model's files changed on disk: nothing may start from them
                self._refused(exc)
                return
            except DeploymentFailedError as exc:
                failures += 1
                LOG.error("%s/%s: replacement failed: %s", self.endpoint, self.name, exc)

    def _refused(self, exc: InstanceRefusedError) -> None:
        """An instance may not start from the model's files: say why, and let the control plane fail the endpoint."""
        LOG.error("%s/%s: %s", self.endpoint, self.name, exc)
        if self.on_refused is not None:
            self.on_refused(str(exc))

    async def scale(self, count: int, session: aiohttp.ClientSession) -> None:
        """Start or stop instances to reach ``count``."""
        self.desired_count = count
        serving = [i for i in self.instances if not i.standby]
        while len(serving) < count:
            serving.append(await self._start_instance(session))
        while len(serving) > count:
            victim = serving.pop()
            self.instances.remove(victim)
            await self._stop_instance(victim)
        spare = self.spare()
        if spare is not None and not self.wants_spare:
            self.instances.remove(spare)
            await self._stop_instance(spare)
        elif spare is None and self.wants_spare:
            self._background(self._start_spare(session), "spare")

    async def _stop_instance(self, instance: Instance) -> None:
        instance.healthy = False
        if instance.process.returncode is None:
            instance.process.terminate()
            try:
                await asyncio.wait_for(instance.process.wait(), timeout=10)
            except TimeoutError:
                instance.process.kill()
                await instance.process.wait()

    async def stop(self) -> None:
        """Stop every instance (in-flight requests finish first: the worker drains on SIGTERM)."""
        self._closing = True
        instances, self.instances = self.instances, []
        await asyncio.gather(*(self._stop_instance(i) for i in instances))
        for task in list(self._monitors):
            task.cancel()
