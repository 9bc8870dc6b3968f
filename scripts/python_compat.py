"""`make lint`'s Python-compatibility gate: the code shipped out of this interpreter runs on the Python there.

`safedeploy/shipping.py` decides what ships where (the SageMaker XGBoost framework image: `sourcedir.tar.gz` and
the monitor's analyzer; Lambda: `lambdas/` and the `safedeploy` modules it imports) and which Python runs it
(`constants.XGBOOST_CONTAINER_PYTHON`, `constants.LAMBDA_RUNTIME`). vermin checks each file set against its Python
(`-t=<python>-`); a violation is printed as `file:line: ...` and the script exits 1.

vermin detects library and syntax features by their minimum version; it does not see everything (e.g. a union type
given to `isinstance`, or `from datetime import UTC`), so it guards, it does not prove.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from safedeploy.shipping import Destination, destinations  # noqa: E402


def _vermin() -> str:
    sibling = Path(sys.executable).with_name("vermin")
    found = str(sibling) if sibling.is_file() else shutil.which("vermin")
    if found is None:
        raise SystemExit("error: vermin is not installed (it is in the dev dependency group: make venv)")
    return found


def _relative(path: str) -> str:
    try:
        return Path(path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path


def violations(targets: Iterable[Destination]) -> list[str]:
    """``file:line: needs Python X (feature); <destination> runs Y`` for every violation vermin finds."""
    found: list[str] = []
    for destination in targets:
        if not destination.files:
            continue
        result = subprocess.run(
            [
                _vermin(),
                "--no-tips",
                "--violations",
                "--format",
                "parsable",
                f"-t={destination.python}-",
                *(str(path) for path in destination.files),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        located = []
        for line in result.stdout.splitlines():
            # parsable: file:line:column:py2:py3:feature (the file-level and summary lines have no line number)
            path, line_number, _column, _py2, py3, feature = [*line.split(":", 5), "", "", "", "", ""][:6]
            if path and line_number:
                located.append(
                    f"{_relative(path)}:{line_number}: {feature or 'a feature'} needs Python {py3}; "
                    f"it ships to the {destination.name}, which runs Python {destination.python}"
                )
        if result.returncode != 0 and not located:
            detail = (result.stdout + result.stderr).strip() or f"exit status {result.returncode}"
            located.append(f"vermin -t={destination.python}- on the {destination.name}'s code failed: {detail}")
        found.extend(located)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Check every destination; print each violation; 0 when there is none."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.parse_args(argv)
    targets = destinations(ROOT)
    problems = violations(targets)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    for destination in targets:
        print(
            f"python-compat: the {destination.name}'s {len(destination.files)} files run on Python {destination.python}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
