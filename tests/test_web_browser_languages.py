"""The console and the subscriber-facing pages in both languages, in a real browser (Debian's
chromium driven by Playwright) against the real server: a Russian operator declares a
bilingual incident and switches the console to English; the status page, the subscribe page,
the unsubscribe and preferences pages speak Russian and English as their reader does.

Skipped only where /usr/bin/chromium is missing and ``CI`` is not set: in CI it must run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from notifier import incidents, subscriptions, users
from notifier.db import read_session, write_session
from notifier.models import Subscriber
from notifier.tokens import make_token
from notifier.web import create_app
from tests.browser import new_page
from tests.conftest import SECRET
from tests.web_server import running


@pytest.fixture
def site(config: Any, engine: Any) -> Iterator[str]:
    with running(create_app(config, engine)) as url:
        yield url


@pytest.fixture
def backend() -> str:
    """The browser tests drive the UI; the HTTP tests already cover both databases."""
    return "sqlite"


def _page(browser: Any, locale: str) -> Any:
    return new_page(browser, locale)


@pytest.fixture
def ru_page(browser: Any) -> Iterator[Any]:
    page = _page(browser, "ru-RU")
    yield page
    page.context.close()


@pytest.fixture
def en_page(browser: Any) -> Iterator[Any]:
    page = _page(browser, "en-US")
    yield page
    page.context.close()


def test_a_russian_operator_declares_in_two_languages_then_reads_the_console_in_english(
    ru_page, en_page, site, engine, make_subscriber
) -> None:
    make_subscriber(region="66", locale="ru")
    make_subscriber(region="66", locale="en")
    with write_session(engine) as session:
        token = users.add(session, "Ivanova")[1]  # no language of her own: [notifier].default_locale, ru
    page = ru_page
    page.goto(site + "/console")
    assert page.inner_text("h1") == "Войти"
    page.fill("#name", "Ivanova")
    page.fill("#token", token)
    page.click("button:has-text('Войти')")
    page.wait_for_url(site + "/console")
    page.click("text=Объявить сбой")
    page.fill("#title", "Не отправляются отчёты в ФНС")
    page.fill("#title_en", "Reports to the tax service are not being sent")
    page.check("input[name=regions][value='66']")
    page.wait_for_selector("#affected:has-text('Затронутые абоненты: 2 из 2 активных.')")
    page.fill("#message", "Ищем причину.")
    page.fill("#message_en", "We are looking for the cause.")
    page.click("button:has-text('Объявить и оповестить')")
    page.wait_for_url("**/console/incidents/INC-1")
    assert "Объявлен INC-1" in page.inner_text(".flash")
    assert "Хронология" in page.inner_text("main")

    en_page.goto(site + "/")
    article = en_page.inner_text("article#INC-1")
    assert "Reports to the tax service are not being sent" in article and "We are looking for the cause." in article
    assert "Current incidents" in en_page.inner_text("main")
    page.goto(site + "/")
    assert "Не отправляются отчёты в ФНС" in page.inner_text("article#INC-1")

    page.goto(site + "/console/incidents/INC-1")
    page.click("header button:has-text('English')")
    page.wait_for_selector(".flash:has-text('The console now speaks English.')")
    assert "Post an update" in page.inner_text("main")
    page.select_option("#status", "identified")
    page.fill("#update-message", "Отказал сервер базы данных.")
    page.click("button:has-text('Post update')")
    flash = page.inner_text(".flash")
    assert "INC-1 is now identified" in flash
    assert "1 English readers will get the Russian text: add message_en." in flash
    page.click("header button:has-text('Русский')")
    page.wait_for_selector(".flash:has-text('Консоль теперь говорит по-русски.')")


def test_subscriber_pages_in_the_readers_language(ru_page, en_page, site, engine, config, make_subscriber) -> None:
    english = make_subscriber(locale="en")
    with write_session(engine) as session:
        incidents.declare(session, config, title="Сбой", regions=["77"],
                          texts={"en": {"title": "An outage"}})  # fmt: skip

    en_page.goto(site + "/subscribe")
    assert en_page.inner_text("h1") == "Get outage and planned-work notices by e-mail"
    ru_page.goto(site + "/subscribe")
    assert "Подписаться" in ru_page.inner_text("main")

    # A Russian browser opening an English subscriber's links: their language, not the browser's.
    ru_page.goto(f"{site}/unsubscribe/{make_token(SECRET.encode(), english.id)}")
    assert ru_page.inner_text("h1") == "Unsubscribe from notifications?"
    preferences = subscriptions.preferences_url(config, SECRET.encode(), english.id)
    ru_page.goto(site + preferences.removeprefix(config.notifier.public_base_url))
    assert "Your notification preferences" in ru_page.inner_text("main")
    ru_page.goto(f"{site}/unsubscribe/{make_token(SECRET.encode(), english.id)}")
    ru_page.click("button:has-text('Yes, unsubscribe')")
    ru_page.wait_for_selector("h1:has-text('You are unsubscribed')")
    with read_session(engine) as session:
        assert session.get(Subscriber, english.id).status == "unsubscribed"

    en_page.goto(site + "/?locale=ru")
    assert "Текущие сбои" in en_page.inner_text("main") and "Сбой" in en_page.inner_text("article#INC-1")
