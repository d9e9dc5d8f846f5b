"""Signed unsubscribe tokens: ``{subscriber_id}.{mac}``, where mac is the first 128 bits of
HMAC-SHA256 over a purpose label and the id, in unpadded base64url.

Owns making and checking tokens and the unsubscribe URL's shape. It does not know where
the secret comes from (``Config.secret()``) nor what unsubscribing does (the web layer).
The purpose label keeps a token signed for one use from being accepted for another.
Tokens never expire: an unsubscribe link in a year-old letter must still work.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["make_token", "unsubscribe_url", "verify_token"]

UNSUBSCRIBE = "unsubscribe"
_MAC_BYTES = 16
_MAX_TOKEN = 64  # far longer than any real token; refuse junk before doing any work


_KEYED: dict[bytes, hmac.HMAC] = {}  # secret -> HMAC with the key already set up (copied per token)


def _mac(secret: bytes, purpose: str, subscriber_id: int) -> str:
    if not secret:
        raise ValueError("the signing secret must not be empty")
    keyed = _KEYED.get(secret)
    if keyed is None:
        if len(_KEYED) > 8:
            _KEYED.clear()
        keyed = _KEYED[secret] = hmac.new(secret, digestmod=hashlib.sha256)
    mac = keyed.copy()  # a mailing signs one link per letter: set the key up once, not each time
    mac.update(f"notifier:{purpose}:{subscriber_id}".encode())
    return base64.urlsafe_b64encode(mac.digest()[:_MAC_BYTES]).rstrip(b"=").decode("ascii")


def make_token(secret: bytes, subscriber_id: int, *, purpose: str = UNSUBSCRIBE) -> str:
    """A URL-safe token that proves ``subscriber_id`` was chosen by whoever holds ``secret``."""
    if isinstance(subscriber_id, bool) or not isinstance(subscriber_id, int) or subscriber_id < 0:
        raise ValueError(f"a subscriber id must be a non-negative integer, not {subscriber_id!r}")
    return f"{subscriber_id}.{_mac(secret, purpose, subscriber_id)}"


def verify_token(secret: bytes, token: str, *, purpose: str = UNSUBSCRIBE) -> int | None:
    """The subscriber id a genuine token carries; None for anything forged, cut or mangled."""
    if not isinstance(token, str) or len(token) > _MAX_TOKEN:
        return None
    digits, dot, _ = token.partition(".")
    # Only the canonical spelling of the id (no sign, no leading zeros, ASCII digits).
    if not dot or not digits.isascii() or not digits.isdigit() or (len(digits) > 1 and digits[0] == "0"):
        return None
    subscriber_id = int(digits)
    expected = make_token(secret, subscriber_id, purpose=purpose)
    if hmac.compare_digest(expected.encode("ascii"), token.encode("utf-8")):
        return subscriber_id
    return None


def unsubscribe_url(base_url: str, token: str) -> str:
    """``{base_url}/unsubscribe/{token}`` (the public base URL from ``[notifier]``)."""
    return f"{base_url.rstrip('/')}/unsubscribe/{token}"
