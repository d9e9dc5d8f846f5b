"""A real browser for the web tests: Debian's chromium driven by Playwright (it never downloads a
browser), headless, with the flags this machine needs (as root: --no-sandbox; no background
networking, the network is closed). A pytest plugin of the suite's (``conftest.pytest_plugins``):
the ``browser`` and ``page`` fixtures skip a test when /usr/bin/chromium is missing and ``CI``
is not set; in CI they must run (a missing browser or Playwright is then a failure).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]  # fmt: skip



def screenshot_path(name: str, directory: Path) -> str:
    """Where a test's screenshot goes: the README's ``docs/NAME`` when ``NOTIFIER_SCREENSHOTS``
    is set (to refresh them), else ``directory`` (a test's temp dir), so a test run leaves
    the checkout as it was."""
    if os.environ.get("NOTIFIER_SCREENSHOTS"):
        return str(Path(__file__).resolve().parent.parent / "docs" / name)
    return str(directory / name)


def _sync_api() -> Any:
    if not CHROMIUM.exists() and not os.environ.get("CI"):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium); required when CI is set")
    # In CI a missing playwright package is a failure, not a skip.
    if os.environ.get("CI"):
        return importlib.import_module("playwright.sync_api")
    return pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with _sync_api().sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield launched
        launched.close()


def new_page(browser: Any, locale: str = "ru-RU") -> Any:
    """A page in a context of its own, in ``locale`` (what the browser says it reads)."""
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale=locale)
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    opened = new_page(browser)
    yield opened
    opened.context.close()
