"""Headless Chromium for the report and console tests: Debian's ``chromium`` driven by Playwright.

Playwright's own browser download is never used (``executable_path``). ``make test`` installs Debian's package where
it can (``scripts/ensure_chromium.sh``); where it could not, the tests that need a browser skip, naming why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

# The flags keep a headless Chromium off the network this machine does not have (background networking, component
# updates, sync) and let it run as root in a container (no sandbox).
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> Path:
    """Where the browser is: ``SAFEDEPLOY_CHROMIUM`` (the Makefile's ``CHROMIUM``), else Debian's path."""
    return Path(os.environ.get("SAFEDEPLOY_CHROMIUM") or "/usr/bin/chromium")


def require_chromium() -> Path:
    """The browser's path, or skip the calling test naming what is missing and how to get it."""
    path = chromium_path()
    if not os.access(path, os.X_OK):
        pytest.skip(
            f"no Chromium at {path}: `make test` installs Debian's chromium as root with apt-get "
            "(`apt-get install chromium`); set CHROMIUM=/path/to/chromium for another one"
        )
    return path


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium for one test (or module), closed afterwards."""
    path = require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(path), headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def page(browser: Browser, *, width: int = 1400, height: int = 1000) -> Iterator[Page]:
    """A fresh page (own context: no cookies shared between tests) that fails the test on any JavaScript error."""
    context = browser.new_context(viewport={"width": width, "height": height})
    errors: list[str] = []
    new_page = context.new_page()
    new_page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield new_page
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
