"""The one suppression list: what a bounce, complaint or auto-reply does to a subscriber.

``record`` is the only place that applies a ``BounceEvent`` (from the listener, the
Maildir poller, ``notifier bounces process`` and the ESP webhooks alike), and every event is
kept in ``suppression_event``:

* a hard bounce makes the subscriber ``bounced`` (the DSN status and diagnostic are in the event);
* soft bounces are counted, one per message: ``[bounces].soft_bounce_threshold`` of them
  within ``soft_bounce_window`` (since the last unsuppression) make the subscriber ``bounced``
  too, logged as a ``suppressed`` event;
* a complaint unsubscribes the subscriber from everything (``unsubscribed``), bounced or not;
* an auto-reply changes nothing.

``unsuppress`` is the operator's way back, with a reason; ``suppressed`` lists who is
suppressed and why; ``mailing_counts`` gives an incident's bounces and complaints per kind
of message. Who the event is about is ``matching``'s question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlmodel import Session

from notifier.bounces.events import BounceEvent
from notifier.bounces.matching import Match, locate
from notifier.config import Config
from notifier.errors import UsageError
from notifier.models import Message, Subscriber, SuppressionEvent, utcnow

SOURCES = ("lmtp", "smtp", "maildir", "file", "ses", "mailgun", "cli")
REASONS = ("bounced", "complained", "unsubscribed")
_DECISIVE = ("hard_bounce", "suppressed", "complaint", "unsuppressed")


@dataclass(frozen=True)
class Outcome:
    """What ``record`` did: the event row, who it matched and how, and the status change."""

    event_id: int
    kind: str
    match: Match
    status_before: str | None
    status_after: str | None

    @property
    def changed(self) -> bool:
        return self.status_before != self.status_after

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event_id, "kind": self.kind, "matched_by": self.match.how,
            "message": self.match.message_id, "subscriber": self.match.subscriber_id,
            "recipient": self.match.recipient, "status_before": self.status_before, "status_after": self.status_after,
        }  # fmt: skip


def _log(session: Session, **fields: Any) -> SuppressionEvent:
    fields["detail"] = str(fields.get("detail", ""))[:1000]
    fields["code"] = str(fields.get("code", ""))[:50]
    fields["recipient"] = str(fields.get("recipient", ""))[:320]
    row = SuppressionEvent(**fields)
    session.add(row)
    session.flush()
    return row


def _set_status(session: Session, subscriber: Subscriber, status: str, now: datetime) -> None:
    session.execute(
        update(Subscriber).where(Subscriber.id == subscriber.id).values(status=status, updated_at=now)
    )
    subscriber.status = status


def _soft_bounces_in_window(session: Session, config: Config, subscriber_id: int, now: datetime) -> int:
    since = now - config.bounces.soft_bounce_window
    reset = session.execute(
        select(func.max(SuppressionEvent.at)).where(
            SuppressionEvent.subscriber_id == subscriber_id, SuppressionEvent.kind == "unsuppressed"
        )
    ).scalar()
    if reset is not None and reset > since:
        since = reset
    distinct = func.coalesce(SuppressionEvent.message_id, -SuppressionEvent.id)  # one per message
    query = select(func.count(func.distinct(distinct))).where(
        SuppressionEvent.subscriber_id == subscriber_id, SuppressionEvent.kind == "soft_bounce",
        SuppressionEvent.at >= since,
    )  # fmt: skip
    return session.execute(query).scalar_one()


def record(
    session: Session, config: Config, event: BounceEvent, *, source: str, secret: bytes,
    delivered_to: Sequence[str] = (), now: datetime | None = None,
) -> Outcome:  # fmt: skip
    """Log ``event`` and apply it to the subscriber it is about (if any is found)."""
    now = now or utcnow()
    match = locate(session, secret, config.bounces, event, delivered_to)
    subscriber = session.get(Subscriber, match.subscriber_id) if match.subscriber_id else None
    before = subscriber.status if subscriber else None
    row = _log(
        session, subscriber_id=match.subscriber_id, message_id=match.message_id, kind=event.kind,
        recipient=event.recipient or match.recipient, code=event.code, detail=event.detail, source=source, at=now,
    )  # fmt: skip
    if subscriber is not None:
        _apply(session, config, event, subscriber, now, source)
    assert row.id is not None
    return Outcome(row.id, event.kind, match, before, subscriber.status if subscriber else None)


def _apply(
    session: Session, config: Config, event: BounceEvent, subscriber: Subscriber, now: datetime, source: str
) -> None:
    assert subscriber.id is not None
    if event.kind == "hard_bounce" and subscriber.status == "active":
        _set_status(session, subscriber, "bounced", now)
    elif event.kind == "complaint" and subscriber.status != "unsubscribed":
        _set_status(session, subscriber, "unsubscribed", now)
    elif event.kind == "soft_bounce" and subscriber.status == "active":
        count = _soft_bounces_in_window(session, config, subscriber.id, now)
        if count >= config.bounces.soft_bounce_threshold:
            _set_status(session, subscriber, "bounced", now)
            days = config.bounces.soft_bounce_window.total_seconds() / 86400
            _log(
                session, subscriber_id=subscriber.id, kind="suppressed", recipient=subscriber.email or "",
                code=event.code, detail=f"{count} soft bounces within {days:g} days", source=source, at=now,
            )  # fmt: skip


# The operator's side -----------------------------------------------------------------------


def _latest_decision(session: Session, subscriber_id: int) -> SuppressionEvent | None:
    query = (
        select(SuppressionEvent)
        .where(SuppressionEvent.subscriber_id == subscriber_id, SuppressionEvent.kind.in_(_DECISIVE))  # type: ignore[attr-defined]
        .order_by(SuppressionEvent.id.desc())  # type: ignore[union-attr]
        .limit(1)
    )
    return session.execute(query).scalars().first()


def unsuppress(session: Session, subscriber: Subscriber, *, reason: str, by: str = "") -> Subscriber:
    """Mail ``subscriber`` again after a bounce or a complaint, for a recorded ``reason``.

    Someone who unsubscribed themselves stays unsubscribed: only they can change that.
    """
    reason = " ".join(reason.split())
    if not reason:
        raise UsageError("give the reason for lifting the suppression")
    assert subscriber.id is not None
    if subscriber.status == "active":
        raise UsageError(f"{subscriber.email or subscriber.external_id} is not suppressed (status: active)")
    latest = _latest_decision(session, subscriber.id)
    if subscriber.status == "unsubscribed" and (latest is None or latest.kind != "complaint"):
        raise UsageError(
            f"{subscriber.email or subscriber.external_id} unsubscribed themselves; only they can subscribe again"
        )
    now = utcnow()
    _log(
        session, subscriber_id=subscriber.id, kind="unsuppressed", recipient=subscriber.email or "",
        code=subscriber.status, detail=reason + (f" (by {by})" if by else ""), source="cli", at=now,
    )  # fmt: skip
    _set_status(session, subscriber, "active", now)
    return subscriber


@dataclass(frozen=True)
class Suppressed:
    subscriber: Subscriber
    reason: str  # bounced | complained | unsubscribed
    event: SuppressionEvent | None  # the bounce or complaint that decided it, if any


def suppressed(
    session: Session, *, reason: str | None = None, limit: int = 100, offset: int = 0
) -> list[Suppressed]:
    """Subscribers who get no mail, why, and the event that decided it (oldest first)."""
    if reason is not None and reason not in REASONS:
        raise UsageError(f"reason must be one of {', '.join(REASONS)}, not {reason!r}")
    latest = (
        select(SuppressionEvent.subscriber_id, func.max(SuppressionEvent.id).label("event_id"))
        .where(SuppressionEvent.kind.in_(_DECISIVE[:3]))  # type: ignore[attr-defined]
        .group_by(SuppressionEvent.subscriber_id)
        .subquery()
    )
    query = (
        select(Subscriber, SuppressionEvent)
        .outerjoin(latest, latest.c.subscriber_id == Subscriber.id)
        .outerjoin(SuppressionEvent, SuppressionEvent.id == latest.c.event_id)
        .where(Subscriber.status != "active")
        .order_by(Subscriber.id)
    )
    if reason == "bounced":
        query = query.where(Subscriber.status == "bounced")
    elif reason == "complained":
        query = query.where(Subscriber.status == "unsubscribed", SuppressionEvent.kind == "complaint")
    elif reason == "unsubscribed":
        query = query.where(
            Subscriber.status == "unsubscribed",
            (SuppressionEvent.kind.is_(None)) | (SuppressionEvent.kind != "complaint"),  # type: ignore[union-attr]
        )
    rows = session.execute(query.limit(limit).offset(offset)).all()
    return [Suppressed(s, _reason(s, e), e) for s, e in rows]


def _reason(subscriber: Subscriber, event: SuppressionEvent | None) -> str:
    if subscriber.status == "bounced":
        return "bounced"
    return "complained" if event is not None and event.kind == "complaint" else "unsubscribed"


def mailing_counts(session: Session, incident_id: int) -> dict[str, dict[str, int]]:
    """Per kind of message of one incident: hard and soft bounces, complaints, auto-replies.

    Counted per message (a DSN delivered twice, or a delay notice and then the failure, is one).
    """
    query = (
        select(Message.kind, SuppressionEvent.kind, func.count(func.distinct(SuppressionEvent.message_id)))
        .join(Message, Message.id == SuppressionEvent.message_id)
        .where(Message.incident_id == incident_id)
        .group_by(Message.kind, SuppressionEvent.kind)
    )
    names = {"hard_bounce": "hard_bounces", "soft_bounce": "soft_bounces", "complaint": "complaints",
             "auto_reply": "auto_replies"}  # fmt: skip
    counts: dict[str, dict[str, int]] = {}
    for message_kind, event_kind, n in session.execute(query).all():
        if event_kind in names:
            row = counts.setdefault(message_kind, dict.fromkeys(names.values(), 0))
            row[names[event_kind]] = n
    return counts
