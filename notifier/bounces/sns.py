"""Amazon SES bounce and complaint events, delivered by Amazon SNS to an HTTPS endpoint.

Owns verifying an SNS message as AWS documents it and turning SES's events into
``BounceEvent``s:

* the ``SigningCertURL`` must be ``https://sns.<region>.amazonaws.com[.cn]/….pem``; the
  certificate is fetched (httpx, or the ``fetch`` given: tests serve their own) and cached;
* the signature (``SignatureVersion`` 1: SHA1withRSA, 2: SHA256withRSA) is checked over
  the documented string to sign, with the certificate's public key, within its validity;
* only topics listed in ``[bounces].ses_topic_arns`` are accepted (anybody can make an SNS
  topic, and SNS would sign their messages too);
* a ``SubscriptionConfirmation`` is confirmed by fetching its ``SubscribeURL`` (same host rule).

SES notifications (``notificationType``) and event publishing (``eventType``) both work:
``Bounce`` Permanent → hard, Transient/Undetermined → soft; ``Complaint`` → complaint.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from notifier.bounces.events import BounceEvent
from notifier.errors import NotifierError

_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
_CACHE_SIZE = 50

Fetch = Callable[[str], bytes]


class SnsRejected(NotifierError):
    """An SNS message that is forged or from a topic we do not take (HTTP 403)."""

    status = 403


class SnsMalformed(SnsRejected):
    """A request body that is not an SNS message at all (HTTP 400)."""

    status = 400


def check_sns_url(url: str, what: str = "SigningCertURL") -> str:
    """``url`` if it is https on an ``sns.<region>.amazonaws.com`` host; SnsRejected otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not _HOST.fullmatch(parts.hostname or "") or parts.port not in (None, 443):
        raise SnsRejected(f"{what} {url!r} is not an https URL on an sns.<region>.amazonaws.com host")
    if what == "SigningCertURL" and not parts.path.endswith(".pem"):
        raise SnsRejected(f"{what} {url!r} does not name a .pem certificate")
    return url


def fetch_https(url: str) -> bytes:
    import httpx

    response = httpx.get(url, timeout=10.0, follow_redirects=False)
    response.raise_for_status()
    return response.content


def string_to_sign(message: dict[str, Any]) -> bytes:
    """The documented string: ``name\\nvalue\\n`` for each signed field present, in order."""
    fields = _NOTIFICATION_FIELDS if message.get("Type") == "Notification" else _CONFIRMATION_FIELDS
    return "".join(f"{name}\n{message[name]}\n" for name in fields if message.get(name) is not None).encode()


class SnsVerifier:
    """Verifies SNS messages; certificates are fetched once per URL (``fetch`` is injectable)."""

    def __init__(self, topics: list[str], fetch: Fetch = fetch_https) -> None:
        self.topics, self.fetch = set(topics), fetch
        self._certificates: dict[str, x509.Certificate] = {}
        self._lock = threading.Lock()

    def certificate(self, url: str) -> x509.Certificate:
        check_sns_url(url)
        with self._lock:
            cached = self._certificates.get(url)
        if cached is not None:
            return cached
        try:
            certificate = x509.load_pem_x509_certificate(self.fetch(url))
        except Exception as exc:  # noqa: BLE001 - unreachable, not found or not a certificate: all rejections
            raise SnsRejected(f"the signing certificate at {url} could not be had: {exc}") from None
        with self._lock:
            if len(self._certificates) >= _CACHE_SIZE:
                self._certificates.pop(next(iter(self._certificates)))
            self._certificates[url] = certificate
        return certificate

    def verify(self, message: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
        """``message`` if it is genuine and from one of our topics; SnsRejected otherwise."""
        if message.get("TopicArn") not in self.topics:
            raise SnsRejected(f"topic {message.get('TopicArn')!r} is not in [bounces].ses_topic_arns")
        algorithm = _HASHES.get(str(message.get("SignatureVersion")))
        if algorithm is None:
            raise SnsRejected(f"unknown SignatureVersion {message.get('SignatureVersion')!r}")
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        except ValueError:
            raise SnsRejected("the Signature is not base64") from None
        certificate = self.certificate(str(message.get("SigningCertURL", "")))
        now = now or datetime.now(UTC)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise SnsRejected("the signing certificate is not valid now")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SnsRejected("the signing certificate does not hold an RSA key")
        try:
            key.verify(signature, string_to_sign(message), padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise SnsRejected("the SNS signature does not match the message") from None
        return message

    def confirm(self, message: dict[str, Any]) -> None:
        """Confirm a (verified) subscription by visiting its SubscribeURL."""
        try:
            self.fetch(check_sns_url(str(message.get("SubscribeURL", "")), "SubscribeURL"))
        except SnsRejected:
            raise
        except Exception as exc:  # noqa: BLE001
            raise SnsRejected(f"the subscription could not be confirmed: {exc}") from None


def _message_id(mail: dict[str, Any]) -> str:
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
            return str(header.get("value", ""))
    return str((mail.get("commonHeaders") or {}).get("messageId", ""))


def ses_events(notification: dict[str, Any]) -> list[BounceEvent]:
    """The events of one SES notification (the JSON in an SNS ``Message``)."""
    kind = notification.get("notificationType") or notification.get("eventType")
    message_id = _message_id(notification.get("mail") or {})
    events: list[BounceEvent] = []
    if kind == "Bounce":
        bounce = notification.get("bounce") or {}
        hard = bounce.get("bounceType") == "Permanent"
        for rcpt in bounce.get("bouncedRecipients") or []:
            events.append(BounceEvent(
                kind="hard_bounce" if hard else "soft_bounce", recipient=str(rcpt.get("emailAddress", "")).lower(),
                code=str(rcpt.get("status") or bounce.get("bounceSubType") or ""),
                detail=" ".join(str(rcpt.get("diagnosticCode") or f"SES {bounce.get('bounceType')} bounce").split()),
                original_message_id=message_id,
            ))  # fmt: skip
    elif kind == "Complaint":
        complaint = notification.get("complaint") or {}
        feedback = str(complaint.get("complaintFeedbackType") or "abuse")
        for rcpt in complaint.get("complainedRecipients") or []:
            events.append(BounceEvent(
                kind="complaint", recipient=str(rcpt.get("emailAddress", "")).lower(), code=feedback,
                detail=f"SES complaint ({feedback})", original_message_id=message_id,
            ))  # fmt: skip
    return events


def read_notification(body: bytes, verifier: SnsVerifier) -> tuple[str, list[BounceEvent]]:
    """(SNS message type, events) of one verified request body; a confirmation is confirmed."""
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise SnsMalformed("the body is not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("Type"), str):
        raise SnsMalformed("not an SNS message (no Type)")
    verifier.verify(message)
    kind = message["Type"]
    if kind == "SubscriptionConfirmation":
        verifier.confirm(message)
        return kind, []
    if kind != "Notification":
        return kind, []
    try:
        notification = json.loads(str(message.get("Message", "")))
    except ValueError:
        raise SnsMalformed("the SNS Message is not an SES notification (not JSON)") from None
    return kind, ses_events(notification) if isinstance(notification, dict) else []
