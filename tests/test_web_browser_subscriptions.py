"""Double opt-in in a real browser (Debian's chromium driven by Playwright, as in
test_web_browser.py): subscribe on the status page, get the confirmation at a real SMTP server,
open its link and click, then the next incident's notice arrives; planned work on the status
page. Takes the README's screenshots into ``docs/``.

Skipped only where /usr/bin/chromium is missing and ``CI`` is not set: in CI it must run.
"""

from __future__ import annotations

import asyncio
import email
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest

from notifier import incidents, maintenance
from notifier.config import Config
from notifier.db import write_session
from notifier.delivery.sender import send_due
from notifier.models import utcnow
from notifier.web import create_app
from tests.browser import screenshot_path
from tests.conftest import mail_config
from tests.web_server import running


@pytest.fixture
def cfg(tmp_path: Path, config: Config, smtp_server: Any) -> Config:
    return mail_config(tmp_path / "mail", config.notifier.database, smtp_server.port)


@pytest.fixture
def site(cfg: Config, engine: Any) -> Iterator[str]:
    with running(create_app(cfg, engine)) as url:
        yield url



@pytest.fixture
def backend() -> str:
    """The browser tests drive the UI; the HTTP tests already cover both databases."""
    return "sqlite"


def send(engine: Any, cfg: Config) -> None:
    """``notifier send`` in a thread of its own (Playwright's sync API holds this thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, send_due(engine, cfg)).result()


def _letters(server: Any, address: str) -> list[Any]:
    return [email.message_from_bytes(raw, policy=policy.default) for _, rcpts, raw in server.received
            if address in rcpts]  # fmt: skip


def test_subscribe_confirm_in_the_browser_then_the_next_notice_arrives(
    page: Any, site: str, engine: Any, cfg: Config, smtp_server: Any, tmp_path: Path
) -> None:
    page.goto(site + "/")
    page.click("text=Подписаться на уведомления по e-mail")
    page.fill("#email", "browser.reader@example.org")
    page.select_option("#region", "66")
    page.check("input[name=service][value=tax-reporting]")
    page.select_option("#locale", "ru")
    page.locator("#subscribe").screenshot(path=screenshot_path("subscribe-form.png", tmp_path))
    page.click("button:has-text('Подписаться')")
    assert "Проверьте почту" in page.text_content("main")

    with write_session(engine) as session:  # an incident before the link is clicked: nothing for them
        incidents.declare(session, cfg, title="Сбой до подтверждения", regions=["66"])
    send(engine, cfg)
    (confirmation,) = _letters(smtp_server, "browser.reader@example.org")
    text = confirmation.get_body(("plain",)).get_content()
    found = re.search(r"http://127\.0\.0\.1:8080(/subscribe/confirm/\S+)", text)
    assert found, text
    page.goto(site + found.group(1))
    page.click("button:has-text('Да, подписаться')")
    assert "Вы подписаны" in page.text_content("main")

    with write_session(engine) as session:
        incidents.declare(session, cfg, title="Не отправляются отчёты в ФНС", regions=["66"], services=["tax-reporting"])
    send(engine, cfg)
    letters = _letters(smtp_server, "browser.reader@example.org")
    assert [str(m["Subject"]) for m in letters[1:]] == ["Сбой: Не отправляются отчёты в ФНС"]


def test_planned_work_on_the_status_page(page: Any, site: str, engine: Any, cfg: Config, tmp_path: Path) -> None:
    starts = (utcnow() + timedelta(days=2)).replace(hour=21, minute=0, second=0, microsecond=0)
    with write_session(engine) as session:
        maintenance.schedule(session, cfg, title="Обновление сервера базы данных", regions=["66", "74"],
                             services=["tax-reporting"], starts_at=starts, ends_at=starts + timedelta(hours=3),
                             message="Отчёты можно готовить, отправятся они после окончания работ.")  # fmt: skip
    page.goto(site + "/?region=66")
    card = page.locator("article.planned")
    assert "Обновление сервера базы данных" in card.text_content()
    assert "запланированы" in card.text_content()
    page.locator("#planned-h").scroll_into_view_if_needed()
    card.screenshot(path=screenshot_path("planned-work.png", tmp_path))
    with page.expect_download() as download:
        page.click("text=Добавить в календарь (.ics)")
    assert download.value.suggested_filename.endswith(".ics")
