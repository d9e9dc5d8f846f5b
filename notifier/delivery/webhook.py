"""The webhook messenger: POST a message as JSON to a URL (an IVR/TTS system, a team chat)
with httpx, and the classification of every answer into a :class:`~notifier.delivery.SendOutcome`.

Owns everything HTTP about delivery and the JSON a hotline webhook receives
(:func:`webhook_payload`: the rendered subject and text with the message's facts). Same
interface as every messenger: ``async with WebhookMessenger() as m: await m.push(message)``.
What an answer means:

- 2xx: ``sent``;
- 408, 425, 429, 5xx, a refused connection, a timeout, a dropped connection: ``transient``
  (retried with back-off like e-mail; a timeout after the body was written is ``ambiguous``);
- any other 4xx, a 3xx (redirects are not followed: configure the final URL), a URL that is
  not http(s): ``permanent_message`` (this message fails; nobody is marked bounced).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from notifier.delivery import OutgoingMessage, SendOutcome
from notifier.delivery.ratelimit import RateLimiter

__all__ = ["WebhookMessenger", "webhook_payload"]

TRANSIENT_CODES = frozenset({408, 425, 429})
_USER_AGENT = "notifier-webhook/0.1"


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class WebhookMessenger:
    """POSTs each message as JSON; ``rate_limit`` posts per second (0 = unlimited)."""

    channel = "webhook"

    def __init__(self, timeout: float = 10, rate_limit: float = 0, *, concurrency: int = 4, sender: str = "") -> None:
        self.timeout = timeout
        self.concurrency = concurrency
        self.sender = sender
        self.limiter = RateLimiter(rate_limit)
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout or None),
                follow_redirects=False,
                headers={"User-Agent": _USER_AGENT},
                trust_env=False,  # a proxy from the environment must not see internal announcements
            )

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> WebhookMessenger:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def interrupt(self) -> None:
        """Nothing waits here for reasons of its own: a push is one POST."""

    async def push(self, message: OutgoingMessage) -> SendOutcome:
        """POST the message's JSON (:func:`webhook_payload`) to its recipient URL."""
        body = webhook_payload(message.kind, message.subject, message.text, message.facts)
        return await self.send(self.sender, message.recipient, body)

    async def send(self, sender: str, recipient: str, data: bytes) -> SendOutcome:
        """POST ``data`` (JSON) to the URL ``recipient``; ``sender`` is only sent as a header."""
        if self._client is None:
            raise RuntimeError("WebhookMessenger.send() before start() (or after close())")
        if not recipient.startswith(("http://", "https://")):
            return SendOutcome("permanent_message", f"{recipient!r} is not an http:// or https:// URL")
        await self.limiter.acquire()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if sender:
            headers["X-Notifier-Sender"] = _one_line(sender, 100)
        try:
            response = await self._client.post(recipient, content=data, headers=headers)
        except httpx.TimeoutException as exc:
            # Once the request is out, the receiver may have acted on it: a retry may duplicate.
            written = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            return SendOutcome("transient", f"timed out ({type(exc).__name__}) posting to {recipient}",
                               ambiguous=written)  # fmt: skip
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return SendOutcome("permanent_message", f"cannot post to {recipient}: {exc}")
        except httpx.TransportError as exc:
            written = isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError)
            return SendOutcome("transient", f"{type(exc).__name__} posting to {recipient}: {exc}"[:300],
                               ambiguous=written)  # fmt: skip
        return classify(response)


def classify(response: httpx.Response) -> SendOutcome:
    """What an HTTP answer means for the message (see the module docstring)."""
    code = response.status_code
    detail = f"{code} {response.reason_phrase}".strip()
    body = _one_line(response.text) if response.content else ""
    if body:
        detail += f": {body}"
    if 200 <= code < 300:
        return SendOutcome("sent", detail, code)
    if code in TRANSIENT_CODES or code >= 500:
        retry_after = response.headers.get("Retry-After")
        suffix = f" (Retry-After: {retry_after})" if retry_after else ""
        return SendOutcome("transient", detail + suffix, code)
    if 300 <= code < 400:
        where = response.headers.get("Location", "elsewhere")
        return SendOutcome("permanent_message", f"{detail} (redirects to {where}; configure that URL)", code)
    return SendOutcome("permanent_message", detail, code)


def webhook_payload(kind: str, subject: str, text: str, facts: Mapping[str, Any]) -> bytes:
    """The JSON a hotline webhook receives: the rendered text, and the facts behind it as data
    (incident, title, status, severity, regions, services, updated_at, update, callback)."""
    data = {"kind": kind, "subject": subject, "text": text, **facts}
    return json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
