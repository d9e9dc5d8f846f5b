"""The web app in a real browser: Debian's chromium driven by Playwright, against the real
server under uvicorn. Log in, declare, update, resolve in the console and watch the public
page change; unsubscribe with the button; take the README's screenshots into ``docs/``.

Skipped only where /usr/bin/chromium is missing and ``CI`` is not set: in CI it must run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from notifier import users
from notifier.db import read_session, write_session
from notifier.models import Subscriber
from notifier.tokens import make_token
from notifier.web import create_app
from tests.browser import screenshot_path
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


def _login(page: Any, site: str, engine: Any, name: str = "Ivanova", locale: str | None = "en") -> None:
    """Log in as a new console user who reads the console in ``locale`` (these tests: English)."""
    with write_session(engine) as session:
        token = users.add(session, name, locale=locale)[1]
    page.goto(site + "/console")
    assert page.url.endswith("/console/login")
    page.fill("#name", name)
    page.fill("#token", token)
    page.click("form[action='/console/login'] button[type=submit]")
    page.wait_for_url(site + "/console")


def test_console_steps_change_the_public_page(page, site, engine, make_subscriber, tmp_path) -> None:
    for region in ("66", "66", "74", "54"):
        make_subscriber(region=region)
    _login(page, site, engine)
    page.click("text=Declare an incident")
    page.fill("#title", "Не отправляются отчёты в ФНС")
    page.check("input[name=regions][value='66']")
    page.wait_for_selector("#affected:has-text('Affected subscribers: 2 of 4')")
    page.check("input[name=regions][value='74']")
    page.wait_for_selector("#affected:has-text('Affected subscribers: 3 of 4')")
    page.check("input[name=services][value='tax-reporting']")
    page.fill("#message", "Ищем причину: отчёты не уходят в ФНС.")
    page.click("button:has-text('Declare and notify')")
    page.wait_for_url("**/console/incidents/INC-1")

    public = page.context.new_page()
    public.goto(site + "/")
    assert "Не отправляются отчёты в ФНС" in public.inner_text("#open-h + article")
    assert "частичный сбой" in public.inner_text("table.components")

    page.select_option("#status", "identified")
    page.fill("#update-message", "Отказал сервер базы данных, переключаем на резервный.")
    page.click("button:has-text('Post update')")
    page.wait_for_selector(".flash:has-text('INC-1 is now identified')")
    public.reload()
    assert "Отказал сервер базы данных" in public.inner_text("article#INC-1")
    public.goto(site + "/?region=66")
    public.screenshot(path=screenshot_path("status-page.png", tmp_path), full_page=True)

    page.fill("#cause", "Отказал основной сервер базы данных.")
    page.fill("#measures", "Переключили на резервный и исправили настройку переключения.")
    page.click("button:has-text('Preview the apology')")
    assert "Отказал основной сервер базы данных" in page.inner_text("#preview-text")
    page.click("button:has-text('Resolve and send the apology')")
    page.wait_for_selector(".flash:has-text('INC-1 is resolved')")
    page.goto(site + "/console")
    page.screenshot(path=screenshot_path("console.png", tmp_path), full_page=True)

    public.goto(site + "/")
    assert "Сейчас сбоев нет" in public.inner_text("main")
    assert "Не отправляются отчёты в ФНС" in public.inner_text("#history-h + article")


def test_unsubscribe_button_works_and_the_page_alone_changes_nothing(
    page, site, engine, make_subscriber
) -> None:
    subscriber = make_subscriber()
    page.goto(f"{site}/unsubscribe/{make_token(SECRET.encode(), subscriber.id)}")
    with read_session(engine) as session:
        assert session.get(Subscriber, subscriber.id).status == "active"
    page.click("button:has-text('Да, отписаться')")
    page.wait_for_selector("h1:has-text('Вы отписались')")
    with read_session(engine) as session:
        assert session.get(Subscriber, subscriber.id).status == "unsubscribed"
    response = page.goto(f"{site}/unsubscribe/{subscriber.id}.forged-token")
    assert response.status == 400 and "недействительна" in page.inner_text("h1")


def test_the_console_refuses_a_form_without_its_csrf_token(page, site, engine) -> None:
    _login(page, site, engine)
    page.goto(site + "/console/declare")
    page.evaluate("document.querySelector('#declare input[name=csrf_token]').remove()")
    page.fill("#title", "Без токена")
    page.check("input[name=regions][value='66']")
    with page.expect_navigation() as navigation:
        page.click("button:has-text('Declare and notify')")
    assert navigation.value.status == 403
    page.goto(site + "/")
    assert "Без токена" not in page.content()


def test_hotline_lookup_by_phone_and_a_promised_callback_becomes_overdue(
    browser, config, engine, make_subscriber
) -> None:
    from datetime import timedelta

    from notifier import incidents
    from notifier.models import utcnow

    if not create_app(config, engine).state.hotline:
        pytest.skip("notifier.hotline is not there yet")
    make_subscriber(name="Сидорова Анна", phone="+79125550011", region="66", external_id="ACC-555")
    with write_session(engine) as session:
        incidents.declare(
            session, config, title="Не отправляются отчёты", regions=["66"], services=["tax-reporting"]
        )
    shift = {"by": timedelta(0)}
    app = create_app(config, engine, clock=lambda: utcnow() + shift["by"])
    with running(app) as site:
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        page = context.new_page()
        _login(page, site, engine)
        page.click("nav >> text=Hotline")
        page.fill("#q", "8 912 555 00 11")
        page.click("button:has-text('Find')")
        assert "Сидорова Анна" in page.inner_text("section.caller")
        assert page.is_visible("text=Affected by an open incident")
        page.fill("section.caller textarea[name=note]", "Просит перезвонить, когда отчёт уйдёт")
        page.fill("section.caller input[name=callback_minutes]", "30")
        page.click("button:has-text('Log the call')")
        page.wait_for_selector(".flash:has-text('callback')")
        page.goto(site + "/console/callbacks")
        assert "OVERDUE" not in page.inner_text("table")
        shift["by"] = timedelta(minutes=31)
        page.reload()
        assert "OVERDUE" in page.inner_text("tr.callback.overdue")
        context.close()


def test_pages_run_under_the_csp_with_nothing_blocked_and_logout_ends_the_session(
    page, site, engine, make_subscriber
) -> None:
    """No inline script or style to block: the browser reports no CSP violation, the styles from
    /static/ apply, the live count (a /static/ script) runs; logout kills a copied cookie."""
    blocked: list[str] = []
    page.on(
        "console",
        lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None,
    )
    make_subscriber(region="66")
    page.goto(site + "/")
    assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith("system-ui")
    _login(page, site, engine)
    page.click("text=Declare an incident")
    page.check("input[name=regions][value='66']")
    page.wait_for_selector("#affected:has-text('Affected subscribers: 1 of 1')")
    page.fill("#title", "Сбой")
    page.click("button:has-text('Declare and notify')")
    page.wait_for_url("**/console/incidents/INC-1")
    page.fill("#cause", "Диск")
    page.fill("#measures", "Замена")
    page.click("button:has-text('Preview the apology')")
    assert page.frame_locator("iframe").locator("body").inner_text()
    assert blocked == []
    cookies = page.context.cookies()
    page.goto(site + "/console")
    page.click("button:has-text('Log out')")
    page.wait_for_url("**/console/login")
    thief = page.context.browser.new_context()
    thief.add_cookies(cookies)
    stolen = thief.new_page()
    stolen.goto(site + "/console")
    assert stolen.url.endswith("/console/login")
    thief.close()
