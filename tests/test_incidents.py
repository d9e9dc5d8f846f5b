"""The incident lifecycle: audience selection, scope, the status machine, and what each step queues."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from notifier import incidents, outbox
from notifier.db import read_session, write_session
from notifier.errors import InvalidTransition, UsageError
from notifier.models import AudienceMember, Message, utcnow
from tests.conftest import write_out


def _audience(engine: Any, incident_id: int) -> set[int]:
    with read_session(engine) as session:
        rows = session.exec(
            select(AudienceMember.subscriber_id).where(AudienceMember.incident_id == incident_id)
        )
        return set(rows.all())


def _messages(engine: Any, incident_id: int, kind: str) -> list[Message]:
    """The incident's outbox rows of ``kind``, once the senders have written out what is owed."""
    write_out(engine)
    with read_session(engine) as session:
        query = (
            select(Message)
            .where(Message.incident_id == incident_id, Message.kind == kind)
            .order_by(Message.id)
        )
        return list(session.exec(query).all())


def _declare(engine: Any, config: Any, **kwargs: Any) -> incidents.StepResult:
    kwargs.setdefault("title", "Отчёты не отправляются")
    with write_session(engine) as session:
        return incidents.declare(session, config, **kwargs)


def test_declare_selects_exactly_region_times_service_times_active(engine, config, make_subscriber) -> None:
    hit = [
        make_subscriber(region="66", services=["tax-reporting"]),
        make_subscriber(region="54", services=["edo", "tax-reporting"]),
    ]
    make_subscriber(region="77", services=["tax-reporting"])  # other region
    make_subscriber(region="66", services=["edo"])  # other service
    make_subscriber(region="66", services=["tax-reporting"], status="unsubscribed")
    make_subscriber(region="54", services=["tax-reporting"], status="bounced")
    make_subscriber(region="66", services=["tax-reporting-archive"])  # a code that merely starts alike

    result = _declare(engine, config, regions=["66", "54"], services=["tax-reporting"])

    assert result.affected == 2
    assert _audience(engine, result.incident.id) == {s.id for s in hit}


def test_declare_without_services_means_every_service(engine, config, make_subscriber) -> None:
    a = make_subscriber(region="25", services=["edo"])
    b = make_subscriber(region="25", services=["statistics"])
    make_subscriber(region="24", services=["edo"])
    result = _declare(engine, config, regions=["25"])
    assert _audience(engine, result.incident.id) == {a.id, b.id}


def test_declare_queues_one_status_notice_per_member_with_email(engine, config, make_subscriber) -> None:
    with_mail = make_subscriber(region="66")
    make_subscriber(region="66", email=None)  # phone only: nothing to e-mail
    result = _declare(engine, config, regions=["66"], message="Ищем причину")
    notices = _messages(engine, result.incident.id, "status")
    assert [(m.subscriber_id, m.recipient, m.state) for m in notices] == [
        (with_mail.id, with_mail.email, "queued")
    ]
    assert result.affected == 2


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"regions": ["99"]}, "unknown region '99'"),
        ({"regions": ["66"], "services": ["nope"]}, "unknown service 'nope'"),
        ({"regions": []}, "at least one --region"),
        ({"regions": ["66"], "severity": "apocalyptic"}, "--severity"),
        ({"regions": ["66"], "title": "  "}, "--title must not be empty"),
        ({"regions": ["66"], "title": "Сбой\r\nBcc: x@y"}, "control character"),
    ],
)
def test_declare_refuses_bad_input(engine, config, kwargs, error) -> None:
    with pytest.raises(UsageError, match=error):
        _declare(engine, config, **{"title": "Сбой", **kwargs})
    with read_session(engine) as session:
        assert incidents.list_incidents(session) == []


def test_scope_adds_newly_affected_and_removes_nobody(engine, config, make_subscriber) -> None:
    first = make_subscriber(region="66")
    later = make_subscriber(region="74")
    result = _declare(engine, config, regions=["66"], services=["tax-reporting"])
    with write_session(engine) as session:
        widened = incidents.widen_scope(
            session, config, result.incident.ref, add_regions=["74"], add_services=[]
        )
    assert widened.added == 1 and widened.affected == 2
    assert _audience(engine, result.incident.id) == {first.id, later.id}
    # Only the newly affected get the current notice; the first member keeps exactly one.
    notices = _messages(engine, result.incident.id, "status")
    assert sorted(m.subscriber_id for m in notices) == sorted([first.id, later.id])


def test_scope_by_service(engine, config, make_subscriber) -> None:
    tax = make_subscriber(region="66", services=["tax-reporting"])
    edo = make_subscriber(region="66", services=["edo"])
    result = _declare(engine, config, regions=["66"], services=["tax-reporting"])
    with write_session(engine) as session:
        incidents.widen_scope(session, config, result.incident.id, add_regions=[], add_services=["edo"])
    assert _audience(engine, result.incident.id) == {tax.id, edo.id}


@pytest.mark.parametrize(
    ("path", "error"),
    [
        (["monitoring", "investigating"], "cannot go from monitoring back to investigating"),
        (["identified", "investigating"], "cannot go from identified back to investigating"),
        (["resolved"], "incident resolve"),
    ],
)
def test_status_machine_refuses_backward_moves(engine, config, path, error) -> None:
    result = _declare(engine, config, regions=["66"])
    with pytest.raises(InvalidTransition, match=error):  # noqa: PT012
        for status in path:
            with write_session(engine) as session:
                incidents.post_update(session, config, result.incident.id, status=status, message="…")


def test_monitoring_may_go_back_to_identified(engine, config) -> None:
    result = _declare(engine, config, regions=["66"])
    for status in ["monitoring", "identified"]:
        with write_session(engine) as session:
            step = incidents.post_update(session, config, result.incident.id, status=status, message="…")
    assert step.incident.status == "identified"


def test_resolved_incident_takes_no_updates_and_no_second_resolve(engine, config) -> None:
    ref = _declare(engine, config, regions=["66"]).incident.ref
    with write_session(engine) as session:
        incidents.resolve(session, config, ref, cause="Отказ диска", measures="Замена")
    with pytest.raises(InvalidTransition, match="is resolved"), write_session(engine) as session:
        incidents.post_update(session, config, ref, status="monitoring", message="…")
    with pytest.raises(InvalidTransition, match="already resolved"), write_session(engine) as session:
        incidents.resolve(session, config, ref, cause="c", measures="m")


def test_newer_status_notice_supersedes_unsent_one(engine, config, make_subscriber) -> None:
    member = make_subscriber(region="66")
    ref = _declare(engine, config, regions=["66"]).incident.id
    with write_session(engine) as session:
        incidents.post_update(session, config, ref, status="identified", message="Нашли причину")
    notices = _messages(engine, ref, "status")
    assert [(m.state, m.update_id) for m in notices] == [("queued", latest_update_id(engine, ref))]
    assert all(m.subscriber_id == member.id for m in notices)


def test_a_notice_already_written_out_is_cancelled_by_a_newer_one(engine, config, make_subscriber) -> None:
    make_subscriber(region="66")
    ref = _declare(engine, config, regions=["66"]).incident.id
    assert write_out(engine) == 1  # a sender has written the first notice's row, not sent it yet
    with write_session(engine) as session:
        result = incidents.post_update(session, config, ref, status="identified", message="Нашли причину")
    assert result.queued["status"] == 1
    assert [m.state for m in _messages(engine, ref, "status")] == ["cancelled", "queued"]


def latest_update_id(engine: Any, ref: int) -> int | None:
    with read_session(engine) as session:
        latest = incidents.latest_public_update(session, ref)
        return latest.id if latest else None


def test_resolve_cancels_unsent_status_and_queues_one_apology_each(engine, config, make_subscriber) -> None:
    members = [make_subscriber(region="66") for _ in range(3)]
    ref = _declare(engine, config, regions=["66"]).incident.id
    with write_session(engine) as session:
        result = incidents.resolve(
            session, config, ref, cause="Отказ сервера БД", measures="Резервный кластер"
        )
    assert result.cancelled == 3 and result.queued["apology"] == 3
    assert _messages(engine, ref, "status") == []  # owed, never written out: nothing to send
    with read_session(engine) as session:
        assert outbox.counts(session, ref)["status"] == {"cancelled": 3}
    apologies = _messages(engine, ref, "apology")
    assert sorted(m.subscriber_id for m in apologies) == sorted(s.id for s in members)


def test_apology_is_due_after_the_configured_delay(engine, config, make_subscriber, config_path) -> None:
    from tests.conftest import write_config

    make_subscriber(region="66")
    from notifier.config import load_config

    delayed = load_config(
        write_config(config_path.parent, config.notifier.database, mailing={"apology_delay": "15m"})
    )
    ref = _declare(engine, delayed, regions=["66"]).incident.id
    resolved_at = utcnow()
    with write_session(engine) as session:
        incidents.resolve(session, delayed, ref, cause="c", measures="m", resolved_at=resolved_at)
    (apology,) = _messages(engine, ref, "apology")
    assert abs(apology.not_before - (resolved_at + timedelta(minutes=15))) < timedelta(seconds=5)


def test_apology_without_cause_or_measures_is_held_until_edit(engine, config, make_subscriber) -> None:
    make_subscriber(region="66")
    ref = _declare(engine, config, regions=["66"]).incident.id
    with write_session(engine) as session:
        result = incidents.resolve(session, config, ref, cause="Отказ сервера БД")
    assert result.apology_held and _messages(engine, ref, "apology") == []
    with write_session(engine) as session:
        still = incidents.edit(session, config, ref, cause="Отказ сервера БД, уточнение")
    assert still.apology_held and _messages(engine, ref, "apology") == []
    with write_session(engine) as session:
        released = incidents.edit(session, config, ref, measures="Перевели на новый кластер")
    assert not released.apology_held and released.queued["apology"] == 1
    with pytest.raises(InvalidTransition, match="already been queued"), write_session(engine) as session:
        incidents.edit(session, config, ref, cause="again")


def test_queueing_apologies_twice_sends_one_each(engine, config, make_subscriber) -> None:
    make_subscriber(region="66")
    make_subscriber(region="66")
    ref = _declare(engine, config, regions=["66"]).incident.id
    with write_session(engine) as session:
        incidents.resolve(session, config, ref, cause="c", measures="m")
    with write_session(engine) as session:
        incident = incidents.get(session, ref)
        assert outbox.queue_apologies(session, incident, utcnow(), utcnow()) == 0
    assert len(_messages(engine, ref, "apology")) == 2


def test_unsubscribed_and_bounced_get_no_apology(engine, config, make_subscriber) -> None:
    from sqlalchemy import update

    from notifier.models import Subscriber

    keep = make_subscriber(region="66")
    leaves = make_subscriber(region="66")
    bounces = make_subscriber(region="66")
    ref = _declare(engine, config, regions=["66"]).incident.id
    with write_session(engine) as session:
        session.exec(update(Subscriber).where(Subscriber.id == leaves.id).values(status="unsubscribed"))
        session.exec(update(Subscriber).where(Subscriber.id == bounces.id).values(status="bounced"))
    with write_session(engine) as session:
        incidents.resolve(session, config, ref, cause="c", measures="m")
    assert [m.subscriber_id for m in _messages(engine, ref, "apology")] == [keep.id]


@pytest.mark.parametrize(
    ("severity", "hours", "override", "days"),
    [
        ("major", 5, None, 14),  # major over 4 h -> 14 days by policy
        ("major", 3, None, None),  # too short for the rule
        ("minor", 9, None, None),  # no rule for minor
        ("critical", 2, None, 30),  # the most generous rule that applies
        ("critical", 0.5, None, 7),
        ("major", 5, "none", None),  # an override may withdraw it
        ("minor", 1, "7d", 7),  # or grant some within the cap
    ],
)
def test_compensation_by_policy_and_override(engine, config, severity, hours, override, days) -> None:
    now = utcnow()
    ref = _declare(
        engine, config, regions=["66"], severity=severity, started_at=now - timedelta(hours=hours)
    ).incident.id
    with write_session(engine) as session:
        result = incidents.resolve(
            session, config, ref, cause="c", measures="m", compensation_text=override, now=now
        )
    assert result.incident.compensation_days == days


def test_compensation_above_cap_is_refused_and_nothing_changes(engine, config) -> None:
    ref = _declare(engine, config, regions=["66"]).incident.id
    with pytest.raises(UsageError, match="above the policy cap of 30"), write_session(engine) as session:
        incidents.resolve(session, config, ref, cause="c", measures="m", compensation_text="45d")
    with read_session(engine) as session:
        assert incidents.get(session, ref).status == "investigating"


def test_two_resolves_at_the_same_moment_queue_one_apology_mailing(engine, config, make_subscriber) -> None:
    import threading

    for _ in range(5):
        make_subscriber(region="66")
    ref = _declare(engine, config, regions=["66"]).incident.id
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def resolve() -> None:
        barrier.wait()
        try:
            with write_session(engine) as session:
                incidents.resolve(session, config, ref, cause="Отказ", measures="Резерв")
            outcomes.append("resolved")
        except InvalidTransition:
            outcomes.append("refused")

    threads = [threading.Thread(target=resolve) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused", "resolved"]
    assert len(_messages(engine, ref, "apology")) == 5
    with read_session(engine) as session:
        kinds = [u.kind for u in incidents.timeline(session, ref)]
    assert kinds.count("resolved") == 1
