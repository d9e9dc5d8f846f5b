"""The outbox seen by a sender: claim due messages with a lease, record what happened.

Owns the two short transactions around every send: claiming a batch (state ``sending``,
a lease, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several senders never take the same
row; expired leases of a crashed sender are claimed again), and recording results in
batches (sent / retry with back-off / failed, and marking hard-bounced subscribers).
Sending itself happens outside any transaction, in ``delivery.sender``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import TextClause, bindparam, text, update
from sqlalchemy.engine import Engine

from notifier.config import MailingSection
from notifier.db import is_sqlite, write_session
from notifier.models import Message, Subscriber, UTCDateTime

# Due = waiting and its time has come. The partial index ix_message_unsent (not_before, id)
# WHERE state IN ('queued', 'retry') serves exactly this, so a claim reads the head of the
# queue however many sent rows the table holds.
_DUE = "state IN ('queued', 'retry') AND not_before <= :now"
_EXPIRED = "state = 'sending' AND lease_until < :now"


def _times(sql: str) -> TextClause:
    """Raw SQL whose :now and :until bind the way UTCDateTime stores times (naive UTC)."""
    names = [name for name in ("now", "until") if f":{name}" in sql]
    return text(sql).bindparams(*(bindparam(name, type_=UTCDateTime()) for name in names))


def claim(engine: Engine, worker: str, limit: int, lease: timedelta, now: datetime) -> list[int]:
    """Claim up to ``limit`` due messages for ``worker``; returns their ids, oldest first.

    Messages whose lease expired (their sender died) go back to the queue first, in the same
    transaction, and are claimed like any other.
    """
    params = {"now": now, "until": now + lease, "worker": worker, "limit": limit}
    # Never our own: a message this sender still has in flight is not "abandoned", however
    # long its send takes. (Another sender's lease must outlast its sends: [mailing].lease.)
    reclaim = (
        f"UPDATE message SET state = 'retry', lease_until = NULL WHERE {_EXPIRED} AND claimed_by <> :worker"
    )
    if is_sqlite(engine):
        # BEGIN IMMEDIATE serialises claimers on SQLite; no row locks needed.
        sql = f"""
            UPDATE message SET state = 'sending', lease_until = :until, claimed_by = :worker,
                               attempts = attempts + 1
            WHERE id IN (SELECT id FROM message WHERE {_DUE} ORDER BY not_before, id LIMIT :limit)
            RETURNING id"""
    else:
        sql = f"""
            WITH due AS (
                SELECT id FROM message WHERE {_DUE}
                ORDER BY not_before, id LIMIT :limit FOR UPDATE SKIP LOCKED)
            UPDATE message m SET state = 'sending', lease_until = :until, claimed_by = :worker,
                                 attempts = m.attempts + 1
            FROM due WHERE m.id = due.id
            RETURNING m.id"""
    with write_session(engine) as session:
        session.execute(_times(reclaim), {"now": now, "worker": worker})
        ids = [row[0] for row in session.execute(_times(sql), params)]
    return sorted(ids)


def due_count(engine: Engine, now: datetime) -> int:
    stmt = _times(f"SELECT count(*) FROM message WHERE ({_DUE}) OR ({_EXPIRED})")
    with engine.connect() as conn:
        return conn.execute(stmt, {"now": now}).scalar_one()


@dataclass
class Results:
    """What one stretch of sending produced, recorded together in one transaction."""

    sent: list[int] = field(default_factory=list)
    retry: list[tuple[int, int, str]] = field(default_factory=list)  # (id, attempts, error)
    failed: list[tuple[int, str]] = field(default_factory=list)
    bounced: list[tuple[int, int, str]] = field(default_factory=list)  # (message id, subscriber id, error)
    cancelled: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sent) + len(self.retry) + len(self.failed) + len(self.bounced) + len(self.cancelled)


def backoff(policy: MailingSection, attempts: int) -> timedelta:
    """Exponential: retry_backoff × 2^(attempts-1), capped at retry_backoff_max."""
    seconds = policy.retry_backoff.total_seconds() * (2 ** max(attempts - 1, 0))
    return timedelta(seconds=min(seconds, policy.retry_backoff_max.total_seconds()))


def record(engine: Engine, worker: str, results: Results, policy: MailingSection, now: datetime) -> None:
    """Write a batch of outcomes; only rows this worker still holds are changed."""
    if not len(results):
        return
    mine = (Message.claimed_by == worker) & (Message.state == "sending")
    with write_session(engine) as session:
        for chunk in _chunks(results.sent, 500):
            session.execute(
                update(Message)
                .where(Message.id.in_(chunk), mine)
                .values(state="sent", sent_at=now, last_error=None)  # type: ignore[union-attr]
            )
        for message_id, attempts, error in results.retry:
            final = attempts >= policy.max_attempts
            values = (
                {"state": "failed", "last_error": f"gave up after {attempts} attempts: {error}"[:500]}
                if final
                else {
                    "state": "retry",
                    "not_before": now + backoff(policy, attempts),
                    "last_error": error[:500],
                }
            )
            session.execute(
                update(Message).where(Message.id == message_id, mine).values(lease_until=None, **values)
            )
        for state, rows in (("failed", results.failed), ("cancelled", results.cancelled)):
            for message_id, error in rows:
                session.execute(
                    update(Message)
                    .where(Message.id == message_id, mine)
                    .values(state=state, last_error=error[:500])
                )
        for message_id, subscriber_id, error in results.bounced:
            session.execute(
                update(Message)
                .where(Message.id == message_id, mine)
                .values(state="failed", last_error=error[:500])
            )
            session.execute(
                update(Subscriber)
                .where(Subscriber.id == subscriber_id, Subscriber.status == "active")
                .values(status="bounced", updated_at=now)
            )


def release(engine: Engine, worker: str, ids: Iterable[int]) -> None:
    """Hand claimed but unsent messages back (a sender stopping early), without an attempt."""
    ids = list(ids)
    with write_session(engine) as session:
        for chunk in _chunks(ids, 500):
            session.execute(
                update(Message)
                .where(Message.id.in_(chunk), Message.claimed_by == worker, Message.state == "sending")  # type: ignore[union-attr]
                .values(state="retry", lease_until=None, attempts=Message.attempts - 1)
            )


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
