"""The phone line's decisions: who is calling, what the caller lookup answers, what a key does.

Owns recognising a caller by the number the telephony platform passes (exactly that number:
no name or e-mail search, so a caller learns nothing about anyone else), the answer of the
caller lookup (known or not, region, language, affected or not, what to say, whether a
callback is promised: no name, e-mail or account), logging each lookup as a hotline call
with source ``ivr``, the keypad's "press 1" (a callback through ``hotline.log_call``, due
``[ivr].callback_in`` later, escalated like any other), and the signed call tickets that let
a platform post a key back without the token. It does not build documents or audio.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from notifier import incidents, subscribers
from notifier.config import LOCALES, Config
from notifier.errors import UsageError
from notifier.hotline import CallerInfo, log_call
from notifier.hotline.callers import lookup_phone, open_callbacks_for_phone
from notifier.models import Call, Callback
from notifier.rendering import Renderer
from notifier.voice.phrases import spoken_span
from notifier.voice.speech import Listener, Speech, announcement, reply

SOURCE = "ivr"
TICKET_LIFETIME = 3600  # seconds a document's keypad URL stays good: longer than any call
_TICKET_BYTES = 16


@dataclass(frozen=True)
class Caller:
    """A caller as the line sees them: the number, who it belongs to, what to tell them."""

    phone: str  # E.164; "" when withheld or not a number
    listener: Listener
    accounts: list[CallerInfo] = field(default_factory=list)  # subscribers with exactly this number
    callback: Callback | None = None  # the earliest open callback promised to this number

    @property
    def known(self) -> bool:
        return bool(self.accounts)

    @property
    def affected(self) -> bool:
        return bool(self.listener.affecting)


def check_region(config: Config, region: str | None) -> str | None:
    code = (region or "").strip()
    if not code:
        return None
    if code not in config.regions:
        raise UsageError(f"unknown region {code!r} (known: {', '.join(sorted(config.regions))})")
    return code


def check_locale(config: Config, locale: str | None) -> str:
    if not locale:
        return config.notifier.default_locale
    if locale not in LOCALES:
        raise UsageError(f"locale must be one of {', '.join(LOCALES)}, not {locale!r}")
    return locale


def usable_phone(config: Config, raw: str | None) -> str:
    """``raw`` in E.164, or "" for a withheld, anonymous or malformed caller ID."""
    try:
        return (
            subscribers.normalise_phone((raw or "").strip(), config.notifier.default_country) if raw else ""
        )
    except ValueError:
        return ""


def identify(
    session: Session, config: Config, phone: str, now: datetime, *, region: str | None = None,
    locale: str | None = None,
) -> Caller:  # fmt: skip
    """The caller with E.164 ``phone`` ("" for unknown): a known caller's own region and language
    win over ``region`` and ``locale`` (what the line they dialled is for)."""
    region, locale = check_region(config, region), check_locale(config, locale)
    accounts = lookup_phone(session, config, phone, now) if phone else []
    ids = [info.subscriber.id for info in accounts if info.subscriber.id is not None]
    promised = open_callbacks_for_phone(session, phone, ids)
    callback = promised[0] if promised else None
    callback_in = (callback.due_at - now).total_seconds() if callback else None
    if not accounts:
        return Caller(phone, Listener(locale=locale, region=region, callback_in=callback_in), [], callback)
    primary = next((info for info in accounts if info.affected), accounts[0]).subscriber
    affecting: dict[str, list[str]] = {}
    for info in accounts:
        for impact in (i for i in info.incidents if i.open):
            names = affecting.setdefault(impact.incident, [])
            names += [
                n
                for n in _services_hit(session, config, impact.incident, info, primary.locale)
                if n not in names
            ]
    listener = Listener(locale=primary.locale if primary.locale in LOCALES else locale, region=primary.region,
                        known=True, affecting=affecting, callback_in=callback_in)  # fmt: skip
    return Caller(phone, listener, accounts, callback)


def _services_hit(session: Session, config: Config, ref: str, info: CallerInfo, locale: str) -> list[str]:
    incident = incidents.get(session, ref)
    own = [code for code in info.subscriber.service_list if code in config.services]
    hit = [code for code in own if code in incident.services] if incident.services else own
    return [config.services[code].name.get(locale) for code in hit]


def menu_choices(config: Config) -> tuple[str, ...]:
    """What the keypad offers: always a callback; an operator when ``[ivr].operator_number`` is set."""
    return ("callback", "operator") if config.ivr.operator_number else ("callback",)


def _ivr_call(
    session: Session, config: Config, caller: Caller, note: str, now: datetime, **promise: Any
) -> Call:
    call, _ = log_call(session, config, caller_phone=caller.phone, note=note, by=promise.pop("by", SOURCE),
                       now=now, **promise)  # fmt: skip
    call.source = SOURCE
    session.add(call)
    session.flush()
    return call


def log_lookup(session: Session, config: Config, caller: Caller, now: datetime, what: str) -> Call | None:
    """Record that the line looked ``caller`` up (``what``: "caller lookup", "announcement");
    None for a caller without a usable number (nothing to link the call to)."""
    if not caller.phone:
        return None
    refs = ", ".join(caller.listener.affecting)
    outcome = f"affected by {refs}" if refs else ("known, not affected" if caller.known else "unknown number")
    return _ivr_call(session, config, caller, f"Phone line, {what}: {outcome}", now)


def request_callback(
    session: Session, config: Config, caller: Caller, now: datetime
) -> tuple[str, float | None]:
    """ "Press 1": ``("recorded" | "already" | "overdue" | "no_number", seconds until due)``.

    A number with an open callback gets no second one (the caller hears when the first is due).
    """
    if not caller.phone:
        return "no_number", None
    if caller.callback is not None:
        left = (caller.callback.due_at - now).total_seconds()
        return ("already" if left > 0 else "overdue"), left
    ivr = config.ivr
    _ivr_call(session, config, caller, "Callback requested on the phone line (pressed 1)", now,
              by=ivr.callback_owner, callback_in=ivr.callback_in)  # fmt: skip
    return "recorded", ivr.callback_in.total_seconds()


def summary(config: Config, caller: Caller, text: str, audio_url: str) -> dict[str, Any]:
    """The caller lookup's answer: only what the caller's own number identifies."""
    listener, region = caller.listener, caller.listener.region
    return {
        "known": caller.known, "region": region,
        "region_name": config.regions[region].name.get(listener.locale) if region else None,
        "locale": listener.locale, "affected": caller.affected, "incidents": list(listener.affecting),
        "text": text, "audio_url": audio_url,
        "callback_promised": caller.callback is not None,
        "callback_due_at": caller.callback.due_at.isoformat() if caller.callback else None,
    }  # fmt: skip


# Call tickets ---------------------------------------------------------------------------


def _mac(secret: bytes, phone: str, expires: int) -> str:
    digest = hmac.new(secret, f"notifier:ivr-call:{phone}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:_TICKET_BYTES]).rstrip(b"=").decode("ascii")


def make_ticket(secret: bytes, phone: str, now: datetime) -> dict[str, str]:
    """Query parameters proving we handed ``phone`` to the platform in a document just now."""
    expires = int(now.timestamp()) + TICKET_LIFETIME
    return {"caller": phone, "exp": str(expires), "sig": _mac(secret, phone, expires)}


def check_ticket(secret: bytes, phone: str, expires: str, signature: str, now: datetime) -> bool:
    """True for a ticket ``make_ticket`` made for ``phone`` that has not expired."""
    if not expires.isdigit() or len(expires) > 12 or int(expires) < now.timestamp() or len(signature) > 64:
        return False
    return hmac.compare_digest(_mac(secret, phone, int(expires)).encode(), signature.encode())


def answer(
    session: Session, config: Config, phone: str, now: datetime, *, renderer: Renderer, region: str | None = None,
    locale: str | None = None, menu: bool = True,
) -> tuple[Caller, Speech]:  # fmt: skip
    """The caller with ``phone`` and what the line says to them now, the keypad menu last."""
    caller = identify(session, config, phone, now, region=region, locale=locale)
    choices = menu_choices(config) if menu else ()
    return caller, announcement(session, config, caller.listener, now, renderer=renderer, menu=choices)


def keypad_reply(config: Config, outcome: str, seconds: float | None, locale: str) -> Speech:
    """What the line says after "press 1" ended in ``outcome`` (see ``request_callback``)."""
    if outcome in ("recorded", "already") and seconds is not None:
        return reply(f"callback_{outcome}", locale, within=spoken_span(seconds, locale))
    return reply("callback_overdue" if outcome == "overdue" else "no_number", locale)
