"""Control-plane requests are checked before anything is saved or applied: strict JSON, SageMaker's API model
(botocore's copy: types, required members, lengths, ranges, patterns, enums) and the local limits; each
refusal is a 400 naming the problem, and a refused request leaves the state as it was."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from pydantic import ValidationError

from safedeploy import constants as C
from safedeploy.http.errors import ApiError
from safedeploy.http.json_documents import MAX_NESTING, parse_document, parse_json
from safedeploy.runtime.request_shapes import validate_request
from safedeploy.runtime.sagemaker.control import ControlPlane, Deployment, checked_weight
from safedeploy.runtime.sagemaker.fleet import ModelFiles, VariantFleet
from safedeploy.runtime.sagemaker_runtime.invoke import Invoker, InvokeRequest
from safedeploy.runtime.state import (
    EndpointConfigRecord,
    EndpointRecord,
    ProductionVariant,
    RuntimeState,
)
from safedeploy.runtime.state_file import read_state
from safedeploy.store import LocalArtifactStore

# --- strict JSON -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"w": 1e309}', "the number 1e309 is out of range"),
        (b'{"w": -1e309}', "out of range"),
        (b'{"w": NaN}', "NaN is not a JSON number"),
        (b'{"w": Infinity}', "Infinity is not a JSON number"),
        (b'{"w": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"w": ' + b"1" * 5000 + b"}", "an integer of 5000 digits is out of range"),
        (b'{"w": ' + b"1" * 310 + b"}", "an integer of 310 digits is out of range"),
        (b"[" * 1000 + b"]" * 1000, f"nests deeper than {MAX_NESTING} levels"),
        (b"[" * 100_000 + b"]" * 100_000, f"nests deeper than {MAX_NESTING} levels"),
        (b'{"a": ' + b"[" * (MAX_NESTING + 1) + b"]" * (MAX_NESTING + 1) + b"}", "nests deeper"),
        (b'{"w": "\xff"}', "not UTF-8"),
        (b'{"w": "\\ud800"}', "half a surrogate pair"),
        (b'{"w": ["ok", {"\\uDC00x": 1}]}', "half a surrogate pair"),
        (b'{"w": 1', "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, not list"),
        (b'"text"', "must be a JSON object, not str"),
    ],
    ids=[
        "1e309", "-1e309", "NaN", "Infinity", "-Infinity", "5000 digits", "310 digits", "nested 1000",
        "nested 100000", "nested just too deep", "not utf-8", "lone surrogate", "lone surrogate key", "truncated",
        "array", "string",
    ],
)  # fmt: skip
def test_documents_json_cannot_carry_are_serialization_errors(body: bytes, message: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_document(body)
    assert (refused.value.status, refused.value.code) == (400, "SerializationException")
    assert message in refused.value.message


def test_documents_at_the_limits_parse() -> None:
    assert parse_document(b"") == {} and parse_document(b"  ") == {}
    assert parse_document(b'{"w": 1e308, "z": -0.0, "n": ' + b"9" * 309 + b"}")["w"] == 1e308
    deepest = "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1)
    assert parse_document(f'{{"a": {deepest}}}'.encode())["a"] is not None
    assert parse_json("5e-324") == 5e-324  # the smallest subnormal is a finite number
    assert parse_document(b'{"w": "\\ud83d\\ude00 \\u00e9"}') == {"w": "\U0001f600 \u00e9"}  # a whole pair is text


# --- SageMaker's API model ----------------------------------------------------------------------------------


def _refusal(operation: str, document: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as refused:
        validate_request("sagemaker", operation, document)
    return refused.value


def _weights(*items: dict[str, Any]) -> dict[str, Any]:
    return {"EndpointName": "e", "DesiredWeightsAndCapacities": list(items)}


def test_a_negative_weight_is_refused_in_aws_words() -> None:
    error = _refusal("UpdateEndpointWeightsAndCapacities", _weights({"VariantName": "A", "DesiredWeight": -1.0}))
    assert (error.status, error.code) == (400, "ValidationException")
    assert error.message == (
        "1 validation error detected: Value '-1.0' at 'desiredWeightsAndCapacities.1.member.desiredWeight' "
        "failed to satisfy constraint: Member must have value greater than or equal to 0"
    )


@pytest.mark.parametrize("weight", [0, 0.0, -0.0, 1, 0.5, 1e308, 5e-324])
def test_weights_sagemaker_takes_pass_its_model(weight: float) -> None:
    validate_request(
        "sagemaker", "UpdateEndpointWeightsAndCapacities", _weights({"VariantName": "A", "DesiredWeight": weight})
    )


@pytest.mark.parametrize(
    ("member", "value", "code", "message"),
    [
        ("DesiredWeight", "1", "SerializationException", "must be a number"),
        ("DesiredWeight", True, "SerializationException", "must be a number"),
        ("DesiredWeight", math.inf, "SerializationException", "is not a finite float"),
        ("DesiredWeight", math.nan, "SerializationException", "is not a finite float"),
        ("DesiredWeight", 10**400, "SerializationException", "is not a finite float"),
        ("DesiredInstanceCount", 1.5, "SerializationException", "must be an integer"),
        ("DesiredInstanceCount", 2**31, "SerializationException", "out of range for integer"),
        ("DesiredInstanceCount", -1, "ValidationException", "Member must have value greater than or equal to 0"),
        ("VariantName", "bad_name", "ValidationException", "Member must satisfy regular expression pattern"),
        ("VariantName", "a" * 64, "ValidationException", "Member must have length less than or equal to 63"),
        ("VariantName", ["A"], "SerializationException", "must be a string"),
    ],
)
def test_values_outside_the_model_are_refused(member: str, value: Any, code: str, message: str) -> None:
    item = {"VariantName": "A", member: value}
    error = _refusal("UpdateEndpointWeightsAndCapacities", _weights(item))
    assert (error.status, error.code) == (400, code)
    assert message in error.message


@pytest.mark.parametrize(
    ("operation", "document", "message"),
    [
        ("CreateModel", {}, "Value null at 'modelName' failed to satisfy constraint: Member must not be null"),
        ("CreateModel", {"ModelName": "m", "PrimaryContainer": {"Environment": {"K": "v" * 1025}}}, "'primaryContainer.environment.K.value'"),
        ("CreateEndpoint", {"EndpointName": "-x", "EndpointConfigName": "c"}, "at 'endpointName'"),
        ("CreateEndpointConfig", {"EndpointConfigName": "c", "ProductionVariants": []}, "length greater than or equal to 1"),
        ("CreateEndpointConfig", {"EndpointConfigName": "c", "ProductionVariants": [{"VariantName": "A", "InitialInstanceCount": 0}]}, "'productionVariants.1.member.initialInstanceCount'"),
        ("CreateEndpointConfig", {"EndpointConfigName": "c", "ProductionVariants": [{"VariantName": "A", "InitialVariantWeight": -0.5}]}, "'productionVariants.1.member.initialVariantWeight'"),
        ("CreateEndpointConfig", {"EndpointConfigName": "c", "ProductionVariants": [{"VariantName": "A"}], "DataCaptureConfig": {"InitialSamplingPercentage": 101, "DestinationS3Uri": "s3://b/k", "CaptureOptions": [{"CaptureMode": "Input"}]}}, "less than or equal to 100"),
        ("CreateEndpointConfig", {"EndpointConfigName": "c", "ProductionVariants": [{"VariantName": "A"}], "DataCaptureConfig": {"InitialSamplingPercentage": 1, "DestinationS3Uri": "s3://b/k", "CaptureOptions": [{"CaptureMode": "Sideways"}]}}, "Member must satisfy enum value set: [Input, Output"),
        ("ListEndpoints", {"MaxResults": 101}, "at 'maxResults'"),
        ("ListEndpoints", {"SortBy": "Size"}, "enum value set"),
    ],
    ids=["required", "env value length", "name pattern", "no variants", "count 0", "negative initial weight", "sampling 101", "capture mode", "max results", "sort by"],
)  # fmt: skip
def test_each_operation_is_checked_against_its_shape(operation: str, document: dict[str, Any], message: str) -> None:
    error = _refusal(operation, document)
    assert (error.status, error.code) == (400, "ValidationException")
    assert message in error.message


def test_many_violations_are_counted_and_listed() -> None:
    items = [{"VariantName": f"bad_{i}", "DesiredWeight": -1} for i in range(8)]
    error = _refusal("UpdateEndpointWeightsAndCapacities", _weights(*items))
    assert error.message.startswith("16 validation errors detected: ")
    assert error.message.count("failed to satisfy constraint") == 10  # AWS lists ten at most


# --- the control plane's own checks, before anything is applied -------------------------------------------


@pytest.mark.parametrize(("weight", "expected"), [(0, 0.0), (-0.0, 0.0), (1, 1.0), (1e308, 1e308), (None, None)])
def test_checked_weight_takes_finite_non_negative_numbers(weight: float | None, expected: float | None) -> None:
    value = checked_weight(weight)
    assert value == expected
    if value == 0.0:
        assert math.copysign(1.0, value) == 1.0  # -0.0 is stored as 0.0


@pytest.mark.parametrize("weight", [math.inf, -math.inf, math.nan, -1, -5e-324, True, "1", 10**400])
def test_checked_weight_refuses_the_rest(weight: Any) -> None:
    with pytest.raises(ApiError) as refused:
        checked_weight(weight)
    assert refused.value.status == 400 and "DesiredWeight" in refused.value.message


def test_variant_weights_are_finite_in_the_saved_shapes() -> None:
    for weight in (math.inf, math.nan, -1.0):
        with pytest.raises(ValidationError):
            ProductionVariant(VariantName="A", ModelName="m", InitialVariantWeight=weight)


def _control(tmp_path: Path, weights: dict[str, float]) -> ControlPlane:
    """A control plane with an InService endpoint whose fleets are described but not started."""
    variants = [
        ProductionVariant(VariantName=name, ModelName="m", InitialVariantWeight=w) for name, w in weights.items()
    ]
    config = EndpointConfigRecord(EndpointConfigName="c", ProductionVariants=variants)
    state = RuntimeState(
        EndpointConfigs={"c": config},
        Endpoints={"e": EndpointRecord(EndpointName="e", EndpointConfigName="c", EndpointStatus="InService")},
    )
    files = ModelFiles(base_dir=tmp_path, code_dir=tmp_path, program="inference.py", image="local")
    fleets = {v.VariantName: VariantFleet("e", v, files, tmp_path / "logs") for v in variants}
    control = ControlPlane(
        tmp_path / "state.json",
        LocalArtifactStore(tmp_path / "s3"),
        tmp_path,
        "us-east-1",
        C.LOCAL_ACCOUNT_ID,
        cast(aiohttp.ClientSession, None),
        state,
    )
    control.deployments["e"] = Deployment(config, fleets)
    control.save()
    return control


@pytest.mark.parametrize(
    "desired",
    [
        [{"VariantName": "A", "DesiredWeight": math.inf}],
        [{"VariantName": "A", "DesiredWeight": math.nan}],
        [{"VariantName": "A", "DesiredWeight": -1}],
        [{"VariantName": "A", "DesiredWeight": 0.5}, {"VariantName": "B", "DesiredInstanceCount": 0}],
        [{"VariantName": "A", "DesiredInstanceCount": C.MAX_LOCAL_INSTANCES + 1}],
        [{"VariantName": "A", "DesiredInstanceCount": True}],
        [{"VariantName": "A", "DesiredWeight": 0}, {"VariantName": "B", "DesiredWeight": 0}],
        [{"VariantName": "A", "DesiredWeight": 0.5}, {"VariantName": "Z", "DesiredWeight": 1}],
        ["A"],
    ],
    ids=["inf", "nan", "negative", "count 0 after a good weight", "count over the local max", "count true", "all zero", "unknown variant", "not an object"],
)  # fmt: skip
def test_a_refused_update_changes_nothing(tmp_path: Path, desired: list[Any]) -> None:
    control = _control(tmp_path, {"A": 1.0, "B": 1.0})
    saved = (tmp_path / "state.json").read_bytes()
    with pytest.raises(ApiError) as refused:
        control.update_endpoint_weights_and_capacities({"EndpointName": "e", "DesiredWeightsAndCapacities": desired})
    assert refused.value.status == 400
    assert [f.weight for f in control.deployments["e"].fleets.values()] == [1.0, 1.0]
    assert (tmp_path / "state.json").read_bytes() == saved


def test_weights_at_the_limits_are_applied_saved_and_served(tmp_path: Path) -> None:
    control = _control(tmp_path, {"A": 1.0, "B": 1.0})
    desired = [{"VariantName": "A", "DesiredWeight": -0.0}, {"VariantName": "B", "DesiredWeight": 1e308}]
    control.update_endpoint_weights_and_capacities({"EndpointName": "e", "DesiredWeightsAndCapacities": desired})
    saved = read_state(tmp_path / "state.json")  # what was saved loads back
    assert [(v.VariantName, v.CurrentWeight) for v in saved.Endpoints["e"].ProductionVariants] == [
        ("A", 0.0),
        ("B", 1e308),
    ]
    # Two variants at 1e308 sum to infinity: the traffic split still works (weights relative to the heaviest).
    control.update_endpoint_weights_and_capacities(
        {"EndpointName": "e", "DesiredWeightsAndCapacities": [{"VariantName": "A", "DesiredWeight": 1e308}]}
    )
    invoker = Invoker(control, cast(Any, None), cast(Any, None), cast(Any, None), asyncio.Event())
    deployment = control.deployments["e"]
    chosen = {invoker._choose(deployment, InvokeRequest("e", b"")).name for _ in range(200)}
    assert chosen == {"A", "B"}


def test_the_api_model_is_checked_before_the_operation_runs(tmp_path: Path) -> None:
    """Through the runtime's HTTP face: the control plane never sees a document that breaks the model."""
    from safedeploy.runtime.api import RuntimeApi
    from safedeploy.runtime.cloudwatch.metrics import MetricStore

    control = _control(tmp_path, {"A": 1.0})
    calls: list[dict[str, Any]] = []
    api = RuntimeApi(control, cast(Invoker, None), MetricStore(), lambda: None)

    def record(document: dict[str, Any]) -> dict[str, Any]:
        calls.append(document)
        return {}

    api.operations["UpdateEndpointWeightsAndCapacities"] = record

    async def post(body: bytes) -> tuple[int, dict[str, Any]]:
        from aiohttp.test_utils import TestClient, TestServer

        async with TestClient(TestServer(api.app())) as client:
            headers = {"X-Amz-Target": "SageMaker.UpdateEndpointWeightsAndCapacities"}
            reply = await client.post("/", data=body, headers=headers)
            return reply.status, json.loads(await reply.read())

    for body in (
        b'{"EndpointName": "e", "DesiredWeightsAndCapacities": [{"VariantName": "A", "DesiredWeight": 1e309}]}',
        b'{"EndpointName": "e", "DesiredWeightsAndCapacities": [{"VariantName": "A", "DesiredWeight": NaN}]}',
        b'{"EndpointName": "e", "DesiredWeightsAndCapacities": [{"VariantName": "A", "DesiredWeight": -1}]}',
        b'{"EndpointName": "e", "DesiredWeightsAndCapacities": [1]}',
        b'{"EndpointName": "e", "DesiredWeightsAndCapacities": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    ):
        status, answer = asyncio.run(post(body))
        assert status == 400 and answer["__type"] in ("ValidationException", "SerializationException"), answer
    assert calls == []


@pytest.mark.parametrize(
    ("field", "value", "constraint"),
    [
        ("inference_id", "\udcf8lY", "The X-Amzn-SageMaker-Inference-Id header is not valid UTF-8."),
        (
            "inference_id",
            "ok\u00e9",
            "at 'inferenceId' failed to satisfy constraint: Member must satisfy regular expression pattern",
        ),
        ("inference_id", " leading-space", "'inferenceId'"),
        ("inference_id", "i" * 65, "Member must have length less than or equal to 64"),
        ("content_type", "text/csv; \u00e9", "at 'contentType'"),
        ("accept", "a" * 1025, "at 'accept'"),
        ("custom_attributes", "\udcff", "The X-Amzn-SageMaker-Custom-Attributes header is not valid UTF-8."),
        ("custom_attributes", "\u00e9", "at 'customAttributes'"),
        ("target_variant", "bad_variant", "at 'targetVariant'"),
    ],
)
def test_invoke_endpoint_headers_are_checked_as_sagemaker_runtime_does(
    tmp_path: Path, field: str, value: str, constraint: str
) -> None:
    """Before the endpoint is even looked up: a header a capture record or an instance could not carry is a 400."""
    invoker = Invoker(
        _control(tmp_path, {"A": 1.0}), cast(Any, None), cast(Any, None), cast(Any, None), asyncio.Event()
    )
    request = InvokeRequest("e", b"1", **{field: value})
    with pytest.raises(ApiError) as refused:
        asyncio.run(invoker.invoke(request))
    assert (refused.value.status, refused.value.code) == (400, "ValidationError")
    assert constraint in refused.value.message
