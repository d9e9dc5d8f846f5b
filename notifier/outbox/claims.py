"""Claims: which sender holds which message, for how long, and what became of it.

Owns the sender's side of the outbox, as short transactions around the sending (which
happens outside any transaction, in ``delivery.sender``):

- a sender registers (:class:`Presence`) and keeps a heartbeat while it is alive. A message
  in ``sending`` belongs to the sender named in its ``claimed_by`` for as long as that
  sender's row exists: there is no per-message lease to renew, so a live sender never loses
  a message however slow its relay;
- **one rule** takes messages back (:func:`take_back`): a ``sending`` message whose sender
  row is gone returns to the queue. A sender row goes when its sender stops cleanly, when
  a sender on the same machine finds its process gone (at once), or when its heartbeat is
  older than ``[mailing].heartbeat_timeout`` (a sender on another machine, by the
  database's clock, so the machines' clocks need not agree);
- claiming due messages (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
  SQLite), skipping the kinds whose mailing is paused, each claim charging one attempt;
- recording outcomes in batches, and handing back unsent claims without charging them.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import TextClause, bindparam, text, update
from sqlalchemy.engine import Connection, Engine

from notifier.config import MailingSection
from notifier.db import is_sqlite, read_session, write_session
from notifier.models import Message, Subscriber, UTCDateTime
from notifier.outbox import queueing
from notifier.outbox.numbers import refuse_number

# Due = waiting, its time has come, and its mailing is not paused. The partial index
# ix_message_unsent (not_before, id) WHERE state IN ('queued', 'retry') serves exactly this,
# so a claim reads the head of the queue however many sent rows the table holds.
_DUE = """state IN ('queued', 'retry') AND not_before <= :now AND NOT EXISTS (
    SELECT 1 FROM mailing_pause p
    WHERE p.kind = message.kind AND p.channel = message.channel AND p.locale = message.locale)"""
_ORPHANED = "state = 'sending' AND (claimed_by IS NULL OR claimed_by NOT IN (SELECT name FROM sender))"


def _times(sql: str) -> TextClause:
    """Raw SQL whose :now binds the way UTCDateTime stores times (naive UTC)."""
    clause = text(sql)
    return clause.bindparams(bindparam("now", type_=UTCDateTime())) if ":now" in sql else clause


def _db_now(conn: Connection) -> str:
    """The database's own clock, as naive UTC in the stored format."""
    return "strftime('%Y-%m-%d %H:%M:%f', 'now')" if is_sqlite(conn.engine) else "(now() AT TIME ZONE 'UTC')"


def _age(conn: Connection, column: str) -> str:
    """Seconds from ``column`` to the database's now."""
    if is_sqlite(conn.engine):
        return f"((julianday('now') - julianday({column})) * 86400.0)"
    return f"EXTRACT(EPOCH FROM ((now() AT TIME ZONE 'UTC') - {column}))"


# This machine and its processes ---------------------------------------------------------


def this_machine() -> str:
    """What makes PIDs comparable: the running kernel (boot id) and the PID namespace.

    Two containers on one host share the boot id but not the PID namespace, so each is its
    own machine here. ``NOTIFIER_MACHINE_ID`` overrides it where /proc is not the process's
    own (and lets a test play a sender on another machine).
    """
    override = os.environ.get("NOTIFIER_MACHINE_ID")
    if override:
        return override[:200]
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return "host:" + socket.gethostname()
    return f"{boot}:{namespace}"


def process_start(pid: int) -> int:
    """When process ``pid`` started (clock ticks since boot), 0 when it is gone or unknown.

    Stored with the sender, it tells a live sender from a new process that reuses its PID.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])  # field 22 of proc(5): starttime
    except (IndexError, ValueError):
        return 0


def process_alive(pid: int, started: int) -> bool:
    if started:
        return process_start(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# A sender's presence ----------------------------------------------------------------------


class LostClaims(Exception):
    """This sender's row is gone: others judged it stopped and took its messages back."""


@dataclass
class Presence:
    """A running sender as the outbox sees it: its name (``host:pid:random``) and heartbeat."""

    name: str
    host: str
    machine: str
    pid: int
    started: int

    @classmethod
    def here(cls) -> Presence:
        host, pid = socket.gethostname(), os.getpid()
        return cls(f"{host}:{pid}:{secrets.token_hex(3)}", host, this_machine(), pid, process_start(pid))

    def register(self, engine: Engine, now: datetime) -> None:
        with write_session(engine) as session:
            conn = session.connection()
            session.execute(
                _times(
                    "INSERT INTO sender (name, host, machine, pid, process_start, started_at, heartbeat_at) "
                    f"VALUES (:name, :host, :machine, :pid, :started, :now, {_db_now(conn)})"
                ),
                {"name": self.name, "host": self.host, "machine": self.machine, "pid": self.pid,
                 "started": self.started, "now": now},
            )  # fmt: skip

    def beat(self, engine: Engine) -> None:
        """Renew the heartbeat; LostClaims when this sender was given up on meanwhile."""
        with write_session(engine) as session:
            conn = session.connection()
            result = session.execute(
                text(f"UPDATE sender SET heartbeat_at = {_db_now(conn)} WHERE name = :name"), {"name": self.name}
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise LostClaims(self.name)

    def leave(self, engine: Engine) -> None:
        """Unregister; call after handing back what is left (``release``)."""
        with write_session(engine) as session:
            session.execute(text("DELETE FROM sender WHERE name = :name"), {"name": self.name})


# Taking back ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TakenBack:
    """Messages returned to the queue because their sender stopped."""

    by_sender: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_sender.values())

    def describe(self) -> str:
        who = ", ".join(f"{n} from {name}" for name, n in sorted(self.by_sender.items()))
        return f"taken back {self.total} message{'s' if self.total != 1 else ''} from a sender that stopped ({who})"


def _forget_stopped(conn: Connection, machine: str, timeout: timedelta, me: str) -> None:
    """Delete the rows of senders that stopped: dead processes here, silent ones anywhere.

    Never ``me``: a sender whose own heartbeat is late stops pushing (``fresh``) and finds
    out from its next beat whether others gave up on it.
    """
    rows = conn.execute(
        text("SELECT name, pid, process_start FROM sender WHERE machine = :machine AND name <> :me"),
        {"machine": machine, "me": me},
    ).all()
    dead = [name for name, pid, started in rows if not process_alive(pid, started)]
    for name in dead:
        conn.execute(text("DELETE FROM sender WHERE name = :name"), {"name": name})
    conn.execute(
        text(f"DELETE FROM sender WHERE {_age(conn, 'heartbeat_at')} > :timeout AND name <> :me"),
        {"timeout": timeout.total_seconds(), "me": me},
    )


def take_back(conn: Connection, machine: str, timeout: timedelta, me: str = "") -> TakenBack:
    """THE rule: a ``sending`` message whose sender row is gone goes back to the queue.

    The attempt it was charged stays charged: it may have been sent just before its sender died.
    """
    _forget_stopped(conn, machine, timeout, me)
    rows = conn.execute(
        text(
            # claimed_by keeps the stopped sender's name: RETURNING reports it, and the row
            # tells who held it last. A sender records only rows still 'sending' in its name.
            f"UPDATE message SET state = 'retry', last_error = 'taken back: its sender stopped' "
            f"WHERE {_ORPHANED} RETURNING claimed_by"
        )
    ).all()
    return TakenBack(dict(Counter(name or "an unknown sender" for (name,) in rows)))


def take_back_now(engine: Engine, timeout: timedelta) -> TakenBack:
    """``take_back`` in a transaction of its own (housekeeping, and before a run)."""
    with write_session(engine) as session:
        return take_back(session.connection(), this_machine(), timeout)


# Claiming -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    ids: list[int]
    taken_back: TakenBack


def claim(engine: Engine, presence: Presence, limit: int, now: datetime, timeout: timedelta) -> Claim:
    """Take back what stopped senders held, then claim up to ``limit`` due messages, oldest first."""
    params = {"now": now, "worker": presence.name, "limit": limit}
    if is_sqlite(engine):
        sql = f"""
            UPDATE message SET state = 'sending', claimed_by = :worker, attempts = attempts + 1
            WHERE id IN (SELECT id FROM message WHERE {_DUE} ORDER BY not_before, id LIMIT :limit)
            RETURNING id"""
    else:
        sql = f"""
            WITH due AS (
                SELECT id FROM message WHERE {_DUE}
                ORDER BY not_before, id LIMIT :limit FOR UPDATE SKIP LOCKED)
            UPDATE message m SET state = 'sending', claimed_by = :worker, attempts = m.attempts + 1
            FROM due WHERE m.id = due.id
            RETURNING m.id"""
    with write_session(engine) as session:
        conn = session.connection()
        taken = take_back(conn, presence.machine, timeout, presence.name)
        queueing.materialise(session, limit, now)  # the status notices still owed, a claim's worth
        ids = [row[0] for row in conn.execute(_times(sql), params)]
    return Claim(sorted(ids), taken)


def due_count(engine: Engine, now: datetime) -> int:
    """Messages a sender could claim now (orphaned ones included: they will be taken back; the
    rows of status notices still owed included: the claim writes them out)."""
    with read_session(engine) as session:
        rows = session.connection().execute(
            _times(f"SELECT count(*) FROM message WHERE ({_DUE}) OR ({_ORPHANED})"), {"now": now}
        ).scalar_one()
        return rows + sum(left for _, left in queueing.owed(session, due_by=now))


@dataclass(frozen=True)
class Holder:
    """Another sender holding messages, as ``notifier send`` reports it."""

    name: str
    messages: int
    heartbeat_age: float  # seconds since its last heartbeat
    here: bool  # on this machine (then it is known alive: dead ones are taken back at once)

    def describe(self, timeout: timedelta) -> str:
        if self.here:
            state = "alive"
        else:
            left = max(0.0, timeout.total_seconds() - self.heartbeat_age)
            state = f"last heartbeat {self.heartbeat_age:.0f} s ago; taken back if silent {left:.0f} s more"
        return f"{self.messages} message{'s' if self.messages != 1 else ''} held by sender {self.name}, {state}"


def holders(engine: Engine, presence: Presence) -> list[Holder]:
    """Senders other than ``presence`` that hold messages, with their heartbeat age."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT s.name, s.machine, {_age(conn, 's.heartbeat_at')}, count(m.id) FROM sender s "
                "JOIN message m ON m.claimed_by = s.name AND m.state = 'sending' "
                "WHERE s.name <> :me GROUP BY s.name, s.machine, s.heartbeat_at ORDER BY s.name"
            ),
            {"me": presence.name},
        ).all()
    return [Holder(name, int(n), float(age or 0), machine == presence.machine) for name, machine, age, n in rows]


# Recording ------------------------------------------------------------------------------


@dataclass
class Results:
    """What one stretch of sending produced, recorded together in one transaction."""

    sent: list[int] = field(default_factory=list)
    retry: list[tuple[int, int, str]] = field(default_factory=list)  # (id, attempts, error)
    failed: list[tuple[int, str]] = field(default_factory=list)
    # (message id, subscriber id, error, channel, recipient): the address itself is refused
    bounced: list[tuple[int, int, str, str, str]] = field(default_factory=list)
    cancelled: list[tuple[int, str]] = field(default_factory=list)
    # Back to the queue without charging the attempt (not the message's fault: a template to
    # fix, a throttling relay, a run that stopped): (id, reason, not before or None = now).
    deferred: list[tuple[int, str, datetime | None]] = field(default_factory=list)

    def parts(self) -> tuple[list, ...]:
        return (self.sent, self.retry, self.failed, self.bounced, self.cancelled, self.deferred)

    def take(self) -> Results:
        """Move everything into a new Results (to record) and leave this one empty."""
        taken = Results(*(part[:] for part in self.parts()))
        for part in self.parts():
            part.clear()
        return taken

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts())


def backoff(policy: MailingSection, attempts: int) -> timedelta:
    """Exponential: retry_backoff × 2^(attempts-1), capped at retry_backoff_max."""
    seconds = policy.retry_backoff.total_seconds() * (2 ** min(max(attempts - 1, 0), 40))
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
                .where(Message.id.in_(chunk), mine)  # type: ignore[union-attr]
                .values(state="sent", sent_at=now, last_error=None)
            )
        for message_id, attempts, error in results.retry:
            final = attempts >= policy.max_attempts
            values = (
                {"state": "failed", "last_error": f"gave up after {attempts} attempts: {error}"[:500]}
                if final
                else {"state": "retry", "not_before": now + backoff(policy, attempts), "last_error": error[:500]}
            )
            session.execute(update(Message).where(Message.id == message_id, mine).values(**values))
        for state, rows in (("failed", results.failed), ("cancelled", results.cancelled)):
            for message_id, error in rows:
                session.execute(
                    update(Message).where(Message.id == message_id, mine).values(state=state, last_error=error[:500])
                )
        for message_id, subscriber_id, error, channel, recipient in results.bounced:
            session.execute(
                update(Message).where(Message.id == message_id, mine).values(state="failed", last_error=error[:500])
            )
            if channel == "sms":  # a refused number marks the number, not the subscriber
                refuse_number(session, subscriber_id, message_id, recipient, "refused", error, now)  # type: ignore[arg-type]
                continue
            session.execute(
                update(Subscriber)
                .where(Subscriber.id == subscriber_id, Subscriber.status == "active")
                .values(status="bounced", updated_at=now)
            )
        for message_id, reason, not_before in results.deferred:
            session.execute(
                update(Message)
                .where(Message.id == message_id, mine)
                .values(state="retry", attempts=Message.attempts - 1, not_before=not_before or now,
                        last_error=reason[:500])  # fmt: skip
            )


def holding(engine: Engine, worker: str) -> list[int]:
    """The messages ``worker`` holds (``sending`` under its name)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id FROM message WHERE state = 'sending' AND claimed_by = :worker"),
                            {"worker": worker})  # fmt: skip
        return [row[0] for row in rows]


def release(engine: Engine, worker: str, ids: Iterable[int], reason: str | None = None) -> None:
    """Hand claimed but unsent messages back (a sender stopping early), without an attempt."""
    ids = list(ids)
    values: dict[str, object] = {"state": "retry", "attempts": Message.attempts - 1}
    if reason is not None:
        values["last_error"] = reason[:500]
    with write_session(engine) as session:
        for chunk in _chunks(ids, 500):
            session.execute(
                update(Message)
                .where(Message.id.in_(chunk), Message.claimed_by == worker, Message.state == "sending")  # type: ignore[union-attr]
                .values(**values)
            )


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
