"""SMS rows of an incident's mailings: who gets one, not before when, and how many at most.

Owns the SMS side of queueing (``queueing`` calls it for status notices and apologies):

- **who**: active audience members with a phone number that no gateway has refused, whose
  ``channels`` name ``sms`` — or, with no channels of their own, as ``[sms].status_notices``
  / ``apologies`` say: ``phone-only`` (those without an e-mail address), ``all``, ``none``;
- **when**: a message due inside ``[sms].quiet_hours`` of the reader's region's local time
  gets a ``not_before`` at the end of them (apologies always; status notices unless the
  incident's severity is in ``urgent_severities``). Waiting is not an attempt: the row is
  simply not due yet;
- **how many**: a mailing (one update's status notices, or an incident's apologies) with
  more SMS than ``[sms].max_messages_per_mailing`` is ``held``, and on-call gets one note;
  :func:`release` sends it after all.

The de-duplication keys are the e-mail's with an ``sms:`` in front, so a subscriber gets at
most one SMS per update and one SMS apology per incident, whatever runs twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, cast, func, literal, or_, select, update
from sqlmodel import Session

from notifier.config import Config
from notifier.models import AudienceMember, Incident, Message, Subscriber, UTCDateTime

__all__ = ["CHANNEL", "after_quiet_hours", "quiet_until", "budget_note_key", "held_count", "hold_over_budget", "release",
           "sms_key", "sms_selects", "wanted", "zones"]

CHANNEL = "sms"
BUDGET_NOTE = "over_budget"
_MAILING_KINDS = ("status", "apology")


def sms_key(email_key: str) -> str:
    """The SMS twin of an e-mail de-duplication key (``apology:3:`` -> ``sms:apology:3:``)."""
    return f"{CHANNEL}:{email_key}"


def after_quiet_hours(due: datetime, zone: ZoneInfo, window: tuple[time, time] | None) -> datetime:
    """``due``, or the end of the quiet hours in ``zone`` when ``due`` falls inside them."""
    if window is None:
        return due
    start, end = window
    local = due.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    inside = (start <= clock or clock < end) if start > end else (start <= clock < end)
    if not inside:
        return due
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone).astimezone(due.tzinfo)


def quiet_until(config: Config, incident: Incident | None, kind: str, region: str | None,
                now: datetime, *, planned_work: bool = False) -> datetime | None:  # fmt: skip
    """When an SMS due ``now`` must wait for the end of the quiet hours in the reader's region
    (a retry, or a backlog that ran into the night), or None when it may go now. Planned work
    is never urgent: its SMS always wait."""
    if region not in config.regions or not (planned_work or (incident and _quiet_applies(config, incident, kind))):
        return None
    later = after_quiet_hours(now, config.regions[region].zone, config.sms.quiet_window)  # type: ignore[index]
    return later if later > now else None


def _quiet_applies(config: Config, incident: Incident, kind: str) -> bool:
    return kind == "apology" or incident.severity not in config.sms.urgent_severities


def wanted(policy: str) -> Any:
    """Subscribers who get this kind by SMS (a condition on Subscriber): by their own channels,
    else by ``policy``; and only to a phone number that no gateway has refused."""
    by_default = Subscriber.email.is_(None) if policy == "phone-only" else literal(True)  # type: ignore[union-attr]
    return and_(
        Subscriber.phone.is_not(None),  # type: ignore[union-attr]
        or_(Subscriber.phone_refused.is_(None), Subscriber.phone_refused != Subscriber.phone),  # type: ignore[union-attr]
        or_(Subscriber.channels.like(f"%;{CHANNEL};%"), and_(Subscriber.channels == "", by_default)),  # type: ignore[attr-defined]
    )


def _select(
    incident_id: int, kind: str, key_prefix: str, update_id: int | None, due: datetime, now: datetime,
    policy: str, regions: Iterable[str] | None, exclude: Iterable[str] = (),
) -> Any:  # fmt: skip
    """Audience members owed this SMS, as outbox rows (the columns ``queueing`` inserts)."""
    conditions = [
        AudienceMember.incident_id == incident_id,
        Subscriber.status == "active",
        wanted(policy),
    ]
    if regions is not None:
        conditions.append(Subscriber.region.in_(list(regions)))  # type: ignore[attr-defined]
    if exclude:
        conditions.append(Subscriber.region.not_in(list(exclude)))  # type: ignore[attr-defined]
    return (
        select(
            literal(kind), literal(CHANNEL), literal("queued"), literal(incident_id), Subscriber.id,
            literal(update_id), Subscriber.phone, Subscriber.locale,
            literal(sms_key(key_prefix)) + cast(Subscriber.id, String), literal(0), literal(due, UTCDateTime()),
            literal(now, UTCDateTime()),
        )  # fmt: skip
        .select_from(AudienceMember)
        .join(Subscriber, Subscriber.id == AudienceMember.subscriber_id)
        .where(and_(*conditions))
    )


def zones(config: Config) -> dict[str, list[str]]:
    """The configured regions by time zone (quiet hours and reminder times are per zone)."""
    found: dict[str, list[str]] = defaultdict(list)
    for code, region in config.regions.items():
        found[region.timezone].append(code)
    return dict(found)


def sms_selects(
    config: Config, incident: Incident, kind: str, key_prefix: str, update_id: int | None, due: datetime,
    now: datetime,
) -> list[Any]:  # fmt: skip
    """The INSERT … SELECT sources of one mailing's SMS twins: one per time zone when quiet
    hours shift their ``not_before``, else one; none when ``[sms]`` sends this kind to nobody."""
    policy = config.sms.policy(kind)
    if policy == "none" or kind not in _MAILING_KINDS:
        return []
    assert incident.id is not None
    window = config.sms.quiet_window if _quiet_applies(config, incident, kind) else None
    if window is None:
        return [_select(incident.id, kind, key_prefix, update_id, due, now, policy, None)]
    by_zone = zones(config)
    selects = [
        _select(incident.id, kind, key_prefix, update_id, after_quiet_hours(due, ZoneInfo(zone), window), now,
                policy, regions)
        for zone, regions in by_zone.items()
    ]  # fmt: skip
    known = [code for regions in by_zone.values() for code in regions]  # and regions gone from the config
    return [*selects, _select(incident.id, kind, key_prefix, update_id, due, now, policy, None, known)]


# The budget -------------------------------------------------------------------------------


def _mailing(incident_id: int, kind: str, update_id: int | None) -> list[Any]:
    conditions = [Message.incident_id == incident_id, Message.kind == kind, Message.channel == CHANNEL]
    if kind == "status":
        conditions.append(Message.update_id == update_id)
    return conditions


def held_count(session: Session, incident_id: int, kind: str, update_id: int | None = None) -> int:
    """How many SMS of one mailing are held (``update_id`` None: of every update)."""
    conditions = [Message.incident_id == incident_id, Message.kind == kind, Message.channel == CHANNEL,
                  Message.state == "held"]  # fmt: skip
    if update_id is not None:
        conditions.append(Message.update_id == update_id)
    return session.exec(select(func.count()).select_from(Message).where(*conditions)).scalar_one()  # type: ignore[call-overload]


def hold_over_budget(session: Session, config: Config, incident_id: int, kind: str, update_id: int | None) -> int:
    """Hold the mailing's queued SMS when it is larger than the budget; how many were held.

    The caller then tells on-call (``budget_note_key``); a mailing under the budget is left alone.
    """
    cap = config.sms.max_messages_per_mailing
    if not cap:
        return 0
    mailing = _mailing(incident_id, kind, update_id)
    size = session.exec(  # type: ignore[call-overload]
        select(func.count()).select_from(Message).where(*mailing, Message.state != "cancelled")
    ).scalar_one()
    if size <= cap:
        return 0
    stmt = (
        update(Message).where(*mailing, Message.state == "queued")
        .values(state="held", last_error=f"held: {size} SMS, more than [sms].max_messages_per_mailing = {cap}")
    )  # fmt: skip
    return session.exec(stmt.execution_options(preserve_rowcount=True)).rowcount  # type: ignore[call-overload]


def budget_note_key(incident_id: int, kind: str, update_id: int | None) -> str:
    return f"{BUDGET_NOTE}:{incident_id}:{kind}:{update_id or 0}"


def budget_mailing(dedupe_key: str) -> str:
    """The mailing kind an over-budget note is about (from ``over_budget:INC:KIND:UPDATE``)."""
    parts = dedupe_key.split(":")
    return parts[2] if len(parts) > 2 else ""


def release(session: Session, incident_id: int, kinds: Iterable[str] = _MAILING_KINDS) -> int:
    """Send a held mailing after all: its held SMS are queued (due as they were); how many."""
    stmt = (
        update(Message)
        .where(Message.incident_id == incident_id, Message.channel == CHANNEL, Message.state == "held",
               Message.kind.in_(list(kinds)))  # type: ignore[attr-defined]
        .values(state="queued", last_error="released from hold")
    )  # fmt: skip
    return session.exec(stmt.execution_options(preserve_rowcount=True)).rowcount  # type: ignore[call-overload]


SMS_STATES = ("held", "queued", "sending", "retry", "accepted", "delivered", "failed", "expired", "cancelled")


def sms_counts(session: Session, incident_id: int | None = None) -> dict[str, dict[str, int]]:
    """``{kind: {state: n}}`` of the SMS only, a sent one by what its delivery reports said:
    ``accepted`` (by the gateway, no final report yet), ``delivered``, ``failed``, ``expired``."""
    query = (
        select(Message.kind, Message.state, Message.delivery, func.count())
        .where(Message.channel == CHANNEL)
        .group_by(Message.kind, Message.state, Message.delivery)
    )
    if incident_id is not None:
        query = query.where(Message.incident_id == incident_id)
    result: dict[str, dict[str, int]] = defaultdict(dict)
    for kind, state, delivery, n in session.exec(query):  # type: ignore[call-overload]
        shown = (delivery or "accepted") if state == "sent" else state
        result[kind][shown] = result[kind].get(shown, 0) + n
    return dict(result)


def refused_numbers(session: Session, limit: int = 1000) -> list[Subscriber]:
    """Subscribers whose current phone number a gateway refused, newest first."""
    query = (
        select(Subscriber)
        .where(Subscriber.phone_refused.is_not(None), Subscriber.phone_refused == Subscriber.phone)  # type: ignore[union-attr]
        .order_by(Subscriber.updated_at.desc())  # type: ignore[attr-defined]
        .limit(limit)
    )
    return list(session.exec(query).scalars())  # type: ignore[call-overload]


def allow_number(session: Session, subscriber: Subscriber, now: datetime) -> bool:
    """Text ``subscriber``'s number again (a refusal that was a mistake); False if none was refused."""
    if subscriber.phone_refused is None:
        return False
    subscriber.phone_refused, subscriber.updated_at = None, now
    session.add(subscriber)
    return True
