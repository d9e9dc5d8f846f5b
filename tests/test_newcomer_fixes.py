"""The rough edges a newcomer hits, one test each: local time on the command line, what the
letter says, lookup and lists, and the smaller defects (issue 12, items 4–7)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlmodel import select

from notifier import hotline, incidents, users
from notifier.config import load_config
from notifier.db import read_session, write_session
from notifier.models import Callback, Message, Update, utcnow
from notifier.outbox import escalation_level
from notifier.rendering import Renderer
from notifier.web import create_app
from tests.conftest import write_config
from tests.web_server import running

EKB = ZoneInfo("Asia/Yekaterinburg")


def _config_in(directory: Any, database_url: str, **sections: Any) -> Any:
    directory.mkdir(parents=True, exist_ok=True)
    return write_config(directory, database_url, **sections)


def _messages(engine: Any, kind: str) -> list[Message]:
    with read_session(engine) as session:
        return list(session.exec(select(Message).where(Message.kind == kind).order_by(Message.id)).all())


# 4. Local time on the command line ------------------------------------------------------


def test_a_time_without_an_offset_is_read_and_printed_in_the_operators_zone(
    cli, make_subscriber, monkeypatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Yekaterinburg")
    make_subscriber(region="66")
    half_an_hour_ago = (datetime.now(EKB) - timedelta(minutes=30)).replace(second=0, microsecond=0)
    declared = cli("incident", "declare", "--title", "Сбой", "--region", "66",
                   "--started-at", half_an_hour_ago.replace(tzinfo=None).isoformat())  # fmt: skip
    assert declared.exit_code == 0, declared.stderr  # read as UTC it was "in the future"
    shown = cli("incident", "show", "INC-1").stdout
    assert f"Started {half_an_hour_ago:%Y-%m-%d %H:%M} +05:00" in shown and "UTC" not in shown
    assert "without an offset" in cli("incident", "declare", "--help").stdout


def test_operator_timezone_in_the_config_wins_over_the_machines(
    tmp_path, database_url, make_subscriber, cli, monkeypatch
) -> None:
    monkeypatch.setenv("TZ", "UTC")
    path = _config_in(tmp_path / "nsk", database_url, notifier={"operator_timezone": "Asia/Novosibirsk"})
    make_subscriber(region="66")
    cli("incident", "declare", "--title", "Сбой", "--region", "66", "--started-at", "2026-01-10T08:00:00+05:00",
        config=path)  # fmt: skip
    assert "Started 2026-01-10 10:00 +07:00" in cli("incident", "show", "INC-1", config=path).stdout
    bad = _config_in(tmp_path / "bad", database_url, notifier={"operator_timezone": "Mars/Olympus"})
    assert cli("incident", "list", config=bad).exit_code == 2


def test_callbacks_lookup_and_the_report_timeline_print_local_time_with_offset(
    cli, make_subscriber, monkeypatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Yekaterinburg")
    make_subscriber(region="66", external_id="ACC-7")
    cli("incident", "declare", "--title", "Сбой", "--region", "66")
    cli("send")
    cli("hotline", "log", "--subscriber", "ACC-7", "--note", "Звонил", "--callback-in", "2h", "--by", "petrova")
    for output in (cli("callbacks").stdout, cli("hotline", "lookup", "ACC-7").stdout, cli("report", "INC-1").stdout):
        assert "+05:00" in output and " UTC" not in output


# 5. What the letter says ----------------------------------------------------------------


def test_the_report_says_40_min_not_0_h_40_min(cli, make_subscriber) -> None:
    make_subscriber(region="66")
    cli("incident", "declare", "--title", "Сбой", "--region", "66", "--started-at", "2026-01-10T08:00:00+00:00")
    cli("incident", "resolve", "INC-1", "--cause", "Причина", "--measures", "Меры",
        "--resolved-at", "2026-01-10T08:40:00+00:00")  # fmt: skip
    report = cli("report", "INC-1").stdout
    assert "Duration: 40 min" in report and "0 h" not in report


def test_the_apology_says_in_words_that_the_service_works_normally_again(config) -> None:
    from notifier.samples import sample_incident, sample_subscriber

    renderer = Renderer(config)
    incident = sample_incident(config)
    for locale, words in (("ru", "всё снова работает как обычно"), ("en", "working normally again")):
        letter = renderer.render("apology", incident=incident, locale=locale,
                                 subscriber=sample_subscriber(config, locale=locale))  # fmt: skip
        assert words in letter.text and words in (letter.html or "")


def test_an_escalation_overdue_by_seconds_reads_as_natural_russian(engine, config, make_subscriber) -> None:
    make_subscriber(external_id="ACC-1", region="66")
    now = utcnow()
    with write_session(engine) as session:
        _, callback = hotline.log_call(session, config, subscriber_key="ACC-1", note="Звонил",
                                       callback_in=timedelta(minutes=10), by="petrova", now=now)  # fmt: skip
        call = callback.call_id
    from notifier.models import Call

    with read_session(engine) as session:
        letter = Renderer(config).render("escalation", incident=None, locale="ru", callback=session.get(Callback, callback.id),
                                         call=session.get(Call, call), subscriber=None,
                                         now=callback.due_at + timedelta(seconds=20))  # fmt: skip
    assert "меньше чем на минуту" in letter.text and "на меньше минуты" not in letter.text + letter.subject


def test_the_russian_hotline_subject_has_no_all_caps_latin_word(config, make_subscriber, engine) -> None:
    make_subscriber(region="66")
    with write_session(engine) as session:
        incident = incidents.declare(session, config, title="Не отправляются отчёты", regions=["66"]).incident
        subject = Renderer(config).render("hotline", incident=incident, locale="ru").subject
    assert not re.search(r"\b[A-Z]{2,}\b", subject), subject
    assert "сбой № 1" in subject


# 6. Lookup and lists ----------------------------------------------------------------------


def test_yo_and_ye_find_each_other(cli, make_subscriber) -> None:
    make_subscriber(name="Пётр Сидоров", external_id="ACC-1")
    make_subscriber(name="Семен Ежов", external_id="ACC-2")
    assert "ACC-1" in cli("subscribers", "find", "Петр Сидоров").stdout
    assert "ACC-1" in cli("hotline", "lookup", "петр").stdout
    assert "ACC-2" in cli("subscribers", "find", "Семён").stdout


def test_find_and_lookup_say_how_many_more_matched(cli, make_subscriber) -> None:
    for _ in range(53):
        make_subscriber(name="Иван Петров")
    found = cli("subscribers", "find", "Петров")
    assert "50 shown of 53, narrow the query." in found.stdout
    assert cli("subscribers", "find", "Петров", "--json").json()["total"] == 53
    assert "50 shown of 53, narrow the query." in cli("hotline", "lookup", "Петров").stdout


# 7. Smaller defects -----------------------------------------------------------------------


def test_preview_of_someone_outside_the_audience_says_so(cli, make_subscriber) -> None:
    make_subscriber(region="66", external_id="ACC-IN")
    make_subscriber(region="77", external_id="ACC-OUT")
    cli("incident", "declare", "--title", "Сбой", "--region", "66")
    cli("incident", "resolve", "INC-1", "--cause", "Причина", "--measures", "Меры")
    outside = cli("preview", "INC-1", "--kind", "apology", "--subscriber", "ACC-OUT")
    assert outside.exit_code == 2 and "not in INC-1's audience" in outside.stderr
    assert "затронул" not in outside.stdout
    assert cli("preview", "INC-1", "--kind", "apology", "--subscriber", "ACC-IN").exit_code == 0


def test_a_scope_change_that_adds_nobody_queues_and_records_nothing(cli, engine, make_subscriber) -> None:
    make_subscriber(region="66")
    path_args = ("incident", "declare", "--title", "Сбой", "--region", "66")
    cli(*path_args)
    before = len(_messages(engine, "hotline"))
    nobody = cli("incident", "scope", "INC-1", "--add-region", "74")
    assert nobody.exit_code == 0 and "reaches nobody new" in nobody.stdout
    assert len(_messages(engine, "hotline")) == before
    with read_session(engine) as session:
        assert [u.kind for u in session.exec(select(Update)).all()] == ["declared"]


def test_adding_a_service_says_what_was_added(cli, make_subscriber) -> None:
    make_subscriber(region="66", services=["edo"])
    make_subscriber(region="66", services=["tax-reporting"])
    cli("incident", "declare", "--title", "Сбой", "--region", "66", "--service", "tax-reporting")
    added = cli("incident", "scope", "INC-1", "--add-service", "edo").stdout
    assert "now also covers service edo: 1 more subscribers" in added and "regions" not in added


def test_the_report_knows_all_apologies_were_sent_when_and_who_has_no_email(
    cli, engine, make_subscriber, smtp_server, tmp_path, database_url
) -> None:
    path = _config_in(tmp_path / "m", database_url, smtp={"port": smtp_server.port}, hotline={"targets": []})
    make_subscriber(region="66")
    make_subscriber(region="66")
    make_subscriber(region="66", email=None)  # phone only
    cli("incident", "declare", "--title", "Сбой", "--region", "66", config=path)
    cli("incident", "resolve", "INC-1", "--cause", "Причина", "--measures", "Меры", config=path)
    assert cli("send", config=path).exit_code == 0
    report = cli("report", "INC-1", config=path).stdout
    assert "Apology: sent (2 of 2)" in report and "Apology: queued" not in report
    assert "1 without e-mail" in report
    assert re.search(r"apology delivered from \d{4}-\d\d-\d\d \d\d:\d\d [+-]\d\d:\d\d to ", report)


def test_the_stale_reminder_repeats_every_stale_after_while_silent(engine, config) -> None:
    t0 = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
    with write_session(engine) as session:
        incidents.declare(session, config, title="Сбой", regions=["66"], started_at=t0, now=t0)

    def remind(minutes: int) -> int:
        with write_session(engine) as session:
            return hotline.queue_stale_reminders(session, config, t0 + timedelta(minutes=minutes))

    assert [remind(m) for m in (59, 61, 90, 121, 150, 181, 182)] == [0, 1, 0, 1, 0, 1, 0]
    assert [m.dedupe_key for m in _messages(engine, "reminder")] == ["reminder:1:1", "reminder:1:1:2", "reminder:1:1:3"]


def test_the_second_escalation_level_has_its_own_addresses_and_callbacks_are_counted(
    engine, tmp_path, database_url, make_subscriber
) -> None:
    manager = ["duty-manager@sfera-reporting.example", "head@sfera-reporting.example"]
    cfg = load_config(_config_in(tmp_path / "esc", database_url, hotline={
        "targets": [{"email": "callcentre@sfera-reporting.example"}, {"webhook": "http://127.0.0.1:9/hook"}],
        "callback_escalate_again": "2h", "escalate_again_to": manager,
    }))  # fmt: skip
    t0 = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
    with write_session(engine) as session:
        for phone in ("+74951234567", "+74951234568"):
            hotline.log_call(session, cfg, caller_phone=phone, note="Звонил", callback_in=timedelta(hours=1),
                             by="petrova", now=t0)  # fmt: skip
    with write_session(engine) as session:
        assert hotline.queue_escalations(session, cfg, t0 + timedelta(minutes=61)) == 2  # callbacks, not 4 messages
    with write_session(engine) as session:
        assert hotline.queue_escalations(session, cfg, t0 + timedelta(minutes=181)) == 2
    emails = [m for m in _messages(engine, "escalation") if m.channel == "email"]
    first = {m.recipient for m in emails if escalation_level(m.dedupe_key) == 1}
    second = {m.recipient for m in emails if escalation_level(m.dedupe_key) == 2}
    assert first == {cfg.notifier.support_email} and second == set(manager)


def test_the_console_shows_an_unknown_callers_callback_in_the_operators_zone(
    tmp_path, database_url, engine, monkeypatch
) -> None:
    monkeypatch.setenv("NOTIFIER_SECRET", "x" * 32)
    cfg = load_config(_config_in(tmp_path / "op", database_url, notifier={"operator_timezone": "Asia/Novosibirsk"}))
    due = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
    with write_session(engine) as session:
        hotline.log_call(session, cfg, caller_phone="+74951234567", note="Звонил",
                         callback_at=due, by="petrova", now=due - timedelta(minutes=30))  # fmt: skip
        token = users.add(session, "Petrova", locale="en")[1]
    with running(create_app(cfg, engine, clock=lambda: due - timedelta(minutes=30))) as url, \
            httpx.Client(base_url=url, timeout=20) as client:  # fmt: skip
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/login").text).group(1)
        client.post("/console/login", data={"name": "Petrova", "token": token, "csrf_token": csrf})
        row = re.search(r'id="callback-1">(.*?)</tr>', client.get("/console/callbacks").text, re.S).group(1)
    assert "15:00" in row and "UTC+07:00" in row  # Novosibirsk, not the first region's (Kaliningrad) 10:00
