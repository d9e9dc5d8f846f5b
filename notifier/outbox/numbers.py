"""Refused phone numbers: what it means for a subscriber when an SMS gateway refuses their number.

Owns marking a number bad (``subscriber.phone_refused``) and logging it beside the e-mail
bounces (a ``hard_bounce`` suppression event, source ``sms``), whether the refusal came at
submission (``claims.record``) or later in a delivery report (``reports``). The subscriber is
not bounced: their e-mail keeps working.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from notifier.models import Subscriber, SuppressionEvent


def refuse_number(
    session: Session, subscriber_id: int | None, message_id: int, number: str, code: str, detail: str, now: datetime
) -> bool:  # fmt: skip
    """The gateway refused ``number`` for good (at submission or in a delivery report): log it
    like a hard bounce and mark the subscriber's number bad, unless they have another one by now."""
    subscriber = session.get(Subscriber, subscriber_id) if subscriber_id else None
    logged = session.exec(select(SuppressionEvent.id).where(  # type: ignore[call-overload]
        SuppressionEvent.message_id == message_id, SuppressionEvent.kind == "hard_bounce",
        SuppressionEvent.source == "sms")).first()  # fmt: skip
    if logged is None:  # refused at submission, then again in the gateway's report: one event
        session.add(SuppressionEvent(
            subscriber_id=subscriber_id, message_id=message_id, kind="hard_bounce", recipient=number,
            code=code[:100], detail=(detail or "the SMS gateway refused the number")[:500], source="sms", at=now,
        ))  # fmt: skip
    if subscriber is None or subscriber.phone != number:
        return False  # the subscriber has a different number by now: that one is not known bad
    subscriber.phone_refused, subscriber.updated_at = number, now
    session.add(subscriber)
    return True
