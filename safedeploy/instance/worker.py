"""One serving instance: a process that speaks the SageMaker inference-container contract.

``GET /ping`` answers 200 once the model is loaded; ``POST /invocations`` runs the user's handlers. The
handlers come from ``$SAGEMAKER_SUBMIT_DIRECTORY/$SAGEMAKER_PROGRAM`` and the model from
``$SAGEMAKER_BASE_DIR/model`` (``/opt/ml/model`` on SageMaker), as the framework containers resolve them:
``transform_fn(model, body, content_type, accept)`` if the module defines it, otherwise
``input_fn`` -> ``predict_fn`` -> ``output_fn``; a module defining both is refused, as both of SageMaker's
serving toolkits (sagemaker-inference, sagemaker-containers) refuse it. As they do, a request without ``Accept``
or with exactly ``*/*`` is answered in ``$SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`` (else application/json; the
pipeline's models set text/csv). An exception carrying an HTTP ``status``
(4xx/5xx) is answered with that status and its message; anything else is a 500 and a traceback on stderr.

The process listens on an inherited socket (``SAFEDEPLOY_LISTEN_FD``, so the runtime knows the port before
the child starts) or on ``127.0.0.1:$SAGEMAKER_BIND_TO_PORT``. If the model cannot be loaded it exits with
status 1 and the reason as the last line of stderr, which the runtime reports as the endpoint's
``FailureReason``.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import os
import random
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from safedeploy import constants as C
from safedeploy.faults import FAULT_AFTER, FAULT_ENV, Fault, FaultSpecError
from safedeploy.filemodes import use_private_umask
from safedeploy.http import eventloop
from safedeploy.http.loopback import loopback_only
from safedeploy.http.server import Handler, HttpServer, Request, Response, text_response

LOG = logging.getLogger("safedeploy.worker")

Transform = Callable[[bytes, str | None, str | None], tuple[bytes, str]]


class ModelLoadError(Exception):
    """The handler module or the model could not be loaded."""


@dataclass(frozen=True)
class ContainerSettings:
    """Where the container finds its model and code (SageMaker's serving environment variables)."""

    model_dir: Path
    code_dir: Path
    program: str
    default_accept: str = C.TOOLKIT_DEFAULT_ACCEPT
    """The answer type of a request without ``Accept`` or with ``*/*``, as the toolkits choose it."""

    @classmethod
    def from_environ(cls, environ: dict[str, str] | os._Environ[str]) -> ContainerSettings:
        """Read the SageMaker serving variables."""
        base = Path(environ.get(C.SM_BASE_DIR_ENV, "/opt/ml"))
        code = environ.get(C.SM_SUBMIT_DIRECTORY_ENV) or str(base / "code")
        program = environ.get(C.SM_PROGRAM_ENV)
        if not program:
            raise ModelLoadError(f"{C.SM_PROGRAM_ENV} is not set: name the handler module, e.g. inference.py")
        default_accept = environ.get(C.SM_DEFAULT_ACCEPT_ENV) or C.TOOLKIT_DEFAULT_ACCEPT
        return cls(model_dir=base / "model", code_dir=Path(code), program=program, default_accept=default_accept)


def _import_program(settings: ContainerSettings) -> ModuleType:
    path = settings.code_dir / settings.program
    if not path.is_file():
        raise ModelLoadError(f"handler module {path} does not exist")
    sys.path.insert(0, str(settings.code_dir))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def load_transform(settings: ContainerSettings) -> Transform:
    """Import the handler module, load the model with its ``model_fn`` and return the request path."""
    try:
        module = _import_program(settings)
        model_fn = getattr(module, "model_fn", None)
        if model_fn is None:
            raise ModelLoadError(f"{settings.program} defines no model_fn")
        model = model_fn(str(settings.model_dir))
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"loading the model failed: {type(exc).__name__}: {exc}") from exc
    transform_fn = getattr(module, "transform_fn", None)
    steps = [getattr(module, name, None) for name in ("input_fn", "predict_fn", "output_fn")]
    if transform_fn is not None and any(step is not None for step in steps):
        raise ModelLoadError(
            f"{settings.program} defines transform_fn and input_fn/predict_fn/output_fn: SageMaker's serving "
            "toolkits refuse a module with both, so define one or the other"
        )
    if transform_fn is None and any(step is None for step in steps):
        raise ModelLoadError(f"{settings.program} defines neither transform_fn nor input_fn/predict_fn/output_fn")
    input_fn, predict_fn, output_fn = steps

    def transform(body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        if not accept or accept == "*/*":  # both toolkits: no Accept, or exactly */*, is the default type
            accept = settings.default_accept
        if transform_fn is not None:
            return _as_response(transform_fn(model, body, content_type, accept), accept)
        assert input_fn and predict_fn and output_fn  # noqa: S101 - checked above
        return _as_response(output_fn(predict_fn(input_fn(body, content_type), model), accept), accept)

    return transform


def _as_response(result: Any, accept: str | None) -> tuple[bytes, str]:
    """Handlers may return ``(body, content_type)`` or a body alone (then the content type is ``Accept``)."""
    body, content_type = result if isinstance(result, tuple) else (result, accept or "application/octet-stream")
    return (body.encode("utf-8") if isinstance(body, str) else bytes(body)), content_type


def error_status(exc: BaseException) -> int:
    """The HTTP status an exception carries (``status`` or ``status_code``, as the toolkit's errors do), else 500."""
    for attribute in ("status", "status_code"):
        value = getattr(exc, attribute, None)
        if isinstance(value, int) and 400 <= value <= 599:
            return value
    return 500


def build_handler(transform: Transform, fault: Fault | None = None) -> Handler:
    """The container's HTTP handler: ``GET /ping`` and ``POST /invocations`` (with a game-day ``fault`` acted out)."""
    ping = Response(200, b"\n", [("Content-Type", "application/json")])
    chance = random.Random()  # noqa: S311 - fault injection, not security
    served = 0

    async def handle(request: Request) -> Response:
        nonlocal served
        if request.path == "/invocations":
            if request.method != "POST":
                return text_response(405, f"{request.method} /invocations: use POST")
            served += 1
            if fault is not None and served > FAULT_AFTER:
                if fault.kind == "crash":
                    print(f"injected fault (game day): crash after {FAULT_AFTER} calls", file=sys.stderr, flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)
                if fault.kind == "latency":
                    await asyncio.sleep(fault.latency_seconds)
                if fault.kind == "errors" and chance.random() < fault.error_share:
                    return text_response(500, f"injected fault (game day): {fault}")
            try:
                payload, content_type = transform(
                    request.body, request.headers.get("content-type"), request.headers.get("accept")
                )
            except Exception as exc:
                status = error_status(exc)
                message = str(getattr(exc, "message", None) or exc) or type(exc).__name__
                if status >= 500:
                    traceback.print_exc(file=sys.stderr)
                return text_response(status, message)
            return Response(200, payload, [("Content-Type", content_type)])
        if request.path == "/ping":
            return ping if request.method in ("GET", "HEAD") else text_response(405, "use GET /ping")
        return text_response(404, f"no route {request.path}: this container serves GET /ping and POST /invocations")

    return handle


def _listening_socket() -> socket.socket:
    inherited = os.environ.get(C.LISTEN_FD_ENV)
    if inherited:
        return socket.socket(fileno=int(inherited))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(os.environ.get(C.SM_BIND_PORT_ENV, "8080"))))
    sock.listen(128)
    return sock


async def serve(transform: Transform, sock: socket.socket, fault: Fault | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then finish in-flight requests and exit."""
    handler = loopback_only(build_handler(transform, fault))
    server = HttpServer(handler, max_body=C.INVOKE_MAX_PAYLOAD_BYTES + 64 * 1024)
    await server.start(sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.shutdown(timeout=10)


def main() -> int:
    """Entry point of a serving instance process."""
    use_private_umask()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(process)d %(levelname)s %(message)s")
    try:
        fault = Fault.parse(os.environ.get(FAULT_ENV))
        if fault is not None and fault.kind == "load-failure":
            raise ModelLoadError("injected fault (game day): load-failure")
        transform = load_transform(ContainerSettings.from_environ(os.environ))
    except (ModelLoadError, FaultSpecError) as exc:
        print(f"model load failed: {exc}", file=sys.stderr, flush=True)
        return 1
    if fault is not None:
        LOG.warning("game-day fault active on this instance: %s", fault)
    # What is loaded now (interpreter, libraries, the model) lives as long as the process: take it out of the
    # collector's generations, so a full collection while serving does not walk it. A fresh instance's first full
    # collection otherwise pauses one request by tens of milliseconds, which a canary's 10 % step reads as green's
    # p99 (pre-fork servers do the same: gc.freeze).
    gc.collect()
    gc.freeze()
    eventloop.run(serve(transform, _listening_socket(), fault))
    return 0


if __name__ == "__main__":
    sys.exit(main())
