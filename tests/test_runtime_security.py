"""The running runtime refuses who may not call it and what it may not run (issue 13, points 1 and 8)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from safedeploy import constants as C
from safedeploy.local import daemon
from safedeploy.local.host import LocalServingHost
from safedeploy.registry import LocalModelRegistry
from safedeploy.runtime.apigateway.handler_paths import LAMBDAS_DIR
from safedeploy.runtime.paths import RuntimePaths
from safedeploy.store import LocalArtifactStore, S3Uri
from tests.conftest import REPO_ROOT, churn_rows, write_table
from tests.serving import Live, health, http, model_data_source, signed, wait_for, wait_in_service

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import ProductionVariantTypeDef

ROLE = "arn:aws:iam::000000000000:role/test"


def _client(live: Live, service: str, **overrides: Any) -> Any:
    """A plain boto3 client as the README shows it: the runtime's URL and the keys ``make outputs`` prints."""
    arguments: dict[str, Any] = {
        "endpoint_url": live.outputs["RuntimeUrl"],
        "region_name": live.outputs["Region"],
        "aws_access_key_id": live.outputs["AccessKeyId"],
        "aws_secret_access_key": live.outputs["SecretAccessKey"],
        "config": Config(retries={"max_attempts": 1}),
    }
    return boto3.client(service, **(arguments | overrides))  # type: ignore[call-overload]  # the service varies


def _error(call: Any, **params: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as refused:
        call(**params)
    return dict(refused.value.response)


def _hook_report(execution: str) -> dict[str, Any]:
    return {"deploymentId": "d-security", "lifecycleEventHookExecutionId": execution, "status": "Succeeded"}


def test_boto3_signed_with_the_outputs_keys_works(live: Live) -> None:
    names = [e["EndpointName"] for e in _client(live, "sagemaker").list_endpoints()["Endpoints"]]
    assert "customerchurn-dev" in names
    reply = _client(live, "sagemaker-runtime").invoke_endpoint(
        EndpointName="customerchurn-dev", Body=live.csv_rows[0], ContentType="text/csv"
    )
    assert 0 < float(reply["Body"].read()) < 1
    answer = _client(live, "codedeploy").put_lifecycle_event_hook_execution_status(**_hook_report("signed"))
    assert answer["lifecycleEventHookExecutionId"] == "signed"


def test_unsigned_calls_are_refused_with_403_missing_authentication_token(live: Live) -> None:
    unsigned = {"config": Config(signature_version=UNSIGNED, retries={"max_attempts": 1})}
    calls = [
        (_client(live, "sagemaker", **unsigned).list_endpoints, {}),
        (
            _client(live, "sagemaker-runtime", **unsigned).invoke_endpoint,
            {"EndpointName": "customerchurn-dev", "Body": live.csv_rows[0], "ContentType": "text/csv"},
        ),
        (_client(live, "codedeploy", **unsigned).put_lifecycle_event_hook_execution_status, _hook_report("unsigned")),
    ]
    for call, params in calls:
        response = _error(call, **params)
        assert response["Error"] == {
            "Code": "MissingAuthenticationTokenException",
            "Message": "Missing Authentication Token",
        }
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "unsigned" not in json.dumps(
        signed(live.info, "/_local/codedeploy/d-security/unsigned", method="GET").json()
    )
    for method, path, body in [
        ("GET", "/_local/health", None),
        ("GET", "/_local/metrics?EndpointName=customerchurn-dev&MetricName=Invocations", None),
        (
            "PUT",
            "/_local/routes/open",
            json.dumps({"Path": "/open", "Handler": "x:y", "ApiKeyRequired": False}).encode(),
        ),
        ("DELETE", "/_local/routes/customerchurn-dev-api", None),
        ("POST", "/nowhere", b"{}"),
    ]:
        reply = http(f"{live.info.runtime_url}{path}", body, {"Content-Type": "application/json"}, method)
        assert reply.status == 403, (path, reply.body)
        assert reply.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert "customerchurn-dev-api" in _routes(live) and "open" not in _routes(live)


def _routes(live: Live) -> dict[str, Any]:
    state = json.loads(RuntimePaths(live.state_dir).state.read_text())
    return dict(state["Routes"])


def test_a_wrong_secret_an_unknown_key_another_region_and_a_stale_date_are_refused(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong_secret = _client(live, "sagemaker", aws_secret_access_key="x" * 40).list_endpoints
    response = _error(wrong_secret)
    assert response["Error"]["Code"] == "InvalidSignatureException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    unknown = _client(live, "sagemaker-runtime", aws_access_key_id="AKIAAAAAAAAAAAAAAAAA").invoke_endpoint
    response = _error(unknown, EndpointName="customerchurn-dev", Body=b"1", ContentType="text/csv")
    assert response["Error"]["Code"] == "UnrecognizedClientException"
    elsewhere = _error(_client(live, "sagemaker", region_name="eu-west-1").list_endpoints)
    assert elsewhere["Error"]["Code"] == "InvalidSignatureException" and "region" in elsewhere["Error"]["Message"]

    real_now = datetime.now
    monkeypatch.setattr(
        "botocore.auth.get_current_datetime", lambda: real_now(UTC).replace(tzinfo=None) - timedelta(minutes=20)
    )
    stale = _error(_client(live, "sagemaker").list_endpoints)
    assert stale["Error"]["Code"] == "InvalidSignatureException"
    assert stale["Error"]["Message"].startswith("Signature expired:")


def test_a_foreign_host_is_refused_by_the_runtime_the_gateway_and_the_instances(live: Live) -> None:
    foreign = {"Host": "attacker.example"}
    runtime = signed(live.info, "/_local/health", method="GET", headers=foreign)  # signed, even for that Host
    assert runtime.status == 421 and "not this machine's loopback address" in runtime.json()["message"]
    gateway = http(
        live.outputs["DevApiUrl"], live.csv_rows[0].encode(), {"x-api-key": live.outputs["ApiKey"], **foreign}
    )
    assert gateway.status == 421 and "DNS rebinding" in gateway.json()["message"]
    assert http(live.outputs["DevApiUrl"], live.csv_rows[0].encode(), {"x-api-key": live.outputs["ApiKey"], "Content-Type": "text/csv", "Host": "localhost"}).status == 200  # fmt: skip
    instance = health(live.info)["endpoints"]["customerchurn-dev"]["InstanceUrls"]["AllTraffic"][0]
    assert http(f"{instance}/ping", None, foreign, "GET").status == 421
    assert http(f"{instance}/ping", None, {}, "GET").status == 200


def test_route_handlers_come_only_from_lambdas(live: Live, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').close()\ndef create(environ, client):\n    return lambda e, c: {{}}\n")
    for handler, named in [
        (f"{evil}:create", f"{evil} is outside {LAMBDAS_DIR}"),
        (f"{LAMBDAS_DIR}/../safedeploy/cli.py:main", "resolves to"),
        (f"{LAMBDAS_DIR / 'hooks' / 'nothing.py'}:create", "cannot resolve"),
    ]:
        route = {"Path": "/evil", "Handler": handler, "ApiKeyRequired": False}
        reply = signed(live.info, "/_local/routes/evil", json.dumps(route).encode(), method="PUT")
        assert reply.status == 400, reply.body
        assert named in reply.json()["message"]
    assert "evil" not in _routes(live)
    assert http(f"{live.info.gateway_url}/evil", b"", {}).status == 404
    assert not marker.exists()


def _model_request(live: Live, name: str, **container: Any) -> dict[str, Any]:
    primary = {
        "Image": "local",
        "ModelDataSource": model_data_source(live),
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": live.source_uri},
    }
    return {"ModelName": name, "PrimaryContainer": primary | container, "ExecutionRoleArn": ROLE}


def test_create_model_refuses_local_code_and_model_data_without_its_digest(live: Live, tmp_path: Path) -> None:
    sagemaker = daemon.sagemaker_client(live.info)
    environment = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": str(tmp_path)}
    local = _error(sagemaker.create_model, **_model_request(live, "local-code", Environment=environment))
    assert local["Error"]["Code"] == "ValidationException"
    assert "SAGEMAKER_SUBMIT_DIRECTORY must be the s3:// URI" in local["Error"]["Message"]
    assert str(tmp_path) in local["Error"]["Message"]
    plain = _model_request(live, "no-digest")
    del plain["PrimaryContainer"]["ModelDataSource"]
    plain["PrimaryContainer"]["ModelDataUrl"] = live.model_data_url
    assert "ModelDataUrl carries no digest" in _error(sagemaker.create_model, **plain)["Error"]["Message"]
    preload = _model_request(live, "preload", Environment={**environment, "SAGEMAKER_SUBMIT_DIRECTORY": live.source_uri, "LD_PRELOAD": "/tmp/x.so"})  # fmt: skip
    assert "LD_PRELOAD is not accepted" in _error(sagemaker.create_model, **preload)["Error"]["Message"]
    names = [m for m in json.loads(RuntimePaths(live.state_dir).state.read_text())["Models"]]
    assert not {"local-code", "no-digest", "preload"} & set(names)


def test_each_models_rest_api_has_its_own_key_kept_across_redeploys(live: Live) -> None:
    other = LocalServingHost(live.state_dir, live.info.region, live.info.account_id, model_name="othermodel")
    url = other.publish_api(C.DEV_STAGE, "customerchurn-dev", "1", api_key_required=True)
    try:
        key, theirs = other.outputs()["ApiKey"], live.outputs["ApiKey"]
        assert len(key) >= 30 and key != theirs
        row, csv = live.csv_rows[0].encode(), {"Content-Type": "text/csv"}
        assert http(url, row, csv | {"x-api-key": key}).status == 200
        wrong_model = http(url, row, csv | {"x-api-key": theirs})
        assert (wrong_model.status, wrong_model.json()) == (403, {"message": "Forbidden"})  # API Gateway's answer
        assert http(live.outputs["DevApiUrl"], row, csv | {"x-api-key": key}).status == 403
        assert http(live.outputs["DevApiUrl"], row, csv | {"x-api-key": theirs}).status == 200
        other.publish_api(C.DEV_STAGE, "customerchurn-dev", "2", api_key_required=True)  # a redeploy
        assert other.outputs()["ApiKey"] == key
    finally:
        other.unpublish_api(C.DEV_STAGE)


def test_the_registry_records_the_archive_digest_and_a_tampered_archive_fails_the_endpoint(live: Live) -> None:
    store = LocalArtifactStore(live.state_dir / "s3")
    original = store.get_bytes(S3Uri.parse(live.model_data_url))
    package = LocalModelRegistry(live.state_dir / "registry", live.info.region, live.info.account_id).describe(
        "customerchurn", 1
    )
    assert package.ModelDataETag == hashlib.sha256(original).hexdigest() == live.model_data_sha256
    # A copy of the registered archive, then changed the way a writer with access to the store would change it.
    copy = S3Uri.parse(live.model_data_url)
    copy = S3Uri(copy.bucket, "tests/tampered/output/model.tar.gz")
    store.put_bytes(copy, original)
    sagemaker = daemon.sagemaker_client(live.info)
    request = _model_request(live, "tampered-model")
    request["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]["S3Uri"] = str(copy)
    sagemaker.create_model(**request)
    store.put_bytes(copy, _with_member(original, "extra.py", b"print('hello')\n"))
    sagemaker.create_endpoint_config(
        EndpointConfigName="tampered-config", ProductionVariants=[_variant("tampered-model")]
    )
    sagemaker.create_endpoint(EndpointName="tampered", EndpointConfigName="tampered-config")
    described = wait_in_service(live.info, "tampered")
    assert described["EndpointStatus"] == "Failed"
    assert str(copy) in described["FailureReason"] and "recorded at registration" in described["FailureReason"]
    assert not (RuntimePaths(live.state_dir).root / "models" / "tampered-model").exists()  # never unpacked
    sagemaker.delete_endpoint(EndpointName="tampered")


def _with_member(archive: bytes, name: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as source,
        tarfile.open(fileobj=out, mode="w:gz") as tar,
    ):
        for member in source:
            tar.addfile(member, source.extractfile(member))
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def _variant(model: str) -> ProductionVariantTypeDef:
    return {"VariantName": "A", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}


def test_a_file_added_to_the_unpacked_model_stops_every_new_instance_and_fails_the_endpoint(live: Live) -> None:
    sagemaker = daemon.sagemaker_client(live.info)
    sagemaker.create_model(**_model_request(live, "watched-model"))
    sagemaker.create_endpoint_config(
        EndpointConfigName="watched-config", ProductionVariants=[_variant("watched-model")]
    )
    sagemaker.create_endpoint(EndpointName="watched", EndpointConfigName="watched-config")
    assert wait_in_service(live.info, "watched")["EndpointStatus"] == "InService"
    code = RuntimePaths(live.state_dir).root / "models" / "watched-model" / "code"
    (code / "sitecustomize.py").write_text("import os\nos.system('echo owned')\n")  # runs in any Python started here

    # A second endpoint of the same model: its fleet refuses to start.
    sagemaker.create_endpoint(EndpointName="watched-too", EndpointConfigName="watched-config")
    second = wait_in_service(live.info, "watched-too")
    assert second["EndpointStatus"] == "Failed"
    assert "unexpected file code/sitecustomize.py" in second["FailureReason"]

    # The running endpoint: its instance dies, the replacement refuses to start, the endpoint fails.
    (pid,) = health(live.info)["endpoints"]["watched"]["Instances"]["A"]
    os.kill(pid, signal.SIGKILL)

    def failed() -> dict[str, Any] | None:
        described = dict(sagemaker.describe_endpoint(EndpointName="watched"))
        return described if described["EndpointStatus"] == "Failed" else None

    described = wait_for(failed, 30, "the endpoint to fail")
    assert "was not started" in described["FailureReason"]
    assert "unexpected file code/sitecustomize.py" in described["FailureReason"]
    assert health(live.info)["endpoints"]["watched"]["Instances"] == {}
    for endpoint in ("watched", "watched-too"):
        sagemaker.delete_endpoint(EndpointName=endpoint)


def test_keys_and_credentials_survive_a_runtime_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    host = LocalServingHost(state, "us-east-1", "000000000000")
    try:
        url = host.publish_api(C.DEV_STAGE, "nowhere", "1", api_key_required=True)
        before = host.outputs()
        daemon.stop(state)
        after = LocalServingHost(state, "us-east-1", "000000000000")
        after.info()  # starts a new runtime
        assert {k: after.outputs()[k] for k in ("ApiKey", "AccessKeyId", "SecretAccessKey")} == {
            k: before[k] for k in ("ApiKey", "AccessKeyId", "SecretAccessKey")
        }
        url = after.outputs()["DevApiUrl"]
        assert http(url, b"1", {"x-api-key": "wrong", "Content-Type": "text/csv"}).status == 403
        assert http(url, b"1", {"x-api-key": before["ApiKey"], "Content-Type": "text/csv"}).status == 503  # no endpoint
    finally:
        daemon.stop(state)


@pytest.mark.slow
def test_after_a_deploy_nothing_in_the_state_directory_is_readable_by_group_or_others(tmp_path: Path) -> None:
    state = tmp_path / "state"
    data = write_table(tmp_path / "churn.csv", churn_rows(600, seed=23))
    env = {k: v for k, v in os.environ.items() if not k.startswith(C.ENV_PREFIX)}
    env |= {
        f"{C.ENV_PREFIX}STATE_DIR": str(state),
        f"{C.ENV_PREFIX}SERVING__ENABLED": "true",
        f"{C.ENV_PREFIX}PRODUCTION__ENABLED": "false",
        f"{C.ENV_PREFIX}HYPERPARAMETERS__NUM_ROUND": "40",
        f"{C.ENV_PREFIX}TRAINING__SOURCE_DIR": str(REPO_ROOT / "model"),
    }
    try:
        run = subprocess.run(
            [sys.executable, "-m", "safedeploy.cli", "run", "--data", str(data), "--auto-approve"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        host = LocalServingHost(state, "us-east-1", "000000000000")
        outputs = host.outputs()
        reply = http(outputs["DevApiUrl"], b"1,2", {"x-api-key": outputs["ApiKey"], "Content-Type": "text/csv"})
        assert reply.status == 400  # a request the capture records
    finally:
        daemon.stop(state)  # flushes capture and logs
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    paths = list(state.rglob("*"))
    assert any("datacapture" in p.parts for p in paths) and (state / "runtime" / "credentials.json") in paths
    assert {p.name for p in paths} >= {"credentials.json", "state.json", "runtime.log", "manifest.json"}
    loose = [
        f"{stat.filemode(p.lstat().st_mode)} {p}" for p in paths if not p.is_symlink() and p.lstat().st_mode & 0o077
    ]
    assert not loose, "\n".join(loose[:20])
