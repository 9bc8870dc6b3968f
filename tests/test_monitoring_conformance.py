"""Our suggest-baseline against SageMaker Model Monitor's own analyzer output, for the same input.

Source (Apache-2.0, see tests/fixtures/model_monitor/SOURCES.md for blobs and URLs):

* input: aws/amazon-sagemaker-examples @ f2f2644157382aedc8dcdf3e0013dcb9a2dff413,
  ``sagemaker_model_monitor/introduction/test_data/training-dataset-with-header.csv`` (2,333 rows x 70 columns;
  the blob is unchanged from 2019 to today);
* output: the same commit, ``sagemaker_model_monitor/introduction/SageMaker-ModelMonitoring_outputs.ipynb``, cell 29:
  the analyzer (``sagemaker-model-monitor-analyzer``, baseline job baseline-suggestion-job-2022-04-07-13-12-27-691)
  logs the complete ``constraints.json`` and the first 29 features of ``statistics.json`` (CloudWatch cut the
  rest); features 30-34 are transcribed from the truncated lines. The logged files are identical across the seven
  baseline jobs in the notebook's history (2020-11 to 2022-04): the analyzer is deterministic on this input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.analyzer.checks import CheckResult, WindowFeature, data_type_violation
from safedeploy.monitoring.analyzer.constraints import parse_constraints
from safedeploy.monitoring.analyzer.job import suggest_baseline
from safedeploy.monitoring.analyzer.table import TypeCounts

FIXTURES = Path(__file__).parent / "fixtures" / "model_monitor" / "sagemaker-examples-churn-intro"


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("baseline")
    done = suggest_baseline(FIXTURES / "training-dataset-with-header.csv", out)
    assert done == {"item_count": 2333, "features": 70}
    return {
        "statistics": json.loads((out / F.STATISTICS_FILE).read_text()),
        "constraints": json.loads((out / F.CONSTRAINTS_FILE).read_text()),
    }


def test_statistics_equal_the_analyzers_for_every_published_feature(ours: dict[str, Any]) -> None:
    """29 features, every field: counts, mean, sum, std_dev, min, max, KLL buckets and the whole sketch."""
    published = json.loads((FIXTURES / "statistics.partial.logged.json").read_text())
    assert ours["statistics"]["version"] == published["version"] == 0.0
    assert ours["statistics"]["dataset"] == published["dataset"] == {"item_count": 2333}
    by_name = {feature["name"]: feature for feature in ours["statistics"]["features"]}
    assert len(published["features"]) == 29
    for feature in published["features"]:
        assert by_name[feature["name"]] == feature, feature["name"]
    # the sketch really compacted (the published data has two levels): not a trivial copy of the input
    churn = by_name["Churn"]["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"]
    assert [len(level) for level in churn] == [283, 1025]


def test_statistics_equal_the_transcribed_features(ours: dict[str, Any]) -> None:
    """Five more features whose scalar statistics and buckets were published without their sketch data."""
    transcribed = json.loads((FIXTURES / "statistics.truncated-features.transcribed.json").read_text())
    by_name = {feature["name"]: feature for feature in ours["statistics"]["features"]}
    checked = 0
    for feature in transcribed["features"]:
        mine = by_name[feature["name"]]["numerical_statistics"]
        for key, value in feature["numerical_statistics"].items():
            if key == "distribution":
                kll = value["kll"]
                for index, bucket in enumerate(kll.get("buckets", [])):  # State_ME's last bucket is cut short
                    assert {k: mine["distribution"]["kll"]["buckets"][index][k] for k in bucket} == bucket
                if "sketch" in kll and "parameters" in kll["sketch"]:
                    assert mine["distribution"]["kll"]["sketch"]["parameters"] == kll["sketch"]["parameters"]
            else:
                assert mine[key] == value, (feature["name"], key)
            checked += 1
    assert checked >= 25


def test_constraints_equal_the_analyzers(ours: dict[str, Any]) -> None:
    published = json.loads((FIXTURES / "constraints.logged.json").read_text())
    assert ours["constraints"]["version"] == published["version"]
    assert ours["constraints"]["features"] == published["features"]
    config = ours["constraints"]["monitoring_config"]
    distribution = dict(config["distribution_constraints"])
    # Deviation (docs/monitoring.md): the current developer guide adds the categorical drift settings, which the
    # 2020-2022 analyzer did not write; every other key and value is the analyzer's.
    assert distribution.pop("categorical_comparison_threshold") == 0.1
    assert distribution.pop("categorical_drift_method") == "LInfinity"
    assert {**config, "distribution_constraints": distribution} == published["monitoring_config"]


def test_data_type_violation_reads_as_the_analyzers() -> None:
    """The tutorial's first violation, reproduced from its numbers: 1,970 of 1,977 values Integral (99.6459...%)."""
    published = json.loads((FIXTURES / "constraint_violations.head10.transcribed.json").read_text())
    first = published["violations_head10"][0]
    assert first["constraint_check_type"] == F.DATA_TYPE_CHECK
    constraint = parse_constraints(
        {"features": [{"name": first["feature_name"], "inferred_type": "Integral", "completeness": 1.0}]}, "test"
    ).features[0]
    present, integral = 1977, 1970
    assert f"{integral / present * 100!r}" == "99.64592817400101"
    result = CheckResult()
    data_type_violation(
        result,
        constraint,
        WindowFeature(first["feature_name"], TypeCounts(integral=integral, fractional=present - integral), present),
    )
    assert result.violations[0]["description"] == first["description"]
    assert result.violations[0]["observed"] == integral / present
