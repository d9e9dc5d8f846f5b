"""The outbox as senders see it: claiming with leases, reclaiming, recording in batches."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from notifier import incidents
from notifier.config import load_config
from notifier.db import read_session, write_session
from notifier.delivery import queue
from notifier.models import Message, Subscriber, utcnow
from tests.conftest import write_config


@pytest.fixture
def config(config_path: Any, database_url: str) -> Any:
    """No hotline targets: only the apologies are in the outbox."""
    return load_config(write_config(config_path.parent, database_url, hotline={"targets": []}))


def _resolved_with_apologies(engine: Any, config: Any, make_subscriber: Any, n: int) -> int:
    for _ in range(n):
        make_subscriber(region="66")
    with write_session(engine) as session:
        ref = incidents.declare(session, config, title="Сбой", regions=["66"]).incident.id
    with write_session(engine) as session:
        incidents.resolve(session, config, ref, cause="c", measures="m")
    return ref


def _states(engine: Any) -> dict[int, str]:
    with read_session(engine) as session:
        return {m.id: m.state for m in session.exec(select(Message).where(Message.kind == "apology"))}


def test_claim_takes_each_due_message_once(engine, config, make_subscriber) -> None:
    _resolved_with_apologies(engine, config, make_subscriber, 5)
    now = utcnow()
    first = queue.claim(engine, "a", 3, timedelta(minutes=5), now)
    second = queue.claim(engine, "b", 10, timedelta(minutes=5), now)
    assert len(first) == 3 and len(second) == 2 and not set(first) & set(second)
    assert queue.claim(engine, "c", 10, timedelta(minutes=5), now) == []


def test_concurrent_claimers_never_share_a_message(engine, config, make_subscriber) -> None:
    _resolved_with_apologies(engine, config, make_subscriber, 40)
    got: dict[str, list[int]] = {}

    def run(name: str) -> None:
        ids: list[int] = []
        while batch := queue.claim(engine, name, 3, timedelta(minutes=5), utcnow()):
            ids += batch
        got[name] = ids

    threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_ids = [i for ids in got.values() for i in ids]
    assert len(all_ids) == len(set(all_ids)) == 40


def test_messages_not_yet_due_are_not_claimed(engine, config, make_subscriber) -> None:
    _resolved_with_apologies(engine, config, make_subscriber, 2)
    assert queue.claim(engine, "a", 10, timedelta(minutes=5), utcnow() - timedelta(minutes=1)) == []


def test_expired_lease_is_claimed_again(engine, config, make_subscriber) -> None:
    _resolved_with_apologies(engine, config, make_subscriber, 2)
    now = utcnow()
    crashed = queue.claim(engine, "crashed", 10, timedelta(seconds=30), now)
    assert queue.claim(engine, "b", 10, timedelta(seconds=30), now + timedelta(seconds=10)) == []
    again = queue.claim(engine, "b", 10, timedelta(seconds=30), now + timedelta(seconds=31))
    assert again == crashed
    # The crashed sender's late report changes nothing: the row is no longer its own.
    queue.record(engine, "crashed", queue.Results(sent=crashed), config.mailing, now)
    assert set(_states(engine).values()) == {"sending"}


def test_record_sent_retry_failed_and_bounce(engine, config, make_subscriber) -> None:
    _resolved_with_apologies(engine, config, make_subscriber, 4)
    now = utcnow()
    a, b, c, d = queue.claim(engine, "w", 10, timedelta(minutes=5), now)
    with read_session(engine) as session:
        bounced_subscriber = session.get(Message, d).subscriber_id
    results = queue.Results(sent=[a], retry=[(b, 1, "451 try later")], failed=[(c, "554 rejected")],
                            bounced=[(d, bounced_subscriber, "550 no such user")])  # fmt: skip
    queue.record(engine, "w", results, config.mailing, now)
    assert _states(engine) == {a: "sent", b: "retry", c: "failed", d: "failed"}
    with read_session(engine) as session:
        retry = session.get(Message, b)
        assert retry.not_before - now == config.mailing.retry_backoff
        assert session.get(Subscriber, bounced_subscriber).status == "bounced"


def test_retry_gives_up_after_max_attempts(engine, config, make_subscriber) -> None:
    _resolved_with_apologies(engine, config, make_subscriber, 1)
    (only,) = queue.claim(engine, "w", 10, timedelta(minutes=5), utcnow())
    queue.record(engine, "w", queue.Results(retry=[(only, config.mailing.max_attempts, "421 busy")]),
                 config.mailing, utcnow())  # fmt: skip
    assert _states(engine) == {only: "failed"}


def test_backoff_doubles_up_to_the_cap(config) -> None:
    waits = [queue.backoff(config.mailing, n).total_seconds() for n in range(1, 10)]
    assert waits[:4] == [30, 60, 120, 240]
    assert max(waits) == 3600


def test_release_hands_messages_back_without_spending_an_attempt(engine, config, make_subscriber) -> None:
    _resolved_with_apologies(engine, config, make_subscriber, 2)
    ids = queue.claim(engine, "w", 10, timedelta(minutes=5), utcnow())
    queue.release(engine, "w", ids)
    with read_session(engine) as session:
        rows = session.exec(select(Message).where(Message.id.in_(ids))).all()
    assert {(m.state, m.attempts) for m in rows} == {("retry", 0)}
    assert sorted(queue.claim(engine, "x", 10, timedelta(minutes=5), utcnow())) == sorted(ids)
