"""The one suppression list: what bounces, complaints and auto-replies do to subscribers,
how an operator sees and lifts suppressions, and what the incident report counts
(real databases: SQLite and PostgreSQL; the CLI driven as a user would)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from notifier.bounces import verp
from notifier.bounces.events import BounceEvent
from notifier.bounces.intake import process_message
from notifier.bounces.suppression import record
from notifier.config import Config
from notifier.db import read_session, write_session
from notifier.models import Message, Subscriber, SuppressionEvent, utcnow
from tests.bounce_samples import arf_report, out_of_office, postfix_dsn, sent_row
from tests.conftest import SECRET, write_out

DOMAIN = "bounces.sfera-reporting.example"


@pytest.fixture
def outbox_row(engine: Any) -> Callable[..., int]:
    return lambda subscriber, kind="apology", incident_id=None: sent_row(
        engine, subscriber, kind, incident_id
    )


def return_path(row: int) -> str:
    return verp.return_path(SECRET.encode(), row, "bounces", DOMAIN)


def status_of(engine: Any, subscriber: Subscriber) -> str:
    with read_session(engine) as session:
        found = session.get(Subscriber, subscriber.id)
        assert found is not None
        return found.status


def events_of(engine: Any, subscriber: Subscriber) -> list[SuppressionEvent]:
    with read_session(engine) as session:
        query = select(SuppressionEvent).where(SuppressionEvent.subscriber_id == subscriber.id)
        return list(session.execute(query.order_by(SuppressionEvent.id)).scalars())


def test_a_hard_bounce_to_the_return_path_marks_the_subscriber_bounced_with_the_status_code(
    engine: Any, config: Config, make_subscriber: Callable[..., Subscriber], outbox_row: Callable[..., int]
) -> None:
    dead, other = make_subscriber(), make_subscriber()
    row = outbox_row(dead)
    dsn = postfix_dsn(return_path(row), "someone-else@forwarded.example", message_id="<unrelated@x>")
    [outcome] = process_message(engine, config, dsn, source="lmtp", envelope_recipients=[return_path(row)])
    assert (outcome.match.how, outcome.match.message_id) == ("verp", row)
    assert status_of(engine, dead) == "bounced" and status_of(engine, other) == "active"
    [event] = events_of(engine, dead)
    assert (event.kind, event.code, event.message_id, event.source) == ("hard_bounce", "5.1.1", row, "lmtp")
    assert "Recipient address rejected" in event.detail


def test_without_a_return_path_the_bounce_is_matched_by_the_original_message_id(
    engine: Any, config: Config, make_subscriber: Callable[..., Subscriber], outbox_row: Callable[..., int]
) -> None:
    dead = make_subscriber()
    row = outbox_row(dead)
    dsn = postfix_dsn(
        "postmaster@sfera-reporting.example",
        dead.email,
        message_id=f"<notifier.{row}.9f3a@sfera-reporting.example>",
    )
    [outcome] = process_message(engine, config, dsn, source="maildir")
    assert (outcome.match.how, outcome.match.message_id) == ("message-id", row)
    assert status_of(engine, dead) == "bounced"


def test_a_message_id_naming_somebody_elses_row_is_not_trusted(
    engine: Any, config: Config, make_subscriber: Callable[..., Subscriber], outbox_row: Callable[..., int]
) -> None:
    victim = make_subscriber()
    row = outbox_row(victim)
    dsn = postfix_dsn(
        "postmaster@x.example",
        "stranger@example.net",
        message_id=f"<notifier.{row}.9f3a@sfera-reporting.example>",
    )
    [outcome] = process_message(engine, config, dsn, source="file")
    assert outcome.match.subscriber_id is None
    assert status_of(engine, victim) == "active"


def test_a_bounce_with_nothing_but_the_address_finds_the_subscriber_by_e_mail(
    engine: Any, config: Config, make_subscriber: Callable[..., Subscriber]
) -> None:
    dead = make_subscriber(email="Gone@Example.org")
    process_message(
        engine,
        config,
        postfix_dsn("postmaster@x.example", "gone@example.org", message_id="<x@y>"),
        source="file",
    )
    assert status_of(engine, dead) == "bounced"


def test_soft_bounces_suppress_only_when_enough_messages_bounce_within_the_window(
    engine: Any, config: Config, make_subscriber: Callable[..., Subscriber], outbox_row: Callable[..., int]
) -> None:
    busy = make_subscriber()
    rows = [outbox_row(busy) for _ in range(3)]
    now, secret = utcnow(), SECRET.encode()

    def soft(row: int, at: Any) -> None:
        with write_session(engine) as session:
            event = BounceEvent(kind="soft_bounce", recipient=busy.email or "", code="4.2.2", detail="mailbox full",
                                return_path=return_path(row))  # fmt: skip
            record(session, config, event, source="lmtp", secret=secret, now=at)

    soft(rows[0], now - config.bounces.soft_bounce_window - timedelta(hours=1))  # too long ago to count
    soft(rows[1], now)
    soft(rows[1], now)  # the delay notice and the final failure of one message count once
    assert status_of(engine, busy) == "active"
    soft(rows[2], now)
    soft(rows[0], now)
    assert status_of(engine, busy) == "bounced"
    assert [e.kind for e in events_of(engine, busy)][-1] == "suppressed"
    assert events_of(engine, busy)[-1].detail == "3 soft bounces within 7 days"


def test_a_complaint_unsubscribes_even_a_bounced_subscriber(
    engine: Any, config: Config, make_subscriber: Callable[..., Subscriber], outbox_row: Callable[..., int]
) -> None:
    angry, also = make_subscriber(), make_subscriber(status="bounced")
    report = arf_report("someone@relay.example", mail_from=return_path(outbox_row(angry)))
    [outcome] = process_message(
        engine, config, report, source="maildir", envelope_recipients=["fbl@" + DOMAIN]
    )
    assert outcome.match.how == "verp" and status_of(engine, angry) == "unsubscribed"
    process_message(engine, config, arf_report(also.email or ""), source="maildir")
    assert status_of(engine, also) == "unsubscribed"


def test_an_out_of_office_reply_changes_nothing(
    engine: Any, config: Config, make_subscriber: Callable[..., Subscriber], outbox_row: Callable[..., int]
) -> None:
    away = make_subscriber()
    row = outbox_row(away)
    [outcome] = process_message(
        engine, config, out_of_office(away.email or "", return_path(row)), source="lmtp", envelope_recipients=[return_path(row)]
    )  # fmt: skip
    assert outcome.kind == "auto_reply" and not outcome.changed
    assert status_of(engine, away) == "active"
    assert [e.kind for e in events_of(engine, away)] == ["auto_reply"]


# The CLI ------------------------------------------------------------------------------------


def test_bounces_process_reads_a_file_and_a_maildir(
    cli: Callable[..., Any], engine: Any, tmp_path: Path, make_subscriber: Callable[..., Subscriber]
) -> None:
    first, second, third = make_subscriber(), make_subscriber(), make_subscriber()
    single = tmp_path / "bounce.eml"
    single.write_bytes(postfix_dsn("postmaster@x.example", first.email or "", message_id="<x@y>"))
    result = cli("bounces", "process", str(single), "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["events"] == {"hard_bounce": 1} and status_of(engine, first) == "bounced"

    maildir = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "new" / "1.host").write_bytes(
        postfix_dsn("p@x.example", second.email or "", message_id="<x@y>")
    )
    (maildir / "new" / "2.host").write_bytes(arf_report(third.email or ""))
    result = cli("bounces", "process", str(maildir))
    assert result.exit_code == 0, result.stderr
    assert "2 message(s): 1 complaint, 1 hard bounce; 2 subscriber(s) changed" in result.stdout
    assert sorted(p.name for p in (maildir / "cur").iterdir()) == ["1.host:2,S", "2.host:2,S"]
    assert list((maildir / "new").iterdir()) == []
    assert (status_of(engine, second), status_of(engine, third)) == ("bounced", "unsubscribed")


def test_bounces_process_refuses_what_it_cannot_read(cli: Callable[..., Any], tmp_path: Path) -> None:
    missing = cli("bounces", "process", str(tmp_path / "nope.eml"))
    assert missing.exit_code == 2 and missing.stderr.startswith("error: ") and "cannot read" in missing.stderr
    not_maildir = cli("bounces", "process", str(tmp_path))
    assert not_maildir.exit_code == 2 and "not a Maildir" in not_maildir.stderr


def test_operators_list_the_suppressed_by_reason_and_lift_a_bounce(
    cli: Callable[..., Any], engine: Any, config: Config, make_subscriber: Callable[..., Subscriber]
) -> None:
    bounced, complained, left = make_subscriber(), make_subscriber(), make_subscriber(status="unsubscribed")
    make_subscriber()  # active: never listed
    process_message(
        engine, config, postfix_dsn("p@x.example", bounced.email or "", message_id="<x@y>"), source="file"
    )
    process_message(engine, config, arf_report(complained.email or ""), source="file")

    everyone = cli("subscribers", "suppressed", "--json").json()["suppressed"]
    assert {(s["external_id"], s["reason"]) for s in everyone} == {
        (bounced.external_id, "bounced"), (complained.external_id, "complained"), (left.external_id, "unsubscribed"),
    }  # fmt: skip
    only_bounced = cli("subscribers", "suppressed", "--reason", "bounced", "--json").json()["suppressed"]
    assert [s["external_id"] for s in only_bounced] == [bounced.external_id]
    assert only_bounced[0]["event"]["code"] == "5.1.1"
    assert bounced.external_id in cli("subscribers", "suppressed", "--reason", "bounced").stdout
    assert cli("subscribers", "suppressed", "--reason", "lost").exit_code == 2

    lifted = cli(
        "subscribers", "unsuppress", bounced.email, "--reason", "mailbox restored, confirmed by phone"
    )
    assert lifted.exit_code == 0, lifted.stderr
    assert status_of(engine, bounced) == "active"
    assert events_of(engine, bounced)[-1].detail == "mailbox restored, confirmed by phone"
    assert cli("subscribers", "unsuppress", complained.external_id, "--reason", "asked us to").exit_code == 0
    assert status_of(engine, complained) == "active"


def test_someone_who_unsubscribed_themselves_cannot_be_unsuppressed(
    cli: Callable[..., Any], engine: Any, make_subscriber: Callable[..., Subscriber]
) -> None:
    left, active = make_subscriber(status="unsubscribed"), make_subscriber()
    result = cli("subscribers", "unsuppress", left.external_id, "--reason", "sales wants them back")
    assert result.exit_code == 2 and "unsubscribed themselves" in result.stderr
    assert status_of(engine, left) == "unsubscribed"
    assert cli("subscribers", "unsuppress", active.external_id, "--reason", "x").exit_code == 2
    assert cli("subscribers", "unsuppress", "nobody@nowhere.example", "--reason", "x").exit_code == 1


def test_the_report_counts_bounces_per_mailing_and_the_next_incident_skips_the_suppressed(
    cli: Callable[..., Any], engine: Any, config: Config, make_subscriber: Callable[..., Subscriber]
) -> None:
    people = [make_subscriber(region="66") for _ in range(4)]
    declared = cli("incident", "declare", "--title", "Сбой", "--region", "66", "--json").json()
    assert declared["affected"] == 4
    write_out(engine)  # the status notices' rows, as a sender writes them out
    with read_session(engine) as session:
        rows = {
            m.subscriber_id: m.id
            for m in session.execute(select(Message).where(Message.kind == "status")).scalars()
        }
    hard, soft, angry = (rows[p.id] for p in people[:3])
    process_message(engine, config, postfix_dsn(return_path(hard), people[0].email or ""), source="lmtp",
                    envelope_recipients=[return_path(hard)])  # fmt: skip
    process_message(engine, config, postfix_dsn(return_path(soft), people[1].email or "", action="delayed", status="4.2.0"),
                    source="lmtp", envelope_recipients=[return_path(soft)])  # fmt: skip
    process_message(
        engine, config, arf_report(people[2].email or "", mail_from=return_path(angry)), source="maildir"
    )

    report = cli("report", declared["id"], "--json").json()
    assert report["bounces"] == {
        "status": {"hard_bounces": 1, "soft_bounces": 1, "complaints": 1, "auto_replies": 0}
    }
    assert "status: 1 hard and 1 soft bounces, 1 complaints" in cli("report", declared["id"]).stdout
    again = cli("incident", "declare", "--title", "Снова сбой", "--region", "66", "--json").json()
    assert again["affected"] == 2  # the bounced and the complainer are not written to again
