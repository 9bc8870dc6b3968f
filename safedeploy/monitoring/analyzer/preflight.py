"""Preflight: are the capture's columns the baseline's columns? One violation that names a mismatch.

Model Monitor compares columns by position and reports every consequence feature by feature: AWS's own churn
tutorial ended with 60 violations because its baseline's first column was the label (``Churn``) while the
captured requests carried only features. Here the layout is checked first: the baseline's columns against the
model's feature schema (a label or a column the model never saw), then the captured rows' width against the
baseline's. A mismatch that affects most rows is reported once, naming both sides, and the per-feature
checks are skipped (they would only restate it).
"""

from __future__ import annotations

from safedeploy.features import FeatureSchema
from safedeploy.monitoring.analyzer import formats as F
from safedeploy.monitoring.analyzer.capture import WindowData
from safedeploy.monitoring.analyzer.checks import CheckResult

_LABEL_NAMES = frozenset({"label", "target", "churn", "churn?", "y"})


def _looks_like_label(name: str, schema: FeatureSchema | None) -> bool:
    return name.strip().lower() in _LABEL_NAMES or (schema is not None and name == schema.label)


def preflight(names: list[str], schema: FeatureSchema | None, data: WindowData, result: CheckResult) -> bool:
    """Record layout violations in ``result``; return True if they make the per-feature checks meaningless."""
    blocking = False
    if schema is not None:
        expected = schema.features
        if names != expected:
            extra = [n for n in names if n not in expected]
            missing = [n for n in expected if n not in names]
            labels = [n for n in extra if _looks_like_label(n, schema)]
            if labels:
                result.add(
                    labels[0],
                    F.EXTRA_COLUMN_CHECK,
                    f"The baseline has the label column {labels[0]!r} (position {names.index(labels[0]) + 1}); the "
                    f"endpoint's inputs are the model's {len(expected)} features only. Baseline the training "
                    "features without the label.",
                    baseline_columns=len(names),
                    model_columns=len(expected),
                )
            elif extra or missing:
                result.add(
                    (extra or missing)[0],
                    F.EXTRA_COLUMN_CHECK if extra else F.MISSING_COLUMN_CHECK,
                    f"The baseline's {len(names)} columns are not the model's {len(expected)} features: "
                    f"{len(extra)} unknown to the model ({extra[:5]}), {len(missing)} missing ({missing[:5]}).",
                    baseline_columns=len(names),
                    model_columns=len(expected),
                    unknown_columns=extra[:50],
                    missing_columns=missing[:50],
                )
            else:
                result.add(
                    names[0],
                    F.MISSING_COLUMN_CHECK,
                    "The baseline has the model's features in another order; columns are compared by position.",
                    baseline_columns=len(names),
                    model_columns=len(expected),
                )
            blocking = True
    csv_rows = sum(data.widths.values())
    if csv_rows:
        width, count = data.widths.most_common(1)[0]
        if width != len(names) and count * 2 > csv_rows:
            extra_one = width == len(names) + 1
            detail = ""
            if extra_one:
                detail = (
                    " Captured rows carry one column more than the baseline: if its first column is the label or the "
                    "model's score, the baseline and the capture disagree on what a row is."
                )
            result.add(
                "(capture)",
                F.EXTRA_COLUMN_CHECK if width > len(names) else F.MISSING_COLUMN_CHECK,
                f"{count} of {csv_rows} captured CSV rows have {width} columns; the baseline has {len(names)}.{detail}",
                observed_columns=width,
                baseline_columns=len(names),
                window_n=count,
            )
            blocking = True
    raw = data.raw
    if raw.records and schema is not None:
        for field, absent in sorted(raw.missing.items()):
            share = absent / raw.records
            if share * 2 > 1 and field in schema.raw_fields:
                result.add(
                    field,
                    F.MISSING_COLUMN_CHECK,
                    f"{absent} of {raw.records} captured records ({share:.1%}) have no field {field!r}, which the "
                    "model's features are encoded from.",
                    observed=1 - share,
                    window_n=raw.records,
                )
    return blocking


def raw_field_violations(data: WindowData, schema: FeatureSchema | None, result: CheckResult) -> None:
    """Violations about raw JSON records: categories the model never saw, fields it does not know."""
    raw = data.raw
    if not raw.records or schema is None:
        return
    known = dict(schema.categorical)
    for field, unknown in sorted(raw.unknown_categories.items()):
        count = sum(unknown.values())
        share = 1 - count / raw.records
        result.add(
            field,
            F.CATEGORICAL_VALUES_CHECK,
            f"{count} of {raw.records} records carry {field} values the model was not trained on: "
            f"{sorted(unknown)[:10]} (known: {len(known.get(field, ()))} values).",
            observed=share,
            unknown_values=dict(unknown.most_common(100)),
            window_n=raw.records,
        )
    for field, count in sorted(raw.extra.items()):
        result.add(
            field,
            F.EXTRA_COLUMN_CHECK,
            f"{count} of {raw.records} records carry the field {field!r}, which is not one of the model's inputs.",
            window_n=count,
        )
