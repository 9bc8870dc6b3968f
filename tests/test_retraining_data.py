"""New data for a retraining: merged labelled capture -> raw-table rows, deduplicated, counted, validated."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from safedeploy import constants as C
from safedeploy import naming
from safedeploy.data.raw_table import HEADER, NUMERIC_FEATURES, read_raw_table
from safedeploy.features import FeatureSchema
from safedeploy.retraining.new_data import PHONE_FILL, combine
from safedeploy.spec import PipelineSpec
from safedeploy.store import LocalArtifactStore, S3Uri
from tests.conftest import churn_rows

CATEGORICAL = ("State", "Area Code", "Int'l Plan", "VMail Plan")
API_FIELDS = [*NUMERIC_FEATURES, *CATEGORICAL]  # what the REST API's records carry (no Phone, no charges)


def _api_record(row: dict[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {name: row[name] for name in CATEGORICAL}
    for name in NUMERIC_FEATURES:
        record[name] = float(row[name]) if "." in row[name] else int(row[name])
    return record


def merged(
    inference_id: str, payload: str, label: str, *, media: str = "application/json", encoding: str = "JSON"
) -> dict[str, Any]:
    """A merged record per the contract: a capture record with ``groundTruthData``."""
    return {
        "captureData": {
            "endpointInput": {"observedContentType": media, "mode": "INPUT", "data": payload, "encoding": encoding},
            "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": "0.4", "encoding": "CSV"},
        },
        "eventMetadata": {"eventId": f"e-{inference_id}", "inferenceId": inference_id, "inferenceTime": "2026-12-03"},
        "eventVersion": "0",
        "groundTruthData": {"data": label, "encoding": "CSV"},
    }


def put_merged(store: LocalArtifactStore, spec: PipelineSpec, name: str, records: list[dict[str, Any]]) -> None:
    """One merged object under the contract's prefix."""
    uri = naming.merged_ground_truth_uri(spec).join("customerchurn-prd-v1-x", "2026/12/03/10", f"{name}.jsonl")
    store.put_bytes(uri, b"".join(json.dumps(r).encode() + b"\n" for r in records), "application/jsonl")


def _label(row: dict[str, str]) -> str:
    return "1" if row[C.LABEL_COLUMN] == C.LABEL_POSITIVE else "0"


@pytest.fixture
def setup(make_spec: Callable[..., PipelineSpec]) -> tuple[PipelineSpec, LocalArtifactStore, FeatureSchema]:
    spec = make_spec()
    store = LocalArtifactStore(spec.state_dir / "s3")
    assert spec.data.source is not None
    table = read_raw_table(spec.data.source)
    schema = FeatureSchema.learn(table.records, numeric=NUMERIC_FEATURES, categorical=CATEGORICAL)
    return spec, store, schema


def test_labelled_records_become_validated_rows_with_every_drop_counted(
    setup: tuple[PipelineSpec, LocalArtifactStore, FeatureSchema], tmp_path: Path
) -> None:
    spec, store, schema = setup
    assert spec.data.source is not None
    rows = churn_rows(40, seed=77)
    encoded = schema.encode([_api_record(r) for r in rows[30:35]])
    first = [merged(f"i{i}", json.dumps(_api_record(r)), _label(r)) for i, r in enumerate(rows[:20])]
    first.append(merged("csv0", ",".join(f"{v:.10g}" for v in encoded[0]), _label(rows[30]), media="text/csv",
                        encoding="CSV"))  # fmt: skip
    first.append(
        merged(
            "b64",
            base64.b64encode(json.dumps(_api_record(rows[20])).encode()).decode(),
            _label(rows[20]),
            media="application/json; charset=utf-8",  # a type outside the capture header: BASE64
            encoding="BASE64",
        )
    )
    put_merged(store, spec, "window-a", first)
    time.sleep(0.01)  # the re-merge is written later
    # the same window merged again with more labels: i0..i4 again (kept once, this copy), plus new ones
    again = [merged(f"i{i}", json.dumps(_api_record(r)), _label(r)) for i, r in enumerate(rows[:5])]
    again += [merged(f"j{i}", json.dumps(_api_record(r)), _label(r)) for i, r in enumerate(rows[21:25])]
    again.append(merged("dup", json.dumps(_api_record(rows[21])), _label(rows[21])))  # same row, other id
    again.append(merged("two", json.dumps([_api_record(rows[25]), _api_record(rows[26])]), "1"))
    again.append(merged("wide", "1,2,3", "0", media="text/csv", encoding="CSV"))
    two_hot = encoded[1].copy()
    two_hot[-1] = two_hot[-2] = 1.0
    again.append(merged("hot", ",".join(f"{v:.10g}" for v in two_hot), "0", media="text/csv", encoding="CSV"))
    again.append(merged("badlabel", json.dumps(_api_record(rows[27])), "maybe"))
    partial = _api_record(rows[28])
    del partial["Day Mins"]
    again.append(merged("partial", json.dumps(partial), "0"))
    negative = _api_record(rows[29]) | {"Day Calls": -3}
    again.append(merged("negative", json.dumps(negative), "0"))
    put_merged(store, spec, "window-a-remerged", [*again, {"not": "a capture"}])
    store.put_bytes(naming.merged_ground_truth_uri(spec).join("x", "broken.jsonl"), b"{oops\n")

    table = combine(spec, store, spec.data.source, schema)
    report = table.report
    assert report.files == 3
    assert report.records_read == len(first) + len(again) + 1 + 1
    assert report.superseded == 5
    assert report.exact_duplicates == 1
    assert report.used == 20 + 1 + 1 + 4  # i0..i19, the CSV row, the BASE64 record, j0..j3
    assert report.unusable == {
        "several_rows": 1,
        "unmappable_csv": 2,
        "bad_label": 1,
        "missing_fields": 2,  # Day Mins, and the object that is no capture record
        "invalid_value": 1,
        "invalid_json": 1,
    }
    assert "Day Calls" in report.examples["invalid_value"] and "window-a-remerged" in report.examples["bad_label"]
    assert table.base_rows == 1000 and table.new_rows == report.used

    out = tmp_path / "combined.csv"
    out.write_bytes(table.content)
    combined = read_raw_table(out)  # the Data stage's own validation passes
    assert len(combined.records) == 1000 + report.used
    assert table.content.startswith(spec.data.source.read_bytes())  # the configured table's bytes are kept
    added = combined.records[1000:]
    assert {r["Phone"] for r in added} == {PHONE_FILL}
    assert added[0]["Day Charge"] == pytest.approx(round(float(rows[0]["Day Mins"]) * 0.17, 2))
    labels = combined.labels[1000:]
    assert labels[0] == (1 if rows[0][C.LABEL_COLUMN] == C.LABEL_POSITIVE else 0)
    # the encoded CSV row was mapped back to the raw fields it came from
    csv_row = next(r for r in added if r["Account Length"] == int(rows[30]["Account Length"])
                   and r["State"] == rows[30]["State"])  # fmt: skip
    for name in (*CATEGORICAL, "Day Mins", "CustServ Calls"):
        assert str(csv_row[name]) == str(read_raw_table_row(rows[30])[name])


def read_raw_table_row(row: dict[str, str]) -> dict[str, Any]:
    """A generated row typed as the raw table types it."""
    return {k: (float(v) if "." in v else int(v)) if k in NUMERIC_FEATURES else v for k, v in row.items()}


def test_the_same_inputs_give_the_same_bytes_and_a_second_combination_adds_nothing(
    setup: tuple[PipelineSpec, LocalArtifactStore, FeatureSchema], tmp_path: Path
) -> None:
    spec, store, schema = setup
    assert spec.data.source is not None
    rows = churn_rows(10, seed=5)
    put_merged(store, spec, "w", [merged(f"i{i}", json.dumps(_api_record(r)), _label(r)) for i, r in enumerate(rows)])
    once = combine(spec, store, spec.data.source, schema)
    assert once.sha256 == combine(spec, store, spec.data.source, schema).sha256
    assert once.new_rows == 10
    # a later retraining whose configured table is this one: the same labelled rows are exact duplicates now
    base = tmp_path / "previous.csv"
    base.write_bytes(once.content)
    again = combine(spec, store, base, schema)
    assert (again.new_rows, again.report.exact_duplicates, again.content) == (0, 10, once.content)


def test_no_merged_objects_means_no_new_rows(setup: tuple[PipelineSpec, LocalArtifactStore, FeatureSchema]) -> None:
    spec, store, schema = setup
    assert spec.data.source is not None
    table = combine(spec, store, spec.data.source, schema)
    assert (table.new_rows, table.report.records_read, table.content) == (0, 0, spec.data.source.read_bytes())
    assert "0 labelled records read from 0 merged files" in table.report.summary()


def test_header_order_of_the_configured_table_is_kept(
    setup: tuple[PipelineSpec, LocalArtifactStore, FeatureSchema], tmp_path: Path
) -> None:
    spec, store, schema = setup
    reordered = [HEADER[-1], *HEADER[:-1]]
    from tests.conftest import write_table

    base = write_table(tmp_path / "reordered.csv", churn_rows(50, seed=1), reordered)
    row = churn_rows(1, seed=2)[0]
    put_merged(store, spec, "w", [merged("x", json.dumps(_api_record(row)), "1")])
    table = combine(spec, store, base, schema)
    last = table.content.decode().splitlines()[-1].split(",")
    assert last[0] == C.LABEL_POSITIVE and last[1] == row["State"]
    assert S3Uri.parse(str(naming.merged_ground_truth_uri(spec))).bucket == naming.artifact_bucket(spec)
