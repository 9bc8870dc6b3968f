"""The console's HTTP routes on the runtime API's port, kept thin: sessions, views and decisions do the work.

* ``POST /_local/console/tokens`` (SigV4-signed like every ``/_local`` call: only the state directory's key
  holder, ``safedeploy console``, can ask): body ``{"spec": {...}, "production_route": ..., "dev_route": ...}``;
  answers a one-time link ``/console?token=...`` for that pipeline.
* ``GET /console?token=...``: redeems the token for a session cookie (HttpOnly, SameSite=Strict, path
  ``/console``) and redirects to ``/console``, so the token leaves the address bar and the history. A spent
  token is refused (403) unless the request already carries a live session, which is sent to ``/console`` with
  nothing new granted.
* ``GET /console``, ``/console/static/{file}``, ``/console/plotly.min.js`` (plotly.js from the installed
  ``plotly`` package, no CDN), ``GET /console/api/state`` (the page's JSON, polled): need the session cookie.
* ``POST /console/api/decision`` (``{"execution_id", "outcome": "Approved"|"Rejected", "comment"}``): needs the
  session cookie, the session's CSRF token in ``X-Console-CSRF``, and an ``Origin`` that is this loopback runtime;
  answers 202 and starts the CLI's decision (:mod:`~safedeploy.runtime.console.decisions`).

These routes are not SigV4-signed (a browser cannot sign): the front door
(:func:`~safedeploy.runtime.auth.authenticator`) still refuses a ``Host`` that is not loopback, and lets only
requests routed here (:func:`is_console_request`) past the signature check. Every refusal is a 4xx naming the
problem and the way back: run ``make console`` for a new link.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import ValidationError

from safedeploy import constants as C
from safedeploy.errors import ExecutionError
from safedeploy.http.loopback import host_problem
from safedeploy.runner import ExecutionStore
from safedeploy.runtime.cloudwatch.metrics import MetricStore
from safedeploy.runtime.console.decisions import DecisionConflictError, DecisionLauncher, Outcome, comment_problem
from safedeploy.runtime.console.sessions import ConsoleAuthError, ConsoleSessions, Session
from safedeploy.runtime.console.views import ConsoleSubject, console_state
from safedeploy.runtime.state import RuntimeState
from safedeploy.spec import PipelineSpec

LOG = logging.getLogger(__name__)
CHARTS_MAX_AGE = timedelta(seconds=5)
ROUTE_PREFIX = "console:"
"""Names of the routes that authenticate with the console session instead of SigV4."""
CSRF_HEADER = "X-Console-CSRF"
STATIC_FILES = {"console.js": "text/javascript", "console.css": "text/css"}
_EXECUTION_ID = re.compile(r"^[0-9a-f][0-9a-f-]{7,35}$")
_NEW_LINK = "run `make console` (or `safedeploy console`) for a new link"
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}
ChartSource = Callable[[PipelineSpec], dict[str, Any]]
"""The page's monitoring charts from the pipeline's records (``{"figures": {name: Plotly JSON},
"canary_success_percent": ...}``); called in a worker thread."""


def is_console_request(request: web.Request) -> bool:
    """Whether the request is routed to a console handler (which checks the console session itself)."""
    name = request.match_info.route.name
    return name is not None and name.startswith(ROUTE_PREFIX)


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def _plotly_js() -> bytes:
    from plotly.offline import get_plotlyjs

    script: str = get_plotlyjs()
    return script.encode("utf-8")


class ConsoleRoutes:
    """The console's handlers over the runtime's state, metrics and the console's sessions."""

    def __init__(
        self,
        state_dir: Path,
        runtime: RuntimeState,
        metrics: MetricStore,
        sessions: ConsoleSessions[ConsoleSubject] | None = None,
        decisions: DecisionLauncher | None = None,
        charts: ChartSource | None = None,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.runtime = runtime
        self.metrics = metrics
        self.sessions: ConsoleSessions[ConsoleSubject] = sessions or ConsoleSessions()
        self.decisions = decisions or DecisionLauncher(self.state_dir / "runtime" / "console")
        self.charts = charts
        self._plotly: bytes | None = None
        self._charts_cache: dict[str, tuple[datetime, dict[str, Any]]] = {}

    def add_to(self, app: web.Application) -> None:
        """Register the routes (before the app starts)."""
        app.router.add_post("/_local/console/tokens", self.issue_token)
        app.router.add_get("/console", self.page, name=f"{ROUTE_PREFIX}page")
        app.router.add_get("/console/plotly.min.js", self.plotly, name=f"{ROUTE_PREFIX}plotly")
        app.router.add_get("/console/static/{file}", self.static, name=f"{ROUTE_PREFIX}static")
        app.router.add_get("/console/api/state", self.state, name=f"{ROUTE_PREFIX}state")
        app.router.add_post("/console/api/decision", self.decide, name=f"{ROUTE_PREFIX}decision")

    # --- the signed side: a new link ---------------------------------------------------------------------------

    async def issue_token(self, request: web.Request) -> web.Response:
        """A one-time link for the pipeline whose spec the (signed) request carries."""
        try:
            document = json.loads(await request.read() or b"{}")
            if not isinstance(document, dict):
                raise ValueError("the body is not a JSON object")
            spec = PipelineSpec.model_validate(document.get("spec"))
            production_route, dev_route = str(document["production_route"]), str(document["dev_route"])
        except (ValueError, UnicodeDecodeError, KeyError, ValidationError) as exc:
            return web.json_response({"message": f"bad console link request: {exc}"}, status=400)
        if spec.state_dir.resolve() != self.state_dir:
            message = f"this runtime serves {self.state_dir}, not the spec's state directory {spec.state_dir}"
            return web.json_response({"message": message}, status=400)
        token, expires = self.sessions.issue_token(ConsoleSubject(spec, production_route, dev_route))
        return web.json_response({"path": f"/console?token={token}", "expires_at": expires.isoformat()})

    # --- the browser side -------------------------------------------------------------------------------------

    def _cookie_name(self, request: web.Request) -> str:
        return f"safedeploy_console_{request.url.port or 80}"

    def _session(self, request: web.Request) -> Session[ConsoleSubject]:
        return self.sessions.session(request.cookies.get(self._cookie_name(request)))

    async def page(self, request: web.Request) -> web.StreamResponse:
        """The page; with ``?token=`` first exchange the token for a session and come back without it."""
        token = request.query.get("token")
        if token is not None:
            try:
                session = self.sessions.redeem(token)
            except ConsoleAuthError as exc:
                try:  # the link opened again where its session already is (history, a second click): the page
                    self._session(request)
                except ConsoleAuthError:
                    return _refused_page(403, exc.reason)
                return web.Response(status=303, headers={**_SECURITY_HEADERS, "Location": "/console"})
            found = web.Response(status=303, headers={**_SECURITY_HEADERS, "Location": "/console"})
            found.set_cookie(
                self._cookie_name(request),
                session.session_id,
                max_age=int((session.expires_at - datetime.now(UTC)).total_seconds()),
                path="/console",
                httponly=True,
                samesite="Strict",
            )
            return found
        try:
            session = self._session(request)
        except ConsoleAuthError as exc:
            return _refused_page(401, exc.reason)
        text = _static("console.html").decode("utf-8")
        text = text.replace("{{CSRF}}", html.escape(session.csrf_token, quote=True))
        text = text.replace("{{POLL_MS}}", str(C.CONSOLE_POLL_INTERVAL_MS))
        text = text.replace("{{PIPELINE}}", html.escape(session.subject.spec.pipeline_name))
        return web.Response(text=text, content_type="text/html", headers=_SECURITY_HEADERS)

    async def static(self, request: web.Request) -> web.Response:
        """The page's script and style (package data)."""
        try:
            self._session(request)
        except ConsoleAuthError as exc:
            return _refused_json(401, exc.reason)
        name = request.match_info["file"]
        if name not in STATIC_FILES:
            return _refused_json(404, f"no console file {name!r}")
        return web.Response(body=_static(name), content_type=STATIC_FILES[name], headers=_SECURITY_HEADERS)

    async def plotly(self, request: web.Request) -> web.Response:
        """plotly.js, from the installed ``plotly`` package (read once)."""
        try:
            self._session(request)
        except ConsoleAuthError as exc:
            return _refused_json(401, exc.reason)
        if self._plotly is None:
            self._plotly = await asyncio.to_thread(_plotly_js)
        headers = {**_SECURITY_HEADERS, "Cache-Control": "private, max-age=3600"}
        return web.Response(body=self._plotly, content_type="text/javascript", headers=headers)

    async def state(self, request: web.Request) -> web.Response:
        """The page's JSON: stages, approval, traffic, ledger, the console's decision, the charts."""
        try:
            subject = self._session(request).subject
        except ConsoleAuthError as exc:
            return _refused_json(401, exc.reason)
        document = await asyncio.to_thread(console_state, subject, self.runtime, self.metrics)
        started = self.decisions.latest(subject.spec.pipeline_name)
        document["decision"] = started.view() if started is not None else None
        document.update(await self._charts(subject.spec))
        return web.json_response(document, headers=_SECURITY_HEADERS)

    async def _charts(self, spec: PipelineSpec) -> dict[str, Any]:
        """The charts, recomputed at most every :data:`CHARTS_MAX_AGE` (they read the registry and monitoring)."""
        if self.charts is None:
            return {"figures": {}, "canary_success_percent": None}
        cached = self._charts_cache.get(spec.pipeline_name)
        now = datetime.now(UTC)
        if cached is None or now - cached[0] > CHARTS_MAX_AGE:
            try:
                charts = await asyncio.to_thread(self.charts, spec)
            except Exception as exc:  # a record it cannot read: the page shows why, and everything else
                LOG.warning("console charts of %s: %s", spec.pipeline_name, exc, exc_info=True)
                charts = {"figures": {}, "canary_success_percent": None, "charts_error": f"charts unavailable: {exc}"}
            cached = (now, charts)
            self._charts_cache[spec.pipeline_name] = cached
        return cached[1]

    async def decide(self, request: web.Request) -> web.Response:
        """Approve or reject the execution waiting at the gate, as ``safedeploy approve|reject`` does."""
        try:
            session = self._session(request)
        except ConsoleAuthError as exc:
            return _refused_json(401, exc.reason)
        try:
            _check_origin(request)
            self.sessions.check_csrf(session, request.headers.get(CSRF_HEADER))
        except ConsoleAuthError as exc:
            return _refused_json(403, exc.reason)
        try:
            document = json.loads(await request.read())
            if not isinstance(document, dict):
                raise ValueError("the body is not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            return _refused_json(400, f"the decision is not JSON: {exc}")
        execution_id, outcome, comment = document.get("execution_id"), document.get("outcome"), document.get("comment")
        if outcome not in ("Approved", "Rejected"):
            return _refused_json(400, f"outcome must be 'Approved' or 'Rejected', not {outcome!r}")
        if not isinstance(comment, str) or not comment.strip():
            return _refused_json(400, "a decision needs a comment saying why (it is recorded with the decision)")
        if problem := comment_problem(comment):
            return _refused_json(400, problem)
        if not isinstance(execution_id, str) or not _EXECUTION_ID.match(execution_id):
            return _refused_json(400, f"execution_id {execution_id!r} is not an execution id")
        spec = session.subject.spec
        store = ExecutionStore(spec.state_dir.resolve() / "executions", spec.pipeline_name)
        try:
            execution = await asyncio.to_thread(store.get, execution_id)
        except ExecutionError as exc:
            return _refused_json(404, str(exc))
        if execution.awaiting_approval is None:
            waiting = f"execution {execution.execution_id} is {execution.status}, not waiting for approval"
            return _refused_json(409, waiting)
        chosen: Outcome = "Approved" if outcome == "Approved" else "Rejected"
        try:
            started = self.decisions.start(spec, execution.execution_id, chosen, comment.strip())
        except DecisionConflictError as exc:
            return _refused_json(409, str(exc))
        return web.json_response(started.view(), status=202, headers=_SECURITY_HEADERS)


def _check_origin(request: web.Request) -> None:
    """A state-changing request must come from this runtime's own page: ``Origin`` names the loopback ``Host``."""
    origin = request.headers.get("Origin")
    if not origin:
        raise ConsoleAuthError("the request has no Origin header; decisions are taken from the console page only")
    parts = urlsplit(origin)
    if parts.scheme != "http" or parts.netloc.lower() != (request.headers.get("Host") or "").lower():
        raise ConsoleAuthError(f"Origin {origin!r} is not this console's; decisions are taken from its page only")
    if host_problem(parts.netloc) is not None:
        raise ConsoleAuthError(f"Origin {origin!r} is not a loopback address")
    if request.headers.get("Sec-Fetch-Site", "same-origin") != "same-origin":
        raise ConsoleAuthError("the request does not come from the console page (Sec-Fetch-Site)")


def _refused_json(status: int, reason: str) -> web.Response:
    hint = _NEW_LINK if status == 401 else ""
    return web.json_response(
        {"message": reason + (f": {hint}" if hint else ""), "status": status}, status=status, headers=_SECURITY_HEADERS
    )


def _refused_page(status: int, reason: str) -> web.Response:
    title = "Console: sign-in needed" if status == 401 else "Console: link refused"
    body = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><h1>{title}</h1><p>{html.escape(reason)}.</p>"
        f"<p>To open the console, {html.escape(_NEW_LINK)}: it prints a one-time link, good for 5 minutes.</p>"
        "</body></html>"
    )
    return web.Response(status=status, text=body, content_type="text/html", headers=_SECURITY_HEADERS)
