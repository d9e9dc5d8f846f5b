"""Self-service subscriptions: subscribe on the status page with double opt-in, change what you hear.

Owns the rules of subscribing yourself:

- **double opt-in**: a request makes (or refreshes) a ``pending`` subscriber — a status that
  every mailing skips — and queues one confirmation e-mail whose signed link expires after
  ``[subscriptions].confirm_within``; clicking it makes the subscriber ``active``;
- **no account enumeration**: a request has the same outcome for the caller whatever the
  address (:func:`request_subscription` returns nothing the page shows): an address already
  subscribed gets a letter linking its preferences instead of a second subscription, a
  bounced one gets nothing;
- **rate limits** (:class:`RequestLimits`, the ``limits`` package): confirmation requests per
  address and per client address, in this process's memory;
- **preferences** reached by a signed link from every letter's footer (never expiring, like
  the unsubscribe link): region, services, channels, language, or unsubscribe from everything —
  always one subscriber row, one address: a distribution list (an address several accounts
  share, or a role address such as ``team@``) is marked so the page can say so;
- the events behind ``subscribers stats`` (gained and lost per week).

It renders and sends nothing: the confirmation is an outbox row (``outbox.planned``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from notifier import tokens
from notifier.config import LOCALES, Config
from notifier.errors import UsageError
from notifier.models import Subscriber, SubscriptionEvent, utcnow
from notifier.outbox import planned
from notifier.samples import sample_subscriber

PREFERENCES = "preferences"
_CONFIRM = "confirm"
_ROLE_NAMES = {"all", "team", "staff", "list", "info", "office", "admin", "support", "ops", "it", "noc",
               "accounts", "accounting", "billing", "finance", "sales", "hr", "help", "contact", "group"}  # fmt: skip
CHANNELS = ("email", "sms")


# Links ------------------------------------------------------------------------------------


def _mac(secret: bytes, *parts: object) -> str:
    digest = hmac.new(secret, ":".join(["notifier", _CONFIRM, *map(str, parts)]).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def confirm_token(secret: bytes, subscriber: Subscriber, expires: datetime) -> str:
    """``ID.EXPIRES.MAC``: signed for this subscriber's address, worthless after ``expires``."""
    epoch = int(expires.timestamp())
    return f"{subscriber.id}.{epoch}.{_mac(secret, subscriber.id, epoch, subscriber.email_key or '')}"


def confirm_url(config: Config, secret: bytes, subscriber: Subscriber, now: datetime) -> str:
    token = confirm_token(secret, subscriber, now + config.subscriptions.confirm_within)
    return f"{config.notifier.public_base_url.rstrip('/')}/subscribe/confirm/{token}"


def preferences_url(config: Config, secret: bytes, subscriber_id: int) -> str:
    """The signed link to a subscriber's preferences page (every letter's footer carries it)."""
    token = tokens.make_token(secret, subscriber_id, purpose=PREFERENCES)
    return f"{config.notifier.public_base_url.rstrip('/')}/preferences/{token}"


def preferences_subscriber(secret: bytes, token: str) -> int | None:
    return tokens.verify_token(secret, token, purpose=PREFERENCES)


# Rate limits ------------------------------------------------------------------------------


class RequestLimits:
    """Confirmation requests per address and per client address (moving windows, in memory)."""

    def __init__(self, config: Config) -> None:
        from limits import parse  # the web's alone: commands that render letters need not load it
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter

        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._address = parse(config.subscriptions.requests_per_address)
        self._client = parse(config.subscriptions.requests_per_ip)

    def refused(self, address: str, client: str) -> str | None:
        """None if this request may go on (and counts it), else which limit it hit."""
        if not self._limiter.hit(self._client, "subscribe-ip", client):
            return "client"
        if not self._limiter.hit(self._address, "subscribe-address", address.lower()):
            return "address"
        return None


# Requests and confirmation ----------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """What a visitor asks for: one region (its local time is the letters' time), services, language."""

    region: str
    services: tuple[str, ...]
    locale: str
    channels: tuple[str, ...] = ("email",)

    def checked(self, config: Config) -> Choice:
        if self.region not in config.regions:
            raise UsageError("choose your region")
        unknown = [code for code in self.services if code not in config.services]
        if unknown:
            raise UsageError(f"unknown service {unknown[0]!r}")
        if self.locale not in LOCALES:
            raise UsageError(f"language must be one of {', '.join(LOCALES)}")
        if not self.channels or any(c not in CHANNELS for c in self.channels):
            raise UsageError("choose at least one way to hear from us")
        return self


def normalised(address: str) -> str:
    from notifier.subscribers.validation import RowError, normalise_email  # the import machinery: lazily

    try:
        return normalise_email((address or "").strip())
    except RowError:
        raise UsageError("that is not an e-mail address we can write to") from None


def _apply(subscriber: Subscriber, choice: Choice, now: datetime) -> None:
    subscriber.region, subscriber.locale = choice.region, choice.locale
    subscriber.services = ";" + ";".join(choice.services) + ";" if choice.services else ""
    subscriber.channels = ";" + ";".join(choice.channels) + ";" if choice.channels != ("email",) else ""
    subscriber.updated_at = now


def normalised_phone(config: Config, number: str) -> str:
    """A mobile number as typed on the subscribe form, in E.164; UsageError when it is none."""
    from notifier.subscribers.validation import RowError, normalise_phone

    try:
        return normalise_phone((number or "").strip(), config.notifier.default_country)
    except RowError:
        raise UsageError("that is not a phone number we can text") from None


def _by_address(session: Session, email: str) -> list[Subscriber]:
    query = select(Subscriber).where(Subscriber.email_key == email.lower()).order_by(Subscriber.id)
    return list(session.exec(query).scalars())  # type: ignore[call-overload]


def _by_phone(session: Session, phone: str) -> list[Subscriber]:
    query = select(Subscriber).where(Subscriber.phone == phone).order_by(Subscriber.id)
    return list(session.exec(query).scalars())  # type: ignore[call-overload]


def request_subscription(session: Session, config: Config, email: str, choice: Choice, now: datetime | None = None,
                         *, phone: str = "") -> None:  # fmt: skip
    """A visitor asks to subscribe ``email`` (or, with ``phone`` instead, a mobile number, by
    SMS): whatever is known of it, the caller learns nothing.

    New or pending or unsubscribed: a pending subscriber with these choices and a confirmation
    (e-mail, or SMS to a phone). Already active: a message linking its preferences (nothing
    changes). Bounced, or a number a gateway refused: nothing.
    """
    now = now or utcnow()
    choice = choice.checked(config)
    if phone:
        phone = normalised_phone(config, phone)
        rows = _by_phone(session, phone)
        channel = "sms"
        blocked = any(s.status == "bounced" or s.phone_refused == phone for s in rows)
    else:
        email = normalised(email)
        rows = _by_address(session, email)
        channel = "email"
        blocked = any(s.status == "bounced" for s in rows)
    active = next((s for s in rows if s.status == "active"), None)
    if active is not None and not blocked:
        planned.queue_confirmation(session, active, now, channel=channel)
        return
    if blocked or active is not None:
        return
    subscriber = next((s for s in rows if s.status in ("pending", "unsubscribed")), None)
    if subscriber is None and phone:
        subscriber = Subscriber(phone=phone, region=choice.region, created_at=now)
    elif subscriber is None:
        subscriber = Subscriber(email=email, email_key=email.lower(), region=choice.region, created_at=now)
    subscriber.status, subscriber.self_subscribed, subscriber.confirmed_at = "pending", True, None
    if phone:  # they asked to be texted: SMS is their channel
        choice = Choice(choice.region, choice.services, choice.locale, ("sms",))
    _apply(subscriber, choice, now)
    session.add(subscriber)
    session.flush()
    record_event(session, subscriber.id, "requested", now)  # type: ignore[arg-type]
    planned.queue_confirmation(session, subscriber, now, channel=channel)


def confirm(session: Session, secret: bytes, token: str, now: datetime | None = None) -> Subscriber | None:
    """Activate the pending subscriber a genuine, unexpired link names; None for any other link.

    A second click on a link already used finds the subscriber active and changes nothing.
    """
    now = now or utcnow()
    parts = (token or "").split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or len(token) > 100:
        return None
    subscriber = session.get(Subscriber, int(parts[0]))
    if subscriber is None or not hmac.compare_digest(confirm_token(secret, subscriber, datetime.fromtimestamp(
            int(parts[1]), tz=now.tzinfo)), token):  # fmt: skip
        return None
    if int(parts[1]) < now.timestamp():
        return None
    if subscriber.status == "pending":
        subscriber.status, subscriber.confirmed_at, subscriber.updated_at = "active", now, now
        session.add(subscriber)
        record_event(session, subscriber.id, "confirmed", now)  # type: ignore[arg-type]
        session.flush()
    return subscriber if subscriber.status == "active" else None


# Preferences ------------------------------------------------------------------------------


def change_preferences(session: Session, config: Config, subscriber_id: int, choice: Choice,
                       now: datetime | None = None) -> Subscriber:  # fmt: skip
    """New region, services, channels or language for one subscriber (this address only)."""
    now = now or utcnow()
    subscriber = _subscriber(session, subscriber_id)
    if "sms" in choice.channels and not subscriber.phone:
        raise UsageError("SMS needs a phone number on file; ask support to add one")
    _apply(subscriber, choice.checked(config), now)
    session.add(subscriber)
    record_event(session, subscriber_id, "changed", now)
    session.flush()
    return subscriber


def unsubscribe_everything(session: Session, subscriber_id: int, now: datetime | None = None) -> Subscriber:
    """No more mail of any kind to this subscriber; other subscribers at the same address keep theirs."""
    now = now or utcnow()
    subscriber = _subscriber(session, subscriber_id)
    if subscriber.status in ("active", "pending"):
        subscriber.status, subscriber.updated_at = "unsubscribed", now
        session.add(subscriber)
        record_event(session, subscriber_id, "unsubscribed", now)
        session.flush()
    return subscriber


def _subscriber(session: Session, subscriber_id: int) -> Subscriber:
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise UsageError("this link belongs to nobody any more")
    return subscriber


def is_distribution_list(session: Session, subscriber: Subscriber) -> bool:
    """True for an address shared by several subscribers, or a role address (``team@``, ``info@`` …)."""
    if not subscriber.email_key:
        return False
    local = subscriber.email_key.partition("@")[0].split("+")[0]
    if local in _ROLE_NAMES or local.split(".")[0] in _ROLE_NAMES or local.endswith(("-list", "-team", "-all")):
        return True
    shared = session.exec(  # type: ignore[call-overload]
        select(func.count()).select_from(Subscriber).where(Subscriber.email_key == subscriber.email_key)
    ).scalar_one()
    return shared > 1


# Events and stats -------------------------------------------------------------------------


def record_event(session: Session, subscriber_id: int, kind: str, now: datetime, source: str = "web") -> None:
    """One self-service step; call it from other ways in and out (one-click unsubscribe, import)
    so ``subscribers stats`` counts them too."""
    session.add(SubscriptionEvent(subscriber_id=subscriber_id, kind=kind, source=source, at=now))


def weekly_stats(session: Session, *, weeks: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Subscriptions gained (confirmed on the page, or imported) and lost (unsubscribed) per ISO
    week, the last ``weeks`` weeks, oldest first."""
    now = now or utcnow()
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    first = monday - timedelta(weeks=weeks - 1)
    rows = {(first + timedelta(weeks=i)).date(): {"gained": 0, "lost": 0} for i in range(weeks)}

    def bucket(at: datetime) -> dict[str, int] | None:
        return rows.get((at - timedelta(days=at.weekday())).date()) if at >= first else None

    events = session.exec(select(SubscriptionEvent.kind, SubscriptionEvent.at).where(  # type: ignore[call-overload]
        SubscriptionEvent.at >= first, SubscriptionEvent.kind.in_(("confirmed", "unsubscribed"))))  # type: ignore[attr-defined]
    for kind, at in events:
        if (row := bucket(at)) is not None:
            row["gained" if kind == "confirmed" else "lost"] += 1
    imported = session.exec(select(Subscriber.created_at).where(  # type: ignore[call-overload]
        Subscriber.created_at >= first, Subscriber.self_subscribed.is_(False)))  # type: ignore[attr-defined]
    for (at,) in imported:
        if (row := bucket(at)) is not None:
            row["gained"] += 1
    return [{"week": f"{day.isocalendar()[0]}-W{day.isocalendar()[1]:02d}", "from": day.isoformat(), **counts}
            for day, counts in rows.items()]  # fmt: skip


# What the confirmation letter says ---------------------------------------------------------


def confirmation_context(config: Config, secret: bytes, subscriber: Subscriber, locale: str,
                         now: datetime | None = None) -> dict[str, Any]:  # fmt: skip
    """``confirm_url`` for a pending subscriber; ``already`` and ``preferences_url`` for an active one."""
    now = now or utcnow()
    region = config.regions.get(subscriber.region)
    already = subscriber.status == "active"
    return {
        "locale": locale, "company": config.notifier.company.get(locale),
        "support_email": config.notifier.support_email,
        "status_page_url": config.notifier.public_base_url.rstrip("/") + "/",
        "already": already, "confirm_url": "" if already else confirm_url(config, secret, subscriber, now),
        "preferences_url": preferences_url(config, secret, subscriber.id) if already else "",  # type: ignore[arg-type]
        "expires_in_hours": int(config.subscriptions.confirm_within.total_seconds() // 3600),
        "region_name": region.name.get(locale) if region else subscriber.region,
    }  # fmt: skip


def confirmation_samples(config: Config, locale: str) -> list[dict[str, Any]]:
    secret = b"sample-secret-for-templates-check"
    pending = sample_subscriber(config, locale=locale, status="pending")
    active = sample_subscriber(config, locale=locale)
    return [confirmation_context(config, secret, pending, locale), confirmation_context(config, secret, active, locale)]
