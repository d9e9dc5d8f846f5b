"""The webhook transport: POST a JSON body to a URL (an IVR/TTS system, a team chat) with httpx,
and the classification of every answer into a :class:`~notifier.delivery.SendOutcome`.

Owns everything HTTP (it is the only module that imports httpx for delivery) and the JSON
a hotline webhook receives (:func:`webhook_payload`). Same interface as ``SmtpTransport``:
``async with WebhookTransport() as t: outcome = await t.send(sender, url, body)``. What an
answer means:

- 2xx: ``sent``;
- 408, 425, 429, 5xx, a refused connection, a timeout, a dropped connection: ``transient``
  (retried with back-off like e-mail; a timeout after the body was written is ``ambiguous``);
- any other 4xx, a 3xx (redirects are not followed: configure the final URL), a URL that is
  not http(s): ``permanent_message`` (this message fails; nobody is marked bounced).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx

from notifier.delivery import SendOutcome
from notifier.delivery.ratelimit import RateLimiter
from notifier.models import Callback, Incident, Update

__all__ = ["WebhookTransport", "webhook_payload"]

TRANSIENT_CODES = frozenset({408, 425, 429})
_USER_AGENT = "notifier-webhook/0.1"


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class WebhookTransport:
    """POSTs pre-built JSON bodies; ``rate_limit`` posts per second (0 = unlimited)."""

    def __init__(self, timeout: float = 10, rate_limit: float = 0) -> None:
        self.timeout = timeout
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

    async def __aenter__(self) -> WebhookTransport:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def send(self, sender: str, recipient: str, data: bytes) -> SendOutcome:
        """POST ``data`` (JSON) to the URL ``recipient``; ``sender`` is only sent as a header."""
        if self._client is None:
            raise RuntimeError("WebhookTransport.send() before start() (or after close())")
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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def webhook_payload(
    kind: str,
    incident: Incident | None,
    rendered: Any,
    update: Update | None,
    callback: Callback | None = None,
) -> bytes:
    """The JSON a hotline webhook receives: the rendered text, and the incident as data.

    ``rendered`` is a ``rendering.Rendered`` (its ``subject`` and ``text`` are used).
    """
    data: dict[str, Any] = {
        "kind": kind,
        "subject": rendered.subject,
        "text": rendered.text,
        "incident": incident.ref if incident else None,
        "title": incident.title if incident else None,
        "status": incident.status if incident else None,
        "severity": incident.severity if incident else None,
        "regions": list(incident.regions) if incident else [],
        "services": list(incident.services) if incident else [],
        "updated_at": _iso(update.created_at if update else incident.updated_at if incident else None),
    }
    if update is not None:
        data["update"] = {"status": update.status, "message": update.message, "at": _iso(update.created_at)}
    if callback is not None:
        data["callback"] = {"id": callback.id, "due_at": _iso(callback.due_at), "owner": callback.owner,
                            "escalations": callback.escalations, "done": callback.done_at is not None}  # fmt: skip
    return json.dumps(data, ensure_ascii=False).encode("utf-8")
