"""The support console in its user's language, bilingual incidents written from it, and the
hotline screen telling the operator what to say in the *caller's* language."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest
from sqlmodel import select

from notifier import incidents, users
from notifier.db import read_session, write_session
from notifier.models import Call
from notifier.web import create_app
from tests.web_server import running


@pytest.fixture
def base_url(config: Any, engine: Any) -> Iterator[str]:
    with running(create_app(config, engine)) as url:
        yield url


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _login(base_url: str, engine: Any, name: str, locale: str | None) -> closing[httpx.Client]:
    with write_session(engine) as session:
        token = users.add(session, name, locale=locale)[1]
    client = httpx.Client(base_url=base_url, timeout=20)
    client.post("/console/login", data={"name": name, "token": token, "csrf_token": _csrf(client.get("/console/login").text)})
    client.csrf = _csrf(client.get("/console").text)  # type: ignore[attr-defined]
    return closing(client)


def test_the_console_speaks_each_users_language_and_switches(base_url, engine) -> None:
    with _login(base_url, engine, "Ivanova", None) as russian, _login(base_url, engine, "Smith", "en") as english:
        assert "Объявить сбой" in russian.get("/console").text  # [notifier].default_locale = ru
        assert "Declare an incident" in english.get("/console").text
        declare = english.get("/console/declare").text
        assert "Title in English (for English readers)" in declare and "Заголовок" not in declare
        switched = russian.post("/console/language", data={"locale": "en", "csrf_token": russian.csrf})
        assert switched.status_code == 303
        page = russian.get("/console").text
        assert "Declare an incident" in page and "The console now speaks English." in page
        assert "Declare an incident" in russian.get("/console/declare").text  # every page, from now on
        assert russian.post("/console/language", data={"locale": "de", "csrf_token": russian.csrf}).status_code == 400


def test_a_bilingual_incident_from_the_console_and_who_lacks_their_language(
    base_url, engine, make_subscriber
) -> None:
    make_subscriber(region="66", locale="ru")
    make_subscriber(region="66", locale="en")
    with _login(base_url, engine, "Ivanova", "ru") as console:
        declared = console.post("/console/declare", data={
            "csrf_token": console.csrf, "title": "Не отправляются отчёты", "title_en": "Reports are not sent",
            "regions": ["66"], "severity": "major", "message": "Ищем причину",
        }, follow_redirects=True).text  # fmt: skip
        assert "Объявлен INC-1" in declared
        assert "1 читателей (английский) получат текст на языке «русский»: добавьте message_en" in declared
        resolved = console.post("/console/incidents/INC-1/resolve", data={
            "csrf_token": console.csrf, "cause": "Отказ сервера", "measures": "Резерв", "compensation": "",
        }, follow_redirects=True).text  # fmt: skip
        assert "ЗАДЕРЖАНО" in resolved and "cause_en, measures_en" in resolved
        edited = console.post("/console/incidents/INC-1/edit", data={
            "csrf_token": console.csrf, "cause": "Отказ сервера", "measures": "Резерв", "compensation": "",
            "title_en": "Reports are not sent", "cause_en": "A server failed", "measures_en": "A standby",
        }, follow_redirects=True).text  # fmt: skip
        assert "INC-1 изменён; в очереди: 1 apology" in edited
    with read_session(engine) as session:
        incident = incidents.get(session, "INC-1")
        assert incident.translations == {"en": {"title": "Reports are not sent", "cause": "A server failed",
                                                "measures": "A standby"}}  # fmt: skip


def test_the_hotline_screen_says_what_to_say_in_the_callers_language_and_files_the_call(
    base_url, engine, config, make_subscriber
) -> None:
    make_subscriber(region="66", locale="en", name="John Brown", external_id="ACC-EN")
    with write_session(engine) as session:
        incidents.declare(session, config, title="Не отправляются отчёты", regions=["66"], message="Ищем причину",
                          texts={"en": {"title": "Reports are not sent", "message": "Looking for the cause"}})  # fmt: skip
        incidents.declare(session, config, title="Сбой ЭДО", regions=["66"])  # a second open one
    with _login(base_url, engine, "Ivanova", "ru") as console:
        page = console.get("/console/hotline", params={"q": "ACC-EN"}).text
        scripts = re.findall(r'<pre class="card script" lang="en">(.*?)</pre>', page, re.S)
        script = next(text for text in scripts if "Reports are not sent" in text)
        assert "Looking for the cause" in script
        assert not re.search(r"[\u0400-\u04ff]", script)  # not the Russian script for an English caller
        assert "Что сказать" in page  # the screen itself is in the operator's language
        about = re.search(r'name="incident" value="([^"]+)"', page).group(1)
        logged = console.post("/console/hotline/calls", data={
            "csrf_token": console.csrf, "subscriber": "ACC-EN", "note": "Не уходит отчёт", "q": "ACC-EN",
            "incident": about,
        }, follow_redirects=True).text  # fmt: skip
        assert f"Звонок записан к {about}" in logged
    with read_session(engine) as session:
        (call,) = session.exec(select(Call)).all()
        assert f"INC-{call.incident_id}" == about  # two open incidents: the form names the caller's
