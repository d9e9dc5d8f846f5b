"""Queueing: who is owed which message. The only place that inserts or cancels outbox rows.

Owns the two ways a row is born (a set-based ``INSERT … SELECT`` over an incident's
audience, and a list of rows built with :func:`message_row`), both ``ON CONFLICT DO
NOTHING`` on the de-duplication key so that running a step twice never queues twice. A
status notice's e-mail rows are owed first (one ``PendingNotice`` for the audience, so that a
declare over a million subscribers answers at once) and written out by :func:`materialise`,
a claim's worth at a time, when senders claim; every count here adds what is still owed.
Also here: the de-duplication keys themselves, "latest wins" (:func:`cancel_unsent`), and the
counts reported per kind and state. Claiming and recording delivery results are ``claims``; what
a message says is ``rendering``'s business: a row stores only what is needed to render it
at send time. Status notices and apologies go by e-mail to those with an address (and, when
their ``channels`` are set, only if they name ``email``) and by SMS as ``outbox.sms`` decides:
both channels' rows are born here, through the same insert, cancel and latest-wins rules.
Planned work's rows (announcement, reminders, notices) and subscription confirmations are
born in ``outbox.planned``, through :func:`insert_rows` and keys of their own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, cast, func, literal, or_, select, update
from sqlmodel import Session

from notifier.config import Config
from notifier.db import dialect_module
from notifier.models import (
    UNSENT_STATES,
    AudienceMember,
    Incident,
    Message,
    PendingNotice,
    Subscriber,
    UTCDateTime,
)
from notifier.outbox import sms

_EVERYONE = 2**31 - 1  # a pending notice's ``after_subscriber`` once every member has a row

_COLUMNS = [
    "kind", "channel", "state", "incident_id", "subscriber_id", "update_id",
    "recipient", "locale", "dedupe_key", "attempts", "not_before", "created_at",
]  # fmt: skip


def message_row(
    *, kind: str, channel: str, recipient: str, dedupe_key: str, locale: str, now: datetime,
    incident_id: int | None = None, update_id: int | None = None, callback_id: int | None = None,
    not_before: datetime | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One outbox row's values, every column given (so a batch inserts with one statement)."""
    return {
        "kind": kind, "channel": channel, "state": "queued", "incident_id": incident_id, "subscriber_id": None,
        "update_id": update_id, "callback_id": callback_id, "recipient": recipient, "locale": locale,
        "dedupe_key": dedupe_key, "attempts": 0, "not_before": not_before or now, "created_at": now,
    }  # fmt: skip


def insert_rows(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert the rows whose de-duplication key is new; returns how many were."""
    if not rows:
        return 0
    stmt = dialect_module(session).insert(Message).values(rows).on_conflict_do_nothing()
    return session.exec(stmt.execution_options(preserve_rowcount=True)).rowcount  # type: ignore[call-overload]


def _insert_select(session: Session, query: Any) -> int:
    stmt = dialect_module(session).insert(Message).from_select(_COLUMNS, query).on_conflict_do_nothing()
    return session.exec(stmt.execution_options(preserve_rowcount=True)).rowcount  # type: ignore[call-overload]


def cancel_unsent(
    session: Session, reason: str, *, kind: str, incident_id: int | None = None,
    callback_id: int | None = None, recipients: Iterable[str] | None = None, except_update: int | None = None,
) -> int:  # fmt: skip
    """Cancel the waiting (queued, retry, or held over an SMS budget) messages of ``kind`` that
    match; returns how many.

    ``except_update`` keeps the rows of that update (the newer notice that supersedes the rest).
    A message already claimed by a sender is not touched here: the sender checks again
    before sending (``loading``), so a stale one is cancelled there instead of sent.
    """
    conditions = [Message.kind == kind, Message.state.in_((*UNSENT_STATES, "held"))]  # type: ignore[attr-defined]
    if incident_id is not None:
        conditions.append(Message.incident_id == incident_id)
    if callback_id is not None:
        conditions.append(Message.callback_id == callback_id)
    if recipients is not None:
        conditions.append(Message.recipient.in_(list(recipients)))  # type: ignore[attr-defined]
    if except_update is not None:
        conditions.append(Message.update_id != except_update)
    stmt = update(Message).where(*conditions).values(state="cancelled", last_error=reason)
    cancelled = session.exec(stmt.execution_options(preserve_rowcount=True)).rowcount  # type: ignore[call-overload]
    if incident_id is not None and callback_id is None and recipients is None:
        cancelled += _forget_pending(session, kind, incident_id, except_update)
    return cancelled


def _forget_pending(session: Session, kind: str, incident_id: int, except_update: int | None) -> int:
    """Cancel what the matching notices still owed (``PendingNotice``) were to write out: their
    members get no row, and count as cancelled. Returns how many."""
    conditions = [PendingNotice.kind == kind, PendingNotice.incident_id == incident_id,
                  PendingNotice.done.is_(False)]  # type: ignore[attr-defined]  # fmt: skip
    if except_update is not None:
        conditions.append(PendingNotice.update_id != except_update)
    cancelled = 0
    for pending in session.exec(select(PendingNotice).where(*conditions).with_for_update()).scalars().all():  # type: ignore[call-overload]
        left = _left(session, pending)
        pending.cancelled, pending.done, pending.after_subscriber = left, True, _EVERYONE
        session.add(pending)
        cancelled += left
    return cancelled


# Keys -------------------------------------------------------------------------------------


def escalation_key(callback_id: int, level: int) -> str:
    return f"escalation:{callback_id}:{level}"


def escalation_level(dedupe_key: str) -> int:
    """The level an escalation message was queued for (from its key ``escalation:ID:LEVEL:…``)."""
    parts = dedupe_key.split(":")
    return int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 1


def pause_key(pause_id: int) -> str:
    return f"paused:{pause_id}"


def pause_id(dedupe_key: str) -> int | None:
    """The ``mailing_pause`` row an on-call note about a paused mailing is about."""
    prefix, _, rest = dedupe_key.partition(":")
    return int(rest) if prefix == "paused" and rest.isdigit() else None


# The incident's mailings ------------------------------------------------------------------


def _by_email(incident_id: int) -> list[Any]:
    """Active audience members with an e-mail address (and e-mail among their channels, when
    they chose theirs): who gets an incident's mailings by e-mail."""
    return [
        AudienceMember.incident_id == incident_id,
        Subscriber.status == "active",
        Subscriber.email.is_not(None),  # type: ignore[union-attr]
        or_(Subscriber.channels == "", Subscriber.channels.like("%;email;%")),  # type: ignore[attr-defined]
    ]


def _audience_select(
    incident_id: int, kind: str, key_prefix: str, update_id: int | None, due: datetime, now: datetime,
    *narrower: Any,
) -> Any:  # fmt: skip
    """The e-mail audience (``_by_email``, and ``narrower`` conditions) as outbox rows."""
    return (
        select(
            literal(kind), literal("email"), literal("queued"), literal(incident_id), Subscriber.id,
            literal(update_id), Subscriber.email, Subscriber.locale,
            literal(key_prefix) + cast(Subscriber.id, String), literal(0), literal(due, UTCDateTime()),
            literal(now, UTCDateTime()),
        )  # fmt: skip
        .select_from(AudienceMember)
        .join(Subscriber, Subscriber.id == AudienceMember.subscriber_id)
        .where(and_(*_by_email(incident_id), *narrower))
    )


def _members(session: Session, incident_id: int, *narrower: Any) -> int:
    """How many of the e-mail audience (and ``narrower``) there are."""
    query = (
        select(func.count()).select_from(AudienceMember)
        .join(Subscriber, Subscriber.id == AudienceMember.subscriber_id)
        .where(*_by_email(incident_id), *narrower)
    )  # fmt: skip
    return session.exec(query).scalar_one()  # type: ignore[call-overload]


def _left(session: Session, pending: PendingNotice) -> int:
    """Members a pending notice still owes a row to."""
    if pending.done:
        return 0
    return _members(session, pending.incident_id, AudienceMember.subscriber_id > pending.after_subscriber)


def _owe(session: Session, incident_id: int, update_id: int, prefix: str, now: datetime) -> int:
    """The e-mail rows of a status notice, owed from ``now``: written out by the senders as they
    claim (``materialise``), not here. Returns how many members are newly owed one.

    The same notice owed again (a wider scope re-runs it) gives its new members below the
    senders' position their rows at once, the rest when the senders get there."""
    # Locked (PostgreSQL): a sender writing it out meanwhile has moved on once we read its position.
    pending = session.exec(
        select(PendingNotice).where(PendingNotice.incident_id == incident_id, PendingNotice.update_id == update_id,
                                    PendingNotice.kind == "status", PendingNotice.channel == "email")
        .with_for_update()
    ).scalars().first()  # type: ignore[call-overload]  # fmt: skip
    if pending is None:
        session.add(PendingNotice(incident_id=incident_id, update_id=update_id, key_prefix=prefix, due=now,
                                  created_at=now))  # fmt: skip
        session.flush()
        return _members(session, incident_id)
    passed = pending.after_subscriber
    now_rows = _insert_select(session, _audience_select(incident_id, "status", prefix, update_id, now, now,
                                                        AudienceMember.subscriber_id <= passed))  # fmt: skip
    later = _members(session, incident_id, AudienceMember.subscriber_id > passed, AudienceMember.added_at == now)
    return now_rows + (0 if pending.done else later)


def materialise(session: Session, limit: int, now: datetime) -> int:
    """Write out up to ``limit`` outbox rows of the status notices still owed (``PendingNotice``),
    oldest notice first, in subscriber order; returns how many rows were written.

    Each row is the one the notice's ``INSERT … SELECT`` would have written at declare (same
    key, due and queued times), inserted ``ON CONFLICT DO NOTHING``: two senders racing here
    cannot write one twice. Called by ``claims.claim`` in its transaction, just before it claims.
    """
    query = select(PendingNotice).where(PendingNotice.done.is_(False), PendingNotice.due <= now)  # type: ignore[attr-defined]
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    written = 0
    for pending in session.exec(query.order_by(PendingNotice.id)).scalars().all():  # type: ignore[call-overload]
        budget = limit - written
        if budget <= 0:
            break
        after = AudienceMember.subscriber_id > pending.after_subscriber
        last = session.exec(
            select(AudienceMember.subscriber_id).join(Subscriber, Subscriber.id == AudienceMember.subscriber_id)
            .where(*_by_email(pending.incident_id), after)
            .order_by(AudienceMember.subscriber_id).offset(budget - 1).limit(1)
        ).scalars().first()  # type: ignore[call-overload]  # fmt: skip
        span = [after] if last is None else [after, AudienceMember.subscriber_id <= last]
        written += _insert_select(session, _audience_select(
            pending.incident_id, pending.kind, pending.key_prefix, pending.update_id, pending.due, pending.created_at,
            *span,
        ))  # fmt: skip
        pending.after_subscriber, pending.done = (_EVERYONE, True) if last is None else (last, False)
        session.add(pending)
    return written


def owed_to(session: Session, subscriber_ids: list[Any]) -> list[tuple[PendingNotice, int]]:
    """(notice, subscriber id) for each of these subscribers still owed a notice's row."""
    found = []
    for pending in session.exec(select(PendingNotice).where(PendingNotice.done.is_(False))).scalars().all():  # type: ignore[call-overload, attr-defined]
        members = session.exec(
            select(AudienceMember.subscriber_id).join(Subscriber, Subscriber.id == AudienceMember.subscriber_id)
            .where(*_by_email(pending.incident_id), AudienceMember.subscriber_id > pending.after_subscriber,
                   AudienceMember.subscriber_id.in_(subscriber_ids))  # type: ignore[attr-defined]
        ).scalars().all()  # type: ignore[call-overload]  # fmt: skip
        found.extend((pending, member) for member in members)
    return found


def owed(session: Session, incident_id: int | None = None, due_by: datetime | None = None) -> list[tuple[PendingNotice, int]]:
    """The notices still owed (of one incident; due by ``due_by``), each with the members it
    still owes a row to: what counts add to the queued rows."""
    query = select(PendingNotice).where(PendingNotice.done.is_(False))  # type: ignore[attr-defined]
    if incident_id is not None:
        query = query.where(PendingNotice.incident_id == incident_id)
    if due_by is not None:
        query = query.where(PendingNotice.due <= due_by)
    found = [(pending, _left(session, pending)) for pending in session.exec(query).scalars().all()]  # type: ignore[call-overload]
    return [(pending, left) for pending, left in found if left]


def unwritten(session: Session, incident_id: int | None = None) -> list[tuple[PendingNotice, str, int]]:
    """(notice, state, members) for the rows notices owe or owed but never wrote: ``queued``
    (still to be written out) and ``cancelled`` (a newer update or the resolve came first).
    Every count of the outbox adds these to the rows it counts."""
    found = [(pending, "queued", left) for pending, left in owed(session, incident_id)]
    query = select(PendingNotice).where(PendingNotice.cancelled > 0)
    if incident_id is not None:
        query = query.where(PendingNotice.incident_id == incident_id)
    found += [(pending, "cancelled", pending.cancelled) for pending in session.exec(query).scalars().all()]  # type: ignore[call-overload]
    return found


def queue_status_notices(
    session: Session, incident: Incident, update_id: int, now: datetime, *, config: Config | None = None
) -> int:
    """Queue the status notice of ``update_id`` to the audience; older unsent ones are cancelled.

    Members who already have this update's notice (a scope widening re-runs it) are skipped
    by the de-duplication key, so only the newly affected get one. With ``config``, SMS go
    out too (``outbox.sms``); returns how many rows were queued on both channels.
    """
    assert incident.id is not None
    cancel_unsent(session, "superseded by a newer status notice", kind="status", incident_id=incident.id,
                  except_update=update_id)  # fmt: skip
    prefix = f"status:{incident.id}:{update_id}:"
    queued = _owe(session, incident.id, update_id, prefix, now)
    return queued + _queue_sms(session, config, incident, "status", prefix, update_id, now, now)


def queue_apologies(
    session: Session, incident: Incident, due: datetime, now: datetime, *, config: Config | None = None,
    locales: Iterable[str] | None = None,
) -> int:
    """Queue one apology per active audience member (and SMS ones, with ``config``); the key
    makes a second run a no-op. ``locales``: only to readers of these languages (the others'
    apologies wait for their texts: ``languages.apology_gaps``); None: everyone."""
    assert incident.id is not None
    prefix = f"apology:{incident.id}:"
    wanted = list(locales) if locales is not None else None
    query = _audience_select(incident.id, "apology", prefix, None, due, now)
    queued = _insert_select(session, _in_languages(query, wanted))
    return queued + _queue_sms(session, config, incident, "apology", prefix, None, due, now, wanted)


def _in_languages(query: Any, locales: list[str] | None) -> Any:
    """``query`` (over Subscriber) narrowed to readers of ``locales`` (None: all of them)."""
    return query if locales is None else query.where(Subscriber.locale.in_(locales))  # type: ignore[attr-defined]


def _queue_sms(
    session: Session, config: Config | None, incident: Incident, kind: str, prefix: str, update_id: int | None,
    due: datetime, now: datetime, locales: list[str] | None = None,
) -> int:  # fmt: skip
    """The SMS twins of a mailing; over the budget they are held and on-call gets one note."""
    if config is None:
        return 0
    queued = sum(_insert_select(session, _in_languages(query, locales))
                 for query in sms.sms_selects(config, incident, kind, prefix, update_id, due, now))  # fmt: skip
    held = sms.hold_over_budget(session, config, incident.id, kind, update_id) if queued else 0  # type: ignore[arg-type]
    if held and config.notifier.oncall_email:
        insert_rows(session, [message_row(
            kind=sms.BUDGET_NOTE, channel="email", recipient=config.notifier.oncall_email,
            dedupe_key=sms.budget_note_key(incident.id, kind, update_id),  # type: ignore[arg-type]
            locale=config.notifier.default_locale, now=now, incident_id=incident.id, update_id=update_id,
        )])  # fmt: skip
    return queued


def queue_announcements(
    session: Session, config: Config, incident: Incident, update_id: int, now: datetime
) -> int:
    """Queue the hotline announcement of ``update_id`` to each ``[hotline].targets`` entry.

    Call it after every declare, update, scope change and resolve. Unsent older announcements
    of this incident to the same targets are cancelled first (latest wins); running it twice
    for the same update queues nothing new. Returns how many were queued.
    """
    assert incident.id is not None
    targets = config.hotline.targets
    if not targets:
        return 0
    recipients = [target.email or target.webhook for target in targets]
    cancel_unsent(session, "superseded by a newer hotline announcement", kind="hotline", incident_id=incident.id,
                  recipients=recipients, except_update=update_id)  # fmt: skip
    rows = [
        message_row(
            kind="hotline", channel="email" if target.email else "webhook", recipient=recipient,
            dedupe_key=f"hotline:{incident.id}:{update_id}:{index}", locale=target.locale, now=now,
            incident_id=incident.id, update_id=update_id,
        )  # fmt: skip
        for index, (target, recipient) in enumerate(zip(targets, recipients, strict=True))
    ]
    return insert_rows(session, rows)


def counts(session: Session, incident_id: int | None = None) -> dict[str, dict[str, int]]:
    """``{kind: {state: n}}`` for one incident, or for the whole outbox."""
    query = select(Message.kind, Message.state, func.count()).group_by(Message.kind, Message.state)
    if incident_id is not None:
        query = query.where(Message.incident_id == incident_id)
    result: dict[str, dict[str, int]] = defaultdict(dict)
    for kind, state, n in session.exec(query):  # type: ignore[call-overload]
        result[kind][state] = n
    for pending, state, n in unwritten(session, incident_id):
        result[pending.kind][state] = result[pending.kind].get(state, 0) + n
    return dict(result)
