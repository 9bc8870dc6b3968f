"""The CodeDeploy lifecycle hooks: each check, and the verdict reported exactly once (botocore Stubber)."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from lambdas.hooks import post_traffic, pre_traffic
from lambdas.hooks.common import HookCheckError, HookClients, report_once
from safedeploy.store import LocalArtifactStore, S3Uri

EVENT = {"DeploymentId": "d-ABC", "LifecycleEventHookExecutionId": "hook-1"}
ENDPOINT = "churn-prd-v2"


def _client(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")  # type: ignore[call-overload]


def _expect_report(stubber: Stubber, status: str) -> None:
    stubber.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": "hook-1"},
        {"deploymentId": "d-ABC", "lifecycleEventHookExecutionId": "hook-1", "status": status},
    )


class _Metrics:
    def __init__(self, invocations: float, errors: float) -> None:
        self.value = (invocations, errors)

    def totals(self, endpoint: str, variant: str, start: datetime, end: datetime) -> tuple[float, float]:
        return self.value


def _clients(tmp_path: Path, metrics: _Metrics | None = None) -> tuple[HookClients, dict[str, Stubber]]:
    codedeploy, sagemaker, runtime = _client("codedeploy"), _client("sagemaker"), _client("sagemaker-runtime")
    stubs = {"codedeploy": Stubber(codedeploy), "sagemaker": Stubber(sagemaker), "runtime": Stubber(runtime)}
    store = LocalArtifactStore(tmp_path / "s3")
    return HookClients(codedeploy, sagemaker, runtime, store, metrics or _Metrics(100, 0)), stubs


def _describe(stubber: Stubber, status: str = "InService", capture: bool = True) -> None:
    now = datetime.now(UTC)
    stubber.add_response(
        "describe_endpoint",
        {
            "EndpointName": ENDPOINT,
            "EndpointArn": f"arn:aws:sagemaker:us-east-1:000000000000:endpoint/{ENDPOINT}",
            "EndpointConfigName": ENDPOINT,
            "EndpointStatus": status,
            "CreationTime": now,
            "LastModifiedTime": now,
            "DataCaptureConfig": {
                "EnableCapture": capture,
                "CaptureStatus": "Started" if capture else "Stopped",
                "CurrentSamplingPercentage": 100,
                "DestinationS3Uri": "s3://b/capture",
                "KmsKeyId": "",
            },
        },
        {"EndpointName": ENDPOINT},
    )


def _answer(stubber: Stubber, scores: str) -> None:
    body = scores.encode()
    stubber.add_response(
        "invoke_endpoint", {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "text/csv"}
    )


def _pre_env(clients: HookClients) -> dict[str, str]:
    uri = S3Uri("b", "deployments/d-ABC/checks.json")
    clients.store.put_bytes(uri, json.dumps({"rows": ["1,2", "3,4"], "expected": [0.25, 0.75]}).encode())  # type: ignore[attr-defined]
    return {"ENDPOINT_NAME": ENDPOINT, "CHECKS_URI": str(uri), "LATENCY_BUDGET_MS": "5000"}


def _run(handler: Any, stubs: dict[str, Stubber]) -> dict[str, str]:
    for stub in stubs.values():
        stub.activate()
    try:
        result: dict[str, str] = handler(EVENT, None)
    finally:
        for stub in stubs.values():
            stub.deactivate()
    for stub in stubs.values():
        stub.assert_no_pending_responses()  # every expected call happened: the verdict was reported
    return result


def test_pre_traffic_passes_a_healthy_green_and_reports_succeeded_once(tmp_path: Path) -> None:
    clients, stubs = _clients(tmp_path)
    _describe(stubs["sagemaker"])
    _answer(stubs["runtime"], "0.25\n0.75\n")
    _expect_report(stubs["codedeploy"], "Succeeded")
    result = _run(pre_traffic.create_handler(_pre_env(clients), clients), stubs)
    assert result["status"] == "Succeeded" and "2 known rows correct" in result["message"]


def test_pre_traffic_reads_the_known_rows_from_the_model_archive(tmp_path: Path) -> None:
    """On AWS, CHECKS_URI is the model.tar.gz; the training job put pre-traffic-checks.json in it."""
    clients, stubs = _clients(tmp_path)
    member = json.dumps({"rows": ["1,2", "3,4"], "expected": [0.25, 0.75]}).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("pre-traffic-checks.json")
        info.size = len(member)
        archive.addfile(info, io.BytesIO(member))
    uri = S3Uri("b", "training-jobs/j/output/model.tar.gz")
    clients.store.put_bytes(uri, buffer.getvalue())  # type: ignore[attr-defined]
    env = {"ENDPOINT_NAME": ENDPOINT, "CHECKS_URI": str(uri), "LATENCY_BUDGET_MS": "5000"}
    _describe(stubs["sagemaker"])
    _answer(stubs["runtime"], "0.25\n0.75\n")
    _expect_report(stubs["codedeploy"], "Succeeded")
    assert _run(pre_traffic.create_handler(env, clients), stubs)["status"] == "Succeeded"

    empty = S3Uri("b", "training-jobs/k/output/model.tar.gz")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz"):
        pass
    clients.store.put_bytes(empty, buffer.getvalue())  # type: ignore[attr-defined]
    clients, stubs = _clients(tmp_path)
    _describe(stubs["sagemaker"])
    _expect_report(stubs["codedeploy"], "Failed")
    result = _run(pre_traffic.create_handler({**env, "CHECKS_URI": str(empty)}, clients), stubs)
    assert result["status"] == "Failed" and "has no pre-traffic-checks.json" in result["message"]


@pytest.mark.parametrize(
    ("status", "capture", "scores", "message"),
    [
        ("Failed", True, None, "is Failed, not InService"),
        ("InService", False, None, "data capture disabled"),
        ("InService", True, "0.25\n0.70\n", "scores known rows differently"),
        ("InService", True, "0.25\n", "answered 1 scores for 2 known rows"),
    ],
)
def test_pre_traffic_failures_are_reported_failed_once(
    tmp_path: Path, status: str, capture: bool, scores: str | None, message: str
) -> None:
    clients, stubs = _clients(tmp_path)
    _describe(stubs["sagemaker"], status, capture)
    if scores is not None:
        _answer(stubs["runtime"], scores)
    _expect_report(stubs["codedeploy"], "Failed")
    result = _run(pre_traffic.create_handler(_pre_env(clients), clients), stubs)
    assert result["status"] == "Failed" and message in result["message"]


class _SlowAnswer:
    """A clock (seconds) that the stubbed InvokeEndpoint moves on by ``latency_ms`` when it answers."""

    def __init__(self, runtime: Any, latency_ms: float) -> None:
        self.now = 1000.0
        self.latency_s = latency_ms / 1000
        runtime.meta.events.register("after-call.sagemaker-runtime.InvokeEndpoint", self._answered)

    def _answered(self, **_: Any) -> None:
        self.now += self.latency_s

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("latency_ms", "status"),
    [(1.0, "Succeeded"), (500.0, "Succeeded"), (501.0, "Failed"), (2000.0, "Failed")],
)
def test_pre_traffic_enforces_the_default_500_ms_latency_budget(tmp_path: Path, latency_ms: float, status: str) -> None:
    """No LATENCY_BUDGET_MS: the hook's own budget (500 ms) holds; an answer within it passes, a slower one fails."""
    clients, stubs = _clients(tmp_path)
    env = {k: v for k, v in _pre_env(clients).items() if k != "LATENCY_BUDGET_MS"}
    clock = _SlowAnswer(clients.runtime, latency_ms)
    _describe(stubs["sagemaker"])
    _answer(stubs["runtime"], "0.25\n0.75\n")
    _expect_report(stubs["codedeploy"], status)
    result = _run(pre_traffic.create_handler(env, clients, timer=clock), stubs)
    assert result["status"] == status
    if status == "Failed":
        assert f"took {latency_ms:.0f} ms for 2 known rows (budget 500 ms)" in result["message"]
    else:
        assert f"2 known rows correct in {latency_ms:.1f} ms" in result["message"]


def test_the_latency_budget_is_the_configured_one(tmp_path: Path) -> None:
    clients, _ = _clients(tmp_path)
    env = _pre_env(clients) | {"LATENCY_BUDGET_MS": "50"}
    for latency_ms, passes in ((50.0, True), (51.0, False)):
        clients, stubs = _clients(tmp_path)
        clock = _SlowAnswer(clients.runtime, latency_ms)
        _describe(stubs["sagemaker"])
        _answer(stubs["runtime"], "0.25\n0.75\n")
        with stubs["sagemaker"], stubs["runtime"]:
            if passes:
                assert "known rows correct" in pre_traffic.check_green(env, clients, timer=clock)
            else:
                with pytest.raises(HookCheckError, match=r"took 51 ms for 2 known rows \(budget 50 ms\)"):
                    pre_traffic.check_green(env, clients, timer=clock)


def test_an_unexpected_exception_is_still_reported_failed_once(tmp_path: Path) -> None:
    clients, stubs = _clients(tmp_path)
    stubs["sagemaker"].add_client_error("describe_endpoint", "ValidationException", "Could not find endpoint", 400)
    _expect_report(stubs["codedeploy"], "Failed")
    result = _run(pre_traffic.create_handler(_pre_env(clients), clients), stubs)
    assert result["status"] == "Failed" and "ClientError" in result["message"] and "Could not find" in result["message"]


def test_a_misconfigured_hook_reports_failed_naming_the_variable(tmp_path: Path) -> None:
    clients, stubs = _clients(tmp_path)
    _expect_report(stubs["codedeploy"], "Failed")
    result = _run(pre_traffic.create_handler({}, clients), stubs)
    assert result == {"status": "Failed", "message": "the hook is misconfigured: ENDPOINT_NAME is not set"}


def test_report_once_reports_even_when_the_check_raises_base_exceptions() -> None:
    codedeploy = _client("codedeploy")
    stubber = Stubber(codedeploy)
    _expect_report(stubber, "Failed")

    def interrupted() -> str:
        raise KeyboardInterrupt

    with stubber, pytest.raises(KeyboardInterrupt):
        report_once(EVENT, codedeploy, interrupted)
    stubber.assert_no_pending_responses()
    with pytest.raises(ValueError, match="no LifecycleEventHookExecutionId"):
        report_once({"DeploymentId": "d-1"}, codedeploy, lambda: "ok")


def _capture(clients: HookClients, minutes_ago: float) -> None:
    uri = S3Uri("b", f"capture/{ENDPOINT}/AllTraffic/2026/12/01/10/{minutes_ago}.jsonl")
    clients.store.put_bytes(uri, b'{"captureData": {}}\n')  # type: ignore[attr-defined]


def _post_env(started: datetime) -> dict[str, str]:
    return {"ENDPOINT_NAME": ENDPOINT, "CAPTURE_URI": "s3://b/capture", "DEPLOYMENT_STARTED": started.isoformat(),
            "MAX_ERROR_RATE": "0.02", "MIN_REQUESTS": "10"}  # fmt: skip


def test_post_traffic_needs_capture_from_this_deployment_and_a_low_error_rate(tmp_path: Path) -> None:
    clients, stubs = _clients(tmp_path, _Metrics(200, 1))
    _capture(clients, 0)
    _expect_report(stubs["codedeploy"], "Succeeded")
    started = datetime.now(UTC) - timedelta(minutes=5)
    result = _run(post_traffic.create_handler(_post_env(started), clients), stubs)
    assert result["status"] == "Succeeded" and "200 requests" in result["message"]


def test_post_traffic_bakes_first_then_checks_the_whole_bake(tmp_path: Path) -> None:
    """On AWS the hook is the bake: it waits BAKE_SECONDS, then its checks cover traffic up to that moment."""
    clients, _ = _clients(tmp_path, _Metrics(200, 1))
    _capture(clients, 0)
    started = datetime.now(UTC) - timedelta(minutes=5)
    events: list[str] = []

    class _Recording(_Metrics):
        def totals(self, endpoint: str, variant: str, start: datetime, end: datetime) -> tuple[float, float]:
            events.append("metrics")
            return super().totals(endpoint, variant, start, end)

    clients = HookClients(clients.codedeploy, clients.sagemaker, clients.runtime, clients.store, _Recording(200, 1))
    summary = post_traffic.check_served(
        {**_post_env(started), "BAKE_SECONDS": "300"}, clients, sleep=lambda s: events.append(f"sleep {s:g}")
    )
    assert events == ["sleep 300", "metrics"] and "200 requests" in summary
    with pytest.raises(HookCheckError, match=r"BAKE_SECONDS=900 is outside 0\.\.840"):
        post_traffic.check_served({**_post_env(started), "BAKE_SECONDS": "900"}, clients, sleep=lambda s: None)
    assert post_traffic.check_served(_post_env(started), clients, sleep=lambda s: events.append("never"))
    assert "never" not in events


@pytest.mark.parametrize(
    ("metrics", "capture_written", "message"),
    [
        ((200, 1), False, "no data capture for churn-prd-v2/AllTraffic since"),  # only older files exist
        ((5, 0), True, "served 5 requests since the deployment (need 10)"),
        ((100, 10), True, "answered 10.0% of 100 requests with 5XX"),
    ],
)
def test_post_traffic_failures(
    tmp_path: Path, metrics: tuple[float, float], capture_written: bool, message: str
) -> None:
    clients, stubs = _clients(tmp_path, _Metrics(*metrics))
    _capture(clients, 99)  # a file from before this deployment: the seed would have accepted it
    started = datetime.now(UTC) + (timedelta(seconds=-30) if capture_written else timedelta(seconds=1))
    if capture_written:
        _capture(clients, 0)
    _expect_report(stubs["codedeploy"], "Failed")
    result = _run(post_traffic.create_handler(_post_env(started), clients), stubs)
    assert result["status"] == "Failed" and message in result["message"]
