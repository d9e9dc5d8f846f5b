"""Auto-replies ("out of office", vacation notices): recognised so that they are never bounces.

Owns one question, ``is_auto_reply(message)``: RFC 3834's ``Auto-Submitted: auto-replied``,
the common ``X-Autoreply``/``X-Autorespond``/``X-Auto-Response-Suppress``-era markers,
``Precedence: auto_reply``, and the subjects mail programs use in English, Russian and a few
other languages. DSNs also carry ``Auto-Submitted``, so ``parsing`` asks this only of
messages that are neither a DSN nor an ARF report.
"""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from email.message import Message

_SUBJECTS = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|auto:|out of (the )?office|away from (the )?office|"
    r"on vacation|vacation (reply|notice)|abwesenheit|r[ée]ponse automatique|absence|"
    r"автоответ|автоматический ответ|вне офиса|в отпуске|отсутствую)",
    re.IGNORECASE,
)
_MARKERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Vacation")


def header_text(message: Message, name: str) -> str:
    """A header's text: RFC 2047 words decoded, raw UTF-8 (which some auto-responders send) too."""
    raw = next((str(value) for key, value in message.raw_items() if key.lower() == name.lower()), "")
    raw = raw.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    try:
        return " ".join(str(make_header(decode_header(raw))).split())
    except (UnicodeError, LookupError, ValueError):
        return " ".join(raw.split())


def is_auto_reply(message: Message) -> bool:
    auto_submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    if auto_submitted.startswith("auto-replied"):
        return True
    if any(message.get(name) for name in _MARKERS):
        return True
    if str(message.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    if str(message.get("X-Precedence", "")).strip().lower() == "auto_reply":
        return True
    return bool(_SUBJECTS.match(header_text(message, "Subject")))
