"""``constraints.json``: suggested from a baseline's statistics, and read back (validated) by the monitoring job.

Suggestions follow deequ's rules as Model Monitor applies them: the observed completeness, ``is_non_negative``
for numeric features whose minimum is not negative, and the observed values as the domain of a String feature
with few distinct values. ``monitoring_config`` carries the analyzer's defaults; thresholds and methods may be
overridden for the whole dataset or per feature (``monitoring_config_overrides``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.analyzer.statistics import BaselineError, Json, load_json


def default_monitoring_config() -> Json:
    """The ``monitoring_config`` the analyzer suggests."""
    return {
        "evaluate_constraints": "Enabled",
        "emit_metrics": "Enabled",
        "datatype_check_threshold": F.DEFAULT_DATATYPE_CHECK_THRESHOLD,
        "domain_content_threshold": F.DEFAULT_DOMAIN_CONTENT_THRESHOLD,
        "distribution_constraints": {
            "perform_comparison": "Enabled",
            "comparison_threshold": F.DEFAULT_COMPARISON_THRESHOLD,
            "comparison_method": F.DEFAULT_COMPARISON_METHOD,
            "categorical_comparison_threshold": F.DEFAULT_CATEGORICAL_COMPARISON_THRESHOLD,
            "categorical_drift_method": F.DEFAULT_CATEGORICAL_DRIFT_METHOD,
        },
    }


def suggest_constraints(statistics: Json) -> Json:
    """The constraints a baseline's ``statistics.json`` suggests."""
    features = []
    for feature in statistics["features"]:
        inferred = feature["inferred_type"]
        suggestion: Json = {"name": feature["name"], "inferred_type": inferred}
        section = feature.get("numerical_statistics") or feature.get("string_statistics") or {}
        common = section.get("common", {})
        total = int(common.get("num_present", 0)) + int(common.get("num_missing", 0))
        suggestion["completeness"] = int(common.get("num_present", 0)) / total if total else 0.0
        if inferred in (F.INTEGRAL, F.FRACTIONAL) and "min" in section:
            suggestion["num_constraints"] = {"is_non_negative": section["min"] >= 0}
        elif inferred == F.STRING:
            buckets = section.get("distribution", {}).get("categorical", {}).get("buckets", [])
            if 0 < len(buckets) <= F.CATEGORICAL_DOMAIN_MAX:
                suggestion["string_constraints"] = {"domains": [b["value"] for b in buckets]}
        features.append(suggestion)
    return {"version": 0.0, "features": features, "monitoring_config": default_monitoring_config()}


@dataclass(frozen=True)
class MonitoringConfig:
    """``monitoring_config`` (dataset-wide, or one feature's after its overrides)."""

    evaluate_constraints: bool = True
    emit_metrics: bool = True
    datatype_check_threshold: float = F.DEFAULT_DATATYPE_CHECK_THRESHOLD
    domain_content_threshold: float = F.DEFAULT_DOMAIN_CONTENT_THRESHOLD
    perform_comparison: bool = True
    comparison_threshold: float = F.DEFAULT_COMPARISON_THRESHOLD
    comparison_method: str = F.DEFAULT_COMPARISON_METHOD
    categorical_comparison_threshold: float = F.DEFAULT_CATEGORICAL_COMPARISON_THRESHOLD
    categorical_drift_method: str = F.DEFAULT_CATEGORICAL_DRIFT_METHOD

    def overridden(self, overrides: Json, where: str) -> MonitoringConfig:
        """This config with ``overrides`` (the same keys, flat or under ``distribution_constraints``) applied."""
        flat = {**overrides, **overrides.get("distribution_constraints", {})}
        changes: dict[str, Any] = {}
        for key in ("evaluate_constraints", "emit_metrics", "perform_comparison"):
            if key in flat:
                changes[key] = _enabled(flat[key], f"{where}.{key}")
        for key in (
            "datatype_check_threshold",
            "domain_content_threshold",
            "comparison_threshold",
            "categorical_comparison_threshold",
        ):
            if key in flat:
                changes[key] = _fraction(flat[key], f"{where}.{key}")
        if "enable_comparisons" in flat:  # the older schema's switch (SDK fixtures)
            changes["perform_comparison"] = _enabled(flat["enable_comparisons"], f"{where}.enable_comparisons")
        if "comparison_method" in flat:
            changes["comparison_method"] = _choice(flat["comparison_method"], F.COMPARISON_METHODS, where)
        if "categorical_drift_method" in flat:
            changes["categorical_drift_method"] = _choice(
                flat["categorical_drift_method"], F.CATEGORICAL_DRIFT_METHODS, where
            )
        return replace(self, **changes)


@dataclass(frozen=True)
class FeatureConstraints:
    """One feature's constraints."""

    name: str
    inferred_type: str
    completeness: float
    is_non_negative: bool | None
    domains: tuple[str, ...] | None
    config: MonitoringConfig


@dataclass(frozen=True)
class Constraints:
    """A parsed ``constraints.json``."""

    features: tuple[FeatureConstraints, ...]
    config: MonitoringConfig

    def feature(self, name: str) -> FeatureConstraints | None:
        """The named feature's constraints."""
        return next((f for f in self.features if f.name == name), None)


def _enabled(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("Enabled", "Disabled"):
        return bool(value == "Enabled")
    raise BaselineError(f"{where} must be Enabled or Disabled, got {value!r}")


def _fraction(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise BaselineError(f"{where} must be a number between 0 and 1, got {value!r}")
    return float(value)


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise BaselineError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def parse_constraints(document: Json, source: str) -> Constraints:
    """Validate and parse a ``constraints.json`` document.

    Raises:
        BaselineError: naming ``source`` and the field that is wrong.
    """
    try:
        config = MonitoringConfig().overridden(document.get("monitoring_config", {}), f"{source}: monitoring_config")
        features = []
        for index, feature in enumerate(document["features"]):
            where = f"{source}: features[{index}]"
            inferred = feature["inferred_type"]
            if inferred not in (F.INTEGRAL, F.FRACTIONAL, F.STRING, F.UNKNOWN):
                raise BaselineError(f"{where}.inferred_type: unknown type {inferred!r}")
            overrides = {
                **feature.get("monitoring_config_overrides", {}),
                **feature.get("monitoringConfigOverrides", {}),
                **feature.get("string_constraints", {}).get("monitoring_config_overrides", {}),
                **feature.get("num_constraints", {}).get("monitoring_config_overrides", {}),
            }
            domains = feature.get("string_constraints", {}).get("domains")
            features.append(
                FeatureConstraints(
                    name=str(feature["name"]),
                    inferred_type=inferred,
                    completeness=_fraction(feature.get("completeness", 1.0), f"{where}.completeness"),
                    is_non_negative=feature.get("num_constraints", {}).get("is_non_negative"),
                    domains=tuple(str(d) for d in domains) if domains is not None else None,
                    config=config.overridden(overrides, where),
                )
            )
    except (KeyError, TypeError, AttributeError) as exc:
        raise BaselineError(f"{source} is not in Model Monitor's constraints schema: missing or bad {exc!r}") from None
    return Constraints(tuple(features), config)


def read_constraints(path: Path) -> Constraints:
    """Read and validate a baseline ``constraints.json``."""
    return parse_constraints(load_json(path, "baseline constraints"), f"baseline constraints {path}")
