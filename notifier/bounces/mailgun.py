"""Mailgun's event webhooks: failed deliveries and complaints, authenticated with the signing key.

Owns checking Mailgun's signature as documented — HMAC-SHA256 of ``timestamp + token``
with the webhook signing key (from the environment variable
``[bounces].mailgun_signing_key_env`` names), compared in constant time — refusing
timestamps more than ``MAX_AGE`` away from now and tokens already seen (a replayed request),
and turning the ``event-data`` into ``BounceEvent``s: ``failed`` with ``severity``
permanent → hard bounce, temporary → soft; ``complained`` → complaint. Other events are
accepted and ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from typing import Any

from notifier.bounces.events import BounceEvent
from notifier.errors import NotifierError

MAX_AGE = 15 * 60  # seconds
_SEEN_TOKENS = 10_000


class MailgunRejected(NotifierError):
    """A Mailgun request whose signature is missing, wrong, stale or replayed (HTTP 403)."""

    status = 403


class MailgunMalformed(MailgunRejected):
    """A request body that is not a Mailgun webhook at all (HTTP 400)."""

    status = 400


class MailgunVerifier:
    def __init__(self, signing_key: str, clock: Any = time.time) -> None:
        self.key, self.clock = signing_key.encode(), clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, signature: Any) -> None:
        if not isinstance(signature, dict):
            raise MailgunRejected("no signature object")
        timestamp, token, given = (str(signature.get(k, "")) for k in ("timestamp", "token", "signature"))
        if not (timestamp.isdigit() and token and given):
            raise MailgunRejected("the signature needs a timestamp, a token and a signature")
        expected = hmac.new(self.key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given.lower()):
            raise MailgunRejected("the signature does not match (check the webhook signing key)")
        if abs(self.clock() - int(timestamp)) > MAX_AGE:
            raise MailgunRejected("the signature's timestamp is too far from now")
        with self._lock:
            if token in self._seen:
                raise MailgunRejected("this request was already received (token replayed)")
            self._seen[token] = float(timestamp)
            while len(self._seen) > _SEEN_TOKENS:
                self._seen.popitem(last=False)


def _events(data: dict[str, Any]) -> list[BounceEvent]:
    event, recipient = data.get("event"), str(data.get("recipient", "")).strip().lower()
    headers = (data.get("message") or {}).get("headers") or {}
    message_id = str(headers.get("message-id", "")).strip()
    if message_id and not message_id.startswith("<"):
        message_id = f"<{message_id}>"
    status = data.get("delivery-status") or {}
    if event == "failed":
        hard = data.get("severity") == "permanent"
        code = str(status.get("enhanced-code") or status.get("code") or data.get("reason") or "")
        detail = " ".join(
            str(status.get("description") or status.get("message") or data.get("reason") or "").split()
        )
        return [BounceEvent(kind="hard_bounce" if hard else "soft_bounce", recipient=recipient, code=code,
                            detail=detail or f"Mailgun {data.get('severity')} failure", original_message_id=message_id)]  # fmt: skip
    if event == "complained":
        return [BounceEvent(kind="complaint", recipient=recipient, code="abuse", detail="Mailgun complaint",
                            original_message_id=message_id)]  # fmt: skip
    return []


def read_webhook(body: bytes, verifier: MailgunVerifier) -> list[BounceEvent]:
    """The events of one verified Mailgun webhook request body (JSON)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MailgunMalformed("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise MailgunMalformed("the body is not a Mailgun webhook object")
    verifier.verify(payload.get("signature"))
    data = payload.get("event-data")
    return _events(data) if isinstance(data, dict) else []
