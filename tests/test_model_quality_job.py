"""The model-quality Processing job (``analysis_type=MODEL_QUALITY``) run in-process on a container layout."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.analyzer.job import main
from tests.test_ground_truth import capture, label, write


def _layout(tmp_path: Path, n: int, labelled: int, seed: int = 5) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    scores = np.clip(truth * 0.3 + rng.random(n) * 0.7, 0, 1)
    endpoint = tmp_path / "in/endpoint/ep/AllTraffic/2026/12/03/10"
    write(endpoint / "c.jsonl", [capture(f"e{i}", i % 60, round(float(scores[i]), 6)) for i in range(n)])
    gt = tmp_path / "in/gt"
    write(gt / "2026/12/03/10/a.jsonl", [label(f"e{i}", str(truth[i])) for i in range(labelled // 2)])
    write(gt / "2026/12/03/13/late.jsonl", [label(f"e{i}", str(truth[i])) for i in range(labelled // 2, labelled)])
    write(
        tmp_path / "in/baseline/constraints.json",
        [
            json.dumps(
                {
                    "version": 0.0,
                    "binary_classification_constraints": {
                        "auc": {"threshold": 0.99, "comparison_operator": "LessThanThreshold"}
                    },
                }
            )
        ],
    )
    return {
        F.ENV_BASE_DIR: str(tmp_path / "ml"),
        F.ENV_ANALYSIS_TYPE: "MODEL_QUALITY",
        F.ENV_DATASET_SOURCE: str(tmp_path / "in/endpoint"),
        F.ENV_GROUND_TRUTH_SOURCE: str(gt),
        F.ENV_OUTPUT_PATH: str(tmp_path / "out"),
        F.ENV_MERGED_OUTPUT_PATH: str(tmp_path / "merged"),
        F.ENV_MERGED_FILE_NAME: "job-1",
        F.ENV_START_TIME: "2026-12-03T10:00:00Z",
        F.ENV_END_TIME: "2026-12-03T11:00:00Z",
        F.ENV_BASELINE_CONSTRAINTS: str(tmp_path / "in/baseline/constraints.json"),
        F.ENV_PUBLISH_METRICS: "Enabled",
        F.ENV_ENDPOINT_NAME: "ep",
        F.ENV_SCHEDULE_NAME: "p-model-quality",
        F.ENV_MIN_LABELLED_RECORDS: "30",
    }


def test_a_window_with_late_labels_is_evaluated_and_published(tmp_path: Path) -> None:
    env = _layout(tmp_path, 240, 220)
    assert main(env) == 0
    summary = json.loads((tmp_path / "out" / F.EXECUTION_SUMMARY_FILE).read_text())
    assert summary["captured"] == 240 and summary["labelled"] == 220 and summary["unlabelled"] == 20
    assert summary["coverage"] == 220 / 240 and summary["ground_truth_files"] == 2
    assert summary["status"] == F.COMPLETED_WITH_VIOLATIONS  # the 0.99 AUC threshold
    statistics = json.loads((tmp_path / "out" / F.STATISTICS_FILE).read_text())
    assert statistics["dataset"] == {"item_count": 220, "evaluation_time": "2026-12-03T11:00:00.000Z"}
    auc = statistics["binary_classification_metrics"]["auc"]
    assert isinstance(auc["standard_deviation"], float)
    violations = json.loads((tmp_path / "out" / F.VIOLATIONS_FILE).read_text())["violations"]
    assert [v["metric_name"] for v in violations] == ["auc"]
    lines = [
        json.loads(x)
        for x in (tmp_path / "ml/output/metrics/cloudwatch" / F.CLOUDWATCH_METRICS_FILE).read_text().splitlines()
    ]
    by_name = {x["MetricName"]: x for x in lines}
    assert by_name["auc"]["Value"] == auc["value"] and {"f1", "recall", "precision", "accuracy"} <= set(by_name)
    assert by_name["auc"]["Dimensions"] == [
        {"Name": "Endpoint", "Value": "ep"},
        {"Name": "MonitoringSchedule", "Value": "p-model-quality"},
    ]
    merged = (tmp_path / "merged/job-1.jsonl").read_text().splitlines()
    assert len(merged) == 220 and "groundTruthData" in json.loads(merged[0])
    first = (tmp_path / "out" / F.STATISTICS_FILE).read_bytes()
    assert main(env) == 0 and (tmp_path / "out" / F.STATISTICS_FILE).read_bytes() == first  # byte-identical rerun


def test_too_few_labels_is_insufficient_data_without_metrics(tmp_path: Path) -> None:
    env = _layout(tmp_path, 100, 29)
    assert main(env) == 0
    summary = json.loads((tmp_path / "out" / F.EXECUTION_SUMMARY_FILE).read_text())
    assert summary["status"] == F.INSUFFICIENT_DATA and summary["labelled"] == 29 and summary["metrics"] == {}
    assert json.loads((tmp_path / "out" / F.VIOLATIONS_FILE).read_text()) == {"violations": []}
    assert not (tmp_path / "ml/output/metrics/cloudwatch" / F.CLOUDWATCH_METRICS_FILE).exists()
    assert (tmp_path / "ml/output/message").read_text().startswith("InsufficientData: 29 labelled records")


def test_bad_settings_fail_naming_the_variable(tmp_path: Path) -> None:
    env = _layout(tmp_path, 10, 10) | {F.ENV_PROBABILITY_THRESHOLD: "1.5"}
    assert main(env) == 1
    assert "probability_threshold_attribute='1.5'" in (tmp_path / "ml/output/failure").read_text()


def test_the_quality_baseline_scores_the_validation_set_with_the_model(tmp_path: Path) -> None:
    import io
    import tarfile

    import xgboost as xgb
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] + rng.normal(scale=0.7, size=400) > 0).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1}, xgb.DMatrix(x, label=y), 10)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = bytes(booster.save_raw("json"))
        info = tarfile.TarInfo(F.MODEL_FILE)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (tmp_path / "model.tar.gz").write_bytes(buffer.getvalue())
    validation = tmp_path / "validation.csv"
    validation.write_text(
        "".join(f"{label}," + ",".join(f"{v:.6g}" for v in row) + "\n" for label, row in zip(y, x, strict=True))
    )
    env = {
        F.ENV_BASE_DIR: str(tmp_path / "ml"),
        F.ENV_ANALYSIS_TYPE: "SUGGEST_MODEL_QUALITY_BASELINE",
        F.ENV_DATASET_SOURCE: str(validation),
        F.ENV_MODEL_ARCHIVE: str(tmp_path / "model.tar.gz"),
        F.ENV_OUTPUT_PATH: str(tmp_path / "out"),
        F.ENV_END_TIME: "2026-12-03T10:00:00Z",
        F.ENV_AUC_THRESHOLD: "0.7",
    }
    assert main(env) == 0
    statistics = json.loads((tmp_path / "out" / F.STATISTICS_FILE).read_text())
    expected = roc_auc_score(y, booster.predict(xgb.DMatrix(np.loadtxt(validation, delimiter=",")[:, 1:])))
    assert statistics["binary_classification_metrics"]["auc"]["value"] == pytest.approx(expected, abs=1e-6)
    assert statistics["dataset"] == {"item_count": 400, "evaluation_time": "2026-12-03T10:00:00.000Z"}
    constraints = json.loads((tmp_path / "out" / F.CONSTRAINTS_FILE).read_text())
    assert constraints["binary_classification_constraints"]["auc"] == {
        "threshold": 0.7,
        "comparison_operator": "LessThanThreshold",
    }
    digests = json.loads((tmp_path / "out" / F.DIGESTS_FILE).read_text())
    first = (tmp_path / "out" / F.STATISTICS_FILE).read_bytes()
    assert digests[F.STATISTICS_FILE] == "sha256:" + hashlib.sha256(first).hexdigest()
    assert main(env) == 0 and (tmp_path / "out" / F.STATISTICS_FILE).read_bytes() == first


def test_the_request_builders_are_valid_create_processing_job_requests() -> None:
    """Both builders pass botocore's own validation of ``CreateProcessingJob`` and hold nothing local."""
    from datetime import UTC, datetime

    import botocore.session
    from botocore.validate import ParamValidator

    from safedeploy import naming
    from safedeploy.sagemaker_requests.processing import (
        model_quality_baseline_job_request,
        model_quality_job_request,
    )
    from safedeploy.spec import load_spec

    spec = load_spec(overrides={"monitoring": {"model_quality": {"auc_threshold": 0.8, "bootstrap_seed": 7}}})
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateProcessingJob")
    code = naming.analyzer_code_prefix(spec, "0" * 64)
    start, end = datetime(2026, 12, 3, 10, tzinfo=UTC), datetime(2026, 12, 3, 11, tzinfo=UTC)
    ground_truth = naming.ground_truth_uri(spec)
    request = model_quality_job_request(
        spec,
        job_name="customerchurn-quality-1",
        schedule_name=naming.model_quality_schedule_name(spec),
        endpoint="ep",
        capture_prefixes=[naming.capture_uri(spec).join("ep", "AllTraffic", "2026/12/03/10")],
        ground_truth_prefixes=[ground_truth.join("2026/12/03/10"), ground_truth.join("2026/12/03/11")],
        start=start,
        end=end,
        baseline_constraints="s3://b/customerchurn/model-versions/1/baseline/quality/constraints.json",
        output=naming.monitoring_reports_prefix(spec).join("ep"),
        merged_output=naming.merged_ground_truth_uri(spec).join("ep", "2026/12/03/10"),
        code=code,
        image_uri="123.dkr.ecr.us-east-1.amazonaws.com/xgb:3.2-0",
        kms_key_id="arn:aws:kms:us-east-1:000000000000:key/k",
    )
    baseline = model_quality_baseline_job_request(
        spec,
        job_name="customerchurn-baseline-1",
        dataset="s3://b/validation/",
        model_archive="s3://b/model.tar.gz",
        output=naming.execution_baseline_prefix(spec, "e1").join("quality"),
        code=code,
        image_uri="123.dkr.ecr.us-east-1.amazonaws.com/xgb:3.2-0",
        evaluation_time=end,
    )
    assert shape.input_shape is not None
    for built in (request, baseline):
        report = ParamValidator().validate(dict(built), shape.input_shape)
        assert not report.has_errors(), report.generate_report()
    env = request["Environment"]
    assert env[F.ENV_ANALYSIS_TYPE] == "MODEL_QUALITY" and env[F.ENV_AUC_THRESHOLD] == "0.8"
    assert env[F.ENV_BOOTSTRAP_SEED] == "7" and env[F.ENV_MIN_LABELLED_RECORDS] == "30"
    assert (env[F.ENV_START_TIME], env[F.ENV_END_TIME]) == ("2026-12-03T10:00:00Z", "2026-12-03T11:00:00Z")
    local_paths = [i["S3Input"]["LocalPath"] for i in request["ProcessingInputs"]]
    assert "/opt/ml/processing/input/ground_truth/2026/12/03/11" in local_paths
    outputs = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in request["ProcessingOutputConfig"]["Outputs"]}
    assert outputs["merged_ground_truth"].endswith("/merged-ground-truth/ep/2026/12/03/10")
    assert all(str(spec.state_dir) not in json.dumps(built) for built in (request, baseline))
