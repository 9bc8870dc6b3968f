"""The local runtime process: control plane, InvokeEndpoint, data capture, metrics and the API gateway.

``python -m safedeploy.runtime.main --state-dir DIR`` serves two 127.0.0.1 ports, the runtime API (SageMaker
and SageMaker Runtime) and the API gateway, and writes ``DIR/runtime/runtime.json`` (pid and URLs) once both
listen. SIGTERM or SIGINT stops it gracefully: listeners close, in-flight requests finish, every buffered
capture record is written, serving instances stop. Its state (models, configs, endpoints, routes, API keys)
survives a restart, and endpoints that were serving are started again. Every runtime API request must be
signed (SigV4) with the state directory's credentials, ``DIR/runtime/credentials.json`` (see
:mod:`~safedeploy.runtime.auth`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web

from safedeploy import constants as C
from safedeploy.atomic import atomic_write_text
from safedeploy.filemodes import secure_state_dir, use_private_umask
from safedeploy.http import credentials as runtime_credentials
from safedeploy.http import eventloop
from safedeploy.http.sigv4 import Verifier
from safedeploy.locking import LockHeldError, exclusive_lock
from safedeploy.metric_log import Datum, MetricLog
from safedeploy.reserve import ensure_reserve
from safedeploy.runtime.api import RuntimeApi
from safedeploy.runtime.apigateway.gateway import Gateway, new_api_key
from safedeploy.runtime.auth import authenticator
from safedeploy.runtime.cloudwatch.metrics import MetricStore
from safedeploy.runtime.codedeploy.leases import LeaseKeeper
from safedeploy.runtime.console.charts import console_charts
from safedeploy.runtime.console.handlers import ConsoleRoutes, is_console_request
from safedeploy.runtime.paths import RuntimePaths
from safedeploy.runtime.sagemaker.control import ControlPlane
from safedeploy.runtime.sagemaker_runtime.capture import CaptureWriter
from safedeploy.runtime.sagemaker_runtime.instance_client import InstanceClient
from safedeploy.runtime.sagemaker_runtime.invoke import Invoker
from safedeploy.runtime.scheduled_children import monitoring_children, probe_children, run_scheduled_children
from safedeploy.runtime.server import RuntimeAppRunner
from safedeploy.runtime.state import plans_without_key
from safedeploy.runtime.state_file import load_state
from safedeploy.runtime.supervisor import EXIT_CONFIG
from safedeploy.store import LocalArtifactStore

LOG = logging.getLogger("safedeploy.runtime")
CAPTURE_FLUSH_INTERVAL_S = 1.0
FD_RESERVE = 2048
"""File descriptors kept back from the gateway's connections for everything else the runtime does."""
RESTORE_TIMEOUT_S = 60.0
"""How long a starting runtime waits for the endpoints it brings back before it announces itself."""


async def _flush_capture(writer: CaptureWriter, wake: asyncio.Event, metric_log: MetricLog | None = None) -> None:
    published: dict[tuple[str, str], int] = {}
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), CAPTURE_FLUSH_INTERVAL_S)
        wake.clear()
        try:
            await asyncio.to_thread(writer.flush)
        except Exception:
            LOG.exception("writing capture data failed; the records stay buffered and are retried")
        if metric_log is not None and writer.dropped != published:
            published = await asyncio.to_thread(_publish_drops, metric_log, writer, published)


def _publish_drops(
    metric_log: MetricLog, writer: CaptureWriter, published: dict[tuple[str, str], int]
) -> dict[tuple[str, str], int]:
    """``CaptureRecordsDropped`` per endpoint and variant since the last publication; return what is published."""
    dropped = dict(writer.dropped)
    now = datetime.now(UTC)
    data = [
        Datum(
            C.RUNTIME_METRICS_NAMESPACE,
            "CaptureRecordsDropped",
            (("EndpointName", endpoint), ("VariantName", variant)),
            now,
            float(count - published.get((endpoint, variant), 0)),
            "Count",
        )
        for (endpoint, variant), count in dropped.items()
        if count > published.get((endpoint, variant), 0)
    ]
    try:
        metric_log.put(data)
    except OSError as exc:  # a full disk: kept in memory and published once it can be
        LOG.warning("cannot publish CaptureRecordsDropped: %s", exc)
        return published
    return dropped


async def _run_monitoring_schedules(paths: RuntimePaths, stop: asyncio.Event) -> None:
    """Start each data-quality or model-quality schedule's due execution as a child process."""
    await run_scheduled_children(paths, stop, monitoring_children(paths))


async def _run_probe_schedules(paths: RuntimePaths, stop: asyncio.Event) -> None:
    """Start each synthetic probe's due run as a child process, on its own clock."""
    await run_scheduled_children(paths, stop, probe_children(paths))


def _gateway_connection_limit() -> int:
    """Raise the open-files limit to its hard cap; the gateway may use all of it but :data:`FD_RESERVE`.

    A flood of idle connections on the REST API then sheds the gateway's oldest idle connections instead of
    exhausting the descriptors the control plane, the instances' connections, logs and state files need.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return max(256, soft - FD_RESERVE)


class PortTakenError(Exception):
    """The runtime cannot listen on its ports."""


def _ports(paths: RuntimePaths, runtime_port: int, gateway_port: int) -> tuple[int, int]:
    """The ports to listen on: those asked for, else those used before (so URLs survive restarts), else any."""
    try:
        before = json.loads(paths.ports.read_text("utf-8"))
        kept = (int(before["runtime_port"]), int(before["gateway_port"]))
    except (OSError, ValueError, KeyError, TypeError):
        kept = (0, 0)
    return runtime_port or kept[0], gateway_port or kept[1]


async def serve(paths: RuntimePaths, region: str, account_id: str, runtime_port: int, gateway_port: int) -> None:
    """Run the runtime until SIGTERM/SIGINT."""
    paths.root.mkdir(parents=True, exist_ok=True)
    if not ensure_reserve(paths.reserve):
        LOG.error("the disk is full: no room for the %s reserve (critical writes are unprotected)", paths.reserve)
    store = LocalArtifactStore(paths.store_root)
    loaded = load_state(paths.state, keep_aside=True)  # a corrupt state file: its last good copy, logged
    state = loaded.state
    for plan in plans_without_key(state):  # a state saved when models shared one key: each gets its own
        state.ApiKeys[plan] = new_api_key()
        LOG.warning("usage plan %s had no API key of its own (the state shared one): issued a new one", plan)
    verifier = Verifier(runtime_credentials.load_or_create(paths.credentials), region)
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector) as session:
        control = ControlPlane(
            paths.state, store, paths.root, region, account_id, session, state, reserve=paths.reserve
        )
        control.save()
        metrics = MetricStore()
        capture = CaptureWriter(store)
        flush_now = asyncio.Event()
        instances = InstanceClient()
        invoker = Invoker(control, instances, metrics, capture, flush_now)
        gateway = Gateway(invoker, region)
        gateway.configure(state.Routes, state.ApiKeys)
        metric_log = MetricLog(paths.state_dir / "metrics")
        leases = LeaseKeeper(
            paths.leases,
            paths.state_dir,
            control,
            lambda: gateway.configure(state.Routes, state.ApiKeys),
            paths.reserve,
        )
        leases.load()
        api = RuntimeApi(
            control,
            invoker,
            metrics,
            lambda: gateway.configure(state.Routes, state.ApiKeys),
            metric_log,
            leases,
        )
        api.state_recovery = loaded.recovery
        # behind the framing guard: a body it cannot read is a 400 too; the console's routes check their own session
        app = api.app(authenticator(verifier, own_auth=is_console_request))
        ConsoleRoutes(paths.state_dir, state, metrics, charts=lambda spec: console_charts(spec, metrics)).add_to(app)
        runner = RuntimeAppRunner(app, access_log=None)  # answers clients that half-close, too
        await runner.setup()
        runtime_port, gateway_port = _ports(paths, runtime_port, gateway_port)
        site = web.TCPSite(runner, "127.0.0.1", runtime_port, shutdown_timeout=15)
        gateway_server = gateway.server(max_connections=_gateway_connection_limit())
        try:
            await site.start()
            ports = [
                site._server.sockets[0].getsockname()[1],  # type: ignore[union-attr]
                await gateway_server.start(host="127.0.0.1", port=gateway_port),
            ]
        except OSError as exc:
            await runner.cleanup()
            raise PortTakenError(
                f"cannot listen on 127.0.0.1:{runtime_port} (runtime API) and :{gateway_port} (gateway): {exc}; "
                f"another program holds a port this runtime used before ({paths.ports}): stop it, or set "
                "serving.runtime_port / serving.gateway_port (0 picks free ones)"
            ) from None
        atomic_write_text(paths.ports, json.dumps({"runtime_port": ports[0], "gateway_port": ports[1]}))
        flusher = asyncio.create_task(_flush_capture(capture, flush_now, metric_log))
        await control.restore()
        await control.settled(RESTORE_TIMEOUT_S)  # `runtime start` returns once the endpoints serve again

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        scheduler = asyncio.create_task(_run_monitoring_schedules(paths, stop))
        probes = asyncio.create_task(_run_probe_schedules(paths, stop))
        watchdog = asyncio.create_task(leases.watch(stop))
        info = {
            "pid": os.getpid(),
            "runtime_url": f"http://127.0.0.1:{ports[0]}",
            "gateway_url": f"http://127.0.0.1:{ports[1]}",
            "region": region,
            "account_id": account_id,
        }
        atomic_write_text(paths.info, json.dumps(info, indent=2))
        LOG.info("runtime %s listening: runtime API %s, gateway %s", os.getpid(), *ports)
        try:
            await stop.wait()
        finally:
            LOG.info("stopping: draining requests")
            await gateway_server.shutdown(timeout=15)  # stops accepting, lets in-flight requests finish
            await runner.cleanup()
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            with contextlib.suppress(Exception):
                await asyncio.wait_for(scheduler, 15)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(probes, 15)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watchdog, 5)
            await asyncio.to_thread(capture.flush)
            instances.close()
            await control.close()
            paths.info.unlink(missing_ok=True)
            LOG.info("stopped; %d capture records written in all", capture.written_records)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the runtime process."""
    parser = argparse.ArgumentParser(prog="safedeploy-runtime", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--account-id", default="000000000000")
    parser.add_argument("--runtime-port", type=int, default=0)
    parser.add_argument("--gateway-port", type=int, default=0)
    args = parser.parse_args(argv)
    use_private_umask()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    paths = RuntimePaths(args.state_dir.resolve())
    secure_state_dir(paths.state_dir)
    try:
        with exclusive_lock(paths.lock, {"role": "runtime"}):
            eventloop.run(serve(paths, args.region, args.account_id, args.runtime_port, args.gateway_port))
    except PortTakenError as exc:
        LOG.error("%s", exc)
        return EXIT_CONFIG
    except LockHeldError as exc:
        LOG.error("another runtime (pid %s) already serves %s", exc.holder.get("pid", "?"), paths.state_dir)
        return 1
    except runtime_credentials.CredentialsError as exc:
        LOG.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
