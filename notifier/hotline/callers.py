"""Caller lookup: who is on the line, are they affected, what did we send them, what to say.

Owns answering a hotline call from whatever the caller can tell us — phone in any format,
e-mail, account number, part of the name (``subscribers.find`` does the matching): for each
subscriber found, the incidents that hit them (open, or resolved in the last 30 days), the
messages we sent them and when, their open callbacks, and the operator's script for their
region and language. Never "we can't help without the order number".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlmodel import Session

from notifier import subscribers
from notifier.config import Config
from notifier.hotline.announcements import ScriptEntry, check_locale, script
from notifier.hotline.callbacks import CallbackEntry
from notifier.models import AudienceMember, Call, Callback, Incident, Message, Subscriber, utcnow
from notifier.outbox.queueing import owed_to
from notifier.rendering import Renderer
from notifier.subscribers.lookup import count_found

RECENT = timedelta(days=30)
MESSAGES_SHOWN = 20
LOOKUP_LIMIT = 50  # callers shown for one query; the rest are counted


@dataclass(frozen=True)
class Impact:
    """An incident that hit the caller."""

    incident: str
    title: str
    status: str
    open: bool
    started_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True)
class Sent:
    """One message we queued for the caller, and what became of it."""

    id: int | None  # None: a status notice owed to them whose row the senders have yet to write
    kind: str
    incident: str | None
    state: str
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None


@dataclass
class CallerInfo:
    subscriber: Subscriber
    incidents: list[Impact] = field(default_factory=list)
    messages: list[Sent] = field(default_factory=list)
    callbacks: list[CallbackEntry] = field(default_factory=list)  # open ones
    calls: int = 0  # calls logged for them before
    script: list[ScriptEntry] = field(default_factory=list)

    @property
    def affected(self) -> bool:
        """Hit by an incident that is still open."""
        return any(impact.open for impact in self.incidents)

    @property
    def recently_affected(self) -> bool:
        return bool(self.incidents)

    def as_dict(self) -> dict[str, Any]:
        s = self.subscriber
        return {
            "subscriber": {"account": s.external_id, "name": s.name, "email": s.email, "phone": s.phone,
                           "region": s.region, "services": s.service_list, "locale": s.locale,
                           "status": s.status},
            "affected": self.affected, "recently_affected": self.recently_affected,
            "incidents": [vars(i) for i in self.incidents], "messages": [vars(m) for m in self.messages],
            "callbacks": [c.as_dict() for c in self.callbacks], "calls": self.calls,
            "script": [e.as_dict() for e in self.script],
        }  # fmt: skip


class Found(list[CallerInfo]):
    """Callers a lookup found, and how many matched in all (``total`` > ``len`` when cut off)."""

    total: int = 0

    @property
    def cut_off(self) -> str:
        """``50 shown of 312, narrow the query`` when not everyone matching is shown, else ""."""
        return f"{len(self)} shown of {self.total}, narrow the query" if self.total > len(self) else ""


def lookup(
    session: Session, config: Config, query: str, now: datetime | None = None, *, locale: str | None = None,
    renderer: Renderer | None = None,
) -> Found:  # fmt: skip
    """Everyone ``query`` identifies, with what the operator needs; [] when nobody matches.

    The script is in ``locale`` if given (the operator's language), else in the caller's own.
    """
    now = now or utcnow()
    if locale is not None:
        check_locale(config, locale)
    found = subscribers.find(session, config, query, limit=LOOKUP_LIMIT)
    result = Found()
    if not found:
        return result
    result.total = count_found(session, config, query) if len(found) >= LOOKUP_LIMIT else len(found)
    infos = {s.id: CallerInfo(subscriber=s) for s in found}
    ids = list(infos)
    _impacts(session, infos, ids, now)
    _messages(session, infos, ids)
    _callbacks(session, infos, ids, now)
    renderer = renderer or Renderer(config)
    for info in infos.values():
        refs = [i.incident for i in info.incidents if i.open] or [i.incident for i in info.incidents[:1]]
        lang = locale or info.subscriber.locale
        for ref in refs:
            info.script += script(session, config, ref, info.subscriber.region, lang, now, renderer=renderer)
    result.extend(infos.values())
    return result


def _impacts(session: Session, infos: dict[Any, CallerInfo], ids: list[Any], now: datetime) -> None:
    rows = session.execute(
        select(AudienceMember.subscriber_id, Incident)
        .join(Incident, Incident.id == AudienceMember.incident_id)
        .where(AudienceMember.subscriber_id.in_(ids),  # type: ignore[attr-defined]
               or_(Incident.status != "resolved", Incident.resolved_at >= now - RECENT))  # type: ignore[operator]
        .order_by(Incident.id.desc())  # type: ignore[union-attr]
    ).all()  # fmt: skip
    for subscriber_id, incident in rows:
        infos[subscriber_id].incidents.append(
            Impact(
                incident.ref,
                incident.title,
                incident.status,
                incident.status != "resolved",
                incident.started_at,
                incident.resolved_at,
            )  # fmt: skip
        )
    for info in infos.values():
        info.incidents.sort(key=lambda i: not i.open)  # open first, newest first within each


def _messages(session: Session, infos: dict[Any, CallerInfo], ids: list[Any]) -> None:
    for pending, member in owed_to(session, ids):
        infos[member].messages.append(Sent(None, pending.kind, f"INC-{pending.incident_id}", "queued",
                                           pending.created_at, None, None))  # fmt: skip
    rows = session.execute(
        select(Message).where(Message.subscriber_id.in_(ids)).order_by(Message.id.desc())  # type: ignore[union-attr]
    ).scalars()
    for m in rows:
        shown = infos[m.subscriber_id].messages
        if len(shown) < MESSAGES_SHOWN:
            ref = f"INC-{m.incident_id}" if m.incident_id is not None else None
            shown.append(Sent(m.id, m.kind, ref, m.state, m.created_at, m.sent_at, m.last_error))  # type: ignore[arg-type]


def _callbacks(session: Session, infos: dict[Any, CallerInfo], ids: list[Any], now: datetime) -> None:
    counts = session.execute(
        select(Call.subscriber_id, func.count())
        .where(Call.subscriber_id.in_(ids))
        .group_by(Call.subscriber_id)  # type: ignore[union-attr]
    ).all()
    for subscriber_id, n in counts:
        infos[subscriber_id].calls = n
    rows = session.execute(
        select(Callback, Call, Incident)
        .join(Call, Call.id == Callback.call_id)
        .outerjoin(Incident, Incident.id == Call.incident_id)
        .where(Call.subscriber_id.in_(ids), Callback.done_at.is_(None))  # type: ignore[union-attr]
        .order_by(Callback.due_at)
    ).all()
    for callback, call, incident in rows:
        info = infos[call.subscriber_id]
        info.callbacks.append(
            CallbackEntry(
                callback, call, info.subscriber, incident.ref if incident else None, callback.due_at < now
            )
        )


def lookup_phone(session: Session, config: Config, phone: str, now: datetime | None = None) -> list[CallerInfo]:
    """Everyone whose phone is exactly ``phone`` (E.164), with the incidents that hit them and
    their open callbacks; no script, no messages. For the phone line, where the caller's own
    number is all they have told us: nothing else (no name search) can match.
    """
    now = now or utcnow()
    found = session.execute(
        select(Subscriber).where(Subscriber.phone == phone).order_by(Subscriber.id).limit(50)
    ).scalars().all()  # fmt: skip
    infos = {s.id: CallerInfo(subscriber=s) for s in found}
    if infos:
        _impacts(session, infos, list(infos), now)
        _callbacks(session, infos, list(infos), now)
    return list(infos.values())


def open_callbacks_for_phone(session: Session, phone: str, subscriber_ids: list[int] | None = None) -> list[Callback]:
    """Open callbacks promised to ``phone`` (a call logged with it) or to these subscribers, earliest due first."""
    owners = [Call.caller_phone == phone] if phone else []
    if subscriber_ids:
        owners.append(Call.subscriber_id.in_(subscriber_ids))  # type: ignore[union-attr]
    if not owners:
        return []
    return list(session.execute(
        select(Callback).join(Call, Call.id == Callback.call_id)
        .where(Callback.done_at.is_(None), or_(*owners)).order_by(Callback.due_at, Callback.id)  # type: ignore[union-attr]
    ).scalars().all())  # fmt: skip
