"""SMS end to end through a real Kannel (bearerbox + smsbox + the fake SMSC, tests/kannel.py),
delivery reports coming back to the web app under a real uvicorn, on both databases.

What reached the phones is read back from the fake SMSC's own log; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import urllib.request
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from notifier import incidents
from notifier.db import read_session, write_session
from notifier.delivery.sender import Sender, close_messengers, open_messengers, send_due
from notifier.models import Message, Subscriber, SuppressionEvent, utcnow
from notifier.web import create_app
from tests import kannel as kannel_harness
from tests.conftest import mail_config, recipients, wait_until
from tests.web_server import running

pytestmark = pytest.mark.skipif(not kannel_harness.available(), reason="Kannel (kannel, kannel-extras) is not installed")
YEKATERINBURG, NOVOSIBIRSK = ZoneInfo("Asia/Yekaterinburg"), ZoneInfo("Asia/Novosibirsk")


@pytest.fixture
def kannel(tmp_path):
    with kannel_harness.KannelGateway(tmp_path / "kannel", denied_prefixes=("+7999",)) as gateway:
        yield gateway


def sms_config(tmp_path, config, smtp_server, kannel, monkeypatch, name="sms", *, web: str = "", **sms: Any):
    monkeypatch.setenv("NOTIFIER_KANNEL_PASSWORD", kannel_harness.PASSWORD)
    keys = {"gateway": "kannel", "sender": "Sfera", "quiet_hours": "", "rate_limit": 0,
            "report_base_url": web or "http://127.0.0.1:9", **sms,
            "kannel": {"url": kannel.sendsms_url, "username": kannel_harness.USERNAME}}  # fmt: skip
    return mail_config(tmp_path / name, config.notifier.database, smtp_server.port, sms=keys)


@contextmanager
def reports_to_the_web(engine, tmp_path, config, smtp_server, kannel, monkeypatch, **sms: Any):
    """The web app (SMS on) under uvicorn, and a config whose delivery reports go to it."""
    served = sms_config(tmp_path, config, smtp_server, kannel, monkeypatch, "web", **sms)
    with running(create_app(served, engine)) as web:
        yield sms_config(tmp_path, config, smtp_server, kannel, monkeypatch, web=web, **sms), web


def messages(engine, **where) -> list[Message]:
    with read_session(engine) as session:
        found = list(session.exec(select(Message).order_by(Message.id)).all())
    return [m for m in found if all(getattr(m, key) == value for key, value in where.items())]


def send_at(engine: Any, cfg: Any, moment: datetime) -> None:
    """One sender run with its clock pinned at ``moment`` (quiet hours are judged by it)."""

    async def run() -> None:
        messengers = await open_messengers(cfg)
        try:
            await Sender(engine, cfg, messengers, clock=lambda: moment.astimezone(UTC)).run()
        finally:
            await close_messengers(messengers)

    asyncio.run(run())


def _outage(days_ago: int = 2) -> tuple[datetime, datetime]:
    """An outage from 05:46 to 10:53 UTC: 10:46–15:53 in Yekaterinburg, 12:46–17:53 in Novosibirsk."""
    day = (utcnow() - timedelta(days=days_ago)).date()
    start = datetime(day.year, day.month, day.day, 5, 46, tzinfo=UTC)
    return start, start + timedelta(hours=5, minutes=7)


def test_phone_only_subscribers_get_status_and_apology_sms_in_their_language_and_time(
    engine, config, make_subscriber, smtp_server, kannel, tmp_path, monkeypatch
) -> None:
    with reports_to_the_web(engine, tmp_path, config, smtp_server, kannel, monkeypatch) as (cfg, web):
        irina = make_subscriber(region="66", email=None, phone="+79120001001", name="Ирина Петрова")
        john = make_subscriber(region="54", email=None, phone="+79130002002", name="John Smith", locale="en")
        both = make_subscriber(region="66", phone="+79120003003")  # has e-mail: no SMS by default
        email_only_by_choice = make_subscriber(region="66", email=None, phone="+79120004004", channels=";email;")
        start, end = _outage()
        with write_session(engine) as session:
            ref = incidents.declare(session, cfg, title="Не отправляются отчёты в ФНС", regions=["66", "54"],
                                    services=["tax-reporting"], started_at=start, now=start + timedelta(minutes=12),
                                    texts={"en": {"title": "Tax reports are not going out"}}).incident.id  # fmt: skip
        asyncio.run(send_due(engine, cfg))
        with write_session(engine) as session:
            incidents.resolve(session, cfg, ref, cause="Отказал диск", measures="Заменили диск", resolved_at=end,
                              texts={"en": {"cause": "A disk failed", "measures": "We replaced it"}})  # fmt: skip
        asyncio.run(send_due(engine, cfg))

        got = kannel.wait_for(4)
        assert Counter(sms.receiver for sms in got) == Counter({irina.phone: 2, john.phone: 2})
        status_ru, apology_ru = kannel.to(irina.phone)
        assert "Сфера Отчётности" in status_ru and "с 10:46 по времени Екатеринбурга" in status_ru
        day_ru = f"{end.astimezone(YEKATERINBURG).day} "
        assert f"сбой {day_ru}" in apology_ru and "с 10:46 до 15:53 по времени Екатеринбурга" in apology_ru
        assert "Просим прощения" in apology_ru
        status_en, apology_en = kannel.to(john.phone)
        assert "Sfera Reporting: outage. Tax reports are not going out" in status_en
        assert "since 12:46 Novosibirsk time" in status_en and "Не" not in status_en  # wholly in English
        assert "12:46 to 17:53 Novosibirsk time" in apology_en and "We are sorry" in apology_en
        assert email_only_by_choice.phone not in {sms.receiver for sms in got}
        assert recipients(smtp_server)[both.email] == 2  # status notice and apology by e-mail

        # Delivery reports: the fake SMSC reports "taken" (8) and "delivered" (1) back to the web app.
        assert wait_until(lambda: {m.delivery for m in messages(engine, channel="sms")} == {"delivered"}, 20)
        assert {m.delivery_code for m in messages(engine, channel="sms")} == {"1"}

        # The link in the apology opens exactly Irina's letter, and nobody else's.
        url = re.search(r"http://\S+/letters/\S+", apology_ru).group(0)
        assert url.startswith(cfg.notifier.public_base_url)
        page = urllib.request.urlopen(web + url.removeprefix(cfg.notifier.public_base_url)).read().decode()
        assert "Ирина Петрова" in page and "Отказал диск" in page and "15:53" in page
        assert "John Smith" not in page and "+7912" not in page
        forged = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(web + forged.removeprefix(cfg.notifier.public_base_url))
        assert refused.value.code == 404


def test_a_refused_number_is_marked_and_not_texted_again(
    engine, config, make_subscriber, smtp_server, kannel, tmp_path, monkeypatch
) -> None:
    with reports_to_the_web(engine, tmp_path, config, smtp_server, kannel, monkeypatch) as (cfg, web):
        bad = make_subscriber(region="66", email=None, phone="+79990001234")  # no SMSC takes +7999…
        good = make_subscriber(region="66", email=None, phone="+79120001234")
        with write_session(engine) as session:
            ref = incidents.declare(session, cfg, title="Сбой", regions=["66"]).incident.id
        report = asyncio.run(send_due(engine, cfg))
        (failed,) = messages(engine, channel="sms", subscriber_id=bad.id)
        assert failed.state == "failed" and "Not routable" in failed.last_error
        assert report.failed == 0 and report.bounced == 1  # refused at submission: the number, not the subscriber

        def marked() -> bool:
            with read_session(engine) as session:
                return session.get(Subscriber, bad.id).phone_refused == bad.phone

        assert wait_until(marked, 20)  # Kannel's own report: 16/NACK/no SMSC
        with read_session(engine) as session:
            event = session.exec(select(SuppressionEvent).where(SuppressionEvent.subscriber_id == bad.id)).one()
            assert (event.kind, event.source, event.recipient) == ("hard_bounce", "sms", bad.phone)
            assert session.get(Subscriber, bad.id).status == "active"
        assert [sms.receiver for sms in kannel.received()] == [good.phone]
        with write_session(engine) as session:
            incidents.post_update(session, cfg, ref, status="identified", message="Нашли причину")
        asyncio.run(send_due(engine, cfg))
        assert bad.id not in {m.subscriber_id for m in messages(engine, channel="sms", state="sent")}
        assert Counter(sms.receiver for sms in kannel.wait_for(2)) == Counter({good.phone: 2})


def test_latest_wins_for_sms(engine, config, make_subscriber, smtp_server, kannel, tmp_path, monkeypatch) -> None:
    cfg = sms_config(tmp_path, config, smtp_server, kannel, monkeypatch)
    reader = make_subscriber(region="66", email=None)
    with write_session(engine) as session:
        ref = incidents.declare(session, cfg, title="Сбой отчётности", regions=["66"]).incident.id
        incidents.post_update(session, cfg, ref, status="identified", message="Нашли")
    asyncio.run(send_due(engine, cfg))
    (only,) = kannel.wait_for(1)
    assert only.receiver == reader.phone and "Причина найдена, устраняем" in only.text
    assert Counter(m.state for m in messages(engine, channel="sms", kind="status")) == Counter(
        {"sent": 1, "cancelled": 1}
    )


def test_a_mailing_over_the_budget_is_held_until_released(
    engine, config, make_subscriber, smtp_server, kannel, tmp_path, monkeypatch, cli
) -> None:
    cfg = sms_config(tmp_path, config, smtp_server, kannel, monkeypatch, max_messages_per_mailing=2,
                     status_notices="none")  # fmt: skip
    phones = {make_subscriber(region="66", email=None).phone for _ in range(3)}
    with write_session(engine) as session:
        ref = incidents.declare(session, cfg, title="Сбой", regions=["66"]).incident.id
    with write_session(engine) as session:
        incidents.resolve(session, cfg, ref, cause="Диск", measures="Замена")
    asyncio.run(send_due(engine, cfg))
    assert kannel.received() == []  # not one of the 3 SMS
    notes = [email.message_from_bytes(raw, policy=email.policy.default)
             for _, rcpts, raw in smtp_server.received if rcpts == [cfg.notifier.oncall_email]]  # fmt: skip
    assert len(notes) == 1
    assert f"notifier sms release INC-{ref}" in notes[0].get_body(("plain",)).get_content()
    assert "3" in str(notes[0]["Subject"])
    outbox = cli("outbox", f"INC-{ref}", "--json", config=cfg.path).json()
    assert outbox["sms"]["apology"] == {"held": 3}

    released = cli("sms", "release", f"INC-{ref}", config=cfg.path)
    assert released.exit_code == 0 and "3" in released.stdout
    asyncio.run(send_due(engine, cfg))
    assert {sms.receiver for sms in kannel.wait_for(3)} == phones
    report = cli("report", f"INC-{ref}", "--json", config=cfg.path).json()
    assert report["sms"]["apology"] == {"accepted": 3}  # accepted by Kannel; no report came back here
    assert "SMS of them, by delivery:" in cli("report", f"INC-{ref}", config=cfg.path).stdout


def test_quiet_hours_delay_an_apology_sms_to_the_morning_without_charging_attempts(
    engine, config, make_subscriber, smtp_server, kannel, tmp_path, monkeypatch
) -> None:
    cfg = sms_config(tmp_path, config, smtp_server, kannel, monkeypatch, quiet_hours="22:00-08:00",
                     status_notices="none")  # fmt: skip
    reader = make_subscriber(region="66", email=None)
    night = datetime.now(YEKATERINBURG).replace(hour=3, minute=0, second=0, microsecond=0) - timedelta(days=3)
    with write_session(engine) as session:
        ref = incidents.declare(session, cfg, title="Сбой", regions=["66"], started_at=night - timedelta(hours=3),
                                now=night - timedelta(hours=2)).incident.id  # fmt: skip
        incidents.resolve(session, cfg, ref, cause="Диск", measures="Замена", resolved_at=night, now=night)

    send_at(engine, cfg, night + timedelta(hours=4, minutes=59))  # 07:59 local
    assert kannel.received() == []
    (waiting,) = messages(engine, channel="sms", kind="apology")
    assert (waiting.state, waiting.attempts) == ("queued", 0)
    send_at(engine, cfg, night + timedelta(hours=5))  # 08:00 local
    (sms,) = kannel.wait_for(1)
    assert sms.receiver == reader.phone
    (sent,) = messages(engine, channel="sms", kind="apology")
    assert (sent.state, sent.attempts) == ("sent", 1)


def test_an_sms_queued_by_day_but_sent_in_the_night_waits_for_the_morning(
    engine, config, make_subscriber, smtp_server, kannel, tmp_path, monkeypatch
) -> None:
    """Quiet hours hold at send time too: a backlog (or a retry) that reaches the night is put back,
    uncharged, until 08:00 in the reader's zone."""
    cfg = sms_config(tmp_path, config, smtp_server, kannel, monkeypatch, quiet_hours="22:00-08:00",
                     status_notices="none")  # fmt: skip
    reader = make_subscriber(region="66", email=None)
    afternoon = datetime.now(YEKATERINBURG).replace(hour=15, minute=0, second=0, microsecond=0) - timedelta(days=3)
    with write_session(engine) as session:
        ref = incidents.declare(session, cfg, title="Сбой", regions=["66"], started_at=afternoon - timedelta(hours=3),
                                now=afternoon - timedelta(hours=2)).incident.id  # fmt: skip
        incidents.resolve(session, cfg, ref, cause="Диск", measures="Замена", resolved_at=afternoon, now=afternoon)

    send_at(engine, cfg, afternoon + timedelta(hours=8, minutes=30))  # 23:30 local: the sender got to it late
    assert kannel.received() == []
    (waiting,) = messages(engine, channel="sms", kind="apology")
    morning = (afternoon + timedelta(hours=17)).astimezone(UTC)  # 08:00 local the next day
    assert (waiting.state, waiting.attempts, waiting.not_before) == ("retry", 0, morning)
    send_at(engine, cfg, afternoon + timedelta(hours=17))
    (sms,) = kannel.wait_for(1)
    assert sms.receiver == reader.phone
    (sent,) = messages(engine, channel="sms", kind="apology")
    assert (sent.state, sent.attempts) == ("sent", 1)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_kannel_refusing_our_password_stops_the_run_and_charges_nothing(
    engine, config, make_subscriber, smtp_server, kannel, tmp_path, monkeypatch
) -> None:
    from notifier.errors import DeliveryError

    cfg = sms_config(tmp_path, config, smtp_server, kannel, monkeypatch, status_notices="all")
    monkeypatch.setenv("NOTIFIER_KANNEL_PASSWORD", "wrong")
    make_subscriber(region="66", email=None)
    with write_session(engine) as session:
        incidents.declare(session, cfg, title="Сбой", regions=["66"])
    with pytest.raises(DeliveryError, match="Kannel refused the sendsms user 'notifier'"):
        asyncio.run(send_due(engine, cfg))
    assert {(m.state, m.attempts) for m in messages(engine, channel="sms")} == {("retry", 0)}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_a_sender_killed_mid_mailing_sends_no_sms_twice_beyond_what_was_in_flight(
    engine, config, make_subscriber, smtp_server, kannel, tmp_path, monkeypatch
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = sms_config(tmp_path, config, smtp_server, kannel, monkeypatch, rate_limit=25, concurrency=4,
                     status_notices="none")  # fmt: skip
    phones = [make_subscriber(region="66", email=None).phone for _ in range(80)]
    with write_session(engine) as session:
        ref = incidents.declare(session, cfg, title="Сбой", regions=["66"]).incident.id
    with write_session(engine) as session:
        incidents.resolve(session, cfg, ref, cause="Диск", measures="Замена")

    env = {**os.environ, "NOTIFIER_CONFIG": str(cfg.path)}
    proc = subprocess.Popen([sys.executable, "-m", "notifier", "send"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while len(kannel.received()) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)  # what Kannel had accepted reaches the fake SMSC
    before = len(kannel.received())
    assert 0 < before < 80

    restart = subprocess.run([sys.executable, "-m", "notifier", "send"], env=env, capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert restart.returncode == 0, restart.stderr
    assert "taken back" in restart.stderr
    counts = Counter(sms.receiver for sms in kannel.wait_for(80))
    assert set(counts) == set(phones)  # nobody lost
    duplicates = [phone for phone, n in counts.items() if n > 1]
    # Only what was in flight: on one of the 4 connections, or accepted in the last recording
    # interval (0.1 s at 25 SMS/s: 3) and not yet recorded.
    assert len(duplicates) <= 4 + 3 and max(counts.values()) <= 2
    assert Counter(m.state for m in messages(engine, channel="sms", kind="apology")) == Counter({"sent": 80})


def test_planned_work_reaches_phone_only_and_sms_choosing_subscribers_once_each(
    engine, config, make_subscriber, smtp_server, kannel, tmp_path, monkeypatch
) -> None:
    from notifier import maintenance

    cfg = sms_config(tmp_path, config, smtp_server, kannel, monkeypatch)
    irina = make_subscriber(region="66", email=None, phone="+79120001001", name="Ирина Петрова")
    john = make_subscriber(region="54", email=None, phone="+79130002002", name="John Smith", locale="en")
    both = make_subscriber(region="66", phone="+79120003003")  # has e-mail: e-mail only, by default
    texter = make_subscriber(region="66", phone="+79120005005", channels=";sms;")  # chose SMS instead
    starts = (utcnow() + timedelta(days=3)).replace(hour=4, minute=0, second=0, microsecond=0)  # 09:00 in 66
    with write_session(engine) as session:
        planned = maintenance.schedule(session, cfg, title="Обновление сервера БД", regions=["66", "54"],
                                       services=["tax-reporting"], starts_at=starts,
                                       ends_at=starts + timedelta(hours=2)).maintenance  # fmt: skip
    asyncio.run(send_due(engine, cfg))
    got = kannel.wait_for(3)
    assert Counter(sms.receiver for sms in got) == Counter({irina.phone: 1, john.phone: 1, texter.phone: 1})
    (ru,) = kannel.to(irina.phone)
    assert "плановые работы" in ru and "Обновление сервера БД" in ru and "09:00" in ru
    assert "по времени Екатеринбурга" in ru
    (en,) = kannel.to(john.phone)
    assert "planned work" in en and "11:00" in en and "Novosibirsk time" in en  # 04:00 UTC in UTC+7
    assert recipients(smtp_server) == Counter({both.email: 1})  # the one who chose SMS gets no e-mail

    with write_session(engine) as session:
        maintenance.cancel(session, cfg, planned.id)
    asyncio.run(send_due(engine, cfg))
    asyncio.run(send_due(engine, cfg))  # nothing is owed twice
    got = kannel.wait_for(6)
    assert Counter(sms.receiver for sms in got) == Counter({irina.phone: 2, john.phone: 2, texter.phone: 2})
    assert "отменены" in kannel.to(irina.phone)[1] and "cancelled" in kannel.to(john.phone)[1]
    assert recipients(smtp_server) == Counter({both.email: 2})
    texts = messages(engine, channel="sms")
    assert {m.kind for m in texts if m.state == "sent"} == {"maintenance", "maintenance_cancelled"}
    assert {m.state for m in texts if m.kind in ("maintenance_reminder", "maintenance_started")} == {"cancelled"}


def test_subscribing_by_phone_texts_a_link_and_only_a_confirmed_number_hears_of_the_next_outage(
    engine, config, make_subscriber, smtp_server, kannel, tmp_path, monkeypatch
) -> None:
    import httpx

    cfg = sms_config(tmp_path, config, smtp_server, kannel, monkeypatch)
    with running(create_app(cfg, engine)) as web, httpx.Client(base_url=web, timeout=20) as client:
        form = {"region": "66", "service": "tax-reporting", "locale": "ru"}
        assert 'name="phone"' in client.get("/subscribe").text
        answer = client.post("/subscribe", data={**form, "phone": "8 (912) 000-77-11"})
        assert answer.status_code == 200 and "Проверьте телефон" in answer.text
        silent = client.post("/subscribe", data={**form, "phone": "+7 913 000 88 22"})  # never confirms
        assert silent.status_code == 200
        both = client.post("/subscribe", data={**form, "phone": "+79120007711", "email": "a@example.org"})
        assert both.status_code == 400 and "not both" in both.text
        asyncio.run(send_due(engine, cfg))
        got = kannel.wait_for(2)
        assert Counter(sms.receiver for sms in got) == Counter({"+79120007711": 1, "+79130008822": 1})
        (text,) = kannel.to("+79120007711")
        assert "подтвердите подписку" in text
        link = re.search(r"http://\S+/subscribe/confirm/\S+", text).group(0)
        path = link.removeprefix(cfg.notifier.public_base_url.rstrip("/"))
        assert client.get(path).status_code == 200  # the page alone confirms nothing
        with read_session(engine) as session:
            assert {s.status for s in session.exec(select(Subscriber)).all()} == {"pending"}
        assert "Вы подписаны" in client.post(path).text
        with write_session(engine) as session:
            incidents.declare(session, cfg, title="Не отправляются отчёты в ФНС", regions=["66", "54"],
                              services=["tax-reporting"])  # fmt: skip
        asyncio.run(send_due(engine, cfg))
        got = kannel.wait_for(3)
        assert Counter(sms.receiver for sms in got) == Counter({"+79120007711": 2, "+79130008822": 1})
        assert "сбой" in kannel.to("+79120007711")[1]
        assert recipients(smtp_server) == Counter()  # nobody asked for e-mail
        # The per-address limit (3/hour) counts a number in any spelling as one address.
        codes = [client.post("/subscribe", data={**form, "phone": spelling}).status_code
                 for spelling in ("+79130008822", "8 913 000-88-22", "+7 (913) 0008822")]  # fmt: skip
        assert codes == [200, 200, 429]
