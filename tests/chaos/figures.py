"""Sizes and figures of the chaos experiments: one size in ``make test``, a larger one in ``make chaos``."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
FIGURES_DIR = REPO_ROOT / "build" / "chaos"


def full() -> bool:
    """Whether this is ``make chaos`` (the full experiments) rather than ``make test``."""
    return os.environ.get("CHAOS_FULL", "") in {"1", "true", "yes"}


def size(in_test: int, in_chaos: int) -> int:
    """The experiment's size: ``in_test`` under ``make test``, ``in_chaos`` under ``make chaos``."""
    return in_chaos if full() else in_test


def record(experiment: str, figures: dict[str, Any]) -> Path:
    """Write one experiment's figures to ``build/chaos/<experiment>.json`` (atomically) and return the path."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    document = {
        "experiment": experiment,
        "mode": "chaos" if full() else "test",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **figures,
    }
    path = FIGURES_DIR / f"{experiment}.json"
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, indent=2, default=str) + "\n", "utf-8")
    temporary.replace(path)
    return path
