"""Delivery status notifications: RFC 3464 reports, and the non-standard bounces flufl.bounce knows.

Owns turning a bounce message into ``BounceEvent``s: per recipient of a
``multipart/report; report-type=delivery-status``, ``Action: failed`` with a 5.x.x status is
a hard bounce, ``failed`` with 4.x.x (given up after retries) and ``delayed`` are soft ones;
``delivered``, ``relayed`` and ``expanded`` are not bounces. The Status and Diagnostic-Code
are kept. Bounces in other formats (Exim, qmail, Exchange, …) go through ``flufl.bounce``,
which knows the addresses but no status codes. It does not decide what a bounce does
(``suppression``) nor which message it is about (``matching``).
"""

from __future__ import annotations

import re
from email.message import Message

from flufl.bounce import all_failures

from notifier.bounces.events import BounceEvent

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_MAX_DETAIL = 500


def is_dsn(message: Message) -> bool:
    return (
        message.get_content_type() == "multipart/report"
        and (message.get_param("report-type") or "").lower() == "delivery-status"
    )


def _address(field: str | None) -> str:
    """``rfc822; <Bob@Example.org>`` -> ``bob@example.org``."""
    if not field:
        return ""
    value = field.split(";", 1)[1] if ";" in field else field
    return value.strip().strip("<>").strip().lower()


def _one_line(text: str | None) -> str:
    return " ".join(str(text or "").split())[:_MAX_DETAIL]


def original_headers(message: Message) -> Message | None:
    """The returned original (message/rfc822 or text/rfc822-headers part), headers at least."""
    from email.parser import HeaderParser

    for part in message.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers"):
            payload = part.get_payload(decode=True) or b""
            return HeaderParser().parsestr(payload.decode("utf-8", "replace"))
    return None


def _recipient_blocks(message: Message) -> list[Message]:
    for part in message.walk():
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
            blocks = part.get_payload()
            if isinstance(blocks, list):
                return [block for block in blocks[1:] if isinstance(block, Message)]
    return []


def _kind(action: str, status: str) -> str | None:
    if action == "delayed":
        return "soft_bounce"
    if action != "failed":
        return None  # delivered, relayed, expanded: good news
    return "hard_bounce" if status.startswith("5") else "soft_bounce"


def read_dsn(message: Message) -> list[BounceEvent]:
    """The events of an RFC 3464 report, one per failed or delayed recipient."""
    original = original_headers(message)
    message_id = str(original.get("Message-ID", "")).strip() if original is not None else ""
    events = []
    for block in _recipient_blocks(message):
        action = str(block.get("Action", "")).strip().lower()
        found = _STATUS.search(str(block.get("Status", "")))
        status = ".".join(found.groups()) if found else ""
        kind = _kind(action, status or "5")
        if kind is None:
            continue
        recipient = _address(block.get("Final-Recipient")) or _address(block.get("Original-Recipient"))
        detail = _one_line(block.get("Diagnostic-Code")) or f"Action: {action}"
        events.append(
            BounceEvent(
                kind=kind, recipient=recipient, code=status, detail=detail, original_message_id=message_id
            )  # type: ignore[arg-type]
        )
    return events


def read_other_bounce(message: Message) -> list[BounceEvent]:
    """A non-standard bounce, through flufl.bounce's detectors (addresses, no codes)."""
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # noqa: BLE001 - a detector choking on odd input means "not recognised"
        return []
    original = original_headers(message)
    message_id = str(original.get("Message-ID", "")).strip() if original is not None else ""
    detail = _one_line(message.get("Subject")) or "bounce recognised by flufl.bounce"
    events = []
    for kind, addresses in (("hard_bounce", permanent), ("soft_bounce", set(temporary) - set(permanent))):
        for raw in sorted(addresses):
            address = (
                (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)).strip("<>").lower()
            )
            events.append(
                BounceEvent(kind=kind, recipient=address, detail=detail, original_message_id=message_id)
            )  # type: ignore[arg-type]
    return events
