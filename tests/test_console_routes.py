"""The console's routes on the runtime's front door: links, session cookie, CSRF, Origin; refusals are 4xx."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import socket
import stat
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from safedeploy import cli
from safedeploy import constants as C
from safedeploy.approval import ManualApproval
from safedeploy.http import credentials as runtime_credentials
from safedeploy.http.sigv4 import Verifier, sign
from safedeploy.runner import ExecutionStore, PipelineExecution, StageExecution, Status
from safedeploy.runtime.auth import authenticator
from safedeploy.runtime.cloudwatch.metrics import MetricStore
from safedeploy.runtime.console.decisions import DecisionLauncher
from safedeploy.runtime.console.handlers import CSRF_HEADER, ConsoleRoutes, is_console_request
from safedeploy.runtime.console.sessions import ConsoleSessions
from safedeploy.runtime.console.views import ConsoleSubject
from safedeploy.runtime.state import RestApiRoute, RouteCanary, RuntimeState
from safedeploy.spec import PipelineSpec, load_spec

REGION = "us-east-1"
Body = dict[str, Any]


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class Console:
    """A runtime front door with the console's routes, over a state directory with one waiting execution."""

    def __init__(
        self,
        tmp_path: Path,
        client: TestClient[web.Request, web.Application],
        spec: PipelineSpec,
        clock: Clock,
        calls: Path,
    ) -> None:
        self.tmp_path, self.client, self.spec, self.clock, self.calls = tmp_path, client, spec, clock, calls
        self.credentials = runtime_credentials.load(spec.state_dir / "runtime" / "credentials.json")

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.client.port}"

    async def link(self, **changes: Any) -> ClientResponse:
        document = {"spec": self.spec.model_dump(mode="json"), "production_route": "m-api", "dev_route": "m-dev-api"}
        body = json.dumps({**document, **changes}).encode()
        url = f"{self.origin}/_local/console/tokens"
        headers = sign(self.credentials, REGION, "POST", url, body, {"Content-Type": "application/json"})
        return await self.client.post("/_local/console/tokens", data=body, headers=headers)

    async def sign_in(self) -> str:
        reply = await self.link()
        assert reply.status == 200, await reply.text()
        path = (await reply.json())["path"]
        visit = await self.client.get(path, allow_redirects=False)
        assert visit.status == 303 and visit.headers["Location"] == "/console"
        page = await self.client.get("/console")
        assert page.status == 200
        text = await page.text()
        return text.split('name="csrf-token" content="')[1].split('"')[0]

    async def decide(self, csrf: str | None, body: Body, origin: str | None = "") -> ClientResponse:
        headers = {"Content-Type": "application/json"}
        if csrf is not None:
            headers[CSRF_HEADER] = csrf
        if origin is not None:
            headers["Origin"] = origin or self.origin
        return await self.client.post("/console/api/decision", data=json.dumps(body), headers=headers)


def _waiting_execution(spec: PipelineSpec) -> PipelineExecution:
    now = datetime.now(UTC)
    approval = ManualApproval.request("customerchurn v1 (test:auc 0.93) is serving on customerchurn-dev", 3600, now)
    execution = PipelineExecution(
        pipeline_name=spec.pipeline_name,
        execution_id="0b9d3c1e-5f7a-4e2b-9c8d-1a2b3c4d5e6f",
        status=Status.IN_PROGRESS,
        trigger="test",
        started_at=now - timedelta(seconds=30),
        pid=os.getpid(),
        host=socket.gethostname(),
        spec={},
        stages=[
            StageExecution(name="Data", status=Status.SUCCEEDED, started_at=now - timedelta(seconds=30),
                           ended_at=now - timedelta(seconds=28), summary="1000 rows"),
            StageExecution(name=C.STAGE_APPROVAL, status=Status.IN_PROGRESS, started_at=now, approval=approval,
                           summary=approval.describe()),
            StageExecution(name=C.STAGE_DEPLOY_PRD),
        ],
    )  # fmt: skip
    ExecutionStore(spec.state_dir / "executions", spec.pipeline_name).save(execution)
    return execution


def _fake_cli(tmp_path: Path, seconds: float = 0) -> tuple[Path, Path]:
    """A stand-in for the interpreter: records the argv and the spec file it was given, then sleeps."""
    calls = tmp_path / "calls.jsonl"
    script = tmp_path / "fake-python"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys, time, pathlib\n"
        "args = sys.argv[1:]\n"
        "spec = pathlib.Path(args[args.index('--spec') + 1]).read_text()\n"
        f"open({str(calls)!r}, 'a').write(json.dumps({{'args': args, 'spec': json.loads(spec)}}) + '\\n')\n"
        f"time.sleep({seconds})\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, calls


Scenario = Callable[[Console], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario, *, cli_seconds: float = 0, runtime: RuntimeState | None = None) -> None:
    spec = load_spec(overrides={"state_dir": str(tmp_path / "state")})
    credentials = runtime_credentials.load_or_create(spec.state_dir / "runtime" / "credentials.json")
    _waiting_execution(spec)
    clock = Clock()
    script, calls = _fake_cli(tmp_path, cli_seconds)
    routes = ConsoleRoutes(
        spec.state_dir,
        runtime or RuntimeState(),
        MetricStore(),
        sessions=ConsoleSessions[ConsoleSubject](clock=clock),
        decisions=DecisionLauncher(spec.state_dir / "runtime" / "console", python=str(script)),
    )

    async def main() -> None:
        app = web.Application(middlewares=[authenticator(Verifier(credentials, REGION), own_auth=is_console_request)])
        routes.add_to(app)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await scenario(Console(tmp_path, client, spec, clock, calls))
        started = routes.decisions.latest(spec.pipeline_name)
        if started is not None:
            started.process.wait(10)

    asyncio.run(main())


def test_the_page_is_refused_without_a_session_naming_make_console(tmp_path: Path) -> None:
    async def scenario(console: Console) -> None:
        for path in ("/console", "/console/api/state", "/console/plotly.min.js", "/console/static/console.js"):
            reply = await console.client.get(path)
            assert reply.status == 401, path
            assert "make console" in await reply.text()
        reply = await console.client.get("/console", cookies={f"safedeploy_console_{console.client.port}": "forged"})
        assert reply.status == 401 and "not known" in await reply.text()

    run(tmp_path, scenario)


def test_a_link_is_single_use_and_sets_a_strict_httponly_session_cookie(tmp_path: Path) -> None:
    async def scenario(console: Console) -> None:
        path = (await (await console.link()).json())["path"]
        first = await console.client.get(path, allow_redirects=False)
        assert first.status == 303 and first.headers["Location"] == "/console"
        cookie = first.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
        assert first.headers["Referrer-Policy"] == "no-referrer" and first.headers["Cache-Control"] == "no-store"
        page = await console.client.get("/console")
        assert page.status == 200 and "live console" in await page.text()
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        state = await console.client.get("/console/api/state")
        assert state.status == 200
        document = await state.json()
        assert document["execution"]["approval"]["execution_id"] == "0b9d3c1e-5f7a-4e2b-9c8d-1a2b3c4d5e6f"
        assert [s["status"] for s in document["execution"]["stages"]] == [
            "Succeeded",
            "WaitingForApproval",
            "NotStarted",
        ]
        plotly = await console.client.get("/console/plotly.min.js")
        assert plotly.status == 200 and len(await plotly.read()) > 1_000_000  # the installed package's plotly.js
        reopened = await console.client.get(path, allow_redirects=False)  # the spent link, with its session
        assert reopened.status == 303 and reopened.headers["Location"] == "/console"
        assert "Set-Cookie" not in reopened.headers  # nothing new granted: the session it has
        console.client.session.cookie_jar.clear()
        again = await console.client.get(path, allow_redirects=False)
        assert again.status == 403 and "already used" in await again.text() and "make console" in await again.text()

    run(tmp_path, scenario)


def test_expired_and_wrong_links_are_refused(tmp_path: Path) -> None:
    async def scenario(console: Console) -> None:
        path = (await (await console.link()).json())["path"]
        console.clock.now += timedelta(seconds=C.CONSOLE_TOKEN_TTL_S)
        expired = await console.client.get(path, allow_redirects=False)
        assert expired.status == 403 and "expired" in await expired.text()
        for token in ("", "nope", "%00", "a" * 5000):
            wrong = await console.client.get(f"/console?token={token}", allow_redirects=False)
            assert wrong.status == 403, token

    run(tmp_path, scenario)


def test_a_session_expires(tmp_path: Path) -> None:
    async def scenario(console: Console) -> None:
        await console.sign_in()
        console.clock.now += timedelta(seconds=C.CONSOLE_SESSION_TTL_S)
        reply = await console.client.get("/console/api/state")
        assert reply.status == 401 and "expired" in (await reply.json())["message"]

    run(tmp_path, scenario)


def test_links_are_issued_only_to_signed_requests_for_this_state_directory(tmp_path: Path) -> None:
    async def scenario(console: Console) -> None:
        unsigned = await console.client.post("/_local/console/tokens", json={"spec": {}})
        assert unsigned.status == 403 and (await unsigned.json())["__type"] == "MissingAuthenticationTokenException"
        other = load_spec(overrides={"state_dir": str(tmp_path / "elsewhere")})
        wrong_state = await console.link(spec=other.model_dump(mode="json"))
        assert wrong_state.status == 400 and "this runtime serves" in (await wrong_state.json())["message"]
        bad = await console.link(spec={"pipeline_name": 5, "state_dir": []})
        assert bad.status == 400 and "bad console link request" in (await bad.json())["message"]
        rebinding = await console.client.get("/console", headers={"Host": "attacker.example"})
        assert rebinding.status == 421

    run(tmp_path, scenario)


def test_decisions_need_the_csrf_token_and_this_origin(tmp_path: Path) -> None:
    execution_id = "0b9d3c1e-5f7a-4e2b-9c8d-1a2b3c4d5e6f"
    good = {"execution_id": execution_id, "outcome": "Approved", "comment": "looks right"}

    async def scenario(console: Console) -> None:
        csrf = await console.sign_in()
        for token in (None, "", "wrong", csrf + "x"):
            reply = await console.decide(token, good)
            assert reply.status == 403 and "CSRF" in (await reply.json())["message"], token
        for origin in (None, "http://attacker.example", "null", f"https://127.0.0.1:{console.client.port}"):
            reply = await console.decide(csrf, good, origin=origin)
            assert reply.status == 403 and "Origin" in (await reply.json())["message"], origin
        cross_site = await console.client.post(
            "/console/api/decision", json=good,
            headers={CSRF_HEADER: csrf, "Origin": console.origin, "Sec-Fetch-Site": "cross-site"},
        )  # fmt: skip
        assert cross_site.status == 403
        console.client.session.cookie_jar.clear()
        no_cookie = await console.decide(csrf, good)
        assert no_cookie.status == 401
        assert not console.calls.exists()  # nothing was started

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"outcome": "Approved", "comment": "x", "execution_id": "0b9d3c1e"}, 202, None),
        ({"outcome": "Maybe", "comment": "x", "execution_id": "0b9d3c1e"}, 400, "outcome must be"),
        ({"outcome": "Approved", "comment": "  ", "execution_id": "0b9d3c1e"}, 400, "needs a comment"),
        ({"outcome": "Approved", "comment": "x", "execution_id": "*"}, 400, "is not an execution id"),
        ({"outcome": "Approved", "comment": "x", "execution_id": "ffffffff"}, 404, "no execution"),
        ([1, 2], 400, "not a JSON object"),
        ({"outcome": "Approved", "comment": "x" * 513, "execution_id": "0b9d3c1e"}, 400, "at most 512"),
        ({"outcome": "Approved", "comment": "a\u0000b", "execution_id": "0b9d3c1e"}, 400, "control characters"),
        ({"outcome": "Approved", "comment": "\ud800", "execution_id": "0b9d3c1e"}, 400, "not valid text"),
    ],
)
def test_bad_decisions_are_4xx_naming_the_problem(tmp_path: Path, body: Any, status: int, message: str | None) -> None:
    async def scenario(console: Console) -> None:
        csrf = await console.sign_in()
        reply = await console.decide(csrf, body)
        assert reply.status == status
        if message:
            assert message in (await reply.json())["message"]

    run(tmp_path, scenario)


def test_a_decision_starts_the_cli_verb_once_with_the_console_approver(tmp_path: Path) -> None:
    execution_id = "0b9d3c1e-5f7a-4e2b-9c8d-1a2b3c4d5e6f"

    async def scenario(console: Console) -> None:
        csrf = await console.sign_in()
        body = {"execution_id": execution_id[:8], "outcome": "Rejected", "comment": " recall too low "}
        reply = await console.decide(csrf, body)
        assert reply.status == 202, await reply.text()
        started = await reply.json()
        assert started["running"] and started["approver"] == f"{getpass.getuser()} (console)"
        again = await console.decide(csrf, body)
        assert again.status == 409 and "still being carried out" in (await again.json())["message"]
        state = await (await console.client.get("/console/api/state")).json()
        assert state["decision"]["outcome"] == "Rejected" and state["decision"]["execution_id"] == execution_id

    run(tmp_path, scenario, cli_seconds=3)
    call = json.loads((tmp_path / "calls.jsonl").read_text().splitlines()[0])
    args = call["args"]
    assert args[:4] == ["-m", "safedeploy.cli", "reject", execution_id]
    assert f"--by={getpass.getuser()} (console)" in args and "--comment=recall too low" in args
    assert call["spec"]["state_dir"] == str(tmp_path / "state") and call["spec"]["model_name"] == "customerchurn"
    assert len((tmp_path / "calls.jsonl").read_text().splitlines()) == 1


def test_the_traffic_split_and_variant_metrics_come_from_the_production_route(tmp_path: Path) -> None:
    runtime = RuntimeState(
        Routes={
            "m-api": RestApiRoute(
                Path="/customerchurn/api", Handler="api/app.py:handler",
                Environment={"ENDPOINT_NAME": "customerchurn-prd-v1-a", "MODEL_VERSION": "1"},
                Canary=RouteCanary(Environment={"ENDPOINT_NAME": "customerchurn-prd-v2-b", "MODEL_VERSION": "2"},
                                   Weight=0.1),
            )
        }
    )  # fmt: skip

    async def scenario(console: Console) -> None:
        await console.sign_in()
        state = await (await console.client.get("/console/api/state")).json()
        traffic = state["traffic"]
        assert traffic["shifting"] is True
        assert [(v["role"], v["version"], v["weight"]) for v in traffic["variants"]] == [
            ("primary", "1", 0.9),
            ("canary", "2", 0.1),
        ]
        assert traffic["variants"][1]["metrics"]["total_requests"] == 0

    run(tmp_path, scenario, runtime=runtime)


def test_the_cli_verb_reads_the_spec_file_the_console_passes_and_names_a_bad_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.spec.json"
    assert cli.main(["approve", "--spec", str(missing), "--comment", "why"]) == cli.EXIT_ERROR
    assert f"cannot read the spec file {missing}" in capsys.readouterr().err
    spec = load_spec(overrides={"state_dir": str(tmp_path / "state"), "model_name": "othermodel"})
    given = tmp_path / "given.spec.json"
    given.write_text(spec.model_dump_json())
    assert cli.main(["reject", "--spec", str(given), "--comment", "why"]) == cli.EXIT_ERROR
    assert (
        "no execution of othermodel-dev is waiting for an approval" in capsys.readouterr().err
    )  # that spec's pipeline


def test_a_comment_that_looks_like_an_option_stays_the_comment() -> None:
    """The console passes ``--comment=<text>``: argparse takes ``-x`` or ``--target aws`` there as the text itself."""
    for comment in ("-x", "--force", "--target aws"):
        args = cli.build_parser().parse_args(["approve", "0b9d3c1e", f"--comment={comment}", "--by=erin (console)"])
        assert (args.comment, args.by, args.target) == (comment, "erin (console)", "local")
