"""One incoming message -> the ``BounceEvent``s it carries: the order the formats are tried in.

An ARF complaint report first, then an RFC 3464 DSN (both are ``multipart/report``, told
apart by ``report-type``), then an auto-reply (recognised, recorded, never a bounce), then
the non-standard bounce formats ``flufl.bounce`` knows. Anything else carries no event.
The VERP return path the message was delivered to (the envelope recipient, or failing that
its ``To``/``Delivered-To``/``X-Original-To`` headers) is attached to every event that has
none. It does not look anything up in the database (``matching``, ``suppression``).
"""

from __future__ import annotations

import email
from collections.abc import Sequence
from email import policy
from email.message import Message
from email.utils import getaddresses

from notifier.bounces.arf import is_arf, read_arf
from notifier.bounces.autoreply import header_text, is_auto_reply
from notifier.bounces.dsn import is_dsn, original_headers, read_dsn, read_other_bounce
from notifier.bounces.events import BounceEvent


def parse_bytes(data: bytes) -> Message:
    return email.message_from_bytes(data, policy=policy.compat32)


def _auto_reply(message: Message) -> list[BounceEvent]:
    sender = [address for _, address in getaddresses([str(message.get("From", ""))]) if "@" in address]
    original = original_headers(message)
    in_reply_to = str(message.get("In-Reply-To", "") or (original.get("Message-ID", "") if original else ""))
    subject = header_text(message, "Subject")[:200]
    return [
        BounceEvent(
            kind="auto_reply", recipient=sender[0].lower() if sender else "", detail=f"auto-reply: {subject}",
            original_message_id=in_reply_to.strip(),
        )
    ]  # fmt: skip


def _delivered_to(message: Message, envelope_recipients: Sequence[str]) -> list[str]:
    headers = [message.get_all(name) or [] for name in ("Delivered-To", "X-Original-To", "To")]
    found = [address for _, address in getaddresses([str(v) for values in headers for v in values])]
    return [address.lower() for address in (*envelope_recipients, *found) if "@" in address]


def read_message(
    data: bytes | Message, envelope_recipients: Sequence[str] = ()
) -> tuple[list[BounceEvent], list[str]]:
    """The events ``data`` carries, and the addresses it was delivered to (VERP candidates)."""
    message = parse_bytes(data) if isinstance(data, bytes) else data
    if is_arf(message):
        events = read_arf(message)
    elif is_dsn(message):
        events = read_dsn(message)
    elif is_auto_reply(message):
        events = _auto_reply(message)
    else:
        # flufl.bounce's detectors expect str headers: 8-bit ones would be Header objects.
        ascii_only = (
            data.decode("ascii", "replace").encode("ascii", "replace") if isinstance(data, bytes) else None
        )
        events = read_other_bounce(parse_bytes(ascii_only) if ascii_only is not None else message)
    return events, _delivered_to(message, envelope_recipients)
