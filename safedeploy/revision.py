"""The code revision a model was built from (recorded in the registry)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def code_revision(repo: Path) -> str:
    """Return the source revision: CodeBuild's resolved version, else ``git`` HEAD (``+dirty`` if modified).

    Returns ``"unknown"`` outside a git checkout (e.g. an unpacked source archive).
    """
    if env := os.environ.get("CODEBUILD_RESOLVED_SOURCE_VERSION"):
        return env
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head
