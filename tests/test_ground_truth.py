"""Ground-truth ingestion and the merge with captured predictions (SageMaker's format and join rules)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from safedeploy.monitoring.analyzer import ground_truth as G

UTC = UTC
START = datetime(2026, 12, 3, 10, tzinfo=UTC)
END = datetime(2026, 12, 3, 11, tzinfo=UTC)


def capture(event_id: str, minute: int, score: float, inference_id: str | None = None, hour: int = 10) -> str:
    metadata = {"eventId": event_id, "inferenceTime": f"2026-12-03T{hour:02d}:{minute:02d}:00.000Z"}
    if inference_id:
        metadata["inferenceId"] = inference_id
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2", "encoding": "CSV"},
                "endpointOutput": {
                    "observedContentType": "application/json",
                    "mode": "OUTPUT",
                    "data": json.dumps({"predictions": [{"score": score}]}),
                    "encoding": "JSON",
                },
            },
            "eventMetadata": metadata,
            "eventVersion": "0",
        }
    )


def label(event_id: str, value: str = "1", encoding: str = "CSV") -> str:
    return json.dumps(
        {
            "groundTruthData": {"data": value, "encoding": encoding},
            "eventMetadata": {"eventId": event_id},
            "eventVersion": "0",
        }
    )


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_merge_counts_missing_duplicate_unknown_malformed_and_late_labels(tmp_path: Path) -> None:
    cap = write(
        tmp_path / "capture/ep/AllTraffic/2026/12/03/10/a.jsonl",
        [
            capture("e1", 1, 0.9),
            capture("e2", 2, 0.2, inference_id="req-2"),  # joined by its inferenceId
            capture("e3", 3, 0.7),  # never labelled
            capture("e4", 4, 0.1, inference_id="synthetic-1"),  # the canary: excluded
            capture("e5", 5, 0.6),
            capture("e6", 59, 0.3, hour=9),  # the hour before the window
            '{"captureData": {}',
        ],
    )
    gt = tmp_path / "gt"
    write(gt / "2026/12/03/09/old.jsonl", [label("e1", "0")])  # before the window's hour: not read
    write(
        gt / "2026/12/03/10/a.jsonl",
        [
            label("e1", "0"),
            label("req-2", "0"),
            label("e2", "1"),  # the eventId of a record with an inferenceId: joins nothing
            "not json",
            label("e9", "7"),
            label("e8", "1", encoding="JSON"),
            json.dumps({"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventVersion": "0"}),
        ],
    )
    write(gt / "2026/12/03/12/late.jsonl", [label("e1", "1"), label("e5", "0"), label("e6", "1")])  # late labels
    files = G.ground_truth_files(gt, START, datetime(2026, 12, 3, 12, 30, tzinfo=UTC))
    assert [f.name for f in files] == ["a.jsonl", "late.jsonl"]
    labels = G.read_labels(files)
    captured = G.read_captured([cap], START, END, ("synthetic-", "known-rows-"))
    merged = G.merge(captured, labels, START)
    counts = merged.counts
    assert counts["captured"] == 4 and counts["labelled"] == 3 and counts["unlabelled"] == 1
    assert counts["coverage"] == 0.75
    assert counts["labels_read"] == 6
    assert counts["duplicate_labels"] == 1 and counts["conflicting_duplicate_labels"] == 1
    assert "later upload wins" in counts["duplicate_label_example"]
    assert counts["labels_outside_window"] == 1  # e6: captured in the hour before
    assert counts["unknown_labels"] == 1  # e2 (the record is keyed by its inferenceId)
    assert counts["malformed_labels"] == {"invalid_json": 1, "bad_label": 1, "bad_encoding": 1, "missing_fields": 1}
    assert counts["malformed_label_examples"]["bad_label"].startswith("a.jsonl:5:")
    assert counts["capture_excluded"] == {"synthetic": 1} and counts["capture_outside_window"] == 1
    assert counts["malformed_capture"] == {"invalid_json": 1}
    # the latest upload of e1 (label 1, collected at 12:00) wins; req-2 joins by inferenceId
    assert merged.labels.tolist() == [1, 0, 0] and merged.scores.tolist() == [0.9, 0.2, 0.6]
    first = merged.records[0]
    assert first["groundTruthData"] == {"data": "1", "encoding": "CSV"} and first["eventMetadata"]["eventId"] == "e1"
    lines = G.merged_jsonl(merged.records).splitlines()
    assert len(lines) == 3 and json.loads(lines[1])["eventMetadata"]["inferenceId"] == "req-2"


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("{", "invalid_json"),
        ("[1]", "invalid_json"),
        ('{"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventVersion": "0"}', "missing_fields"),
        (label("x", "yes"), "bad_label"),
        (label("x", "1", "BASE64"), "bad_encoding"),
    ],
)
def test_parse_label_names_the_problem(line: str, kind: str) -> None:
    with pytest.raises(G.GroundTruthError) as caught:
        G.parse_label(line)
    assert caught.value.kind == kind


def test_several_scores_in_one_record_are_counted_not_guessed(tmp_path: Path) -> None:
    record = json.loads(capture("e1", 1, 0.5))
    record["captureData"]["endpointOutput"]["data"] = json.dumps({"predictions": [{"score": 0.1}, {"score": 0.2}]})
    cap = write(tmp_path / "c.jsonl", [json.dumps(record)])
    captured = G.read_captured([cap], START, END)
    assert captured.records == [] and captured.problems.counts == {"several_predictions": 1}
