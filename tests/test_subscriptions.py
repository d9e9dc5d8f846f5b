"""Self-service subscriptions over real HTTP into a real SMTP server: double opt-in (nothing but
the confirmation until the link is clicked), the same answer for every address, the rate
limits, expiring links, and a preferences page whose changes the next mailing follows."""

from __future__ import annotations

import asyncio
import email
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from notifier import incidents, tokens
from notifier.config import Config
from notifier.db import read_session, write_session
from notifier.delivery.sender import send_due
from notifier.models import Subscriber, utcnow
from notifier.web import create_app
from tests.conftest import SECRET, mail_config, recipients
from tests.web_server import running


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def cfg(tmp_path: Path, config: Config, smtp_server: Any) -> Config:
    return mail_config(tmp_path / "mail", config.notifier.database, smtp_server.port,
                       subscriptions={"requests_per_address": "3/hour", "requests_per_ip": "10/hour"})  # fmt: skip


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def web(cfg: Config, engine: Any, clock: Clock) -> Iterator[httpx.Client]:
    with running(create_app(cfg, engine, clock=clock)) as url, httpx.Client(base_url=url, timeout=20) as client:
        yield client


def subscribe(web: httpx.Client, address: str, region: str = "66", **form: Any) -> httpx.Response:
    return web.post("/subscribe", data={"email": address, "region": region, "service": ["tax-reporting"],
                                        "locale": "ru", **form})  # fmt: skip


def send(engine: Any, cfg: Config) -> None:
    asyncio.run(send_due(engine, cfg))


def letters_to(server: Any, address: str) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(raw, policy=policy.default) for _, rcpts, raw in server.received  # type: ignore[misc]
            if address in rcpts]  # fmt: skip


def link(letter: Any, pattern: str) -> str:
    found = re.search(pattern, letter.get_body(("plain",)).get_content())
    assert found, letter.get_body(("plain",)).get_content()
    return found.group(0)


def declare(engine: Any, cfg: Config, region: str = "66", **fields: Any) -> None:
    with write_session(engine) as session:
        incidents.declare(session, cfg, title="Не отправляются отчёты", regions=[region], **fields)


def test_double_opt_in_sends_only_the_confirmation_until_it_is_clicked(
    web: httpx.Client, engine: Any, cfg: Config, smtp_server: Any
) -> None:
    page = subscribe(web, "new.reader@example.org")
    assert page.status_code == 200 and "Проверьте почту" in page.text
    declare(engine, cfg)  # an incident in the chosen region before the link is clicked
    send(engine, cfg)
    (confirmation,) = letters_to(smtp_server, "new.reader@example.org")
    assert str(confirmation["Subject"]).startswith("Подтвердите подписку")
    assert confirmation["List-Unsubscribe"] is None
    url = link(confirmation, r"http://127\.0\.0\.1:8080/subscribe/confirm/\S+").replace("http://127.0.0.1:8080", "")
    assert "Да, подписаться" in web.get(url).text  # a mail scanner's GET confirms nothing
    with read_session(engine) as session:
        assert session.exec(select(Subscriber.status).where(Subscriber.email == "new.reader@example.org")).scalar_one() == "pending"
    assert "Вы подписаны" in web.post(url).text
    declare(engine, cfg)
    send(engine, cfg)
    letters = letters_to(smtp_server, "new.reader@example.org")
    assert len(letters) == 2 and str(letters[1]["Subject"]).endswith("Не отправляются отчёты")
    assert "/preferences/" in letters[1].get_body(("plain",)).get_content()  # its footer links the preferences
    assert "Вы подписаны" in web.post(url).text  # a second click changes nothing
    with read_session(engine) as session:
        row = session.exec(select(Subscriber).where(Subscriber.email == "new.reader@example.org")).scalar_one()
    assert row.self_subscribed and row.confirmed_at is not None and row.services == ";tax-reporting;"


def test_the_answer_is_the_same_whether_the_address_is_known_or_not(
    web: httpx.Client, engine: Any, cfg: Config, smtp_server: Any, make_subscriber: Any
) -> None:
    make_subscriber(email="known@example.org", region="66")
    make_subscriber(email="gone@example.org", region="66", status="bounced")
    answers = {address: subscribe(web, address) for address in ("known@example.org", "unknown@example.org",
                                                                 "gone@example.org")}  # fmt: skip
    assert {a.status_code for a in answers.values()} == {200}
    assert len({a.text for a in answers.values()}) == 1
    send(engine, cfg)
    (already,) = letters_to(smtp_server, "known@example.org")
    assert str(already["Subject"]).startswith("Вы уже подписаны")
    assert "/preferences/" in already.get_body(("plain",)).get_content()
    assert letters_to(smtp_server, "gone@example.org") == []
    with read_session(engine) as session:
        assert len(session.exec(select(Subscriber).where(Subscriber.email == "known@example.org")).all()) == 1


def test_confirmation_requests_are_rate_limited_per_address_and_per_client(
    web: httpx.Client, engine: Any, cfg: Config, smtp_server: Any
) -> None:
    assert [subscribe(web, "flood@example.org").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert [subscribe(web, f"other{n}@example.org").status_code for n in range(7)] == [200] * 6 + [429]
    limited = subscribe(web, "another@example.org")
    assert limited.status_code == 429 and "Слишком много запросов" in limited.text
    send(engine, cfg)
    assert recipients(smtp_server)["flood@example.org"] == 3
    assert "another@example.org" not in recipients(smtp_server)
    assert sum(recipients(smtp_server).values()) == 3 + 6


def test_a_confirmation_link_expires_and_a_forged_one_does_nothing(
    web: httpx.Client, engine: Any, cfg: Config, smtp_server: Any, clock: Clock
) -> None:
    subscribe(web, "late@example.org")
    send(engine, cfg)
    url = link(letters_to(smtp_server, "late@example.org")[0], r"/subscribe/confirm/\S+")
    forged = url[:-3] + ("xyz" if not url.endswith("xyz") else "abc")
    assert web.post(forged).status_code == 400
    clock.now += cfg.subscriptions.confirm_within + timedelta(minutes=1)
    expired = web.post(url)
    assert expired.status_code == 400 and "недействительна" in expired.text
    with read_session(engine) as session:
        assert session.exec(select(Subscriber.status).where(Subscriber.email == "late@example.org")).scalar_one() == "pending"


def test_bad_subscribe_input_is_a_short_400(web: httpx.Client) -> None:
    for form in ({"email": "not-an-address", "region": "66"}, {"email": "a@example.org", "region": "nowhere"},
                 {"email": "a@example.org", "region": "66", "locale": "xx"}):  # fmt: skip
        answer = web.post("/subscribe", data=form)
        assert answer.status_code == 400 and "Traceback" not in answer.text


def test_preferences_change_what_the_next_mailing_sends(
    web: httpx.Client, engine: Any, cfg: Config, smtp_server: Any, make_subscriber: Any
) -> None:
    reader = make_subscriber(email="reader@example.org", region="66", locale="ru")
    token = tokens.make_token(SECRET.encode(), reader.id, purpose="preferences")
    page = web.get(f"/preferences/{token}")
    assert page.status_code == 200 and "Настройки уведомлений" in page.text and "общий адрес" not in page.text
    saved = web.post(f"/preferences/{token}", data={"action": "save", "region": "54", "service": ["tax-reporting"],
                                                   "channel": ["email"], "locale": "en"})  # fmt: skip
    assert "Сохранено" in saved.text
    declare(engine, cfg, "66")
    send(engine, cfg)
    assert letters_to(smtp_server, "reader@example.org") == []  # no longer in region 66
    declare(engine, cfg, "54")
    send(engine, cfg)
    (notice,) = letters_to(smtp_server, "reader@example.org")
    assert "Dear" in notice.get_body(("plain",)).get_content()  # in the language chosen on the page
    web.post(f"/preferences/{token}", data={"action": "unsubscribe"})
    declare(engine, cfg, "54")
    send(engine, cfg)
    assert len(letters_to(smtp_server, "reader@example.org")) == 1
    assert web.get("/preferences/1.forged").status_code == 404


def test_a_distribution_list_is_told_its_change_is_its_own(
    web: httpx.Client, engine: Any, cfg: Config, smtp_server: Any, make_subscriber: Any
) -> None:
    first = make_subscriber(email="accounting@company.example", region="66")
    second = make_subscriber(email="accounting@company.example", region="54")
    token = tokens.make_token(SECRET.encode(), first.id, purpose="preferences")
    assert "общий адрес или адрес рассылки" in web.get(f"/preferences/{token}").text
    assert "общий адрес или адрес рассылки" in web.post(f"/preferences/{token}", data={"action": "unsubscribe"}).text
    with read_session(engine) as session:
        assert session.get(Subscriber, first.id).status == "unsubscribed"  # type: ignore[union-attr]
        assert session.get(Subscriber, second.id).status == "active"  # type: ignore[union-attr]


def test_a_phone_on_the_form_while_sms_is_off_is_refused_in_one_line(web: httpx.Client, engine: Any) -> None:
    form = {"region": "66", "locale": "ru", "phone": "+79120007711"}
    assert 'name="phone"' not in web.get("/subscribe").text  # the form offers no phone field then
    answer = web.post("/subscribe", data=form)
    assert answer.status_code == 400 and "needs SMS, which is off here" in answer.text
    assert web.post("/subscribe", data={**form, "phone": "", "email": "not an address"}).status_code == 400
    with read_session(engine) as session:
        assert session.exec(select(Subscriber)).all() == []
