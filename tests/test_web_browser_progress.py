"""The console's incident page shows each mailing going out, live: in a real browser (Debian
chromium via Playwright) the sent count climbs while a slow mailing runs, with no reload."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from notifier import incidents
from notifier.db import write_session
from notifier.delivery.sender import send_due
from notifier.web import create_app
from tests.conftest import mail_config
from tests.test_web_browser import _login
from tests.web_server import running


@pytest.fixture
def backend() -> str:
    """The browser tests drive the UI; the HTTP tests already cover both databases."""
    return "sqlite"


def test_the_incident_page_follows_a_running_mailing_without_a_reload(
    page: Any, config: Any, engine: Any, make_subscriber: Any, smtp_server: Any, tmp_path: Any  # noqa: F811
) -> None:
    cfg = mail_config(tmp_path / "m", config.notifier.database, smtp_server.port, smtp={"connections": 1})
    for _ in range(30):
        make_subscriber(region="66")
    smtp_server.on("DATA", "*", delay=0.25)  # ~4 letters a second: the mailing takes several seconds
    with write_session(engine) as session:
        ref = incidents.declare(session, cfg, title="Сбой отчётности", regions=["66"], message="Ищем").incident.ref
    with running(create_app(cfg, engine)) as site:
        _login(page, site, engine)
        page.goto(f"{site}/console/incidents/{ref}")
        first_row = page.locator("#mailings tbody tr").first
        assert first_row.locator("td.sent").inner_text() == "0"
        page.evaluate("window.__same_page = true")
        sending = threading.Thread(target=lambda: asyncio.run(send_due(engine, cfg)), daemon=True)
        sending.start()
        seen: list[int] = []
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and (not seen or seen[-1] < 30):
            page.wait_for_timeout(1000)
            seen.append(int(first_row.locator("td.sent").inner_text()))
        sending.join(30)
        assert page.evaluate("window.__same_page") is True  # the numbers moved on the same page
        assert seen[-1] == 30 and len(set(seen)) >= 3, seen  # it climbed, in steps, to the whole audience
        page.wait_for_function("document.querySelector('#mailings tbody tr td:last-child').textContent === 'done'")
        assert "status · email" in first_row.locator("td").first.inner_text()
