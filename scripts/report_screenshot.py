"""Screenshot the report for the README (``docs/report.png``): headless Debian Chromium driven by Playwright.

By default it builds the tests' demo state in a temporary directory (``tests/dashboard_state.py``: three production
deployments, the third a rolled-back rehearsal; ``make rollback``; a clean and a drifted monitoring window: about two
minutes), renders the report, screenshots the top of the page and stops the runtime it started. ``--state``
uses an existing state directory instead (e.g. ``state/`` after ``make deploy``), whose runtime it leaves alone.

Usage: python scripts/report_screenshot.py [--state DIR] [--out docs/report.png] [--html build/report/shot.html]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from safedeploy.local import daemon
from safedeploy.pipeline import Pipeline
from safedeploy.spec import PipelineSpec, load_spec

REPO_ROOT = Path(__file__).resolve().parents[1]
WIDTH = 1400
HEIGHT = 3300
"""The top of the page: the facts, the execution timeline and list, the model metrics, the latest deployment."""


def screenshot(html: Path, out: Path, width: int = WIDTH, height: int = HEIGHT) -> Path:
    """Open ``html`` in headless Chromium and save the top ``height`` pixels of the page as ``out``."""
    from tests.browser import CHROMIUM_ARGS, chromium_path  # the tests' browser flags (the repo root on sys.path)

    browser_path = chromium_path()
    if not browser_path.is_file():
        raise SystemExit(f"no Chromium at {browser_path}: apt-get install chromium (or set SAFEDEPLOY_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(browser_path), headless=True, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(html.resolve().as_uri())
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
            page.wait_for_timeout(500)  # Plotly's transitions
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=False)
        finally:
            browser.close()
    return out


def _report(spec: PipelineSpec, html: Path, out: Path) -> None:
    Pipeline(spec).write_report(html)
    print(screenshot(html, out))


def main(argv: list[str] | None = None) -> int:
    """Build (or read) a state, write its report, screenshot it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, help="an existing state directory (default: build the demo state)")
    parser.add_argument("--out", type=Path, default=Path("docs/report.png"))
    parser.add_argument("--html", type=Path, default=Path("build/report/screenshot.html"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))  # tests.browser, tests.dashboard_state
    if args.state is not None:
        _report(load_spec(overrides={"state_dir": str(args.state)}), args.html, args.out)
        return 0
    from tests.dashboard_state import build_state  # the tests' helpers: only when building the demo state

    with tempfile.TemporaryDirectory(prefix="report-shot-") as root:
        try:
            _report(build_state(Path(root)).spec, args.html, args.out)
        finally:
            daemon.stop(Path(root) / "state")  # also when building the state failed half-way
    return 0


if __name__ == "__main__":
    sys.exit(main())
