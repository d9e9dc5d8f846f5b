"""One subscriber at a time: add, list, count, find by any identifier, unsubscribe.

Owns finding a subscriber by account number, e-mail, phone in any common format or part of
the name (``find``, ``get_one``), adding one under the import's rules, the region, service
and status filters of ``list_subscribers`` and ``count_subscribers``, and unsubscribing.
It does not choose an incident's audience (``incidents``) nor print anything
(``cli.subscribers``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlmodel import Session

from notifier.config import Config
from notifier.errors import AmbiguousSubscriber, SubscriberNotFound, UsageError
from notifier.models import SUBSCRIBER_STATUSES, Subscriber, utcnow
from notifier.subscribers.validation import (
    COLUMNS,
    OPTIONAL_COLUMNS,
    RowError,
    clean,
    normalise_phone,
    row_key,
)

_PHONE_LIKE = re.compile(r"[\d\s()+\-.]{5,}")
_TABLE = Subscriber.__table__  # type: ignore[attr-defined]


def add_subscriber(session: Session, config: Config, **fields: Any) -> Subscriber:
    """Add one subscriber (same rules as the import); refuses one that already exists."""
    unknown = set(fields) - set(COLUMNS + OPTIONAL_COLUMNS)
    if unknown:
        raise UsageError(f"unknown subscriber field(s): {', '.join(sorted(unknown))}")
    services = fields.get("services") or ""
    fields["services"] = services if isinstance(services, str) else ";".join(services)
    if not isinstance(fields.get("channels") or "", str):
        fields["channels"] = ";".join(fields["channels"])
    try:
        row = clean({name: str(value) for name, value in fields.items() if value is not None}, config)
    except RowError as exc:
        raise UsageError(str(exc)) from None
    kind, value = row_key(row)
    if session.execute(select(_TABLE.c.id).where(_TABLE.c[kind] == value)).first():
        what = {"external_id": "account number", "email_key": "e-mail", "phone": "phone"}[kind]
        raise UsageError(f"a subscriber with the {what} {value!r} already exists (import a CSV to update it)")
    now = utcnow()
    subscriber = Subscriber(**row, status="active", created_at=now, updated_at=now)
    session.add(subscriber)
    session.flush()
    return subscriber


def _service_filter(services: Iterable[str]) -> Any:
    return or_(*(Subscriber.services.like(f"%;{code};%") for code in services))  # type: ignore[attr-defined]


def list_subscribers(
    session: Session,
    *,
    region: str | None = None,
    service: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Subscriber]:
    """Subscribers in the order they were added, optionally of one region, service or status."""
    query = select(Subscriber).order_by(Subscriber.id).limit(limit).offset(offset)  # type: ignore[arg-type]
    if region:
        query = query.where(Subscriber.region == region)
    if service:
        query = query.where(_service_filter([service]))
    if status:
        _check_status(status)
        query = query.where(Subscriber.status == status)
    return list(session.execute(query).scalars().all())


def count_subscribers(
    session: Session,
    *,
    regions: Iterable[str] = (),
    services: Iterable[str] = (),
    status: str | None = "active",
) -> int:
    """How many subscribers (of ``status``; None = any) are in any of ``regions`` and use any of ``services``."""
    conditions = []
    regions, services = list(regions), list(services)
    if regions:
        conditions.append(Subscriber.region.in_(regions))  # type: ignore[attr-defined]
    if services:
        conditions.append(_service_filter(services))
    if status:
        _check_status(status)
        conditions.append(Subscriber.status == status)
    query = select(func.count()).select_from(Subscriber)
    if conditions:
        query = query.where(and_(*conditions))
    return session.execute(query).scalar_one()


def _check_status(status: str) -> None:
    if status not in SUBSCRIBER_STATUSES:
        raise UsageError(f"status must be one of {', '.join(SUBSCRIBER_STATUSES)}, not {status!r}")


# Lookup ------------------------------------------------------------------------------------


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def find(session: Session, config: Config, key_or_query: str, *, limit: int = 50) -> list[Subscriber]:
    """Subscribers an identifier names: account number, e-mail, phone (any format) — exact
    matches — else those whose name contains the text (case-insensitive, Cyrillic included,
    ``ё`` and ``е`` alike: "Петр Сидоров" finds "Пётр Сидоров")."""
    condition = _match(session, config, key_or_query)
    if condition is None:
        return []
    return list(
        session.execute(select(Subscriber).where(condition).order_by(Subscriber.id).limit(limit)).scalars()
    )


def count_found(session: Session, config: Config, key_or_query: str) -> int:
    """How many subscribers :func:`find` would return without its limit ("50 shown of 312")."""
    condition = _match(session, config, key_or_query)
    if condition is None:
        return 0
    return session.execute(select(func.count()).select_from(Subscriber).where(condition)).scalar_one()


def _yo(text: Any) -> Any:
    """``ё`` read as ``е`` (Russian writes both for one letter): in SQL and in Python alike."""
    return text.replace("ё", "е") if isinstance(text, str) else func.replace(text, "ё", "е")


def _match(session: Session, config: Config, key_or_query: str) -> Any:
    """The WHERE clause of a lookup: the exact identifiers if any row has one, else the name."""
    query = " ".join(key_or_query.split())
    if not query:
        raise UsageError("give an account number, e-mail, phone or part of a name to look for")
    # Account numbers are matched as typed, and as upper case (callers read "acc-9" aloud).
    exact = [Subscriber.external_id.in_({query, query.upper()})]  # type: ignore[union-attr]
    if "@" in query:
        exact.append(Subscriber.email_key == query.lower())
    if _PHONE_LIKE.fullmatch(query):
        with contextlib.suppress(RowError):  # not a phone after all: the name search may still match
            exact.append(Subscriber.phone == normalise_phone(query, config.notifier.default_country))
    if session.execute(select(Subscriber.id).where(or_(*exact)).limit(1)).first() is not None:
        return or_(*exact)
    if not any(ch.isalpha() for ch in query):
        return None
    pattern = f"%{_like_escape(_yo(query.casefold()))}%"
    return _yo(Subscriber.name_key).like(pattern, escape="\\")


def get_one(session: Session, config: Config, key: str) -> Subscriber:
    """The one subscriber ``key`` names; SubscriberNotFound or AmbiguousSubscriber otherwise."""
    found = find(session, config, key)
    if not found:
        raise SubscriberNotFound(key)
    if len(found) > 1:
        raise AmbiguousSubscriber(key, found)
    return found[0]


def unsubscribe(session: Session, key: str | int | Subscriber, *, config: Config | None = None) -> Subscriber:
    """Stop all mail to one subscriber (idempotent; a bounced one stays bounced).

    ``key`` is a Subscriber, its id, or (with ``config``) anything ``get_one`` accepts; without
    ``config`` a string must be an exact account number, e-mail or E.164 phone.
    """
    if isinstance(key, Subscriber):
        subscriber = key
    elif isinstance(key, int):
        found = session.get(Subscriber, key)
        if found is None:
            raise SubscriberNotFound(f"#{key}")
        subscriber = found
    elif config is not None:
        subscriber = get_one(session, config, key)
    else:
        text = key.strip()
        exact = or_(
            Subscriber.external_id == text, Subscriber.email_key == text.lower(), Subscriber.phone == text
        )
        matches = list(session.execute(select(Subscriber).where(exact).limit(50)).scalars().all())
        if not matches:
            raise SubscriberNotFound(text)
        if len(matches) > 1:
            raise AmbiguousSubscriber(text, matches)
        subscriber = matches[0]
    if subscriber.status == "active":
        subscriber.status, subscriber.updated_at = "unsubscribed", utcnow()
        session.add(subscriber)
        session.flush()
    return subscriber
