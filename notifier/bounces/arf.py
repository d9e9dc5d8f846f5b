"""Complaint reports: RFC 5965 Abuse Reporting Format (``report-type=feedback-report``).

Owns reading a mailbox provider's feedback-loop report into a complaint ``BounceEvent``:
the complainer (``Original-Rcpt-To``, else the returned original's To), the
``Original-Mail-From`` (our VERP return path, when the provider keeps it) and the
original's Message-ID. ``Feedback-Type: abuse``, ``fraud``, ``virus`` and ``other`` are
complaints; ``not-spam`` and ``auth-failure`` (DMARC/DKIM failure reports) are not.
"""

from __future__ import annotations

from email.message import Message
from email.utils import getaddresses

from notifier.bounces.dsn import original_headers
from notifier.bounces.events import BounceEvent

COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})


def is_arf(message: Message) -> bool:
    return (
        message.get_content_type() == "multipart/report"
        and (message.get_param("report-type") or "").lower() == "feedback-report"
    )


def _report_fields(message: Message) -> Message | None:
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            from email.parser import HeaderParser

            text = part.get_payload(decode=True) or b""
            return HeaderParser().parsestr(text.decode("utf-8", "replace"))
    return None


def _first_address(value: str | None) -> str:
    found = [address for _, address in getaddresses([str(value or "")]) if "@" in address]
    return found[0].strip().lower() if found else ""


def read_arf(message: Message) -> list[BounceEvent]:
    """A complaint event, or nothing for a report that is not a complaint."""
    fields = _report_fields(message)
    if fields is None:
        return []
    feedback_type = str(fields.get("Feedback-Type", "")).strip().lower()
    if feedback_type not in COMPLAINT_TYPES:
        return []
    original = original_headers(message)
    recipient = _first_address(fields.get("Original-Rcpt-To"))
    if not recipient and original is not None:
        recipient = _first_address(original.get("To"))
    agent = " ".join(str(fields.get("User-Agent", "")).split())
    return [
        BounceEvent(
            kind="complaint", recipient=recipient, code=feedback_type,
            detail=f"ARF {feedback_type} report" + (f" from {agent}" if agent else ""),
            original_message_id=str(original.get("Message-ID", "")).strip() if original is not None else "",
            return_path=_first_address(fields.get("Original-Mail-From")),
        )
    ]  # fmt: skip
