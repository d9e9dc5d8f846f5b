"""Who is owed an SMS, and when: channels per subscriber, the phone-only/all/none policies,
latest wins, quiet hours in the reader's local time, the per-mailing budget (both databases)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from notifier import incidents
from notifier.config import load_config
from notifier.db import read_session, write_session
from notifier.models import Message
from notifier.outbox import sms
from tests.conftest import write_config, write_out

YEKATERINBURG = ZoneInfo("Asia/Yekaterinburg")  # region 66, UTC+5


@pytest.fixture
def sms_config(tmp_path, database_url):
    def make(**sms_keys):
        keys = {"gateway": "kannel", "quiet_hours": "", **sms_keys}
        return load_config(write_config(tmp_path, database_url, sms=keys, hotline={"targets": []}))

    return make


def rows(engine, **where) -> list[Message]:
    """The outbox rows (status notices as the senders write them out) that match ``where``."""
    write_out(engine)
    with read_session(engine) as session:
        found = list(session.exec(select(Message)).all())
    return [m for m in found if all(getattr(m, key) == value for key, value in where.items())]


def declare(engine, config, now=None, **extra):
    with write_session(engine) as session:
        return incidents.declare(session, config, title="Сбой", regions=["66"], services=["tax-reporting"],
                                 now=now, **extra).incident.id  # fmt: skip


def test_phone_only_subscribers_get_sms_and_the_rest_email(engine, sms_config, make_subscriber) -> None:
    config = sms_config()
    both = make_subscriber(region="66")
    phone_only = make_subscriber(region="66", email=None)
    email_only = make_subscriber(region="66", phone=None)
    declare(engine, config)
    status = rows(engine, kind="status")
    assert Counter((m.channel, m.subscriber_id) for m in status) == Counter(
        {("email", both.id): 1, ("sms", phone_only.id): 1, ("email", email_only.id): 1}
    )
    (text,) = [m for m in status if m.channel == "sms"]
    assert text.recipient == phone_only.phone and text.dedupe_key.startswith("sms:status:")


def test_policy_all_and_none_and_the_subscribers_own_channels(engine, sms_config, make_subscriber) -> None:
    both = make_subscriber(region="66")
    wants_email_only = make_subscriber(region="66", channels=";email;")
    wants_sms_only = make_subscriber(region="66", channels=";sms;")
    declare(engine, sms_config(status_notices="all"))
    by = Counter((m.channel, m.subscriber_id) for m in rows(engine, kind="status"))
    assert by == Counter({("email", both.id): 1, ("sms", both.id): 1, ("email", wants_email_only.id): 1,
                          ("sms", wants_sms_only.id): 1})  # fmt: skip
    # "none": the operator's word wins even over a subscriber's own choice of SMS.
    declare(engine, sms_config(status_notices="none"))
    assert not [m for m in rows(engine, kind="status", channel="sms") if m.incident_id == 2]


def test_nobody_gets_an_sms_without_sms_configured_or_a_refused_number(engine, config, sms_config, make_subscriber) -> None:
    make_subscriber(region="66", email=None)
    declare(engine, config)  # the shipped config: [sms] off
    assert rows(engine, channel="sms") == []
    refused = make_subscriber(region="66", email=None, phone="+79120009999", phone_refused="+79120009999")
    declare(engine, sms_config())
    assert refused.id not in {m.subscriber_id for m in rows(engine, channel="sms")}


def test_latest_wins_for_sms_and_resolving_cancels_them(engine, sms_config, make_subscriber) -> None:
    config = sms_config()
    make_subscriber(region="66", email=None)
    ref = declare(engine, config)
    with write_session(engine) as session:
        incidents.post_update(session, config, ref, status="identified", message="Нашли")
    states = Counter((m.update_id, m.state) for m in rows(engine, kind="status", channel="sms"))
    assert sorted(states.values()) == [1, 1] and {s for _, s in states} == {"cancelled", "queued"}
    with write_session(engine) as session:
        incidents.resolve(session, config, ref, cause="Диск", measures="Замена")
    assert {m.state for m in rows(engine, kind="status", channel="sms")} == {"cancelled"}
    assert [m.state for m in rows(engine, kind="apology", channel="sms")] == ["queued"]


def test_quiet_hours_move_an_apology_to_the_morning_in_local_time(engine, sms_config, make_subscriber) -> None:
    config = sms_config(quiet_hours="22:00-08:00")
    make_subscriber(region="66", email=None)
    night = datetime(2026, 11, 24, 3, 0, tzinfo=YEKATERINBURG)
    ref = declare(engine, config, now=night - timedelta(hours=2), started_at=night - timedelta(hours=3))
    with write_session(engine) as session:
        incidents.resolve(session, config, ref, cause="Диск", measures="Замена", now=night)
    (apology,) = rows(engine, kind="apology", channel="sms")
    assert apology.not_before == datetime(2026, 11, 24, 8, 0, tzinfo=YEKATERINBURG)
    assert apology.attempts == 0


def test_status_notices_of_urgent_incidents_ignore_quiet_hours(engine, sms_config, make_subscriber) -> None:
    config = sms_config(quiet_hours="22:00-08:00", urgent_severities=["critical"])
    make_subscriber(region="66", email=None)
    night = datetime(2026, 11, 24, 3, 0, tzinfo=YEKATERINBURG)
    declare(engine, config, now=night, severity="critical")
    declare(engine, config, now=night, severity="minor")
    critical, minor = sorted(rows(engine, kind="status", channel="sms"), key=lambda m: m.incident_id)
    assert critical.not_before == night
    assert minor.not_before == datetime(2026, 11, 24, 8, 0, tzinfo=YEKATERINBURG)


@pytest.mark.parametrize(
    ("local", "expected"),
    [("21:59", "21:59"), ("22:00", "08:00+1"), ("03:00", "08:00"), ("07:59", "08:00"), ("08:00", "08:00")],
)
def test_after_quiet_hours(local: str, expected: str) -> None:
    hour, minute = map(int, local.split(":"))
    due = datetime(2026, 3, 1, hour, minute, tzinfo=YEKATERINBURG).astimezone(UTC)
    moved = sms.after_quiet_hours(due, YEKATERINBURG, (datetime.min.time().replace(hour=22),
                                                       datetime.min.time().replace(hour=8)))  # fmt: skip
    clock, _, days = expected.partition("+")
    h, m = map(int, clock.split(":"))
    assert moved == datetime(2026, 3, 1 + int(days or 0), h, m, tzinfo=YEKATERINBURG)
    assert moved.tzinfo == UTC


def test_a_mailing_over_the_budget_is_held_and_on_call_told(engine, sms_config, make_subscriber) -> None:
    config = sms_config(max_messages_per_mailing=2, apologies="all")
    for _ in range(3):
        make_subscriber(region="66")
    ref = declare(engine, config)
    with write_session(engine) as session:
        incidents.resolve(session, config, ref, cause="Диск", measures="Замена")
    assert Counter(m.state for m in rows(engine, kind="apology", channel="sms")) == Counter({"held": 3})
    assert Counter(m.state for m in rows(engine, kind="apology", channel="email")) == Counter({"queued": 3})
    (note,) = rows(engine, kind="over_budget")
    assert note.recipient == config.notifier.oncall_email and note.channel == "email"
    with write_session(engine) as session:
        assert sms.release(session, ref) == 3
    assert Counter(m.state for m in rows(engine, kind="apology", channel="sms")) == Counter({"queued": 3})


def test_planned_work_sms_wait_for_the_end_of_the_readers_quiet_hours(engine, sms_config, make_subscriber) -> None:
    from notifier import maintenance

    config = sms_config(quiet_hours="22:00-08:00")
    ural = make_subscriber(region="66", email=None)  # UTC+5
    siberia = make_subscriber(region="54", email=None)  # UTC+7
    mailbox = make_subscriber(region="66", phone=None)
    now = datetime(2027, 3, 1, 20, 0, tzinfo=UTC)  # 01:00 in 66, 03:00 in 54
    starts = now + timedelta(days=2)
    with write_session(engine) as session:
        maintenance.schedule(session, config, title="Работы", regions=["66", "54"], services=["tax-reporting"],
                             starts_at=starts, ends_at=starts + timedelta(hours=2), now=now)  # fmt: skip
    announced = {(m.channel, m.subscriber_id): m.not_before for m in rows(engine, kind="maintenance")}
    assert announced == {
        ("email", mailbox.id): now,  # e-mail is not held by quiet hours
        ("sms", ural.id): datetime(2027, 3, 2, 3, 0, tzinfo=UTC),  # 08:00 in Yekaterinburg
        ("sms", siberia.id): datetime(2027, 3, 2, 1, 0, tzinfo=UTC),  # 08:00 in Novosibirsk
    }
    keys = [m.dedupe_key for m in rows(engine, channel="sms")]
    assert len(keys) == len(set(keys)) and all(key.startswith("sms:maintenance") for key in keys)
    # The work runs 01:00–03:00 in 66 and 03:00–05:00 in 54, inside the quiet hours: the 1 h
    # reminder and the started notice would come by SMS only after it is over, so they do not.
    reminders = Counter((m.channel, m.subscriber_id) for m in rows(engine, kind="maintenance_reminder"))
    assert reminders == Counter({("email", mailbox.id): 2, ("sms", ural.id): 1, ("sms", siberia.id): 1})
    started = Counter(m.channel for m in rows(engine, kind="maintenance_started"))
    assert started == Counter({"email": 1})


def test_planned_work_by_sms_follows_its_own_policy(engine, sms_config, make_subscriber) -> None:
    from notifier import maintenance

    config = sms_config(planned_work="none")
    make_subscriber(region="66", email=None)
    starts = datetime.now(UTC) + timedelta(days=2)
    with write_session(engine) as session:
        maintenance.schedule(session, config, title="Работы", regions=["66"], services=["tax-reporting"],
                             starts_at=starts, ends_at=starts + timedelta(hours=2))  # fmt: skip
    assert rows(engine, channel="sms") == []


def test_an_sms_reminder_that_quiet_hours_would_push_past_the_start_is_not_queued(
    engine, sms_config, make_subscriber
) -> None:
    from notifier import maintenance

    config = sms_config(quiet_hours="22:00-08:00")
    texted = make_subscriber(region="66", email=None)  # UTC+5
    mailbox = make_subscriber(region="66", phone=None)
    now = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
    starts = datetime(2027, 3, 3, 2, 30, tzinfo=UTC)  # 07:30 in Yekaterinburg: the 1 h reminder is due at 06:30
    with write_session(engine) as session:
        maintenance.schedule(session, config, title="Работы", regions=["66"], services=["tax-reporting"],
                             starts_at=starts, ends_at=starts + timedelta(hours=2), now=now)  # fmt: skip
    reminders = {(m.channel, m.subscriber_id, m.not_before) for m in rows(engine, kind="maintenance_reminder")}
    day_before = datetime(2027, 3, 2, 3, 0, tzinfo=UTC)  # the 24 h reminder, moved to 08:00 local the day before
    assert reminders == {
        ("email", mailbox.id, day_before), ("email", mailbox.id, starts - timedelta(hours=1)),
        ("sms", texted.id, day_before),  # no SMS "in 1 hour" at 08:00, after the start
    }
    (started,) = [m for m in rows(engine, kind="maintenance_started") if m.channel == "sms"]
    assert started.subscriber_id == texted.id
