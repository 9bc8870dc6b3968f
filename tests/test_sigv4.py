"""Signature Version 4 verification, the Host guard and the credentials file, without a runtime.

The requests are the ones boto3 itself signs (captured before they are sent), so what is verified here is what
the runtime sees from a real client.
"""

from __future__ import annotations

import dataclasses
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest

from safedeploy.serving import credentials, sigv4
from safedeploy.serving.credentials import CredentialsError, LocalCredentials
from safedeploy.serving.errors import ApiError
from safedeploy.serving.loopback import host_problem
from safedeploy.serving.sigv4 import SignedRequest, Verifier

KEYS = LocalCredentials("AKIAABCDEFGHIJKLMNOP", "s" * 40)
REGION = "us-east-1"
URL = "http://127.0.0.1:4000"


class _CapturedError(Exception):
    def __init__(self, request: AWSPreparedRequest) -> None:
        self.request = request


def _boto3_request(
    service: str, operation: str, keys: LocalCredentials = KEYS, region: str = REGION, **params: Any
) -> SignedRequest:
    """What boto3 sends for one call, as the server receives it (the HTTP client adds Host)."""
    client = boto3.client(  # type: ignore[call-overload]  # the service name varies
        service,
        region_name=region,
        endpoint_url=URL,
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
    )

    def capture(request: AWSPreparedRequest, **_: Any) -> None:
        raise _CapturedError(request)

    client.meta.events.register("before-send", capture)
    with pytest.raises(_CapturedError) as sent:
        getattr(client, operation)(**params)
    request = sent.value.request
    parts = urlsplit(request.url)
    headers = [(name, _text(value)) for name, value in request.headers.items()]
    body = request.body if isinstance(request.body, bytes) else b""
    return SignedRequest(
        request.method,
        parts.path + (f"?{parts.query}" if parts.query else ""),
        [("Host", parts.netloc), *headers],
        body,
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)  # prepared headers hold bytes


CALLS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "sagemaker": ("sagemaker", "describe_endpoint", {"EndpointName": "x"}),
    "sagemaker-runtime": (
        "sagemaker-runtime",
        "invoke_endpoint",
        {"EndpointName": "x", "Body": b"1,2", "ContentType": "text/csv", "CustomAttributes": "a  b"},
    ),
    "codedeploy": (
        "codedeploy",
        "put_lifecycle_event_hook_execution_status",
        {"deploymentId": "d-1", "lifecycleEventHookExecutionId": "e-1", "status": "Succeeded"},
    ),
}


def _call(name: str) -> SignedRequest:
    service, operation, params = CALLS[name]
    return _boto3_request(service, operation, **params)


def _verify(request: SignedRequest, now: datetime | None = None, keys: LocalCredentials = KEYS) -> None:
    target = request.header("x-amz-target")
    Verifier(keys, REGION).verify(request, sigv4.service_for(request.target.split("?")[0], target), now)


def _refused(request: SignedRequest, now: datetime | None = None) -> ApiError:
    with pytest.raises(ApiError) as refused:
        _verify(request, now)
    assert refused.value.status == 403
    return refused.value


def _with(request: SignedRequest, **headers: str | None) -> SignedRequest:
    """The request with headers replaced (None removes one)."""
    kept = [(n, v) for n, v in request.headers if n.lower() not in {k.replace("_", "-").lower() for k in headers}]
    added = [(name.replace("_", "-"), value) for name, value in headers.items() if value is not None]
    return dataclasses.replace(request, headers=kept + added)


@pytest.mark.parametrize("call", CALLS, ids=list(CALLS))
def test_requests_boto3_signed_verify_for_their_service(call: str) -> None:
    service, operation, params = CALLS[call]
    request = _boto3_request(service, operation, **params)
    _verify(request)
    scope = request.header("authorization") or ""
    signing_name = "codedeploy" if service == "codedeploy" else "sagemaker"  # SageMaker Runtime signs as sagemaker
    assert f"/{REGION}/{signing_name}/aws4_request" in scope


def test_pipeline_signed_local_calls_verify_and_only_for_their_own_path_and_query() -> None:
    url = f"{URL}/_local/metrics?b=2&a=1"
    headers = sigv4.sign(KEYS, REGION, "GET", url)
    request = SignedRequest("GET", "/_local/metrics?b=2&a=1", list(headers.items()), b"")
    _verify(request)
    assert "signature" in _refused(dataclasses.replace(request, target="/_local/metrics?b=3&a=1")).message
    assert _refused(dataclasses.replace(request, target="/_local/routes/x")).code == "InvalidSignatureException"


def test_a_changed_body_or_signed_header_breaks_the_signature_an_unsigned_header_does_not() -> None:
    request = _call("sagemaker-runtime")
    tampered = dataclasses.replace(request, body=b"9,9")
    assert _refused(tampered).code == "InvalidSignatureException"
    assert _refused(_with(request, Content_Type="application/json")).code == "InvalidSignatureException"
    _verify(_with(request, X_Amzn_SageMaker_Target_Variant="Blue"))  # not signed by boto3, as on AWS


def test_unsigned_and_malformed_requests_get_awss_codes() -> None:
    request = _call("sagemaker")
    missing = _refused(_with(request, Authorization=None))
    assert (missing.code, missing.message) == ("MissingAuthenticationTokenException", "Missing Authentication Token")
    assert _refused(_with(request, Authorization="AWS4-HMAC-SHA1 Credential=x")).code == "IncompleteSignatureException"
    no_signature = (request.header("authorization") or "").split(", Signature=")[0]
    incomplete = _refused(_with(request, Authorization=no_signature))
    assert incomplete.code == "IncompleteSignatureException"
    assert "requires 'Signature' parameter" in incomplete.message
    assert _refused(_with(request, X_Amz_Date=None)).code == "IncompleteSignatureException"
    presigned = dataclasses.replace(_with(request, Authorization=None), target="/?X-Amz-Signature=abc")
    assert _refused(presigned).code == "IncompleteSignatureException"


def test_wrong_secret_unknown_key_and_session_token_are_refused() -> None:
    params = CALLS["sagemaker"][2]
    wrong_secret = _boto3_request(
        "sagemaker", "describe_endpoint", LocalCredentials(KEYS.access_key_id, "x" * 40), **params
    )
    refused = _refused(wrong_secret)
    assert refused.code == "InvalidSignatureException" and "signature we calculated does not match" in refused.message
    unknown = _boto3_request(
        "sagemaker", "describe_endpoint", LocalCredentials("AKIAZZZZZZZZZZZZZZZZ", KEYS.secret_access_key), **params
    )
    assert _refused(unknown).code == "UnrecognizedClientException"
    token = _with(_boto3_request("sagemaker", "describe_endpoint", **params), X_Amz_Security_Token="token")
    assert _refused(token).code == "UnrecognizedClientException"


def test_a_date_more_than_15_minutes_off_is_refused() -> None:
    request = _call("sagemaker")
    signed_at = datetime.strptime(request.header("x-amz-date") or "", "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    _verify(request, signed_at + timedelta(minutes=14))
    _verify(request, signed_at - timedelta(minutes=14))
    stale = _refused(request, signed_at + timedelta(minutes=16))
    assert stale.code == "InvalidSignatureException" and stale.message.startswith("Signature expired:")
    early = _refused(request, signed_at - timedelta(minutes=16))
    assert early.code == "InvalidSignatureException" and early.message.startswith("Signature not yet current:")


def test_the_scope_must_name_this_region_and_the_requests_service() -> None:
    elsewhere = _boto3_request("sagemaker", "describe_endpoint", region="eu-west-1", **CALLS["sagemaker"][2])
    assert "region" in _refused(elsewhere).message
    codedeploy = _call("codedeploy")
    as_sagemaker = _with(codedeploy, X_Amz_Target="SageMaker.DescribeEndpoint")  # a codedeploy signature elsewhere
    refused = _refused(as_sagemaker)
    assert refused.code == "InvalidSignatureException" and "service: 'sagemaker'" in refused.message
    local = dataclasses.replace(_call("sagemaker"), target="/_local/health")
    assert "service: 'safedeploy'" in _refused(local).message


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True), ("127.0.0.1:8080", True), ("localhost", True), ("LocalHost:1", True),
        ("[::1]", True), ("[::1]:443", True), ("attacker.example", False), ("attacker.example:8080", False),
        ("127.0.0.1.nip.io", False), ("localhost.", False), ("127.0.0.1:", False), ("127.0.0.1:80:80", False),
        ("[::2]:1", False), ("", False), (None, False),
    ],
)  # fmt: skip
def test_only_the_loopback_names_are_accepted_as_host(host: str | None, allowed: bool) -> None:
    problem = host_problem(host)
    assert (problem is None) == allowed
    if problem is not None:
        assert "127.0.0.1" in problem


def test_credentials_are_created_owner_only_kept_and_refused_when_others_can_read_them(tmp_path: Path) -> None:
    path = tmp_path / "runtime" / "credentials.json"
    first = credentials.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.access_key_id.startswith("AKIA") and len(first.access_key_id) == 20
    assert len(first.secret_access_key) == 40
    assert credentials.load_or_create(path) == first  # kept, not regenerated
    assert credentials.generate() != first
    assert first.secret_access_key not in repr(first)
    path.chmod(0o644)
    with pytest.raises(CredentialsError, match="readable by others"):
        credentials.load(path)
