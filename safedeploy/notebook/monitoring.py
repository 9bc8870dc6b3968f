"""A version's baseline (Model Monitor's statistics and constraints) and monitoring of what production captured."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from safedeploy.errors import SafeDeployError
from safedeploy.store import S3Uri

if TYPE_CHECKING:
    from safedeploy.pipeline import Pipeline

SYNTHETIC_PREFIX = "synthetic-"


@dataclass(frozen=True)
class Baseline:
    """What the Baseline stage recorded for a version: ``statistics.json`` and ``constraints.json``."""

    version: int
    statistics_uri: str
    constraints_uri: str
    statistics: dict[str, Any]
    constraints: dict[str, Any]

    def feature_rows(self) -> list[dict[str, Any]]:
        """One row per feature: type, count, completeness, and mean/std/min/max for numbers (top values else)."""
        limits = {f["name"]: f for f in self.constraints.get("features", [])}
        rows = []
        for feature in self.statistics.get("features", []):
            numbers = feature.get("numerical_statistics")
            strings = feature.get("string_statistics")
            common = (numbers or strings or {}).get("common", {})
            row: dict[str, Any] = {
                "feature": feature["name"],
                "type": feature.get("inferred_type"),
                "present": common.get("num_present"),
                "completeness (constraint)": limits.get(feature["name"], {}).get("completeness"),
            }
            if numbers:
                row.update({k: round(float(numbers[k]), 3) for k in ("mean", "std_dev", "min", "max") if k in numbers})
            elif strings:
                row["distinct"] = strings.get("distinct_count")
            rows.append(row)
        return rows


def baseline_of(pipeline: Pipeline, version: int) -> Baseline:
    """Read ``version``'s data-quality baseline from the artifact store, through the registry's record of it.

    Raises:
        SafeDeployError: the version has no data-quality baseline (monitoring was off when it was trained).
    """
    package = pipeline.backend.registry.describe(pipeline.spec.model_name, version)
    quality = package.DriftCheckBaselines.get("ModelDataQuality")
    if not quality or "Statistics" not in quality or "Constraints" not in quality:
        raise SafeDeployError(f"v{version} has no data-quality baseline (was monitoring.enabled off?)")
    store = pipeline.backend.store
    statistics_uri, constraints_uri = quality["Statistics"].S3Uri, quality["Constraints"].S3Uri
    return Baseline(
        version=version,
        statistics_uri=statistics_uri,
        constraints_uri=constraints_uri,
        statistics=json.loads(store.get_bytes(S3Uri.parse(statistics_uri))),
        constraints=json.loads(store.get_bytes(S3Uri.parse(constraints_uri))),
    )


def captured_since(pipeline: Pipeline, since: datetime) -> int:
    """Client requests (synthetic ones left out) production's monitored endpoint captured at or after ``since``."""
    schedule = pipeline.monitor().schedule()
    store = pipeline.backend.store
    prefix = S3Uri.parse(schedule.CaptureUri).join(schedule.EndpointName, schedule.VariantName)
    stamp = since.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    count = 0
    for ref in store.list_objects(prefix):
        for line in store.get_bytes(S3Uri.parse(ref.uri)).splitlines():
            metadata = json.loads(line).get("eventMetadata", {})
            if metadata.get("inferenceTime", "") >= stamp and not str(metadata.get("inferenceId", "")).startswith(
                SYNTHETIC_PREFIX
            ):
                count += 1
    return count


def wait_for_capture(pipeline: Pipeline, since: datetime, count: int, timeout_s: float = 30.0) -> int:
    """Wait until production's capture holds ``count`` client requests since ``since`` (it is flushed every second).

    Raises:
        TimeoutError: fewer arrived within ``timeout_s``, naming how many did.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        seen = captured_since(pipeline, since)
        if seen >= count:
            return seen
        if time.monotonic() > deadline:
            raise TimeoutError(f"production captured {seen} of {count} requests within {timeout_s:.0f} s")
        time.sleep(0.25)
