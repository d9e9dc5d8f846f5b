"""The hotline library on both databases: lookup by any key, calls and callbacks, escalations
exactly once per threshold, stale-incident reminders, announcements (latest wins), the script,
the report section, and what the sender gets for the hotline's own kinds."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from notifier import hotline, incidents, outbox
from notifier.config import load_config
from notifier.db import read_session, write_session
from notifier.errors import CallbackClosed, CallbackNotFound, SubscriberNotFound, UsageError
from notifier.models import Callback, Message
from notifier.outbox.loading import Loader
from notifier.rendering import Renderer
from tests.conftest import write_config

T0 = datetime(2026, 11, 23, 5, 5, tzinfo=UTC)
HOOK = "http://127.0.0.1:9/hotline"


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


@pytest.fixture
def hook_config(config: Any, tmp_path: Path) -> Any:
    """The test config with one e-mail and one webhook hotline target."""
    (tmp_path / "hooks").mkdir()
    targets = [{"email": "callcentre@example.org", "locale": "ru"}, {"webhook": HOOK, "locale": "en"}]
    return load_config(
        write_config(tmp_path / "hooks", config.notifier.database, hotline={"targets": targets})
    )


def declare(engine: Any, config: Any, regions: list[str] = ["66"], now: datetime = T0) -> int:  # noqa: B006
    with write_session(engine) as session:
        return incidents.declare(
            session, config, title="Не уходят отчёты", regions=regions, now=now
        ).incident.id


def messages(engine: Any, kind: str) -> list[Message]:
    with read_session(engine) as session:
        return list(session.exec(select(Message).where(Message.kind == kind).order_by(Message.id)))


def log(engine: Any, config: Any, **kwargs: Any) -> tuple[Any, Any]:
    kwargs.setdefault("note", "Не уходит декларация")
    kwargs.setdefault("by", "petrova")
    kwargs.setdefault("now", T0)
    with write_session(engine) as session:
        return hotline.log_call(session, config, **kwargs)


# Lookup ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query", ["8 (912) 345-67-89", "+7 912 3456789", "IRINA.Petrova@Example.ORG", "ACC-777001", "петРОВА"]
)
def test_lookup_finds_a_caller_by_any_key_and_says_they_are_affected(
    engine, config, make_subscriber, query
) -> None:
    make_subscriber(external_id="ACC-777001", name="Ирина Петрова", email="irina.petrova@example.org",
                    phone="+79123456789", region="66")  # fmt: skip
    make_subscriber(region="77")
    declare(engine, config, ["66"])
    with read_session(engine) as session:
        found = hotline.lookup(session, config, query, now=minutes(30))
    assert [info.subscriber.external_id for info in found] == ["ACC-777001"]
    info = found[0]
    assert info.affected and info.incidents[0].incident == "INC-1"
    assert [(m.kind, m.state) for m in info.messages] == [("status", "queued")]
    assert info.script and "10:05" in info.script[0].text  # Yekaterinburg time, the caller's region


def test_lookup_of_an_unaffected_or_unknown_caller(engine, config, make_subscriber) -> None:
    make_subscriber(external_id="ACC-1", region="77")
    declare(engine, config, ["66"])
    with read_session(engine) as session:
        [info] = hotline.lookup(session, config, "ACC-1", now=minutes(1))
        assert not info.affected and not info.recently_affected and info.script == []
        assert hotline.lookup(session, config, "nobody@example.org") == []


def test_lookup_remembers_an_incident_resolved_within_30_days(engine, config, make_subscriber) -> None:
    make_subscriber(external_id="ACC-1", region="66")
    ref = declare(engine, config)
    with write_session(engine) as session:
        incidents.resolve(session, config, ref, cause="Диск", measures="Замена", now=minutes(60))
    with read_session(engine) as session:
        [info] = hotline.lookup(session, config, "ACC-1", now=minutes(61) + timedelta(days=3))
        assert not info.affected and info.recently_affected
        assert info.script and info.script[0].status == "resolved"
        [later] = hotline.lookup(session, config, "ACC-1", now=minutes(61) + timedelta(days=31))
        assert not later.recently_affected


# Calls and callbacks --------------------------------------------------------------------


def test_log_with_callback_in_sets_due_time_owner_and_incident(engine, config, make_subscriber) -> None:
    make_subscriber(external_id="ACC-1", region="66", phone="+79120000001")
    declare(engine, config)
    call, callback = log(engine, config, subscriber_key="ACC-1", callback_in=timedelta(hours=2))
    assert callback is not None and callback.due_at == T0 + timedelta(hours=2) and callback.owner == "petrova"
    assert call.incident_id == 1 and call.caller_phone == "+79120000001"  # the one open incident they are in


def test_a_caller_known_only_by_phone_is_linked_to_the_subscriber(engine, config, make_subscriber) -> None:
    sub = make_subscriber(phone="+79123456789")
    call, callback = log(engine, config, caller_phone="8 (912) 345-67-89")
    assert call.subscriber_id == sub.id and callback is None
    stranger, _ = log(engine, config, caller_phone="+7 495 123-45-67", callback_at=minutes(30))
    assert stranger.subscriber_id is None and stranger.caller_phone == "+74951234567"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "--subscriber KEY or --caller PHONE"),
        ({"caller_phone": "12"}, "--caller"),
        ({"caller_phone": "+74951234567", "callback_in": timedelta(0)}, "positive"),
        ({"caller_phone": "+74951234567", "callback_at": T0 - timedelta(hours=1)}, "in the past"),
        ({"caller_phone": "+74951234567", "callback_in": timedelta(hours=1), "by": ""}, "owner"),
        ({"caller_phone": "+74951234567", "note": "  "}, "--note"),
    ],
)
def test_log_refuses_bad_input_with_a_clear_error(engine, config, kwargs, message) -> None:
    with pytest.raises(UsageError, match=message):
        log(engine, config, **kwargs)


def test_log_for_an_unknown_subscriber_is_not_found(engine, config) -> None:
    with pytest.raises(SubscriberNotFound):
        log(engine, config, subscriber_key="ACC-404")


def test_callbacks_list_overdue_first_and_close_once(engine, config, make_subscriber) -> None:
    make_subscriber(external_id="ACC-1")
    _, later = log(engine, config, subscriber_key="ACC-1", callback_in=timedelta(hours=3))
    _, sooner = log(engine, config, caller_phone="+74951234567", callback_in=timedelta(minutes=30))
    with read_session(engine) as session:
        listed = hotline.list_callbacks(session, now=minutes(60))
        assert [(e.callback.id, e.overdue) for e in listed] == [(sooner.id, True), (later.id, False)]
        assert [
            e.callback.id for e in hotline.list_callbacks(session, overdue_only=True, now=minutes(60))
        ] == [sooner.id]
    with write_session(engine) as session:
        closed = hotline.close_callback(session, sooner.id, "Перезвонили", "ivanov", now=minutes(61))
        assert closed.outcome == "Перезвонили" and closed.closed_by == "ivanov" and closed.done_at == minutes(61)
    with write_session(engine) as session, pytest.raises(CallbackClosed, match="already closed"):
        hotline.close_callback(session, sooner.id, "again", "", now=minutes(62))
    with write_session(engine) as session, pytest.raises(CallbackNotFound, match="999"):
        hotline.close_callback(session, 999, "x", "", now=minutes(62))
    with read_session(engine) as session:
        assert [e.callback.id for e in hotline.list_callbacks(session, now=minutes(63))] == [later.id]
        every = hotline.list_callbacks(session, open_only=False, now=minutes(63))
        assert [e.callback.id for e in every] == [later.id, sooner.id]


# Escalations ----------------------------------------------------------------------------


def escalate(engine: Any, config: Any, at: datetime) -> int:
    with write_session(engine) as session:
        return hotline.queue_escalations(session, config, at)


def test_an_overdue_callback_is_escalated_exactly_once_per_threshold(
    engine, hook_config, make_subscriber
) -> None:
    make_subscriber(external_id="ACC-1", region="66")
    declare(engine, hook_config)
    _, callback = log(engine, hook_config, subscriber_key="ACC-1", callback_in=timedelta(hours=1))
    assert escalate(engine, hook_config, minutes(59)) == 0
    assert [escalate(engine, hook_config, minutes(61)) for _ in range(3)] == [1, 0, 0]  # one callback (e-mail + webhook)
    assert [escalate(engine, hook_config, minutes(60 + 121)) for _ in range(3)] == [1, 0, 0]
    assert escalate(engine, hook_config, minutes(60 * 24)) == 0
    sent = messages(engine, "escalation")
    assert sorted(m.dedupe_key for m in sent) == [
        f"escalation:{callback.id}:1:email", f"escalation:{callback.id}:1:webhook:1",
        f"escalation:{callback.id}:2:email", f"escalation:{callback.id}:2:webhook:1",
    ]  # fmt: skip
    email = next(m for m in sent if m.channel == "email")
    assert email.recipient == hook_config.notifier.support_email and email.incident_id == 1
    assert email.subscriber_id is None and email.callback_id == callback.id
    assert {m.recipient for m in sent if m.channel == "webhook"} == {HOOK}
    with read_session(engine) as session:
        assert session.get(Callback, callback.id).escalations == 2


def test_a_callback_closed_in_time_is_never_escalated(engine, config) -> None:
    _, callback = log(engine, config, caller_phone="+74951234567", callback_in=timedelta(hours=1))
    with write_session(engine) as session:
        hotline.close_callback(session, callback.id, "Перезвонили", "", now=minutes(50))
    assert escalate(engine, config, minutes(60 * 5)) == 0
    assert messages(engine, "escalation") == []


def test_closing_a_callback_cancels_its_unsent_escalation(engine, config) -> None:
    _, callback = log(engine, config, caller_phone="+74951234567", callback_in=timedelta(minutes=10))
    assert escalate(engine, config, minutes(11)) == 1
    with write_session(engine) as session:
        hotline.close_callback(session, callback.id, "Дозвонились", "", now=minutes(12))
    assert [m.state for m in messages(engine, "escalation")] == ["cancelled"]


def test_escalation_renders_with_what_the_sender_prepares(engine, hook_config, make_subscriber) -> None:
    make_subscriber(external_id="ACC-1", name="Ирина Петрова", phone="+79123456789", region="66")
    _, callback = log(engine, hook_config, subscriber_key="ACC-1", callback_in=timedelta(hours=1),
                      note="Просит перезвонить")  # fmt: skip
    escalate(engine, hook_config, minutes(60 * 4))
    rows = messages(engine, "escalation")
    jobs = {job.message.id: job for job in Loader().load(engine, [m.id for m in rows])}
    level2 = next(m for m in rows if m.dedupe_key.endswith(":2:email"))
    extras = jobs[level2.id]
    assert extras.cancel is None and extras.render["level"] == 2
    out = Renderer(hook_config).render(
        "escalation", incident=None, locale="ru", now=minutes(60 * 4), **extras.render
    )
    assert "Ирина Петрова" in out.subject and "+7 912 345-67-89" in out.text and "petrova" in out.text
    assert "Просит перезвонить" in out.text and f"notifier callbacks done {callback.id}" in out.text
    assert "Повторно" in out.subject and "3 ч" in out.text  # overdue by three hours


# Stale-incident reminders ---------------------------------------------------------------


def remind(engine: Any, config: Any, at: datetime) -> int:
    with write_session(engine) as session:
        return hotline.queue_stale_reminders(session, config, at)


def test_a_silent_incident_gets_one_reminder_per_silence(engine, config) -> None:
    ref = declare(engine, config)
    assert remind(engine, config, minutes(59)) == 0
    assert [remind(engine, config, minutes(m)) for m in (61, 75, 90)] == [1, 0, 0]
    with write_session(engine) as session:
        incidents.post_update(session, config, ref, status="identified", message="Нашли", now=minutes(100))
    assert remind(engine, config, minutes(130)) == 0  # the new update re-armed it: 30 min of silence so far
    assert [remind(engine, config, minutes(m)) for m in (161, 200)] == [1, 0]
    sent = messages(engine, "reminder")
    assert [m.dedupe_key for m in sent] == [f"reminder:{ref}:1", f"reminder:{ref}:2"]
    assert {m.recipient for m in sent} == {config.notifier.oncall_email}
    with read_session(engine) as session:
        assert incidents.get(session, ref).reminded_at == minutes(161)
        out = Renderer(config).render("reminder", incident=incidents.get(session, ref), locale="en",
                                      update=incidents.latest_public_update(session, ref), now=minutes(175))  # fmt: skip
    assert "INC-1 has had no public update for 1 h 15 min" in out.subject
    assert "notifier incident update INC-1" in out.text


def test_a_resolved_incident_is_not_reminded_and_its_pending_reminder_is_dropped(engine, config) -> None:
    ref = declare(engine, config)
    remind(engine, config, minutes(61))
    with write_session(engine) as session:
        incidents.resolve(session, config, ref, cause="c", measures="m", now=minutes(70))
    assert remind(engine, config, minutes(300)) == 0
    [job] = Loader().load(engine, [m.id for m in messages(engine, "reminder")])
    assert job.cancel == "cancelled: the incident is resolved"


def test_no_oncall_address_means_no_reminders(engine, config, tmp_path) -> None:
    (tmp_path / "quiet").mkdir()
    quiet = load_config(
        write_config(tmp_path / "quiet", config.notifier.database, notifier={"oncall_email": ""})
    )
    declare(engine, quiet)
    assert remind(engine, quiet, minutes(600)) == 0


# Announcements and the script -----------------------------------------------------------


def announce(engine: Any, config: Any, ref: int, at: datetime) -> int:
    with write_session(engine) as session:
        incident = incidents.get(session, ref)
        last = max(u.id for u in incidents.timeline(session, ref))
        return outbox.queue_announcements(session, config, incident, last, at)


def test_announcements_go_to_each_target_and_the_latest_wins(engine, hook_config) -> None:
    ref = declare(engine, hook_config)  # declaring announces to both targets
    assert Counter(m.recipient for m in messages(engine, "hotline")) == Counter(
        {"callcentre@example.org": 1, HOOK: 1}
    )
    assert announce(engine, hook_config, ref, T0) == 0  # the same update twice: nothing new
    with write_session(engine) as session:
        step = incidents.post_update(
            session, hook_config, ref, status="identified", message="Нашли", now=minutes(20)
        )
    assert step.queued["hotline"] == 2
    assert announce(engine, hook_config, ref, minutes(20)) == 0
    rows = messages(engine, "hotline")
    assert Counter((m.recipient, m.state) for m in rows) == Counter({
        ("callcentre@example.org", "cancelled"): 1, (HOOK, "cancelled"): 1,
        ("callcentre@example.org", "queued"): 1, (HOOK, "queued"): 1,
    })  # fmt: skip
    assert {(m.channel, m.locale) for m in rows} == {("email", "ru"), ("webhook", "en")}
    assert all(m.update_id == 2 for m in rows if m.state == "queued")


def test_announcement_renders_the_latest_public_update_after_a_scope_change(engine, hook_config) -> None:
    ref = declare(engine, hook_config)
    with write_session(engine) as session:
        incidents.post_update(session, hook_config, ref, status="identified", message="Переключаем на резерв",
                              now=minutes(10))  # fmt: skip
        incidents.widen_scope(session, hook_config, ref, add_regions=["77"], add_services=[], now=minutes(20))
    announce(engine, hook_config, ref, minutes(20))
    rows = [m for m in messages(engine, "hotline") if m.state == "queued"]
    [job, *_] = Loader().load(engine, [m.id for m in rows])
    out = Renderer(hook_config).render("hotline", incident=job.incident, locale="ru", update=job.update)
    assert "Переключаем на резерв" in out.text and "+region" not in out.text


def test_the_script_speaks_the_callers_local_time(engine, config) -> None:
    declare(engine, config, ["66"])
    declare(engine, config, ["25"], now=minutes(30))
    with read_session(engine) as session:
        in_66 = hotline.script(session, config, region="66", now=minutes(40))
        in_77 = hotline.script(session, config, "INC-1", region="77", locale="en", now=minutes(40))
        every = hotline.script(session, config, now=minutes(40))
    assert [e.incident for e in in_66] == ["INC-1", "INC-2"]  # the one that hits the caller first
    assert in_66[0].affects_region is True and in_66[1].affects_region is False
    assert "10:05" in in_66[0].text and "по времени Екатеринбурга" in in_66[0].text
    assert "08:05 Moscow time" in in_77[0].text and in_77[0].affects_region is False
    assert [e.incident for e in every] == ["INC-2", "INC-1"] and "15:35" in every[0].text  # Vladivostok


def test_script_refuses_an_unknown_region_or_locale(engine, config) -> None:
    with read_session(engine) as session:
        with pytest.raises(UsageError, match="unknown region '999'"):
            hotline.script(session, config, region="999")
        with pytest.raises(UsageError, match="--locale"):
            hotline.script(session, config, locale="de")


# The report -----------------------------------------------------------------------------


def test_report_section_counts_kept_late_and_open_callbacks(engine, config, make_subscriber) -> None:
    make_subscriber(external_id="ACC-1", region="66")
    ref = declare(engine, config)
    ids = [
        log(engine, config, subscriber_key="ACC-1", callback_in=timedelta(hours=1))[1].id for _ in range(4)
    ]
    log(engine, config, subscriber_key="ACC-1")  # a call with no promise
    with write_session(engine) as session:
        hotline.close_callback(session, ids[0], "ok", "", now=minutes(30))  # kept
        hotline.close_callback(session, ids[1], "ok", "", now=minutes(90))  # late
    escalate(engine, config, minutes(120))
    with read_session(engine) as session:
        section = hotline.report_section(session, ref, now=minutes(120))
    assert section["calls"] == 5
    assert section["callbacks"] == {"promised": 4, "kept": 1, "late": 1, "open": 2, "open_overdue": 2,
                                    "escalated": 2, "escalations": 2}  # fmt: skip
    assert [c["id"] for c in section["open_callbacks"]] == ids[2:]
