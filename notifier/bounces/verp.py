"""VERP return paths: the envelope sender of each e-mail names its outbox row, signed.

``return_path(secret, 42, "bounces", "bounces.example.com")`` gives
``bounces+42-<signature>@bounces.example.com``. A bounce sent back to that address names
the message and so the subscriber, without guessing from the bounce's text. The signature
is an HMAC of the row id (a key derived from the instance secret, 80 bits, base32 in lower
case): mail systems may change the case of local parts, and nobody can make up an address
that points at another row. This module only builds and reads addresses; what a bounce
means is ``parsing``'s business, what it does is ``suppression``'s.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_SIGNATURE_BYTES = 10  # 16 base32 characters, no padding
_TAIL = re.compile(r"(\d{1,18})-([a-z2-7]{16})")


def _signature(secret: bytes, message_id: int) -> str:
    key = hmac.new(secret, b"notifier:verp-return-path", hashlib.sha256).digest()
    mac = hmac.new(key, str(message_id).encode("ascii"), hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    return base64.b32encode(mac).decode("ascii").lower()


def return_path(secret: bytes, message_id: int, local: str, domain: str) -> str:
    """The envelope sender (``MAIL FROM``) for outbox row ``message_id``."""
    if message_id < 0:
        raise ValueError("an outbox row id is not negative")
    return f"{local.lower()}+{message_id}-{_signature(secret, message_id)}@{domain.lower()}"


def parse(secret: bytes, address: str, local: str, domain: str) -> int | None:
    """The outbox row id a VERP address names, or None when it is not one of ours or forged."""
    address = address.strip().strip("<>").strip().lower()
    mailbox, at, host = address.rpartition("@")
    if not at or host != domain.lower():
        return None
    mailbox = mailbox.strip('"')
    prefix = local.lower() + "+"
    if not mailbox.startswith(prefix):
        return None
    match = _TAIL.fullmatch(mailbox[len(prefix) :])
    if match is None:
        return None
    message_id = int(match.group(1))
    if not hmac.compare_digest(match.group(2), _signature(secret, message_id)):
        return None
    return message_id
