"""The local API gateway's API-key check, in process: exactly the route's key passes, anything else is 403."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from safedeploy.http.server import Request, Response
from safedeploy.runtime.apigateway.gateway import Gateway, new_api_key
from safedeploy.runtime.state import RestApiRoute

KEY = "k3y-0123456789abcdefghijklmnopqrstuvwxyzAB"


def _gateway(tmp_path: Path, key: str = KEY, required: bool = True) -> tuple[Gateway, Path]:
    """A gateway whose one route's handler records every call (to prove a refused request never reaches it)."""
    calls = tmp_path / "calls.jsonl"
    handler = tmp_path / "echo.py"
    handler.write_text(
        "import json\n"
        "def create(environ, runtime):\n"
        "    def handler(event, context):\n"
        f"        with open({str(calls)!r}, 'a') as out:\n"
        "            out.write(json.dumps(event['requestContext']['identity']['apiKey']) + '\\n')\n"
        "        return {'statusCode': 200, 'body': 'served'}\n"
        "    return handler\n"
    )
    gateway = Gateway(invoker=None, region="us-east-1")  # type: ignore[arg-type]  # the handler never invokes
    route = RestApiRoute(Path="/churn/api", Handler=f"{handler}:create", ApiKeyRequired=required)
    gateway.configure({"api": route}, {"api": key})
    return gateway, calls


def _post(gateway: Gateway, headers: list[tuple[str, str]], path: str = "/churn/api") -> Response:
    request = Request("POST", path, "", "1.1", headers, b"1,2", "127.0.0.1")
    return asyncio.run(gateway.handle(request))


def _served(calls: Path) -> list[str | None]:
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("x-api-key", "")],
        [("x-api-key", KEY[:-1])],  # a prefix
        [("x-api-key", KEY + "C")],  # longer
        [("x-api-key", KEY[:-1] + "b")],  # one character off
        [("x-api-key", KEY.upper())],
        [("x-api-key", " " + KEY)],
        [("authorization", KEY)],  # the right key in the wrong header
    ],
    ids=["none", "empty", "prefix", "longer", "one-off", "case", "space", "other-header"],
)
def test_anything_but_the_configured_key_is_forbidden(tmp_path: Path, headers: list[tuple[str, str]]) -> None:
    gateway, calls = _gateway(tmp_path)
    answer = _post(gateway, headers)
    assert answer.status == 403
    assert json.loads(answer.body) == {"message": "Forbidden"}  # API Gateway's body, word for word
    assert ("x-amzn-ErrorType", "ForbiddenException") in answer.headers
    assert _served(calls) == []


@pytest.mark.parametrize("name", ["x-api-key", "X-API-Key"])
def test_the_configured_key_is_served_and_reaches_the_handler(tmp_path: Path, name: str) -> None:
    gateway, calls = _gateway(tmp_path)
    answer = _post(gateway, [(name, KEY)])
    assert (answer.status, answer.body) == (200, b"served")
    assert _served(calls) == [KEY]


def test_a_reconfigured_key_replaces_the_old_one(tmp_path: Path) -> None:
    gateway, calls = _gateway(tmp_path)
    gateway.configure({"api": gateway.routes["/churn/api"]}, {"api": "rotated-key"})
    assert _post(gateway, [("x-api-key", KEY)]).status == 403
    assert _post(gateway, [("x-api-key", "rotated-key")]).status == 200
    assert _served(calls) == ["rotated-key"]


def test_a_route_whose_usage_plan_has_no_key_refuses_every_key(tmp_path: Path) -> None:
    gateway, calls = _gateway(tmp_path)
    gateway.configure({"api": gateway.routes["/churn/api"]}, {"another-plan": KEY})  # none for this route
    for headers in ([], [("x-api-key", "")], [("x-api-key", KEY)], [("x-api-key", "XXXX")], [("x-api-key", "None")]):
        assert _post(gateway, headers).status == 403
    assert _served(calls) == []


def test_without_a_configured_key_nothing_passes(tmp_path: Path) -> None:
    gateway, calls = _gateway(tmp_path, key="")
    assert [_post(gateway, h).status for h in ([], [("x-api-key", "")], [("x-api-key", "guess")])] == [403] * 3
    assert _served(calls) == []


def test_each_model_has_its_own_key(tmp_path: Path) -> None:
    """Routes share a key through their usage plan (a model's prod and dev APIs), never across models."""
    gateway, calls = _gateway(tmp_path)
    handler = gateway.routes["/churn/api"].Handler
    routes = {
        "churn": RestApiRoute(Path="/churn/api", Handler=handler, UsagePlan="churn"),
        "churn-dev": RestApiRoute(Path="/churn/dev/api", Handler=handler, UsagePlan="churn"),
        "other": RestApiRoute(Path="/other/api", Handler=handler, UsagePlan="other"),
    }
    gateway.configure(routes, {"churn": KEY, "other": "other-key"})
    assert _post(gateway, [("x-api-key", KEY)], "/churn/dev/api").status == 200
    assert _post(gateway, [("x-api-key", KEY)], "/other/api").status == 403
    assert _post(gateway, [("x-api-key", "other-key")], "/churn/api").status == 403
    assert _post(gateway, [("x-api-key", "other-key")], "/other/api").status == 200
    assert _served(calls) == [KEY, "other-key"]


def test_a_key_that_is_not_utf8_text_is_refused_not_an_error(tmp_path: Path) -> None:
    gateway, calls = _gateway(tmp_path)
    assert _post(gateway, [("x-api-key", KEY[:-1] + "\udcff")]).status == 403
    assert _served(calls) == []


def test_a_route_without_the_key_requirement_serves_without_a_key(tmp_path: Path) -> None:
    gateway, calls = _gateway(tmp_path, required=False)
    assert _post(gateway, []).status == 200
    assert _post(gateway, [("x-api-key", "anything")]).status == 200
    assert _served(calls) == [None, "anything"]


def test_new_api_keys_are_long_and_unpredictable() -> None:
    keys = {new_api_key() for _ in range(50)}
    assert len(keys) == 50 and all(len(key) == 40 for key in keys)
