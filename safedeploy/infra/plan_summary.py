"""Summarize ``terraform show -json <plan>`` for review: resources to add, change, replace and destroy, by type."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_ACTIONS = ("create", "update", "replace", "delete")
_LABELS = {"create": "add", "update": "change", "replace": "replace", "delete": "destroy"}


def _action(actions: list[str]) -> str | None:
    if actions in (["create", "delete"], ["delete", "create"]):
        return "replace"
    if actions == ["create"]:
        return "create"
    if actions == ["update"]:
        return "update"
    if actions == ["delete"]:
        return "delete"
    return None  # no-op, read


@dataclass(frozen=True)
class PlanSummary:
    """Counts of planned resource changes, in total and per resource type."""

    totals: Mapping[str, int]
    by_type: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @classmethod
    def from_plan_json(cls, plan: Mapping[str, Any]) -> PlanSummary:
        """Read the machine-readable plan (``terraform show -json``)."""
        if "resource_changes" not in plan and "format_version" not in plan:
            raise ValueError("not a terraform JSON plan: no format_version or resource_changes")
        totals: Counter[str] = Counter({a: 0 for a in _ACTIONS})
        by_type: dict[str, Counter[str]] = {}
        for change in plan.get("resource_changes") or []:
            if change.get("mode") != "managed":
                continue
            action = _action(list(change.get("change", {}).get("actions", [])))
            if action is None:
                continue
            totals[action] += 1
            by_type.setdefault(change["type"], Counter())[action] += 1
        return cls(dict(totals), {t: dict(c) for t, c in sorted(by_type.items())})

    def headline(self) -> str:
        """Terraform's own wording: ``Plan: 3 to add, 0 to change, 0 to destroy`` (+ replacements)."""
        t = self.totals
        text = f"Plan: {t['create']} to add, {t['update']} to change, {t['delete']} to destroy"
        return text + (f" ({t['replace']} to replace)" if t["replace"] else "")

    def markdown(self, title: str) -> str:
        """A review table: one row per resource type, a column per action."""
        lines = [f"# {title}", "", self.headline(), "", "| resource type | add | change | replace | destroy |"]
        lines.append("| --- | ---: | ---: | ---: | ---: |")
        for rtype, counts in self.by_type.items():
            cells = " | ".join(str(counts.get(a, 0)) for a in _ACTIONS)
            lines.append(f"| {rtype} | {cells} |")
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, with terraform's action labels."""
        return {
            "totals": {_LABELS[a]: n for a, n in self.totals.items()},
            "by_type": {t: {_LABELS[a]: n for a, n in c.items()} for t, c in self.by_type.items()},
        }
