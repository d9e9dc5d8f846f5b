"""Delivery reports: what an SMS gateway says, after accepting a message, became of it.

Owns applying one report to its outbox row, in the caller's transaction:

- ``accepted`` (buffered, taken by the SMSC) keeps the SMS on its way; it never overrides a
  final word, whatever order the reports arrive in;
- ``delivered``, ``failed``, ``expired`` are final, with the gateway's code and the time;
- ``refused`` (a bad number: no route, invalid destination, rejected by the network) is a
  failure that also marks the number, like a hard bounce: ``subscriber.phone_refused`` holds
  it (no SMS goes to it again; a new number is tried afresh) and a ``hard_bounce``
  suppression event records the code;
- ``retry`` (the SMSC refused it *for now*) sends a sent message back to the queue with the
  usual back-off (``claims.backoff``) until ``[mailing].max_attempts``, then it is failed.

Reading a gateway's report format is ``delivery.sms``'s; authenticating it is the web's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from notifier.config import Config
from notifier.errors import NotFoundError
from notifier.models import Message
from notifier.outbox.claims import backoff
from notifier.outbox.numbers import refuse_number
from notifier.outbox.sms import CHANNEL

__all__ = ["FINAL", "Recorded", "record"]

FINAL = ("delivered", "failed", "expired")
OUTCOMES = ("accepted", "delivered", "failed", "expired", "refused", "retry")


class MessageNotFound(NotFoundError):
    def __init__(self, message_id: int) -> None:
        super().__init__(f"No SMS by the id of {message_id} was sent from here.")


@dataclass(frozen=True)
class Recorded:
    """What one report did: the message's delivery state after it, and what else happened."""

    message_id: int
    delivery: str | None
    state: str
    refused: bool = False
    retried: bool = False


def record(
    session: Session, config: Config, message_id: int, outcome: str, code: str, detail: str, now: datetime
) -> Recorded:
    """Apply one delivery report (``outcome`` one of OUTCOMES) to the SMS ``message_id``."""
    if outcome not in OUTCOMES:
        raise ValueError(f"not a delivery outcome: {outcome!r}")
    message = session.exec(select(Message).where(Message.id == message_id).with_for_update()).scalars().first()  # type: ignore[call-overload]
    if message is None or message.channel != CHANNEL:
        raise MessageNotFound(message_id)
    if message.delivery in FINAL and outcome in ("accepted", "retry"):
        return Recorded(message_id, message.delivery, message.state)  # a late intermediate word changes nothing
    message.delivery_code, message.delivery_at = code[:100], now
    refused = retried = False
    if outcome == "accepted":
        message.delivery = "accepted"
    elif outcome == "retry":
        retried = _retry(message, config, code, now)
    else:
        message.delivery = "failed" if outcome == "refused" else outcome
        if outcome in ("failed", "expired", "refused") and message.state == "sent":
            message.last_error = f"{outcome}: {detail or code}"[:500]
        if outcome == "refused":
            refused = _refuse_number(session, message, code, detail, now)
    session.add(message)
    return Recorded(message_id, message.delivery, message.state, refused, retried)


def _retry(message: Message, config: Config, code: str, now: datetime) -> bool:
    """Back to the queue with back-off, if it was recorded sent and attempts are left."""
    if message.state != "sent" or message.attempts >= config.mailing.max_attempts:
        message.delivery = "failed"
        message.last_error = f"refused by the SMSC: {code}"[:500]
        return False
    message.state, message.delivery = "retry", None
    message.not_before = now + backoff(config.mailing, message.attempts)
    message.last_error = f"refused by the SMSC for now, retrying: {code}"[:500]
    return True


def _refuse_number(session: Session, message: Message, code: str, detail: str, now: datetime) -> bool:
    return refuse_number(session, message.subscriber_id, message.id, message.recipient, code, detail, now)  # type: ignore[arg-type]
