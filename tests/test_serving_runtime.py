"""The local runtime through boto3, unchanged: SageMaker's control plane and SageMaker Runtime's InvokeEndpoint."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from safedeploy.archives import pack_directory
from safedeploy.local import daemon
from safedeploy.store import LocalArtifactStore, S3Uri
from tests.serving import Live, health, model_data_source, signed, wait_for, wait_in_service


def _model(live: Live, name: str, info: daemon.RuntimeInfo | None = None, **environment: str) -> None:
    daemon.sagemaker_client(info or live.info).create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": "local",
            "ModelDataSource": model_data_source(live),
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": live.source_uri,
                "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",  # as the pipeline's models: no Accept, CSV
            }
            | environment,
        },
        ExecutionRoleArn="arn:aws:iam::000000000000:role/test",
    )


def _code_archive(live: Live, code: Path) -> str:
    """Upload a handler directory to the artifact store as a code archive (the runtime runs no local path)."""
    uri = S3Uri(S3Uri.parse(live.source_uri).bucket, f"tests/{code.parent.name}/sourcedir.tar.gz")
    LocalArtifactStore(live.state_dir / "s3").put_bytes(uri, pack_directory(code), "application/gzip")
    return str(uri)


def _variant(name: str, model: str, weight: float = 1.0, count: int = 1) -> Any:
    return {
        "VariantName": name,
        "ModelName": model,
        "InitialInstanceCount": count,
        "InstanceType": "ml.m5.large",
        "InitialVariantWeight": weight,
    }


def test_the_deployed_endpoint_is_described_like_sagemaker(live: Live) -> None:
    sagemaker = daemon.sagemaker_client(live.info)
    described = sagemaker.describe_endpoint(EndpointName="customerchurn-dev")
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointArn"] == "arn:aws:sagemaker:us-east-1:000000000000:endpoint/customerchurn-dev"
    (variant,) = described["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["CurrentInstanceCount"] == variant["DesiredInstanceCount"] == 2
    assert described["DataCaptureConfig"]["CurrentSamplingPercentage"] == 100
    assert isinstance(described["CreationTime"], datetime)
    config = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    source = model["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]
    assert (source["S3Uri"], source["ETag"]) == (live.model_data_url, live.model_data_sha256)
    names = [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]]
    assert "customerchurn-dev" in names
    assert len(health(live.info)["endpoints"]["customerchurn-dev"]["Instances"]["AllTraffic"]) == 2


def test_control_plane_errors_are_sagemakers(live: Live) -> None:
    sagemaker = daemon.sagemaker_client(live.info)
    with pytest.raises(ClientError) as missing:
        sagemaker.describe_endpoint(EndpointName="no-such-endpoint")
    assert missing.value.response["Error"]["Code"] == "ValidationException"
    assert "Could not find endpoint" in missing.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as no_model:
        sagemaker.create_endpoint_config(EndpointConfigName="orphan", ProductionVariants=[_variant("A", "ghost")])
    assert 'Could not find model "arn:aws:sagemaker:us-east-1:000000000000:model/ghost"' in str(no_model.value)
    with pytest.raises(ClientError) as bad_name:
        daemon.sagemaker_client(live.info).create_model(
            ModelName="bad_name!", PrimaryContainer={"Image": "local"}, ExecutionRoleArn="arn:aws:iam::0:role/x"
        )
    # SageMaker's own wording: each broken constraint of the API model, members named in camelCase.
    assert (
        "Value 'bad_name!' at 'modelName' failed to satisfy constraint" in bad_name.value.response["Error"]["Message"]
    )


@pytest.mark.parametrize(
    ("content_type", "accept", "make_body"),
    [
        ("text/csv", "text/csv", lambda live: "\n".join(live.csv_rows[:5]).encode()),
        ("application/json", "application/json", lambda live: json.dumps(live.records[:5]).encode()),
        ("application/json", "text/csv", lambda live: json.dumps([[float(v) for v in r.split(",")] for r in live.csv_rows[:5]]).encode()),
    ],
    ids=["csv-rows", "json-records", "json-rows"],
)  # fmt: skip
def test_invoke_endpoint_with_boto3_for_every_content_type(
    live: Live, content_type: str, accept: str, make_body: Any
) -> None:
    runtime = daemon.runtime_client(live.info)
    reply = runtime.invoke_endpoint(
        EndpointName="customerchurn-dev",
        Body=make_body(live),
        ContentType=content_type,
        Accept=accept,
        InferenceId="case-1",
        CustomAttributes="trace=abc",
    )
    assert reply["InvokedProductionVariant"] == "AllTraffic"
    assert reply["ContentType"] == accept
    text = reply["Body"].read().decode()
    scores = [p["score"] for p in json.loads(text)["predictions"]] if accept == "application/json" else text.split()
    reference = (
        runtime.invoke_endpoint(
            EndpointName="customerchurn-dev", Body="\n".join(live.csv_rows[:5]), ContentType="text/csv"
        )["Body"]
        .read()
        .decode()
        .split()
    )
    assert [pytest.approx(float(s), abs=1e-6) for s in scores] == [float(r) for r in reference]
    assert all(0.0 < float(s) < 1.0 for s in scores)


def test_model_errors_carry_the_original_status(live: Live) -> None:
    runtime = daemon.runtime_client(live.info)
    with pytest.raises(ClientError) as width:
        runtime.invoke_endpoint(EndpointName="customerchurn-dev", Body=b"1,2,3", ContentType="text/csv")
    response: dict[str, Any] = dict(width.value.response)
    assert response["Error"]["Code"] == "ModelError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == 400
    assert response["OriginalMessage"] == "expected 69 features per row, found 3"
    assert response["LogStreamArn"].endswith("log-group:/aws/sagemaker/Endpoints/customerchurn-dev")
    with pytest.raises(ClientError) as media:
        runtime.invoke_endpoint(EndpointName="customerchurn-dev", Body=b"x", ContentType="application/x-npy")
    assert dict(media.value.response)["OriginalStatusCode"] == 415


def test_runtime_validation_errors(live: Live) -> None:
    runtime = daemon.runtime_client(live.info)
    with pytest.raises(ClientError) as unknown:
        runtime.invoke_endpoint(EndpointName="nope", Body=b"1", ContentType="text/csv")
    assert unknown.value.response["Error"] == {
        "Code": "ValidationError",
        "Message": "Endpoint nope of account 000000000000 not found.",
    }
    assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as variant:
        runtime.invoke_endpoint(
            EndpointName="customerchurn-dev", Body=live.csv_rows[0], ContentType="text/csv", TargetVariant="Blue"
        )
    assert "The variant 'Blue' is not part of endpoint customerchurn-dev" in str(variant.value)
    oversized = signed(
        live.info,
        "/endpoints/customerchurn-dev/invocations",
        b"1," * (3 * 1024 * 1024 + 1),
        {"Content-Type": "text/csv"},
    )
    assert oversized.status == 413
    assert oversized.headers["x-amzn-errortype"] == "ValidationError"
    assert "exceeds the 6291456-byte limit" in oversized.json()["message"]


def test_metrics_count_invocations_and_errors_per_variant(live: Live) -> None:
    runtime = daemon.runtime_client(live.info)
    sagemaker = daemon.sagemaker_client(live.info)
    _model(live, "metrics-model")
    sagemaker.create_endpoint_config(
        EndpointConfigName="metrics-config", ProductionVariants=[_variant("M", "metrics-model")]
    )
    sagemaker.create_endpoint(EndpointName="metrics-endpoint", EndpointConfigName="metrics-config")
    assert wait_in_service(live.info, "metrics-endpoint")["EndpointStatus"] == "InService"
    start = datetime.now(UTC) - timedelta(seconds=1)
    for _ in range(7):
        runtime.invoke_endpoint(EndpointName="metrics-endpoint", Body=live.csv_rows[0], ContentType="text/csv")
    for _ in range(3):
        with pytest.raises(ClientError):
            runtime.invoke_endpoint(EndpointName="metrics-endpoint", Body=b"1,2", ContentType="text/csv")

    def stat(metric: str, statistic: str = "Sum") -> float:
        query = (
            f"EndpointName=metrics-endpoint&VariantName=M&MetricName={metric}&Period=3600"
            f"&StartTime={start.isoformat().replace('+', '%2B')}"
            f"&EndTime={(datetime.now(UTC) + timedelta(seconds=2)).isoformat().replace('+', '%2B')}"
        )
        points = signed(live.info, f"/_local/metrics?{query}", method="GET").json()["Datapoints"]
        return sum(float(p[statistic]) for p in points)

    assert stat("Invocations") == 10
    assert stat("Invocation4XXErrors") == 3
    assert stat("Invocation5XXErrors") == 0
    assert stat("ModelLatency", "SampleCount") == 10
    assert 0 < stat("ModelLatency", "Maximum") < 5_000_000  # microseconds
    assert stat("OverheadLatency", "SampleCount") == 10
    bad = signed(
        live.info,
        "/_local/metrics?EndpointName=x&MetricName=Nope&StartTime=2020-01-01T00:00:00&EndTime=2020-01-02T00:00:00",
        method="GET",
    )
    assert bad.status == 400 and "unknown metric 'Nope'" in bad.json()["message"]
    sagemaker.delete_endpoint(EndpointName="metrics-endpoint")


def test_weights_route_traffic_and_update_endpoint_weights_shifts_it(live: Live) -> None:
    sagemaker = daemon.sagemaker_client(live.info)
    runtime = daemon.runtime_client(live.info)
    _model(live, "weights-model")
    sagemaker.create_endpoint_config(
        EndpointConfigName="weights-config",
        ProductionVariants=[_variant("Blue", "weights-model", 1.0), _variant("Green", "weights-model", 1.0)],
    )
    sagemaker.create_endpoint(EndpointName="weights", EndpointConfigName="weights-config")
    assert wait_in_service(live.info, "weights")["EndpointStatus"] == "InService"

    def split(n: int) -> Counter[str]:
        return Counter(
            runtime.invoke_endpoint(EndpointName="weights", Body=live.csv_rows[0], ContentType="text/csv")[
                "InvokedProductionVariant"
            ]
            for _ in range(n)
        )

    even = split(200)
    assert set(even) == {"Blue", "Green"} and min(even.values()) > 50  # 1:1, far from either extreme
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName="weights",
        DesiredWeightsAndCapacities=[
            {"VariantName": "Blue", "DesiredWeight": 0.0},
            {"VariantName": "Green", "DesiredWeight": 1.0},
        ],
    )
    assert split(40) == Counter({"Green": 40})
    pinned = runtime.invoke_endpoint(
        EndpointName="weights", Body=live.csv_rows[0], ContentType="text/csv", TargetVariant="Blue"
    )
    assert pinned["InvokedProductionVariant"] == "Blue"
    weights = {
        v["VariantName"]: v["CurrentWeight"]
        for v in sagemaker.describe_endpoint(EndpointName="weights")["ProductionVariants"]
    }
    assert weights == {"Blue": 0.0, "Green": 1.0}
    sagemaker.delete_endpoint(EndpointName="weights")


def test_a_model_that_cannot_load_fails_the_endpoint_with_the_reason(live: Live, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text("def model_fn(model_dir):\n    raise ValueError('weights are corrupt')\n")
    sagemaker = daemon.sagemaker_client(live.info)
    _model(live, "broken-model", SAGEMAKER_SUBMIT_DIRECTORY=_code_archive(live, code))
    sagemaker.create_endpoint_config(
        EndpointConfigName="broken-config", ProductionVariants=[_variant("A", "broken-model")]
    )
    sagemaker.create_endpoint(EndpointName="broken", EndpointConfigName="broken-config")
    described = wait_in_service(live.info, "broken")
    assert described["EndpointStatus"] == "Failed"
    assert "ValueError: weights are corrupt" in described["FailureReason"]
    with pytest.raises(ClientError) as not_ready:
        daemon.runtime_client(live.info).invoke_endpoint(EndpointName="broken", Body=b"1", ContentType="text/csv")
    assert "is not ready to serve: its status is Failed" in str(not_ready.value)


def test_a_failed_update_keeps_the_old_config_serving(live: Live, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text("raise ImportError('no such library')\n")
    sagemaker = daemon.sagemaker_client(live.info)
    _model(live, "good-model")
    _model(live, "bad-model", SAGEMAKER_SUBMIT_DIRECTORY=_code_archive(live, code))
    sagemaker.create_endpoint_config(EndpointConfigName="good-config", ProductionVariants=[_variant("A", "good-model")])
    sagemaker.create_endpoint_config(EndpointConfigName="bad-config", ProductionVariants=[_variant("A", "bad-model")])
    sagemaker.create_endpoint(EndpointName="updating", EndpointConfigName="good-config")
    assert wait_in_service(live.info, "updating")["EndpointStatus"] == "InService"
    sagemaker.update_endpoint(EndpointName="updating", EndpointConfigName="bad-config")
    described = wait_in_service(live.info, "updating")
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == "good-config"
    assert "no such library" in described["FailureReason"]
    reply = daemon.runtime_client(live.info).invoke_endpoint(
        EndpointName="updating", Body=live.csv_rows[0], ContentType="text/csv"
    )
    assert 0 < float(reply["Body"].read()) < 1
    sagemaker.delete_endpoint(EndpointName="updating")


def test_a_dead_instance_is_replaced_and_traffic_goes_on(live: Live) -> None:
    before = health(live.info)["endpoints"]["customerchurn-dev"]["Instances"]["AllTraffic"]
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    runtime = daemon.runtime_client(live.info)
    answered, deadline = 0, time.monotonic() + 20
    while answered < 50 and time.monotonic() < deadline:
        try:
            runtime.invoke_endpoint(EndpointName="customerchurn-dev", Body=live.csv_rows[0], ContentType="text/csv")
            answered += 1
        except ClientError as exc:  # at most the requests already on their way to the killed instance
            assert exc.response["Error"]["Code"] in ("ModelError", "ServiceUnavailable")
    assert answered == 50

    def replaced() -> bool:
        now = health(live.info)["endpoints"]["customerchurn-dev"]["Instances"]["AllTraffic"]
        return len(now) == 2 and before[0] not in now

    wait_for(replaced, 30, "the killed instance to be replaced")


def _scores(info: daemon.RuntimeInfo, endpoint: str, rows: list[str]) -> list[float]:
    reply = daemon.runtime_client(info).invoke_endpoint(
        EndpointName=endpoint, Body="\n".join(rows), ContentType="text/csv"
    )
    return [float(line) for line in reply["Body"].read().decode().split()]


def test_a_restarted_runtime_serves_the_endpoints_that_were_in_service(live: Live, tmp_path: Path) -> None:
    """Stop + start on the same state directory: endpoints InService before answer InvokeEndpoint again."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "s3").symlink_to(live.state_dir / "s3")  # the same artifacts, a runtime of its own
    try:
        info = daemon.ensure_running(state, "us-east-1", "000000000000")
        _model(live, "restored-model", info)
        sagemaker = daemon.sagemaker_client(info)
        sagemaker.create_endpoint_config(
            EndpointConfigName="restored-config", ProductionVariants=[_variant("AllTraffic", "restored-model", count=2)]
        )
        for name in ("restored-a", "restored-b"):
            sagemaker.create_endpoint(EndpointName=name, EndpointConfigName="restored-config")
            assert wait_in_service(info, name)["EndpointStatus"] == "InService"
        before = _scores(info, "restored-a", live.csv_rows[:5])
        sagemaker.delete_endpoint(EndpointName="restored-b")  # deleted before the restart: stays deleted
        old_instances = health(info)["endpoints"]["restored-a"]["Instances"]["AllTraffic"]

        assert daemon.stop(state) == info.pid
        restarted = daemon.ensure_running(state, "us-east-1", "000000000000")
        assert restarted.pid != info.pid
        assert wait_in_service(restarted, "restored-a")["EndpointStatus"] == "InService"
        assert _scores(restarted, "restored-a", live.csv_rows[:5]) == before
        instances = health(restarted)["endpoints"]["restored-a"]["Instances"]["AllTraffic"]
        assert len(instances) == 2 and not set(instances) & set(old_instances)  # new processes serve
        names = [e["EndpointName"] for e in daemon.sagemaker_client(restarted).list_endpoints()["Endpoints"]]
        assert names == ["restored-a"]
    finally:
        daemon.stop(state)
