"""The outbox: who is owed which message, and what happened to it.

Owns queueing (set-based ``INSERT … SELECT`` with a de-duplication key, so re-running
never sends twice), "latest wins" cancellation, and the counts reported per kind and state.
Claiming and recording delivery results live in ``delivery``; what a message says is
``rendering``'s business: a row stores only what is needed to render it at send time.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import String, and_, cast, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from notifier.models import UNSENT_STATES, AudienceMember, Incident, Message, Subscriber, UTCDateTime


def _insert_ignoring_duplicates(session: Session, columns: list[str], query: object) -> int:
    dialect = session.get_bind().dialect.name
    module = sqlite if dialect == "sqlite" else postgresql
    stmt = module.insert(Message).from_select(columns, query).on_conflict_do_nothing()
    stmt = stmt.execution_options(preserve_rowcount=True)
    return session.exec(stmt).rowcount  # type: ignore[call-overload]


def _audience_select(
    incident_id: int, kind: str, key_prefix: str, update_id: int | None, due: datetime, now: datetime
):
    """Active audience members with an e-mail address, as outbox rows."""
    return (
        select(
            literal(kind),
            literal("email"),
            literal("queued"),
            literal(incident_id),
            Subscriber.id,
            literal(update_id),
            Subscriber.email,
            Subscriber.locale,
            literal(key_prefix) + cast(Subscriber.id, String),
            literal(0),
            literal(due, UTCDateTime()),
            literal(now, UTCDateTime()),
        )
        .select_from(AudienceMember)
        .join(Subscriber, Subscriber.id == AudienceMember.subscriber_id)
        .where(
            and_(
                AudienceMember.incident_id == incident_id,
                Subscriber.status == "active",
                Subscriber.email.is_not(None),  # type: ignore[union-attr]
            )
        )
    )


_COLUMNS = [
    "kind", "channel", "state", "incident_id", "subscriber_id", "update_id",
    "recipient", "locale", "dedupe_key", "attempts", "not_before", "created_at",
]  # fmt: skip


def cancel_unsent(session: Session, incident_id: int, kind: str, reason: str) -> int:
    """Cancel queued or retrying messages of one kind for an incident; returns how many."""
    stmt = (
        update(Message)
        .where(Message.incident_id == incident_id, Message.kind == kind, Message.state.in_(UNSENT_STATES))  # type: ignore[attr-defined]
        .values(state="cancelled", last_error=reason)
    )
    return session.exec(stmt).rowcount  # type: ignore[call-overload]


def queue_status_notices(session: Session, incident: Incident, update_id: int, now: datetime) -> int:
    """Queue the status notice of ``update_id`` to the audience; older unsent ones are cancelled.

    Members who already have this update's notice (a scope widening re-runs it) are skipped
    by the de-duplication key, so only the newly affected get one.
    """
    assert incident.id is not None
    session.exec(  # type: ignore[call-overload]
        update(Message)
        .where(
            Message.incident_id == incident.id,
            Message.kind == "status",
            Message.state.in_(UNSENT_STATES),  # type: ignore[attr-defined]
            Message.update_id != update_id,
        )
        .values(state="cancelled", last_error="superseded by a newer status notice")
    )
    query = _audience_select(incident.id, "status", f"status:{incident.id}:{update_id}:", update_id, now, now)
    return _insert_ignoring_duplicates(session, _COLUMNS, query)


def queue_apologies(session: Session, incident: Incident, due: datetime, now: datetime) -> int:
    """Queue one apology per active audience member; the key makes a second run a no-op."""
    assert incident.id is not None
    query = _audience_select(incident.id, "apology", f"apology:{incident.id}:", None, due, now)
    return _insert_ignoring_duplicates(session, _COLUMNS, query)


def counts(session: Session, incident_id: int | None = None) -> dict[str, dict[str, int]]:
    """``{kind: {state: n}}`` for one incident, or for the whole outbox."""
    query = select(Message.kind, Message.state, func.count()).group_by(Message.kind, Message.state)
    if incident_id is not None:
        query = query.where(Message.incident_id == incident_id)
    result: dict[str, dict[str, int]] = defaultdict(dict)
    for kind, state, n in session.exec(query):  # type: ignore[call-overload]
        result[kind][state] = n
    return dict(result)
