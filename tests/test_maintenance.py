"""Planned work end to end with a pinned clock: the announcement, each reminder at the reader's
local daytime, the started and completed notices reach a real SMTP server exactly once each;
a reschedule cancels and re-plans the reminders; a cancellation stops them; an overrun reminds
on-call once per end; an incident declared during the window says it is the planned work."""

from __future__ import annotations

import asyncio
import email
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from notifier import incidents, maintenance
from notifier.config import Config
from notifier.db import read_session, write_session
from notifier.delivery.sender import KINDS, Sender, close_messengers, open_messengers
from notifier.models import Message
from notifier.rendering import Renderer
from tests.conftest import mail_config

T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
STARTS = datetime(2027, 3, 3, 0, 0, tzinfo=UTC)  # 03:00 in Moscow, 05:00 in Yekaterinburg, 10:00 in Vladivostok
ENDS = STARTS + timedelta(hours=2)


def send_at(engine: Any, config: Config, when: datetime) -> int:
    """What ``send_due`` does, with the sender's clock pinned at ``when``; how many were sent."""

    async def run() -> int:
        renderer = Renderer(config)
        renderer.ensure_ready(KINDS)
        messengers = await open_messengers(config)
        try:
            return (await Sender(engine, config, messengers, renderer=renderer, clock=lambda: when).run()).sent
        finally:
            await close_messengers(messengers)

    return asyncio.run(run())


def received(server: Any) -> list[tuple[str, str, datetime]]:
    """(recipient, subject, Date) of every message the server accepted."""
    out = []
    for _, rcpts, raw in server.received:
        parsed = email.message_from_bytes(raw, policy=policy.default)
        out.extend((rcpt, str(parsed["Subject"]), parsed["Date"].datetime) for rcpt in rcpts)
    return out


@pytest.fixture
def cfg(tmp_path: Path, config: Config, smtp_server: Any) -> Config:
    return mail_config(tmp_path / "mail", config.notifier.database, smtp_server.port,
                       notifier={"oncall_email": "oncall@example.org"})  # fmt: skip


@pytest.fixture
def readers(make_subscriber: Any) -> dict[str, Any]:
    return {
        "msk": make_subscriber(region="77", email="msk@example.org", locale="ru"),
        "ekb": make_subscriber(region="66", email="ekb@example.org", locale="en"),
        "vvo": make_subscriber(region="25", email="vvo@example.org", locale="ru"),
        "other": make_subscriber(region="54", email="nsk@example.org"),
        "pending": make_subscriber(region="77", email="pending@example.org", status="pending"),
    }


def _schedule(engine: Any, cfg: Config, **fields: Any) -> int:
    with write_session(engine) as session:
        step = maintenance.schedule(session, cfg, title="Обновление сервера БД", regions=["77", "66", "25"],
                                    starts_at=fields.pop("starts_at", STARTS), ends_at=fields.pop("ends_at", ENDS),
                                    message="Отчёты отправятся после работ.", now=T0, **fields)  # fmt: skip
        assert step.affected == 3
        return step.maintenance.id  # type: ignore[return-value]


def test_announcement_reminders_and_notices_go_once_each_at_local_daytime(
    engine: Any, cfg: Config, smtp_server: Any, readers: dict[str, Any]
) -> None:
    ref = _schedule(engine, cfg)
    assert send_at(engine, cfg, T0) == 3
    assert sorted(r for r, _, _ in received(smtp_server)) == ["ekb@example.org", "msk@example.org", "vvo@example.org"]
    # The 24 h reminder: due at 00:00 UTC, which is daytime only in Vladivostok (10:00); in
    # Yekaterinburg (05:00) and Moscow (03:00) it waits for the end of the night, 08:00 local.
    assert send_at(engine, cfg, datetime(2027, 3, 2, 0, 0, tzinfo=UTC)) == 1
    assert send_at(engine, cfg, datetime(2027, 3, 2, 3, 0, tzinfo=UTC)) == 1  # 08:00 in Yekaterinburg
    assert send_at(engine, cfg, datetime(2027, 3, 2, 4, 59, tzinfo=UTC)) == 0
    assert send_at(engine, cfg, datetime(2027, 3, 2, 5, 0, tzinfo=UTC)) == 1  # 08:00 in Moscow
    assert send_at(engine, cfg, datetime(2027, 3, 2, 23, 0, tzinfo=UTC)) == 3  # the 1 h reminder, everyone
    assert send_at(engine, cfg, STARTS) == 3  # started
    with write_session(engine) as session:
        maintenance.complete(session, cfg, ref, now=STARTS + timedelta(hours=1, minutes=40))
    assert send_at(engine, cfg, STARTS + timedelta(hours=1, minutes=40)) == 3
    assert send_at(engine, cfg, STARTS + timedelta(days=3)) == 0  # nothing is left

    got = received(smtp_server)
    per_reader = Counter(rcpt for rcpt, _, _ in got)
    assert per_reader == {"msk@example.org": 5, "ekb@example.org": 5, "vvo@example.org": 5}
    reminders = {(rcpt, date) for rcpt, subject, date in got if subject.startswith(("Напоминание", "Reminder"))}
    assert reminders == {
        ("vvo@example.org", datetime(2027, 3, 2, 0, 0, tzinfo=UTC)),
        ("ekb@example.org", datetime(2027, 3, 2, 3, 0, tzinfo=UTC)),
        ("msk@example.org", datetime(2027, 3, 2, 5, 0, tzinfo=UTC)),
        *{(r, datetime(2027, 3, 2, 23, 0, tzinfo=UTC)) for r in ("vvo@example.org", "ekb@example.org", "msk@example.org")},
    }
    ekb = [subject for rcpt, subject, _ in got if rcpt == "ekb@example.org"]
    assert ekb[0] == "Planned work on March 3: Обновление сервера БД"  # in the reader's language and zone
    assert "Reminder: planned work in 24 hours — Обновление сервера БД" in ekb
    assert ekb[-2:] == ["Planned work has started: Обновление сервера БД", "Planned work is complete: Обновление сервера БД"]


def test_reschedule_cancels_the_old_reminders_and_plans_new_ones(
    engine: Any, cfg: Config, smtp_server: Any, readers: dict[str, Any]
) -> None:
    ref = _schedule(engine, cfg)
    assert send_at(engine, cfg, T0) == 3
    later = STARTS + timedelta(days=7)
    with write_session(engine) as session:
        step = maintenance.reschedule(session, cfg, ref, starts_at=later, ends_at=later + timedelta(hours=3),
                                      now=T0 + timedelta(hours=1))  # fmt: skip
    assert step.cancelled == 3 * 3  # two reminders and the started notice per reader
    assert send_at(engine, cfg, T0 + timedelta(hours=1)) == 3  # "rescheduled" to those already told
    for old in (datetime(2027, 3, 2, 5, 0, tzinfo=UTC), datetime(2027, 3, 2, 23, 0, tzinfo=UTC), STARTS):
        assert send_at(engine, cfg, old) == 0  # nothing at the old times
    assert send_at(engine, cfg, later - timedelta(hours=1)) == 3 + 3  # the new 24 h (all by now) and 1 h ones
    assert send_at(engine, cfg, later) == 3
    subjects = Counter(subject.split(":")[0] for rcpt, subject, _ in received(smtp_server) if rcpt == "msk@example.org")
    assert subjects == {"Плановые работы 3 марта": 1, "Плановые работы перенесены": 1,
                        "Напоминание": 2, "Начались плановые работы": 1}  # fmt: skip


def test_cancelled_maintenance_sends_the_cancellation_and_nothing_after(
    engine: Any, cfg: Config, smtp_server: Any, readers: dict[str, Any]
) -> None:
    ref = _schedule(engine, cfg)
    assert send_at(engine, cfg, T0) == 3
    with write_session(engine) as session:
        maintenance.cancel(session, cfg, ref, now=T0 + timedelta(hours=2))
    assert send_at(engine, cfg, STARTS + timedelta(days=1)) == 3
    assert [s for r, s, _ in received(smtp_server) if r == "vvo@example.org"][-1].startswith("Плановые работы отменены")
    with read_session(engine) as session:
        waiting = [m for m in session.exec(select(Message)).scalars() if m.state in ("queued", "retry")]
    assert waiting == []


def test_an_unsent_announcement_carries_the_new_times_and_nobody_gets_a_reschedule_notice(
    engine: Any, cfg: Config, smtp_server: Any, readers: dict[str, Any]
) -> None:
    ref = _schedule(engine, cfg)
    later = STARTS + timedelta(days=1)
    with write_session(engine) as session:
        maintenance.reschedule(session, cfg, ref, starts_at=later, ends_at=later + timedelta(hours=1), now=T0)
    assert send_at(engine, cfg, T0) == 3
    assert {s for _, s, _ in received(smtp_server)} == {"Плановые работы 4 марта: Обновление сервера БД",
                                                        "Planned work on March 4: Обновление сервера БД"}  # fmt: skip


def test_overrun_reminds_oncall_once_per_end(engine: Any, cfg: Config, smtp_server: Any, readers: dict[str, Any]) -> None:
    ref = _schedule(engine, cfg)
    late = ENDS + cfg.maintenance.overrun_margin + timedelta(minutes=1)
    with write_session(engine) as session:
        assert maintenance.queue_overrun_reminders(session, cfg, ENDS) == 0
        assert maintenance.queue_overrun_reminders(session, cfg, late) == 1
        assert maintenance.queue_overrun_reminders(session, cfg, late + timedelta(minutes=5)) == 0
    assert send_at(engine, cfg, late) == 3 + 1 + 3 + 3 + 3  # announcement, 24 h, 1 h, started; the note
    note = [s for r, s, _ in received(smtp_server) if r == "oncall@example.org"]
    assert note == [f"MNT-{ref} идёт дольше плана: Обновление сервера БД"]
    with write_session(engine) as session:
        maintenance.extend(session, cfg, ref, ends_at=ENDS + timedelta(hours=2), now=late)
        assert maintenance.queue_overrun_reminders(session, cfg, late + timedelta(hours=1)) == 0
        assert maintenance.queue_overrun_reminders(session, cfg, ENDS + timedelta(hours=3)) == 1
    assert send_at(engine, cfg, ENDS + timedelta(hours=3)) == 3 + 1  # "takes longer" to the audience; the note


def test_incident_during_the_window_says_it_is_the_planned_work(
    engine: Any, cfg: Config, smtp_server: Any, readers: dict[str, Any]
) -> None:
    _schedule(engine, cfg)
    with write_session(engine) as session:
        during = incidents.declare(session, cfg, title="Не отправляются отчёты", regions=["66"],
                                   started_at=STARTS + timedelta(minutes=10), now=STARTS + timedelta(minutes=15)).incident  # fmt: skip
        elsewhere = incidents.declare(session, cfg, title="Сбой", regions=["54"], started_at=STARTS,
                                      now=STARTS + timedelta(minutes=15)).incident  # fmt: skip
    assert during.planned_work is not None and during.planned_work["title"] == "Обновление сервера БД"
    assert elsewhere.planned_work is None
    send_at(engine, cfg, STARTS + timedelta(minutes=15))
    letters = [email.message_from_bytes(raw, policy=policy.default) for _, rcpts, raw in smtp_server.received
               if rcpts == ["ekb@example.org"]]  # fmt: skip
    notice = next(m for m in letters if str(m["Subject"]).endswith("Не отправляются отчёты"))
    text = notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "This is the planned work “Обновление сервера БД” announced on March 1, 2027." in text


def test_the_announcement_arrives_with_its_ics(engine: Any, cfg: Config, smtp_server: Any, readers: dict[str, Any]) -> None:
    import icalendar

    _schedule(engine, cfg)
    send_at(engine, cfg, T0)
    raw = next(raw for _, rcpts, raw in smtp_server.received if rcpts == ["msk@example.org"])
    (ics,) = list(email.message_from_bytes(raw, policy=policy.default).iter_attachments())  # type: ignore[attr-defined]
    event = icalendar.Calendar.from_ical(ics.get_content()).walk("VEVENT")[0]
    assert (event.decoded("dtstart"), event.decoded("dtend")) == (STARTS, ENDS)


def test_english_readers_read_the_english_title_and_message_in_letter_calendar_page_and_api(
    engine: Any, cfg: Config, smtp_server: Any, readers: dict[str, Any]
) -> None:
    import httpx
    import icalendar

    from notifier.web import create_app
    from tests.web_server import running

    ref = _schedule(engine, cfg, texts={"en": {"title": "Database server upgrade",
                                               "message": "Reports will go out after the work."}})  # fmt: skip
    assert send_at(engine, cfg, T0) == 3
    letters = {rcpt: email.message_from_bytes(raw, policy=policy.default)
               for _, rcpts, raw in smtp_server.received for rcpt in rcpts}  # fmt: skip
    english, russian = letters["ekb@example.org"], letters["msk@example.org"]
    assert "Database server upgrade" in str(english["Subject"]) and "Обновление" not in str(english["Subject"])
    text = english.get_body(("plain",)).get_content()
    assert "Reports will go out after the work." in text and "Отчёты" not in text
    (ics,) = [part for part in english.iter_attachments() if part.get_content_type() == "text/calendar"]
    event = icalendar.Calendar.from_ical(ics.get_content()).walk("VEVENT")[0]
    assert "Database server upgrade" in str(event["SUMMARY"])
    assert "Обновление сервера БД" in str(russian["Subject"])

    app = create_app(cfg, engine, clock=lambda: T0)
    with running(app) as url, httpx.Client(base_url=url, timeout=20) as web:
        page = web.get("/", params={"locale": "en"}).text
        assert "Database server upgrade" in page and "Reports will go out after the work." in page
        assert "Обновление сервера БД" in web.get("/").text
        upcoming = web.get("/api/v2/scheduled-maintenances/upcoming.json", params={"locale": "en"}).json()
        (item,) = upcoming["scheduled_maintenances"]
        assert item["name"] == "Database server upgrade"
        assert item["incident_updates"][-1]["body"] == "Reports will go out after the work."
        calendar = icalendar.Calendar.from_ical(web.get(f"/maintenance/{ref}.ics", params={"locale": "en"}).content)
        assert "Database server upgrade" in str(calendar.walk("VEVENT")[0]["SUMMARY"])


def test_the_default_language_cannot_be_given_twice(engine: Any, cfg: Config, readers: dict[str, Any]) -> None:
    from notifier.errors import UsageError

    with pytest.raises(UsageError, match="default language"):
        _schedule(engine, cfg, texts={"ru": {"title": "Обновление"}})
