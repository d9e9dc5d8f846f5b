"""The outbox as senders see it: claims held by heartbeats, taking back from stopped senders by
one rule, recording in batches, paused mailings; on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
import subprocess
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import select

from notifier import incidents, outbox
from notifier.db import is_sqlite, read_session, write_session
from notifier.models import Message, Subscriber, utcnow
from notifier.outbox import claims, pauses
from notifier.outbox.claims import Presence, Results
from tests.conftest import declare_and_resolve, write_config, write_out

TIMEOUT = timedelta(seconds=30)


@pytest.fixture
def config(config_path: Any, database_url: str) -> Any:
    """No hotline targets: only the apologies are in the outbox."""
    from notifier.config import load_config

    return load_config(write_config(config_path.parent, database_url, hotline={"targets": []}))


def _apologies(engine: Any, config: Any, make_subscriber: Any, n: int) -> int:
    for _ in range(n):
        make_subscriber(region="66")
    return declare_and_resolve(engine, config, ["66"])


def _states(engine: Any) -> dict[int, str]:
    with read_session(engine) as session:
        return {m.id: m.state for m in session.exec(select(Message).where(Message.kind == "apology"))}


def _sender(engine: Any, *, machine: str | None = None, pid: int | None = None, started: int | None = None) -> Presence:
    """A registered sender: this process by default, or another process or machine."""
    here = Presence.here()
    presence = Presence(
        f"{here.host}:{pid or here.pid}:{machine or 'here'}:{secrets.token_hex(4)}", here.host,
        machine or here.machine, pid or here.pid, here.started if started is None else started,
    )  # fmt: skip
    presence.register(engine, utcnow())
    return presence


def _silence(engine: Any, presence: Presence, seconds: int) -> None:
    """Make the database believe ``presence`` last beat ``seconds`` ago."""
    with write_session(engine) as session:
        when = (
            f"strftime('%Y-%m-%d %H:%M:%f', 'now', '-{seconds} seconds')"
            if is_sqlite(engine) else f"(now() AT TIME ZONE 'UTC') - interval '{seconds} seconds'"
        )  # fmt: skip
        session.execute(text(f"UPDATE sender SET heartbeat_at = {when} WHERE name = :n"), {"n": presence.name})


def _claim(engine: Any, presence: Presence, limit: int = 10, **kw: Any) -> list[int]:
    return claims.claim(engine, presence, limit, kw.get("now", utcnow()), TIMEOUT).ids


def test_claim_takes_each_due_message_once(engine, config, make_subscriber) -> None:
    _apologies(engine, config, make_subscriber, 5)
    a, b, c = _sender(engine), _sender(engine), _sender(engine)
    first, second = _claim(engine, a, 3), _claim(engine, b)
    assert len(first) == 3 and len(second) == 2 and not set(first) & set(second)
    assert _claim(engine, c) == []


def test_concurrent_claimers_never_share_a_message(engine, config, make_subscriber) -> None:
    _apologies(engine, config, make_subscriber, 40)
    got: dict[str, list[int]] = {}
    senders = [_sender(engine) for _ in range(4)]

    def run(presence: Presence) -> None:
        ids: list[int] = []
        while batch := _claim(engine, presence, 3):
            ids += batch
        got[presence.name] = ids

    threads = [threading.Thread(target=run, args=(s,)) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_ids = [i for ids in got.values() for i in ids]
    assert len(all_ids) == len(set(all_ids)) == 40


def test_messages_not_yet_due_are_not_claimed(engine, config, make_subscriber) -> None:
    _apologies(engine, config, make_subscriber, 2)
    assert _claim(engine, _sender(engine), now=utcnow() - timedelta(minutes=1)) == []


def test_a_live_sender_keeps_its_messages_however_long_it_takes(engine, config, make_subscriber) -> None:
    """No lease runs out: a slow relay costs nothing while the sender's heartbeat goes on."""
    _apologies(engine, config, make_subscriber, 3)
    slow, other = _sender(engine), _sender(engine, machine="elsewhere")
    _claim(engine, slow)
    for _ in range(3):
        slow.beat(engine)
        assert claims.claim(engine, other, 10, utcnow() + timedelta(hours=2), TIMEOUT).ids == []
    assert set(_states(engine).values()) == {"sending"}


def test_a_dead_process_on_this_machine_is_taken_back_at_once(engine, config, make_subscriber) -> None:
    _apologies(engine, config, make_subscriber, 3)
    child = subprocess.Popen(["sleep", "30"])
    try:
        dead = _sender(engine, pid=child.pid, started=claims.process_start(child.pid))
        held = _claim(engine, dead)
        assert len(held) == 3
        assert _claim(engine, _sender(engine)) == []  # its process still runs: alive
    finally:
        child.kill()
        child.wait()
    claim = claims.claim(engine, _sender(engine), 10, utcnow(), TIMEOUT)  # no waiting for any timeout
    assert sorted(claim.ids) == sorted(held)
    assert claim.taken_back.by_sender == {dead.name: 3}
    assert "taken back 3 messages from a sender that stopped" in claim.taken_back.describe()
    with read_session(engine) as session:
        apologies = session.exec(select(Message).where(Message.kind == "apology"))
        assert {m.attempts for m in apologies} == {2}  # the first try may have gone: it counts


def test_a_reused_pid_is_not_mistaken_for_the_sender(engine, config, make_subscriber) -> None:
    """Same PID, another process start time: the sender that had it is gone."""
    _apologies(engine, config, make_subscriber, 1)
    impostor = _sender(engine, started=claims.process_start(Presence.here().pid) + 1)
    _claim(engine, impostor)
    assert claims.claim(engine, _sender(engine), 10, utcnow(), TIMEOUT).taken_back.total == 1


def test_a_silent_sender_elsewhere_is_taken_back_after_the_timeout(engine, config, make_subscriber) -> None:
    _apologies(engine, config, make_subscriber, 2)
    remote, me = _sender(engine, machine="machine-b"), _sender(engine)
    held = _claim(engine, remote)
    _silence(engine, remote, 20)  # late, but within the timeout: maybe just slow
    assert _claim(engine, me) == []
    (holder,) = claims.holders(engine, me)
    assert holder.messages == 2 and not holder.here and 19 <= holder.heartbeat_age <= 25
    assert "last heartbeat 20 s ago" in holder.describe(TIMEOUT) or "last heartbeat 2" in holder.describe(TIMEOUT)
    _silence(engine, remote, 31)
    assert sorted(_claim(engine, me)) == sorted(held)
    with pytest.raises(claims.LostClaims):  # it comes back: it learns that it lost them
        remote.beat(engine)
    # Its late report changes nothing: the rows are no longer its own.
    claims.record(engine, remote.name, Results(sent=held), config.mailing, utcnow())
    assert set(_states(engine).values()) == {"sending"}


def test_a_sender_never_takes_back_its_own_messages(engine, config, make_subscriber) -> None:
    _apologies(engine, config, make_subscriber, 2)
    me = _sender(engine)
    held = _claim(engine, me)
    _silence(engine, me, 3600)  # its own heartbeat is late (a database outage): still its own
    assert claims.claim(engine, me, 10, utcnow(), TIMEOUT).taken_back.total == 0
    me.beat(engine)
    assert sorted(_states(engine)) == sorted(held)


def test_record_sent_retry_failed_bounced_and_deferred(engine, config, make_subscriber) -> None:
    _apologies(engine, config, make_subscriber, 5)
    w = _sender(engine)
    a, b, c, d, e = _claim(engine, w)
    with read_session(engine) as session:
        bounced_subscriber = session.get(Message, d).subscriber_id
    now = utcnow()
    results = Results(sent=[a], retry=[(b, 1, "451 try later")], failed=[(c, "554 rejected")],
                      bounced=[(d, bounced_subscriber, "550 no such user", "email", "x@example.org")],
                      deferred=[(e, "throttled", now + timedelta(seconds=7))])  # fmt: skip
    claims.record(engine, w.name, results, config.mailing, now)
    assert _states(engine) == {a: "sent", b: "retry", c: "failed", d: "failed", e: "retry"}
    with read_session(engine) as session:
        assert session.get(Message, b).not_before - now == config.mailing.retry_backoff
        assert session.get(Subscriber, bounced_subscriber).status == "bounced"
        deferred = session.get(Message, e)
        assert deferred.attempts == 0 and deferred.not_before - now == timedelta(seconds=7)  # uncharged


def test_retry_gives_up_after_max_attempts(engine, config, make_subscriber) -> None:
    _apologies(engine, config, make_subscriber, 1)
    w = _sender(engine)
    (only,) = _claim(engine, w)
    claims.record(engine, w.name, Results(retry=[(only, config.mailing.max_attempts, "451 busy")]),
                  config.mailing, utcnow())  # fmt: skip
    assert _states(engine) == {only: "failed"}


def test_backoff_doubles_up_to_the_cap(config) -> None:
    waits = [claims.backoff(config.mailing, n).total_seconds() for n in range(1, 10)]
    assert waits[:4] == [30, 60, 120, 240]
    assert max(waits) == 3600
    assert claims.backoff(config.mailing, 10_000).total_seconds() == 3600  # no overflow


def test_release_hands_messages_back_without_spending_an_attempt(engine, config, make_subscriber) -> None:
    _apologies(engine, config, make_subscriber, 2)
    w = _sender(engine)
    ids = _claim(engine, w)
    claims.release(engine, w.name, ids, "not sent: the run stopped")
    with read_session(engine) as session:
        rows = session.exec(select(Message).where(Message.id.in_(ids))).all()
    assert {(m.state, m.attempts, m.last_error) for m in rows} == {("retry", 0, "not sent: the run stopped")}
    assert sorted(_claim(engine, _sender(engine))) == sorted(ids)


def test_a_paused_mailing_is_not_claimed_until_the_templates_change(engine, config, make_subscriber) -> None:
    _apologies(engine, config, make_subscriber, 2)
    with write_session(engine) as session:
        assert pauses.pause(session, config, ("apology", "email", "ru"), "body.txt:3: boom", "digest-1", utcnow())
        assert not pauses.pause(session, config, ("apology", "email", "ru"), "again", "digest-1", utcnow())
    w = _sender(engine)
    with read_session(engine) as session:  # one note to on-call, naming the file and line
        (note,) = session.exec(select(Message).where(Message.kind == "paused")).all()
        assert note.recipient == config.notifier.oncall_email
    assert _claim(engine, w) == [note.id]  # the note goes; the apologies wait
    assert pauses.lift_changed(engine, "digest-1") == []  # the same templates: still paused
    (lifted,) = pauses.lift_changed(engine, "digest-2")
    assert lifted.problem == "body.txt:3: boom"
    assert len(_claim(engine, w)) == 2


def test_cancel_unsent_leaves_the_newest_update_and_claimed_rows(engine, config, make_subscriber) -> None:
    make_subscriber(region="66")

    with write_session(engine) as session:
        ref = incidents.declare(session, config, title="Сбой", regions=["66"]).incident.id
    w = _sender(engine)
    (claimed,) = _claim(engine, w)  # the first notice is being sent
    with write_session(engine) as session:
        incidents.post_update(session, config, ref, status="identified", message="Нашли")
    with write_session(engine) as session:
        latest = incidents.latest_public_update(session, ref)
        cancelled = outbox.cancel_unsent(session, "test", kind="status", incident_id=ref, except_update=latest.id)
    assert cancelled == 0  # the newest is kept; the claimed one is the sender's to judge
    write_out(engine)
    with read_session(engine) as session:
        rows = session.exec(select(Message).where(Message.kind == "status")).all()
    states = {row.id: row.state for row in rows}
    first = next(row for row in rows if row.id == claimed)
    newest = next(row for row in rows if row.update_id == latest.id)
    assert first.update_id != latest.id
    assert states == {claimed: "sending", newest.id: "queued"}


def test_the_outbox_command_shows_what_is_paused_and_why(engine, config, make_subscriber, cli) -> None:
    _apologies(engine, config, make_subscriber, 1)
    problem = "templates/email/apology/ru/body.txt:7: 'dict object' has no attribute 'titel'"
    with write_session(engine) as session:
        pauses.pause(session, config, ("apology", "email", "ru"), problem, "d1", utcnow())
    shown = cli("outbox")
    assert shown.exit_code == 0 and "paused: apology (email, ru)" in shown.stdout and "body.txt:7" in shown.stdout
    (paused,) = cli("outbox", "--json").json()["paused"]
    assert paused["kind"] == "apology" and paused["problem"] == problem
