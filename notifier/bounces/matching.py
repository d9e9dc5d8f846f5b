"""Which outbox row, and so which subscriber, a bounce or complaint is about.

Tried in this order, the first that names an existing row wins:

1. a VERP return path (``verp.parse``): the address the bounce was delivered to, or the
   ``Original-Mail-From`` of a complaint report — signed, so it cannot point elsewhere;
2. the Message-ID of the returned original, ``<notifier.<row id>[.<instance>]@domain>``
   (what ``composing.message_id`` writes), accepted only when the row's recipient is the
   bounced address (a made-up bounce cannot name somebody else's row);
3. the failed address itself: the subscriber whose e-mail it is, when exactly one is.

Owns only the lookup; what follows from it is ``suppression``'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from notifier.bounces import verp
from notifier.bounces.events import BounceEvent
from notifier.config import BouncesSection
from notifier.models import Message, Subscriber

_MESSAGE_ID = re.compile(r"<?\s*notifier\.(\d{1,18})(?:\.[0-9a-fA-F]{1,64})?@[^>\s]+\s*>?")


@dataclass(frozen=True)
class Match:
    message_id: int | None = None
    subscriber_id: int | None = None
    recipient: str = ""
    how: str = "none"  # verp | message-id | address | none


def row_id_from_message_id(value: str) -> int | None:
    """``<notifier.42.ab12@example.com>`` (or ``<notifier.42@…>``) -> 42."""
    found = _MESSAGE_ID.fullmatch(value.strip())
    return int(found.group(1)) if found else None


def _row(session: Session, row_id: int) -> Match | None:
    found = session.execute(
        select(Message.id, Message.subscriber_id, Message.recipient).where(Message.id == row_id)
    ).first()
    if found is None:
        return None
    return Match(message_id=found[0], subscriber_id=found[1], recipient=(found[2] or "").lower())


def _by_verp(
    session: Session, secret: bytes, bounces: BouncesSection, addresses: Sequence[str]
) -> Match | None:
    for address in addresses:
        row_id = verp.parse(secret, address, bounces.local_part, bounces.domain) if bounces.domain else None
        found = _row(session, row_id) if row_id is not None else None
        if found is not None:
            return Match(found.message_id, found.subscriber_id, found.recipient, "verp")
    return None


def _by_message_id(session: Session, event: BounceEvent) -> Match | None:
    row_id = row_id_from_message_id(event.original_message_id) if event.original_message_id else None
    found = _row(session, row_id) if row_id is not None else None
    if found is None or not event.recipient or found.recipient != event.recipient:
        return None
    return Match(found.message_id, found.subscriber_id, found.recipient, "message-id")


def _by_address(session: Session, address: str) -> Match | None:
    if "@" not in address:
        return None
    ids = session.execute(select(Subscriber.id).where(Subscriber.email_key == address.lower()).limit(2)).all()
    if len(ids) != 1:
        return None
    return Match(subscriber_id=ids[0][0], recipient=address.lower(), how="address")


def locate(
    session: Session,
    secret: bytes,
    bounces: BouncesSection,
    event: BounceEvent,
    delivered_to: Sequence[str] = (),
) -> Match:
    """The row and subscriber ``event`` is about (``Match(how="none")`` when nothing fits)."""
    candidates = [event.return_path, *delivered_to] if event.return_path else list(delivered_to)
    return (
        _by_verp(session, secret, bounces, candidates)
        or _by_message_id(session, event)
        or _by_address(session, event.recipient)
        or Match(recipient=event.recipient)
    )
