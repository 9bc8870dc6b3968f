"""Start, find and stop the local runtime process, and build AWS clients that talk to it.

:func:`ensure_running` starts the runtime under its supervisor (``python -m safedeploy.runtime.supervisor``,
which restarts it after a crash on the same ports) in its own session (it outlives the command that started it,
as ``make deploy`` needs) unless one already serves the state directory, and waits until it answers with its
endpoints restored. :func:`stop` sends SIGTERM to the supervisor (or to a runtime running without one) and
waits for the graceful shutdown. The boto3 clients made by :func:`sagemaker_client` and :func:`runtime_client`
are ordinary boto3 clients with ``endpoint_url`` set, signing with the state directory's credentials
(``<state>/runtime/credentials.json``), as do the ``/_local/*`` calls (:func:`~safedeploy.http.sigv4.sign`):
the runtime answers nothing unsigned.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from safedeploy import constants as C
from safedeploy.errors import SafeDeployError
from safedeploy.http import credentials as runtime_credentials
from safedeploy.http.credentials import LocalCredentials
from safedeploy.http.sigv4 import sign
from safedeploy.local.routes import api_route
from safedeploy.processes import pid_alive
from safedeploy.runtime.paths import RuntimePaths
from safedeploy.runtime.supervisor import supervisor_file

if TYPE_CHECKING:
    from mypy_boto3_codedeploy import CodeDeployClient
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

    from safedeploy.spec import PipelineSpec

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0


class LocalRuntimeError(SafeDeployError):
    """The local runtime could not be started, reached or stopped, or refused a request (``status``)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RuntimeInfo:
    """How to reach a running runtime."""

    pid: int
    runtime_url: str
    gateway_url: str
    region: str
    account_id: str
    credentials: LocalCredentials | None = field(default=None, repr=False)
    """The key pair requests to the runtime are signed with (from ``<state>/runtime/credentials.json``)."""

    def signing_credentials(self) -> LocalCredentials:
        """The credentials, which a runtime found by :func:`read_info` always has."""
        if self.credentials is None:
            raise LocalRuntimeError(f"no credentials for the runtime at {self.runtime_url}")
        return self.credentials


def read_info(paths: RuntimePaths) -> RuntimeInfo | None:
    """The running runtime's connection info (with its credentials), or ``None`` if none is running."""
    try:
        document = json.loads(paths.info.read_text("utf-8"))
        info = RuntimeInfo(**document)
    except (OSError, ValueError, TypeError):
        return None
    if not pid_alive(info.pid):
        return None
    try:
        info = replace(info, credentials=runtime_credentials.load(paths.credentials))
    except runtime_credentials.CredentialsError as exc:
        raise LocalRuntimeError(f"cannot call the runtime (pid {info.pid}): {exc}") from None
    return info if _healthy(info) else None


def _healthy(info: RuntimeInfo) -> bool:
    url = f"{info.runtime_url}/_local/health"
    request = urllib.request.Request(url, headers=sign(info.signing_credentials(), info.region, "GET", url))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=2) as reply:  # noqa: S310 - loopback
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def ensure_running(state_dir: Path, region: str, account_id: str, ports: tuple[int, int] = (0, 0)) -> RuntimeInfo:
    """Return the running runtime for ``state_dir``, starting one (supervised) if needed.

    ``ports``: the runtime API's and the gateway's (0: those used before, else free ones).
    """
    paths = RuntimePaths(state_dir.resolve())
    info = read_info(paths)
    if info is not None:
        return info
    paths.root.mkdir(parents=True, exist_ok=True)
    supervisor = _supervisor_pid(paths)
    process: subprocess.Popen[bytes] | None = None
    if supervisor is None:  # none at all (a supervisor restarting its runtime is waited for instead)
        paths.info.unlink(missing_ok=True)
        with paths.log.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "safedeploy.runtime.supervisor", "--state-dir", str(paths.state_dir),
                 "--region", region, "--account-id", account_id,
                 "--runtime-port", str(ports[0]), "--gateway-port", str(ports[1])],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # outlives `make deploy`; `safedeploy runtime stop` ends it
            )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = read_info(paths)
        if info is not None:
            return info
        if process is not None and process.poll() is not None:
            info = read_info(paths)  # lost a race with another starter that won: use its runtime
            if info is not None:
                return info
            raise LocalRuntimeError(f"the local runtime exited with status {process.returncode}; see {paths.log}")
        time.sleep(0.05)
    if process is not None:
        process.terminate()
    raise LocalRuntimeError(f"the local runtime did not start within {START_TIMEOUT_S:.0f} s; see {paths.log}")


def _supervisor_pid(paths: RuntimePaths) -> int | None:
    try:
        pid = int(json.loads(supervisor_file(paths.state_dir).read_text("utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if pid_alive(pid) else None


def stop(state_dir: Path) -> int | None:
    """Stop the runtime gracefully (and its supervisor); return the runtime's pid, or ``None`` if none was running."""
    paths = RuntimePaths(state_dir.resolve())
    info = read_info(paths)
    supervisor = _supervisor_pid(paths)
    if info is None and supervisor is None:
        return None
    pids = [pid for pid in (supervisor, info.pid if info else None) if pid is not None]
    os.kill(pids[0], signal.SIGTERM)  # the supervisor forwards it; a runtime without one stops by itself
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ChildProcessError):  # reap it if it is our child
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    alive = [pid for pid in pids if pid_alive(pid)]
    if alive:
        raise LocalRuntimeError(f"the local runtime (pids {alive}) did not stop within {STOP_TIMEOUT_S:.0f} s")
    return info.pid if info else supervisor


def _client_kwargs(info: RuntimeInfo) -> dict[str, Any]:
    credentials = info.signing_credentials()
    return {
        "endpoint_url": info.runtime_url,
        "region_name": info.region,
        "config": Config(retries={"max_attempts": 1, "mode": "standard"}),
        "aws_access_key_id": credentials.access_key_id,
        "aws_secret_access_key": credentials.secret_access_key,
    }


def sagemaker_client(info: RuntimeInfo) -> SageMakerClient:
    """A boto3 ``sagemaker`` client for the local control plane."""
    return boto3.client("sagemaker", **_client_kwargs(info))


def codedeploy_client(info: RuntimeInfo) -> CodeDeployClient:
    """A boto3 ``codedeploy`` client for the local lifecycle-hook status API."""
    return boto3.client("codedeploy", **_client_kwargs(info))


def runtime_client(info: RuntimeInfo) -> SageMakerRuntimeClient:
    """A boto3 ``sagemaker-runtime`` client for the local InvokeEndpoint API."""
    return boto3.client("sagemaker-runtime", **_client_kwargs(info))


def delete_route(info: RuntimeInfo, name: str, lease: str | None = None) -> None:
    """Remove a REST API route of the local gateway (nothing happens if it does not exist).

    ``lease``: the deployment whose lease fences this change (:mod:`safedeploy.runtime.codedeploy.leases`).
    """
    _local_call(info, "DELETE", f"/_local/routes/{name}", None, f"route {name}", _lease_headers(lease))


def _lease_headers(lease: str | None) -> dict[str, str]:
    return {} if lease is None else {C.LEASE_HEADER: lease}


def local_call(info: RuntimeInfo, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call a ``/_local/...`` resource of the runtime; raise :class:`LocalRuntimeError` with its answer if refused."""
    return _local_call(info, method, path, body, path)


def local_get(info: RuntimeInfo, path: str) -> Any:
    """GET a ``/_local/...`` resource of the runtime and parse its JSON."""
    return _local_call(info, "GET", path, None, path)


def _local_call(
    info: RuntimeInfo,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    what: str,
    headers: dict[str, str] | None = None,
) -> Any:
    url = f"{info.runtime_url}{path}"
    data = None if body is None else json.dumps(body).encode()
    signed = sign(
        info.signing_credentials(),
        info.region,
        method,
        url,
        data,
        {"Content-Type": "application/json", **(headers or {})},
    )
    request = urllib.request.Request(url, data=data, method=method, headers=signed)  # noqa: S310 - loopback URL
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310
            return json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise LocalRuntimeError(
            f"the runtime refused {what}: {exc.read().decode(errors='replace')}", status=exc.code
        ) from None
    except OSError as exc:
        raise LocalRuntimeError(f"the runtime at {info.runtime_url} did not answer ({what}): {exc}") from None


def console_link(info: RuntimeInfo, spec: PipelineSpec) -> str:
    """A one-time link to the runtime's live console for ``spec``'s pipeline (``safedeploy console``)."""
    document = {
        "spec": spec.model_dump(mode="json"),
        "production_route": api_route(spec.model_name, C.PRD_STAGE)[0],
        "dev_route": api_route(spec.model_name, C.DEV_STAGE)[0],
    }
    reply = _local_call(info, "POST", "/_local/console/tokens", document, "a console link")
    return f"{info.runtime_url}{reply['path']}"


def put_route(info: RuntimeInfo, name: str, route: dict[str, Any], lease: str | None = None) -> None:
    """Create or replace a REST API route of the local gateway (``lease``: as for :func:`delete_route`)."""
    _local_call(info, "PUT", f"/_local/routes/{name}", route, f"route {name}", _lease_headers(lease))
