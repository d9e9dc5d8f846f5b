"""Outbox rows of planned work and of self-service subscriptions: who is owed which, when.

Owns the maintenance kinds' rows (the package root re-exports the functions the lifecycle calls):
the announcement, the reminders at ``[maintenance].remind_before`` (one INSERT … SELECT per
time zone, so a long-lead reminder that would land in the reader's local night moves to the
night's end — :func:`reminder_due`), the started notice (due at the start), the rescheduled,
extended, cancelled and completed notices, on-call's overrun note, and the subscription
confirmation; their de-duplication keys, and cancelling a maintenance's unsent rows. A row
stores only what rendering needs at send time: the maintenance is read afresh then
(``loading``), so an announcement still waiting when the work is rescheduled tells the new times.

The keys make every step idempotent: a reminder and the started notice carry the start they
were planned for (a reschedule plans new ones, and ``loading`` drops any old one a sender
already holds); the overrun note and the extended notice carry the end they are about.
"""

from __future__ import annotations

import secrets
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, cast, literal, or_, select, update
from sqlmodel import Session

from notifier.config import Config
from notifier.db import dialect_module
from notifier.models import UNSENT_STATES, Maintenance, MaintenanceAudience, Message, Subscriber, UTCDateTime
from notifier.outbox import sms
from notifier.outbox.queueing import insert_rows, message_row
from notifier.outbox.sms import after_quiet_hours

__all__ = [
    "ANNOUNCEMENT", "CONFIRMATION", "NOTICES", "OVERRUN", "PLANNED_KINDS", "REMINDER", "cancel_maintenance_unsent",
    "confirmation_subscriber", "queue_confirmation", "queue_maintenance_notice", "queue_overrun_note",
    "queue_reminders", "reminder_due", "reminder_lead", "planned_start",
]  # fmt: skip

ANNOUNCEMENT = "maintenance"
REMINDER = "maintenance_reminder"
STARTED = "maintenance_started"
NOTICES = ("maintenance_started", "maintenance_completed", "maintenance_rescheduled", "maintenance_cancelled",
           "maintenance_extended")  # fmt: skip
OVERRUN = "maintenance_overrun"  # to on-call
CONFIRMATION = "subscription_confirm"
PLANNED_KINDS = (ANNOUNCEMENT, REMINDER, *NOTICES)  # to the maintenance's audience
_COLUMNS = ["kind", "channel", "state", "maintenance_id", "subscriber_id", "recipient", "locale", "dedupe_key",
            "attempts", "not_before", "created_at"]  # fmt: skip


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _insert(session: Session, source: Any) -> int:
    module = dialect_module(session)
    stmt = module.insert(Message).from_select(_COLUMNS, source).on_conflict_do_nothing()
    return session.exec(stmt.execution_options(preserve_rowcount=True)).rowcount  # type: ignore[call-overload]


def _audience(
    maintenance_id: int, kind: str, prefix: str, due: datetime, now: datetime, *, regions: list[str] | None = None,
    exclude: list[str] | None = None, informed_only: bool = False, sms_policy: str | None = None,
) -> Any:  # fmt: skip
    """The active audience members owed ``kind``, as outbox rows: by e-mail to those with an
    address (and e-mail among their channels, when they chose theirs), or, with ``sms_policy``,
    the SMS twins to those ``sms.wanted`` names (key ``sms:`` + the e-mail's). ``informed_only``:
    only those already sent something about this maintenance (the rest will hear the news in
    the announcement still on its way)."""
    conditions = [MaintenanceAudience.maintenance_id == maintenance_id, Subscriber.status == "active"]
    if sms_policy is None:
        conditions += [
            Subscriber.email.is_not(None),  # type: ignore[union-attr]
            or_(Subscriber.channels == "", Subscriber.channels.like("%;email;%")),  # type: ignore[attr-defined]
        ]
        channel, recipient = "email", Subscriber.email
    else:
        conditions.append(sms.wanted(sms_policy))
        channel, recipient, prefix = sms.CHANNEL, Subscriber.phone, sms.sms_key(prefix)
    if regions is not None:
        conditions.append(Subscriber.region.in_(regions))  # type: ignore[attr-defined]
    if exclude:
        conditions.append(Subscriber.region.not_in(exclude))  # type: ignore[attr-defined]
    if informed_only:
        told = select(Message.subscriber_id).where(Message.maintenance_id == maintenance_id, Message.state == "sent")
        conditions.append(Subscriber.id.in_(told))  # type: ignore[union-attr]
    return (
        select(
            literal(kind), literal(channel), literal("queued"), literal(maintenance_id), Subscriber.id,
            recipient, Subscriber.locale, literal(prefix) + cast(Subscriber.id, String), literal(0),
            literal(due, UTCDateTime()), literal(now, UTCDateTime()),
        )  # fmt: skip
        .select_from(MaintenanceAudience)
        .join(Subscriber, Subscriber.id == MaintenanceAudience.subscriber_id)
        .where(*conditions)
    )


def _queue(
    session: Session, config: Config, maintenance_id: int, kind: str, prefix: str, due: datetime, now: datetime,
    *, regions: list[str] | None = None, exclude: list[str] | None = None, informed_only: bool = False,
    before: datetime | None = None,
) -> int:  # fmt: skip
    """Insert ``kind``'s e-mail rows and their SMS twins (``[sms].planned_work``); an SMS due in
    the reader's quiet hours waits for their end (planned work is never urgent). ``before``: an SMS
    that would wait past it is not sent at all (a reminder past the start, the started notice
    past the end)."""
    where = {"regions": regions, "exclude": exclude, "informed_only": informed_only}
    queued = _insert(session, _audience(maintenance_id, kind, prefix, due, now, **where))
    policy = config.sms.policy("planned")
    if policy == "none":
        return queued
    window = config.sms.quiet_window
    by_zone = sms.zones(config)
    for zone, codes in by_zone.items():
        inside = [code for code in codes if regions is None or code in regions]
        if inside and not (exclude and set(inside) <= set(exclude)):
            at = after_quiet_hours(due, ZoneInfo(zone), window)
            if before is not None and at >= before:
                continue
            queued += _insert(session, _audience(maintenance_id, kind, prefix, at, now, sms_policy=policy,
                                                 **{**where, "regions": inside}))  # fmt: skip
    if regions is None:  # readers of regions gone from the config: by UTC, unshifted
        known = [code for codes in by_zone.values() for code in codes]
        queued += _insert(session, _audience(maintenance_id, kind, prefix, due, now, sms_policy=policy,
                                             **{**where, "exclude": [*(exclude or []), *known]}))  # fmt: skip
    return queued


# Keys -------------------------------------------------------------------------------------


def _key(kind: str, maintenance: Maintenance, *parts: object) -> str:
    return ":".join([kind, str(maintenance.id), *(str(part) for part in parts), ""])


def planned_start(dedupe_key: str) -> int | None:
    """The start (epoch seconds) a reminder or started notice was planned for."""
    parts = dedupe_key.split(":")
    return int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else None


def reminder_lead(dedupe_key: str) -> timedelta:
    """How long before the start a reminder was planned (``maintenance_reminder:M:START:LEAD:S``)."""
    parts = dedupe_key.split(":")
    return timedelta(seconds=int(parts[3])) if len(parts) > 4 and parts[3].isdigit() else timedelta(0)


def confirmation_subscriber(dedupe_key: str) -> int | None:
    """The (pending) subscriber a confirmation e-mail is for (``subscription_confirm:S:NONCE``)."""
    parts = dedupe_key.removeprefix(sms.sms_key("")).split(":")
    return int(parts[1]) if len(parts) > 2 and parts[0] == CONFIRMATION and parts[1].isdigit() else None


# Reminders --------------------------------------------------------------------------------


def reminder_due(
    starts_at: datetime, lead: timedelta, zone: ZoneInfo, night: tuple[time, time] | None, applies_from: timedelta
) -> datetime:
    """When a reminder ``lead`` before ``starts_at`` goes to a reader in ``zone``.

    A reminder of ``applies_from`` or more ahead (the 24 h one) never lands in the local
    ``night``: it moves to the night's end, unless that would be at or after the start.
    """
    due = starts_at - lead
    if lead >= applies_from and night is not None:
        shifted = after_quiet_hours(due, zone, night)
        if shifted < starts_at:
            return shifted
    return due


def queue_reminders(session: Session, config: Config, maintenance: Maintenance, now: datetime) -> int:
    """Plan every reminder still ahead, and the started notice, for the maintenance's start."""
    assert maintenance.id is not None
    start, section, queued = maintenance.starts_at, config.maintenance, 0
    zones = sms.zones(config)
    known = [code for codes in zones.values() for code in codes]
    for lead in section.remind_before:
        prefix = _key(REMINDER, maintenance, _epoch(start), int(lead.total_seconds()))
        for zone, regions in zones.items():
            due = reminder_due(start, lead, ZoneInfo(zone), section.night_window, section.night_applies_from)
            if due > now:
                queued += _queue(session, config, maintenance.id, REMINDER, prefix, due, now, regions=regions,
                                 before=start)  # fmt: skip
        if start - lead > now:  # readers of regions gone from the config: by UTC, unshifted
            queued += _queue(session, config, maintenance.id, REMINDER, prefix, start - lead, now, exclude=known)
    if start > now:
        prefix = _key(STARTED, maintenance, _epoch(start))
        queued += _queue(session, config, maintenance.id, STARTED, prefix, start, now, before=maintenance.ends_at)
    return queued


# Announcement and notices -----------------------------------------------------------------


def queue_maintenance_notice(
    session: Session, config: Config, maintenance: Maintenance, kind: str, now: datetime, *,
    informed_only: bool = False,
) -> int:  # fmt: skip
    """Queue one ``kind`` message (the announcement, or a rescheduled/extended/cancelled/completed
    notice) to the audience, due now; one per subscriber, per version of the maintenance."""
    assert maintenance.id is not None and kind in PLANNED_KINDS
    if kind == "maintenance_extended":
        prefix = _key(kind, maintenance, _epoch(maintenance.ends_at))
    elif kind == "maintenance_rescheduled":
        prefix = _key(kind, maintenance, maintenance.version)
    else:
        prefix = _key(kind, maintenance)
    return _queue(session, config, maintenance.id, kind, prefix, now, now, informed_only=informed_only)


def cancel_maintenance_unsent(session: Session, maintenance_id: int, kinds: tuple[str, ...], reason: str) -> int:
    """Cancel the waiting messages of ``kinds`` about one maintenance; returns how many."""
    stmt = (
        update(Message)
        .where(Message.maintenance_id == maintenance_id, Message.kind.in_(kinds),  # type: ignore[attr-defined]
               Message.state.in_(UNSENT_STATES))  # type: ignore[attr-defined]
        .values(state="cancelled", last_error=reason)
    )  # fmt: skip
    return session.exec(stmt.execution_options(preserve_rowcount=True)).rowcount  # type: ignore[call-overload]


def queue_overrun_note(session: Session, config: Config, maintenance: Maintenance, now: datetime) -> int:
    """One note to on-call that the maintenance is past its end and not completed (per end)."""
    if not config.notifier.oncall_email:
        return 0
    row = message_row(kind=OVERRUN, channel="email", recipient=config.notifier.oncall_email, now=now,
                      dedupe_key=_key(OVERRUN, maintenance, _epoch(maintenance.ends_at)),
                      locale=config.notifier.default_locale)  # fmt: skip
    return insert_rows(session, [{**row, "maintenance_id": maintenance.id}])


def queue_confirmation(session: Session, subscriber: Subscriber, now: datetime, *, channel: str = "email") -> int:
    """The double opt-in e-mail, or SMS to a phone (to one already subscribed: a link to its
    preferences).

    The row names no subscriber (a pending one is not "active": nothing else may reach it);
    its key does, with a nonce, so each request that passed the rate limits gets its own.
    """
    recipient = subscriber.phone if channel == sms.CHANNEL else subscriber.email
    assert subscriber.id is not None and recipient
    key = f"{CONFIRMATION}:{subscriber.id}:{secrets.token_hex(8)}"
    if channel == sms.CHANNEL:
        key = sms.sms_key(key)
    return insert_rows(session, [message_row(kind=CONFIRMATION, channel=channel, recipient=recipient,
                                             dedupe_key=key, locale=subscriber.locale, now=now)])  # fmt: skip
