"""The SMS messenger: each message as one request to an HTTP SMS gateway, with httpx, under
the gateway's rate limit, and what the gateway's answers and delivery reports mean.

Owns the two gateway shapes and nothing about who gets an SMS (``outbox.sms``) or what it
says (``rendering``):

- **Kannel** (``[sms.kannel]``): smsbox's ``GET /cgi-bin/sendsms`` with ``username``,
  ``password``, ``to``, ``text`` in UTF-8 (``charset=UTF-8``; ``coding=2``, UCS-2, as soon as
  a character is outside GSM-7, e.g. any Cyrillic letter), ``from``, ``dlr-mask`` and a
  ``dlr-url`` back to ``notifier serve`` carrying a per-message signed token and Kannel's
  ``%d`` (report type) and ``%A`` (the SMSC's answer);
- **a described HTTP API** (``[sms.http]``): a JSON or form POST whose fields are filled
  from ``{to}``, ``{text}``, ``{sender}``, ``{report_url}``, ``{id}``, ``{coding}``, the token
  (from an environment variable) in a header; its delivery reports read by field names.

What an answer means: 2xx ``sent`` (the gateway accepted it; its delivery reports say the
rest); a refused number (Kannel's 403 "Not routable", a blacklisted number, the API's
``refused_statuses``) ``permanent``: the number itself is refused, and marked bad
(``subscriber.phone_refused``, logged like a hard bounce) when the outcome is recorded, as
when a delivery report says so later (``outbox.reports``); other refusals
``permanent_message``; 408/425/429/5xx, a refused connection, a
timeout ``transient`` (a timeout after the request was written is ``ambiguous``); Kannel's
"Authorization failed", the API's 401/403 a ``DeliveryError``: every message would fail.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from notifier import segments, tokens
from notifier.config import Config, HttpSmsApi, KannelGateway, SmsSection
from notifier.delivery import OutgoingMessage, SendOutcome
from notifier.delivery.ratelimit import RateLimiter
from notifier.errors import DeliveryError

__all__ = ["GatewayReport", "HttpApi", "Kannel", "SmsMessenger", "read_report", "report_token", "sms_messenger"]

REPORT_PURPOSE = "sms-report"
Outcome = Literal["accepted", "delivered", "failed", "expired", "refused", "retry"]
_TRANSIENT = frozenset({408, 425, 429})
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
# What a Kannel report's SMSC answer (%A) says about the number: an SMSC that will not take
# it at all (no route, SMPP 0x0B invalid destination) or a network that rejected it.
_KANNEL_REFUSED = re.compile(r"no SMSC|0x0000000b|Invalid Dest|stat:REJECTD", re.IGNORECASE)


@dataclass(frozen=True)
class GatewayReport:
    """One delivery report, in our words: ``accepted`` (on its way: buffered, taken by the
    SMSC), ``delivered``, ``failed``, ``expired``, ``refused`` (the number is bad) or ``retry``
    (the SMSC refused it for now); ``code`` is the gateway's own (Kannel: ``type/answer``)."""

    outcome: Outcome
    code: str
    detail: str = ""


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def report_token(secret: bytes, message_id: int) -> str:
    return tokens.make_token(secret, message_id, purpose=REPORT_PURPOSE)


def report_message_id(secret: bytes, token: str) -> int | None:
    """The outbox row a genuine report token names; None for a forged one."""
    return tokens.verify_token(secret, token, purpose=REPORT_PURPOSE)


# Kannel ---------------------------------------------------------------------------------


class Kannel:
    """Kannel's smsbox sendsms interface and its dlr-url callbacks."""

    name = "Kannel"
    report_query = "?type=%d&answer=%A"  # Kannel fills these in when it calls the dlr-url

    def __init__(self, section: KannelGateway, password: str, sender: str) -> None:
        self.section, self.password, self.sender = section, password, sender

    def request(self, client: httpx.AsyncClient, message: OutgoingMessage, coding: str, report_url: str) -> Any:
        params = {"username": self.section.username, "password": self.password, "to": message.recipient,
                  "text": message.text, "charset": "UTF-8", "dlr-mask": str(self.section.dlr_mask),
                  "dlr-url": report_url}  # fmt: skip
        if coding == segments.UCS2:
            params["coding"] = "2"
        if self.sender:
            params["from"] = self.sender
        if self.section.smsc:
            params["smsc"] = self.section.smsc
        return client.get(self.section.url, params=params)

    def classify(self, response: httpx.Response) -> SendOutcome:
        code, body = response.status_code, _one_line(response.text)
        detail = f"{code} {body}".strip()
        if 200 <= code < 300:
            return SendOutcome("sent", detail, code)
        if "Authorization failed" in body:
            raise DeliveryError(f"Kannel refused the sendsms user {self.section.username!r} ({body}): check "
                                f"[sms.kannel].username and the password in {self.section.password_env}")  # fmt: skip
        if "Sender missing" in body:
            raise DeliveryError(f"Kannel wants a sender ({body}): set [sms].sender, or global-sender in kannel.conf")
        if code in _TRANSIENT or code >= 500:
            return SendOutcome("transient", detail, code)
        if code == 403:
            return SendOutcome("permanent", f"number refused by the gateway: {detail}", code)
        return SendOutcome("permanent_message", detail, code)

    @staticmethod
    def read(params: Mapping[str, str]) -> GatewayReport:
        """A dlr-url callback: ``type`` 1 delivered, 2 failed, 4 buffered, 8 taken by the SMSC,
        16 refused by the SMSC; ``answer`` the SMSC's words (``NACK/no SMSC``, ``stat:EXPIRED``)."""
        kind, answer = params.get("type", "").strip(), _one_line(params.get("answer", ""), 300)
        code = f"{kind}/{answer}" if answer else kind
        refused = bool(_KANNEL_REFUSED.search(answer))
        if kind == "1":
            return GatewayReport("delivered", code)
        if kind == "2":
            outcome: Outcome = "expired" if "EXPIRED" in answer.upper() else "refused" if refused else "failed"
            return GatewayReport(outcome, code, answer)
        if kind == "16":
            return GatewayReport("refused" if refused else "retry", code, answer)
        if kind in ("4", "8"):
            return GatewayReport("accepted", code, answer)
        raise ValueError(f"not a Kannel delivery report type: {kind!r}")


# A described HTTP API ---------------------------------------------------------------------


def _fill(template: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


class HttpApi:
    """A commercial HTTP SMS API, as ``[sms.http]`` describes it."""

    name = "the SMS API"
    report_query = ""

    def __init__(self, section: HttpSmsApi, token: str, sender: str) -> None:
        self.section, self.token, self.sender = section, token, sender

    def request(self, client: httpx.AsyncClient, message: OutgoingMessage, coding: str, report_url: str) -> Any:
        values = {"to": message.recipient, "text": message.text, "sender": self.sender, "report_url": report_url,
                  "id": str(message.id), "coding": coding}  # fmt: skip
        body = {key: _fill(template, values) for key, template in self.section.fields.items()}
        headers = {}
        if self.token:
            scheme = self.section.auth_scheme.strip()
            headers[self.section.auth_header] = f"{scheme} {self.token}" if scheme else self.token
        if self.section.encoding == "json":
            return client.post(self.section.url, json=body, headers=headers)
        return client.post(self.section.url, data=body, headers=headers)

    def classify(self, response: httpx.Response) -> SendOutcome:
        code = response.status_code
        detail = f"{code} {_one_line(response.text)}".strip()
        if 200 <= code < 300:
            return SendOutcome("sent", detail, code)
        if code in (401, 403):
            raise DeliveryError(f"{self.section.url} refused our credentials ({detail}): check the token in "
                                f"{self.section.token_env or '[sms.http].token_env'}")  # fmt: skip
        if code in self.section.refused_statuses:
            return SendOutcome("permanent", f"number refused by the gateway: {detail}", code)
        if code in _TRANSIENT or code >= 500:
            return SendOutcome("transient", detail, code)
        return SendOutcome("permanent_message", detail, code)

    def read(self, params: Mapping[str, str]) -> GatewayReport:
        status = params.get(self.section.report_status_field, "").strip()
        code = params.get(self.section.report_code_field, "").strip()
        shown = f"{status}/{code}" if code else status
        lowered = status.lower()
        if lowered in (v.lower() for v in self.section.delivered):
            return GatewayReport("delivered", shown)
        if lowered in (v.lower() for v in self.section.expired):
            return GatewayReport("expired", shown)
        if lowered in (v.lower() for v in self.section.failed):
            return GatewayReport("refused" if code and code in self.section.refused_codes else "failed", shown)
        if not status:
            raise ValueError(f"no {self.section.report_status_field!r} in the delivery report")
        return GatewayReport("accepted", shown)


Gateway = Kannel | HttpApi


def gateway_for(config: Config) -> Gateway:
    """The configured gateway, with its secret read from the environment (ConfigError if unset)."""
    sms = config.sms
    if sms.gateway == "http" and sms.http is not None:
        return HttpApi(sms.http, sms.http.token(), sms.sender)
    return Kannel(sms.kannel, sms.kannel.password(), sms.sender)


def read_report(sms: SmsSection, params: Mapping[str, str]) -> GatewayReport:
    """A delivery report as the configured gateway sends it; ValueError when it is not one."""
    if sms.gateway == "http" and sms.http is not None:
        return HttpApi(sms.http, "", sms.sender).read(params)
    return Kannel.read(params)


# The messenger ------------------------------------------------------------------------------


class SmsMessenger:
    """Pushes each message as one gateway request; ``report_url(row)`` is its delivery-report URL."""

    channel = "sms"

    def __init__(
        self, gateway: Gateway, *, report_url: Callable[[int], str], max_segments: int, rate_limit: float = 0,
        concurrency: int = 4, timeout: float = 10,
    ) -> None:  # fmt: skip
        self.gateway, self.report_url, self.max_segments = gateway, report_url, max_segments
        self.concurrency, self.timeout = concurrency, timeout
        self.limiter = RateLimiter(rate_limit)
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout or None), follow_redirects=False, trust_env=False,
                headers={"User-Agent": "notifier-sms/0.1"},
                limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
            )  # fmt: skip

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> SmsMessenger:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def interrupt(self) -> None:
        """Nothing waits here for reasons of its own: a push is one request (after the rate limit)."""

    async def push(self, message: OutgoingMessage) -> SendOutcome:
        if self._client is None:
            raise RuntimeError("SmsMessenger.push() before start() (or after close())")
        text = message.text.strip()
        problem = segments.over_limit(text, self.max_segments)
        if problem:
            return SendOutcome("permanent_message", f"not sent: the text {problem}")
        if not re.fullmatch(r"\+?[0-9]{6,15}", message.recipient):
            return SendOutcome("permanent_message", f"{message.recipient!r} is not a phone number")
        await self.limiter.acquire()
        url = self.report_url(message.id) + self.gateway.report_query
        outgoing = dataclasses.replace(message, text=text)
        try:
            response = await self.gateway.request(self._client, outgoing, segments.count(text).encoding, url)
        except httpx.TimeoutException as exc:
            written = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            return SendOutcome("transient", f"timed out ({type(exc).__name__}) talking to {self.gateway.name}",
                               ambiguous=written)  # fmt: skip
        except httpx.TransportError as exc:
            written = isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError)
            return SendOutcome("transient", f"{type(exc).__name__} talking to {self.gateway.name}: {exc}"[:300],
                               ambiguous=written)  # fmt: skip
        return self.gateway.classify(response)


def sms_messenger(config: Config) -> SmsMessenger | None:
    """The SMS messenger ``[sms]`` describes, or None while SMS is off; its delivery reports
    come back to ``[sms].report_base_url`` (default: the public base URL) at ``/sms/reports/<token>``."""
    sms = config.sms
    if not sms.enabled:
        return None
    secret, base = config.secret(), sms.report_base_url or config.notifier.public_base_url

    def report_url(row: int) -> str:
        return f"{base}/sms/reports/{report_token(secret, row)}"

    return SmsMessenger(
        gateway_for(config), report_url=report_url, max_segments=sms.max_segments, rate_limit=sms.rate_limit,
        concurrency=sms.concurrency, timeout=sms.timeout.total_seconds(),
    )  # fmt: skip
