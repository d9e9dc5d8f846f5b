"""Calls and callbacks: log a hotline call, keep the callback promised on it, escalate it when
overdue, and account for it in the incident report.

Owns the rules of a promise: a callback has a due time and an owner; closing it needs an
outcome and happens once; an open callback overdue by ``[hotline].callback_escalate_after``
is escalated once (level 1), and once more when still open ``callback_escalate_again`` past
due (level 2), each escalation being one e-mail to ``[notifier].support_email`` plus one post
to each hotline webhook. The outbox's de-duplication key makes "once" hold however often,
and by however many processes, ``queue_escalations`` runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from notifier import incidents, subscribers
from notifier.config import Config
from notifier.errors import CallbackClosed, CallbackNotFound, UsageError
from notifier.models import AudienceMember, Call, Callback, Incident, Subscriber, utcnow
from notifier.outbox import cancel_unsent, escalation_key, insert_rows, message_row

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_NOTE = 4000


@dataclass(frozen=True)
class CallbackEntry:
    """A callback with what an operator needs to make it: the call, the person, the incident."""

    callback: Callback
    call: Call
    subscriber: Subscriber | None
    incident_ref: str | None
    overdue: bool

    def as_dict(self) -> dict[str, Any]:
        cb, sub = self.callback, self.subscriber
        return {
            "id": cb.id, "due_at": cb.due_at, "owner": cb.owner, "overdue": self.overdue,
            "done_at": cb.done_at, "outcome": cb.outcome, "escalations": cb.escalations,
            "incident": self.incident_ref, "note": self.call.note, "taken_by": self.call.taken_by,
            "phone": self.call.caller_phone or (sub.phone if sub else "") or "",
            "subscriber": None if sub is None else {"account": sub.external_id, "name": sub.name,
                                                     "email": sub.email, "region": sub.region},
        }  # fmt: skip


def _text(value: str, option: str, *, required: bool) -> str:
    value = (value or "").strip()
    if required and not value:
        raise UsageError(f"{option} must not be empty")
    if _CONTROL.search(value):
        raise UsageError(f"{option} contains a control character; remove it")
    if len(value) > MAX_NOTE:
        raise UsageError(f"{option} is longer than {MAX_NOTE} characters")
    return value


def _due(now: datetime, callback_in: timedelta | None, callback_at: datetime | None) -> datetime | None:
    if callback_in is not None and callback_at is not None:
        raise UsageError("give either --callback-in or --callback-at, not both")
    if callback_in is not None:
        if callback_in <= timedelta(0):
            raise UsageError("--callback-in must be a positive interval such as 30m or 2h")
        return now + callback_in
    if callback_at is not None:
        if callback_at.tzinfo is None:
            raise UsageError("--callback-at needs a time zone (or is read as UTC by the CLI)")
        if callback_at < now - timedelta(minutes=1):
            raise UsageError("--callback-at is in the past")
        return callback_at
    return None


def _open_incident_of(session: Session, subscriber_id: int) -> int | None:
    """The one open incident the subscriber is affected by, if exactly one."""
    rows = session.execute(
        select(Incident.id)
        .join(AudienceMember, AudienceMember.incident_id == Incident.id)
        .where(AudienceMember.subscriber_id == subscriber_id, Incident.status != "resolved")
        .limit(2)
    ).all()
    return rows[0][0] if len(rows) == 1 else None


def log_call(
    session: Session, config: Config, *, subscriber_key: str | None = None, caller_phone: str | None = None,
    incident_ref: str | int | None = None, note: str, callback_in: timedelta | None = None,
    callback_at: datetime | None = None, by: str = "", now: datetime | None = None,
) -> tuple[Call, Callback | None]:  # fmt: skip
    """Record a hotline call and, when one was promised, the callback (due time, owner ``by``).

    The caller is the subscriber ``subscriber_key`` names (anything ``subscribers.find`` takes),
    or just a phone number, which is linked to the subscriber it exactly identifies, if any.
    Without ``incident_ref`` the call is linked to the one open incident the subscriber is
    affected by, when there is exactly one.
    """
    now = now or utcnow()
    if not subscriber_key and not caller_phone:
        raise UsageError("say who called: give --subscriber KEY or --caller PHONE")
    note = _text(note, "--note", required=True)
    by = _text(by, "--by", required=False)
    due = _due(now, callback_in, callback_at)
    if due is not None and not by:
        raise UsageError("a promised callback needs an owner: give --by WHO")
    subscriber = subscribers.get_one(session, config, subscriber_key) if subscriber_key else None
    phone = ""
    if caller_phone:
        try:
            phone = subscribers.normalise_phone(caller_phone.strip(), config.notifier.default_country)
        except ValueError as exc:
            raise UsageError(f"--caller: {exc}") from None
        if subscriber is None:
            matches = (
                session.execute(select(Subscriber).where(Subscriber.phone == phone).limit(2)).scalars().all()
            )
            subscriber = matches[0] if len(matches) == 1 else None
    elif subscriber is not None:
        phone = subscriber.phone or ""
    incident_id = incidents.get(session, incident_ref).id if incident_ref is not None else None
    if incident_id is None and subscriber is not None:
        incident_id = _open_incident_of(session, subscriber.id)  # type: ignore[arg-type]
    call = Call(subscriber_id=subscriber.id if subscriber else None, caller_phone=phone, incident_id=incident_id,
                note=note, taken_by=by, created_at=now)  # fmt: skip
    session.add(call)
    session.flush()
    callback = None
    if due is not None:
        callback = Callback(call_id=call.id, due_at=due, owner=by, created_at=now)  # type: ignore[arg-type]
        session.add(callback)
        session.flush()
    return call, callback


def list_callbacks(
    session: Session, *, overdue_only: bool = False, open_only: bool = True, now: datetime | None = None,
    limit: int = 500,
) -> list[CallbackEntry]:  # fmt: skip
    """Callbacks, overdue ones first (most overdue first), then open by due time, then closed."""
    now = now or utcnow()
    query = (
        select(Callback, Call, Subscriber, Incident)
        .join(Call, Call.id == Callback.call_id)
        .outerjoin(Subscriber, Subscriber.id == Call.subscriber_id)
        .outerjoin(Incident, Incident.id == Call.incident_id)
    )
    if open_only or overdue_only:
        query = query.where(Callback.done_at.is_(None))  # type: ignore[union-attr]
    if overdue_only:
        query = query.where(Callback.due_at < now)
    query = query.order_by(Callback.done_at.is_not(None), Callback.due_at, Callback.id).limit(limit)  # type: ignore[union-attr]
    entries = [
        CallbackEntry(cb, call, sub, inc.ref if inc else None, cb.done_at is None and cb.due_at < now)
        for cb, call, sub, inc in session.execute(query).all()
    ]
    return sorted(entries, key=lambda e: (not e.overdue, e.callback.done_at is not None))


def close_callback(
    session: Session, callback_id: int, outcome: str, by: str = "", now: datetime | None = None
) -> Callback:
    """Mark a callback done with its outcome; unsent escalations of it are cancelled."""
    now = now or utcnow()
    outcome = _text(outcome, "--outcome", required=True)
    by = _text(by, "--by", required=False)
    callback = session.execute(
        select(Callback).where(Callback.id == callback_id).with_for_update()
    ).scalars().first()  # fmt: skip
    if callback is None:
        raise CallbackNotFound(callback_id)
    if callback.done_at is not None:
        raise CallbackClosed(
            f"Callback {callback_id} was already closed at {callback.done_at:%Y-%m-%d %H:%M} UTC: {callback.outcome}"
        )
    callback.outcome, callback.closed_by, callback.done_at = outcome, by, now
    session.add(callback)
    cancel_unsent(session, "cancelled: the callback was closed", kind="escalation", callback_id=callback_id)
    session.flush()
    return callback


def queue_escalations(session: Session, config: Config, now: datetime | None = None) -> int:
    """Queue the escalations owed by open overdue callbacks; returns how many callbacks were
    escalated (each one message per target: support, a second level's own addresses, webhooks)."""
    now = now or utcnow()
    thresholds = {1: config.hotline.callback_escalate_after, 2: config.hotline.callback_escalate_again}
    earliest = min(thresholds.values())
    rows: list[dict[str, Any]] = []
    owed: dict[int, int] = {}
    candidates = session.execute(
        select(Callback, Call.incident_id)
        .join(Call, Call.id == Callback.call_id)
        .where(Callback.done_at.is_(None), Callback.escalations < 2, Callback.due_at <= now - earliest)  # type: ignore[union-attr]
        .with_for_update(of=Callback)  # type: ignore[arg-type]
    ).all()
    for callback, incident_id in candidates:
        for level, after in thresholds.items():
            if level <= callback.escalations or callback.due_at + after > now:
                continue
            owed[callback.id] = level
            rows += _escalation_rows(config, callback.id, incident_id, level, now)
    queued = insert_rows(session, rows)
    for callback, _ in candidates:
        if callback.id in owed:
            callback.escalations = max(callback.escalations, owed[callback.id])
            session.add(callback)
    session.flush()
    return len(owed) if queued else 0


def _escalation_rows(
    config: Config, callback_id: int, incident_id: int | None, level: int, now: datetime
) -> list[dict[str, Any]]:
    common = {"kind": "escalation", "incident_id": incident_id, "callback_id": callback_id, "now": now}
    key = escalation_key(callback_id, level)
    # The second level may go to its own people (a duty manager): [hotline].escalate_again_to.
    addresses = (config.hotline.escalate_again_to if level > 1 else []) or [config.notifier.support_email]
    rows = [
        message_row(channel="email", recipient=address, dedupe_key=f"{key}:email" + (f":{n}" if n else ""),
                    locale=config.notifier.default_locale, **common)  # fmt: skip
        for n, address in enumerate(addresses)
    ]
    for index, target in enumerate(config.hotline.targets):
        if target.webhook:
            rows.append(message_row(channel="webhook", recipient=target.webhook, dedupe_key=f"{key}:webhook:{index}",
                                    locale=target.locale, **common))  # fmt: skip
    return rows


def report_section(session: Session, incident_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Calls and callbacks of one incident: how many promises were kept, late, or are still open."""
    now = now or utcnow()
    calls = session.execute(
        select(func.count()).select_from(Call).where(Call.incident_id == incident_id)
    ).scalar_one()
    callbacks = session.execute(
        select(Callback).join(Call, Call.id == Callback.call_id).where(Call.incident_id == incident_id)
        .order_by(Callback.due_at)
    ).scalars().all()  # fmt: skip
    open_ = [cb for cb in callbacks if cb.done_at is None]
    return {
        "calls": calls,
        "callbacks": {
            "promised": len(callbacks),
            "kept": sum(1 for cb in callbacks if cb.done_at is not None and cb.done_at <= cb.due_at),
            "late": sum(1 for cb in callbacks if cb.done_at is not None and cb.done_at > cb.due_at),
            "open": len(open_),
            "open_overdue": sum(1 for cb in open_ if cb.due_at < now),
            "escalated": sum(1 for cb in callbacks if cb.escalations),
            "escalations": sum(cb.escalations for cb in callbacks),
        },
        "open_callbacks": [
            {
                "id": cb.id,
                "due_at": cb.due_at,
                "owner": cb.owner,
                "overdue": cb.due_at < now,
                "escalations": cb.escalations,
            }
            for cb in open_
        ],  # fmt: skip
    }
