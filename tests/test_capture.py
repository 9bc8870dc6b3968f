"""Data capture: SageMaker's JSONL records and S3 layout; at 100 % sampling no record is lost."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from safedeploy.local import daemon
from safedeploy.local.daemon import RuntimeInfo
from safedeploy.runtime.sagemaker_runtime.capture import CapturedPayload, CaptureWriter, capture_record
from safedeploy.runtime.state import CaptureConfig
from safedeploy.store import LocalArtifactStore, S3Uri
from tests.serving import LOAD_DEADLINE_S, Live, model_data_source, wait_in_service

CONFIG = CaptureConfig.model_validate(
    {
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": "s3://bucket/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]},
    }
)


def test_record_format_is_sagemakers() -> None:
    at = datetime(2026, 11, 25, 10, 4, 5, 123456, tzinfo=UTC)
    record = capture_record(
        CONFIG,
        CapturedPayload("text/csv", b"1,2,3"),
        CapturedPayload("application/json", b'{"predictions": []}'),
        event_id="e-1",
        inference_time=at,
        inference_id="i-1",
    )
    assert record == {
        "captureData": {
            "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2,3", "encoding": "CSV"},
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                "data": '{"predictions": []}',
                "encoding": "JSON",
            },
        },
        "eventMetadata": {"eventId": "e-1", "inferenceTime": "2026-11-25T10:04:05.123Z", "inferenceId": "i-1"},
        "eventVersion": "0",
    }


def test_other_payloads_are_base64_and_input_only_configs_skip_the_output() -> None:
    config = CONFIG.model_copy(update={"CaptureOptions": CONFIG.CaptureOptions[:1]})
    record = capture_record(
        config,
        CapturedPayload("application/x-npy", b"\x93NUMPY"),
        CapturedPayload("text/csv", b"0.5"),
        event_id="e",
        inference_time=datetime.now(UTC),
        inference_id=None,
    )
    data: Any = record["captureData"]
    assert data["endpointInput"]["encoding"] == "BASE64"
    assert base64.b64decode(data["endpointInput"]["data"]) == b"\x93NUMPY"
    assert "endpointOutput" not in data
    assert "inferenceId" not in record["eventMetadata"]  # type: ignore[operator]


def test_writer_partitions_by_endpoint_variant_and_hour_and_keeps_records_on_a_failed_write(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "s3")
    writer = CaptureWriter(store)
    at = datetime(2026, 11, 25, 9, 59, 58, tzinfo=UTC)
    for i in range(3):
        writer.add("s3://bucket/capture", "ep", "AllTraffic", {"n": i}, at)
    writer.add("s3://bucket/capture", "ep", "AllTraffic", {"n": 3}, at.replace(hour=10, minute=0))

    original = store.put_bytes
    store.put_bytes = lambda *a, **k: (_ for _ in ()).throw(OSError("disk full"))  # type: ignore[method-assign]
    with pytest.raises(OSError, match="disk full"):
        writer.flush()
    assert writer.pending() == 4  # nothing lost
    store.put_bytes = original  # type: ignore[method-assign]

    written = writer.flush()
    assert writer.pending() == 0 and writer.written_records == 4
    keys = sorted(uri.key for uri in written)
    assert re.fullmatch(r"capture/ep/AllTraffic/2026/11/25/09/59-58-000-[0-9a-f-]{36}\.jsonl", keys[0])
    assert keys[1].startswith("capture/ep/AllTraffic/2026/11/25/10/")
    lines = store.get_bytes(S3Uri.parse(f"s3://bucket/{keys[0]}")).decode().splitlines()
    assert [json.loads(line)["n"] for line in lines] == [0, 1, 2]


def test_a_full_buffer_drops_and_counts_new_records_and_recovers(tmp_path: Path) -> None:
    """While writes fail the buffer holds at most max_pending records; the rest are counted, never silently lost."""
    store = LocalArtifactStore(tmp_path / "s3")
    writer = CaptureWriter(store, max_pending=5)
    at = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)
    original = store.put_bytes
    store.put_bytes = lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device"))  # type: ignore[method-assign]
    for i in range(5):
        writer.add("s3://bucket/capture", "ep", "AllTraffic", {"n": i}, at)
    with pytest.raises(OSError):
        writer.flush()
    assert writer.health()["State"] == "Failing"
    for i in range(5, 8):
        writer.add("s3://bucket/capture", "ep", "AllTraffic", {"n": i}, at)
    writer.add("s3://bucket/capture", "ep", "Canary", {"n": 8}, at)
    health = writer.health()
    assert health["State"] == "Full" and health["Pending"] == 5 and health["Dropped"] == 4
    assert health["DroppedByVariant"] == {"ep/AllTraffic": 3, "ep/Canary": 1}
    assert "No space left" in str(health["LastError"])

    store.put_bytes = original  # type: ignore[method-assign]
    writer.flush()
    health = writer.health()
    assert health["State"] == "Ok" and health["Pending"] == 0 and health["Written"] == 5 and health["Dropped"] == 4
    writer.add("s3://bucket/capture", "ep", "AllTraffic", {"n": 9}, at)
    assert writer.pending() == 1  # accepted again


@pytest.fixture
def own_runtime(live: Live, tmp_path: Path) -> Iterator[tuple[Path, RuntimeInfo]]:
    """A second runtime over the same artifact store, to be stopped by the test."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "s3").symlink_to(live.state_dir / "s3")
    info = daemon.ensure_running(state, "us-east-1", "000000000000")
    try:
        yield state, info
    finally:
        daemon.stop(state)


def _endpoint(live: Live, info: RuntimeInfo, name: str, percentage: int, destination: str) -> None:
    sagemaker = daemon.sagemaker_client(info)
    sagemaker.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": "local",
            "ModelDataSource": model_data_source(live),
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": live.source_uri,
                "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",  # as the pipeline's models: no Accept, CSV
            },
        },
        ExecutionRoleArn="arn:aws:iam::000000000000:role/test",
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 2, "InstanceType": "ml.m5.large"}],
        DataCaptureConfig={
            "EnableCapture": True,
            "InitialSamplingPercentage": percentage,
            "DestinationS3Uri": destination,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]},
        },
    )  # fmt: skip
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert wait_in_service(info, name)["EndpointStatus"] == "InService"


def _load(info: RuntimeInfo, endpoint: str, bodies: list[str], threads: int = 16) -> dict[str, str]:
    """Send every body once (concurrently, bounded in count and time); return inference id -> body sent."""
    sent: dict[str, str] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + LOAD_DEADLINE_S
    work = iter(enumerate(bodies))

    def worker() -> None:
        client = daemon.runtime_client(info)
        while time.monotonic() < deadline:
            with lock:
                item = next(work, None)
            if item is None:
                return
            number, body = item
            inference_id = f"req-{number:05d}"
            client.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType="text/csv", InferenceId=inference_id)
            with lock:
                sent[inference_id] = body

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sent


def _captured(live: Live, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    store = LocalArtifactStore(live.state_dir / "s3")
    records = []
    for ref in store.list_objects(S3Uri.parse(prefix)):
        for line in store.get_bytes(S3Uri.parse(ref.uri)).decode().splitlines():
            records.append((ref.uri, json.loads(line)))
    return records


def test_every_request_is_captured_under_load_and_through_a_graceful_shutdown(
    live: Live, own_runtime: tuple[Path, RuntimeInfo]
) -> None:
    state, info = own_runtime
    destination = f"s3://capture-test/{state.parent.name}"
    _endpoint(live, info, "captured", 100, destination)
    bodies = [live.csv_rows[i % len(live.csv_rows)] for i in range(600)]
    sent = _load(info, "captured", bodies)
    assert len(sent) == 600
    assert daemon.stop(state) == info.pid  # graceful: buffered records are written before it exits

    records = _captured(live, destination)
    assert len(records) == 600
    by_id = {r["eventMetadata"]["inferenceId"]: r for _, r in records}
    assert by_id.keys() == sent.keys()
    for inference_id, record in by_id.items():
        assert record["captureData"]["endpointInput"]["data"] == sent[inference_id]
        assert record["captureData"]["endpointInput"]["encoding"] == "CSV"
        assert 0 < float(record["captureData"]["endpointOutput"]["data"]) < 1
        assert record["eventVersion"] == "0"
    pattern = rf"s3://capture-test/{state.parent.name}/captured/AllTraffic/\d{{4}}/\d\d/\d\d/\d\d/\d\d-\d\d-\d{{3}}-[0-9a-f-]{{36}}\.jsonl"
    assert all(re.fullmatch(pattern, uri) for uri, _ in records)


def test_sampling_percentage_is_honoured(live: Live, own_runtime: tuple[Path, RuntimeInfo]) -> None:
    state, info = own_runtime
    destination = f"s3://capture-test/{state.parent.name}-sampled"
    _endpoint(live, info, "sampled", 25, destination)
    sent = _load(info, "sampled", live.csv_rows[:1] * 400, threads=4)
    daemon.stop(state)
    captured = len(_captured(live, destination))
    assert len(sent) == 400
    assert 50 <= captured <= 150  # 25 % of 400 = 100; P(outside) < 1e-7
