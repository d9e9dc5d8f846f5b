"""Every reader in their own language and time: incidents written in two languages, letters
delivered to a mixed audience at a real SMTP server, readers without their language named or
held, and the public pages, API and feed in the language asked for."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlmodel import select

from notifier import incidents
from notifier.config import Config
from notifier.db import read_session, write_session
from notifier.delivery.sender import send_due
from notifier.models import Message, utcnow
from notifier.web import create_app
from tests.conftest import mail_config
from tests.web_server import running

CYRILLIC_WORD = re.compile(r"[\u0400-\u04ff][\u0400-\u04ff\w-]*")
TITLE = ("Не отправляются отчёты в ФНС", "Reports to the tax service are not being sent")
MESSAGE = ("Ищем причину: отчёты не уходят.", "We are looking for the cause: reports are not going out.")
UPDATE = ("Отказал сервер базы данных, переключаем на резервный.", "A database server failed; switching to the standby.")
CAUSE = ("Отказал дисковый массив сервера базы данных.", "A disk array of the database server failed.")
MEASURES = ("Перевели базу на резервный кластер.", "We moved the database to the standby cluster.")


def _parts(raw: bytes) -> tuple[str, str, str]:
    """Subject, text part and HTML part (tags dropped) of one delivered message."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html_part = message.get_body(("html",))
    html = re.sub(r"<[^>]+>", " ", html_part.get_content()) if html_part is not None else ""
    return str(message["Subject"]), text, html


def _proper_names(config: Config) -> set[str]:
    """Names from the config an English letter may show in Russian: those without an English one."""
    names = [config.notifier.company, *(r.name for r in config.regions.values()),
             *(s.name for s in config.services.values())]  # fmt: skip
    return {word for name in names if not name.en for word in CYRILLIC_WORD.findall(name.ru)}


def _send(engine: Any, cfg: Config) -> int:
    return asyncio.run(asyncio.wait_for(send_due(engine, cfg), 60)).sent


def test_a_mixed_audience_reads_every_letter_in_its_own_language_and_time(
    engine, config, make_subscriber, smtp_server, tmp_path
) -> None:
    cfg = mail_config(tmp_path / "mixed", config.notifier.database, smtp_server.port)
    readers = {  # three time zones: Yekaterinburg (66), Novosibirsk (54), Moscow (77)
        make_subscriber(region="66", locale="ru").email: ("ru", "Екатеринбурга"),
        make_subscriber(region="54", locale="en", name="John Brown").email: ("en", "Novosibirsk time"),
        make_subscriber(region="66", locale="en", name="").email: ("en", "Yekaterinburg time"),
        make_subscriber(region="77", locale="en", name="Anna Smith").email: ("en", "Moscow time"),
        make_subscriber(region="54", locale="ru").email: ("ru", "Новосибирска"),
    }
    started = utcnow().replace(second=0, microsecond=0) - timedelta(hours=2)
    with write_session(engine) as session:
        ref = incidents.declare(
            session, cfg, title=TITLE[0], regions=["66", "54", "77"], message=MESSAGE[0], started_at=started,
            texts={"en": {"title": TITLE[1], "message": MESSAGE[1]}},
        ).incident.id  # fmt: skip
    assert _send(engine, cfg) == 5
    with write_session(engine) as session:
        incidents.post_update(session, cfg, ref, status="identified", message=UPDATE[0],
                              texts={"en": {"message": UPDATE[1]}})  # fmt: skip
    assert _send(engine, cfg) == 5
    with write_session(engine) as session:
        result = incidents.resolve(session, cfg, ref, cause=CAUSE[0], measures=MEASURES[0],
                                   texts={"en": {"cause": CAUSE[1], "measures": MEASURES[1]}})  # fmt: skip
    assert result.untranslated == () and not result.apology_held
    assert _send(engine, cfg) == 5

    allowed = _proper_names(cfg)
    delivered = [(rcpt, raw) for _, rcpts, raw in smtp_server.received for rcpt in rcpts]
    assert len(delivered) == 15
    for rcpt, raw in delivered:
        locale, zone = readers[rcpt]
        subject, text, html = _parts(raw)
        whole = f"{subject}\n{text}\n{html}"
        assert zone in text and zone in html, (rcpt, subject)
        if locale == "en":
            russian = set(CYRILLIC_WORD.findall(whole)) - allowed
            assert not russian, f"Russian words {sorted(russian)} in the English letter to {rcpt}: {subject}"
            assert TITLE[1] in subject or TITLE[1] in text
            if zone == "Novosibirsk time":  # their own local time (UTC+7), not Moscow's or UTC
                assert f"{started.astimezone(ZoneInfo('Asia/Novosibirsk')):%H:%M}" in text
        else:
            assert TITLE[0] in text and "Dear" not in text
    apologies = {rcpt: _parts(raw) for rcpt, raw in delivered[-5:]}  # the last mailing
    english = next(parts for rcpt, parts in apologies.items() if readers[rcpt][0] == "en")
    assert CAUSE[1] in english[1] and MEASURES[1] in english[1] and "working normally again" in english[1]
    russian = next(parts for rcpt, parts in apologies.items() if readers[rcpt][0] == "ru")
    assert CAUSE[0] in russian[1] and "всё снова работает как обычно" in russian[1]


def test_declare_and_update_name_the_readers_who_will_get_the_default_text(cli, make_subscriber) -> None:
    for locale in ("ru", "en", "en", "ru", "en"):
        make_subscriber(region="66", locale=locale)
    declared = cli("incident", "declare", "--title", TITLE[0], "--region", "66", "--message", MESSAGE[0])
    assert declared.exit_code == 0
    assert "3 English readers will get the Russian text: add --title-en --message-en" in declared.stderr
    updated = cli("incident", "update", "INC-1", "--status", "identified", "--message", UPDATE[0],
                  "--message-en", UPDATE[1], "--json")  # fmt: skip
    assert updated.json()["untranslated"] == [
        {"locale": "en", "readers": 3, "options": ["--title-en"], "held": False}
    ]
    again = cli("incident", "update", "INC-1", "--status", "monitoring", "--message", "Следим",
                "--message-en", "Watching", "--title-en", TITLE[1])  # fmt: skip
    assert again.exit_code == 0 and "English readers" not in again.stderr
    assert cli("incident", "show", "INC-1", "--json").json()["translations"] == {"en": {"title": TITLE[1]}}


def test_the_default_language_text_is_required_and_checked_like_it(cli, make_subscriber) -> None:
    make_subscriber(region="66", locale="en")
    no_default = cli("incident", "declare", "--title", "", "--title-en", TITLE[1], "--region", "66")
    assert no_default.exit_code == 2 and "--title must not be empty" in no_default.stderr
    reversed_ = cli("incident", "declare", "--title", TITLE[0], "--title-en", "Reports \u202eare down", "--region", "66")
    assert reversed_.exit_code == 2 and "--title-en contains an invisible character" in reversed_.stderr


def _apology_locales(engine: Any) -> list[str]:
    with read_session(engine) as session:
        rows = session.exec(select(Message).where(Message.kind == "apology")).all()
    return sorted(m.locale for m in rows)


def test_resolve_holds_the_english_apologies_until_edit_gives_their_texts(cli, engine, make_subscriber) -> None:
    for locale in ("ru", "en", "en"):
        make_subscriber(region="66", locale=locale)
    cli("incident", "declare", "--title", TITLE[0], "--title-en", TITLE[1], "--region", "66")
    resolved = cli("incident", "resolve", "INC-1", "--cause", CAUSE[0], "--measures", MEASURES[0])
    assert resolved.exit_code == 0 and "Queued 1 apology message" in resolved.stdout
    assert "2 English readers: their apology is HELD" in resolved.stderr
    assert "--cause-en --measures-en" in resolved.stderr
    assert _apology_locales(engine) == ["ru"]
    report = cli("report", "INC-1")
    assert "held for 2 en readers: add --cause-en --measures-en" in report.stdout
    touched = cli("incident", "edit", "INC-1", "--cause", "Другая причина")
    assert touched.exit_code == 1 and "already been queued" in touched.stderr  # the Russian ones are out
    released = cli("incident", "edit", "INC-1", "--cause-en", CAUSE[1], "--measures-en", MEASURES[1])
    assert released.exit_code == 0 and "Queued 2 apology messages" in released.stdout
    assert _apology_locales(engine) == ["en", "en", "ru"]
    assert cli("incident", "edit", "INC-1", "--cause-en", "Again").exit_code == 1  # nothing held any more


def test_fallback_locale_sends_the_default_text_instead_of_holding(
    config, engine, make_subscriber, tmp_path
) -> None:
    cfg = mail_config(tmp_path / "fallback", config.notifier.database, 1025, mailing={"fallback_locale": "ru"})
    for locale in ("ru", "en"):
        make_subscriber(region="66", locale=locale)
    with write_session(engine) as session:
        ref = incidents.declare(session, cfg, title=TITLE[0], regions=["66"]).incident.id
    with write_session(engine) as session:
        result = incidents.resolve(session, cfg, ref, cause=CAUSE[0], measures=MEASURES[0])
    assert not result.apology_held and result.queued["apology"] == 2
    assert [gap.held for gap in result.untranslated] == [False]
    assert "will get the Russian text" in result.untranslated[0].notice()
    assert _apology_locales(engine) == ["en", "ru"]


def test_only_english_readers_and_no_english_text_hold_the_whole_apology(cli, engine, make_subscriber) -> None:
    make_subscriber(region="66", locale="en")
    cli("incident", "declare", "--title", TITLE[0], "--region", "66")
    held = cli("incident", "resolve", "INC-1", "--cause", CAUSE[0], "--measures", MEASURES[0], "--json").json()
    assert held["apology"] == "held" and held["apology_held"] and _apology_locales(engine) == []
    assert held["untranslated"][0]["options"] == ["--title-en", "--cause-en", "--measures-en"]
    cli("incident", "edit", "INC-1", "--title-en", TITLE[1], "--cause-en", CAUSE[1], "--measures-en", MEASURES[1])
    assert _apology_locales(engine) == ["en"]


# The public side ---------------------------------------------------------------------------


@pytest.fixture
def bilingual(engine: Any, config: Config) -> int:
    with write_session(engine) as session:
        ref = incidents.declare(session, config, title=TITLE[0], regions=["66"], message=MESSAGE[0],
                                texts={"en": {"title": TITLE[1], "message": MESSAGE[1]}}).incident.id  # fmt: skip
    with write_session(engine) as session:
        incidents.declare(session, config, title="Сбой в Москве", regions=["77"], message="Разбираемся")
    return ref  # type: ignore[return-value]


def test_status_page_api_and_feed_answer_in_the_language_asked_for(config, engine, bilingual) -> None:
    with running(create_app(config, engine)) as url, httpx.Client(base_url=url, timeout=20) as client:
        russian = client.get("/").text
        assert TITLE[0] in russian and MESSAGE[0] in russian and 'lang="ru"' in russian
        english = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9,ru;q=0.5"}).text
        assert TITLE[1] in english and MESSAGE[1] in english and "Service status" in english
        assert TITLE[0] not in english and 'lang="en"' in english
        assert TITLE[1] in client.get("/?locale=en").text
        api = client.get("/api/v2/incidents.json", params={"locale": "en"}).json()
        first = next(i for i in api["incidents"] if i["id"] == f"INC-{bilingual}")
        assert first["name"] == TITLE[1] and first["incident_updates"][0]["body"] == MESSAGE[1]
        assert first["components"][0]["name"] == "Tax e-reporting"
        accepted = client.get("/api/v2/summary.json", headers={"Accept-Language": "en"}).json()
        assert TITLE[1] in {i["name"] for i in accepted["incidents"]}
        assert TITLE[0] in {i["name"] for i in client.get("/api/v2/summary.json").json()["incidents"]}
        feed = client.get("/history.atom?locale=en").text
        assert TITLE[1] in feed and MESSAGE[1] in feed and 'xml:lang="en"' in feed
        assert client.get("/api/v2/incidents.json?locale=de").status_code == 400


def test_incidents_json_and_the_feed_honour_region_like_the_page(config, engine, bilingual) -> None:
    with running(create_app(config, engine)) as url, httpx.Client(base_url=url, timeout=20) as client:
        everything = {i["id"] for i in client.get("/api/v2/incidents.json").json()["incidents"]}
        assert everything == {"INC-1", "INC-2"}
        only_66 = client.get("/api/v2/incidents.json?region=66").json()["incidents"]
        assert [i["id"] for i in only_66] == ["INC-1"]
        assert [i["id"] for i in client.get("/api/v2/incidents/unresolved.json?region=77").json()["incidents"]] == [
            "INC-2"
        ]
        feed = client.get("/history.atom?region=77").text
        assert "Сбой в Москве" in feed and TITLE[0] not in feed
        assert "по московскому времени" in feed
        assert client.get("/history.atom?region=999").status_code == 400
        assert client.get("/api/v2/incidents.json?region=999").status_code == 400


def test_the_unsubscribe_page_speaks_the_subscribers_language(config, engine, make_subscriber) -> None:
    from notifier.tokens import make_token
    from tests.conftest import SECRET

    english = make_subscriber(locale="en")
    russian = make_subscriber(locale="ru")
    with running(create_app(config, engine)) as url, httpx.Client(base_url=url, timeout=20) as client:
        page = client.get(f"/unsubscribe/{make_token(SECRET.encode(), english.id)}").text
        assert "Unsubscribe from notifications?" in page and "Отписаться" not in page
        done = client.post(f"/unsubscribe/{make_token(SECRET.encode(), english.id)}",
                           data={"List-Unsubscribe": "One-Click"}).text  # fmt: skip
        assert "You are unsubscribed" in done
        assert "Отписаться от уведомлений?" in client.get(f"/unsubscribe/{make_token(SECRET.encode(), russian.id)}").text


def test_an_english_hotline_target_hears_the_english_announcement(cli, engine, make_subscriber, tmp_path, database_url) -> None:
    from tests.conftest import write_config

    (tmp_path / "hl").mkdir()
    path = write_config(tmp_path / "hl", database_url, hotline={"targets": [
        {"email": "callcentre@sfera-reporting.example", "locale": "ru"},
        {"email": "uk-desk@sfera-reporting.example", "locale": "en"},
    ]})  # fmt: skip
    make_subscriber(region="66", locale="en")
    cli("incident", "declare", "--title", TITLE[0], "--title-en", TITLE[1], "--region", "66",
        "--message", MESSAGE[0], "--message-en", MESSAGE[1], config=path)  # fmt: skip
    english = cli("preview", "INC-1", "--kind", "hotline", "--locale", "en", config=path).stdout
    assert TITLE[1] in english and MESSAGE[1] in english and not CYRILLIC_WORD.search(english)
    script = cli("hotline", "script", "--locale", "en", "--json", config=path).json()["incidents"][0]
    assert script["title"] == TITLE[1] and MESSAGE[1] in script["text"]
    assert TITLE[0] in cli("hotline", "script", config=path).stdout
    with read_session(engine) as session:
        rows = session.exec(select(Message).where(Message.kind == "hotline")).all()
    assert sorted(m.locale for m in rows) == ["en", "ru"]
