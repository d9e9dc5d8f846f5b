"""The maintenance lifecycle: schedule, reschedule, extend, cancel, complete; its audience.

Owns the rules of planned work: the audience snapshot (active subscribers in its regions who
use one of its services, like an incident's), which mailings each step owes — queued through
``outbox.planned`` with ``not_before`` times, so ``notifier serve`` sends each when it is due
and no scheduler job of our own is needed — and the phase a maintenance is in at a moment
(scheduled, in progress, overrunning, completed, cancelled). It renders and sends nothing.
Every function takes its Session and, where time matters, a ``now`` (tests pin the clock).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, literal, or_, select
from sqlmodel import Session

from notifier import characters, languages
from notifier.config import Config
from notifier.db import dialect_module
from notifier.errors import InvalidTransition, MaintenanceNotFound, UsageError
from notifier.models import Maintenance, MaintenanceAudience, Message, Subscriber, UTCDateTime, utcnow
from notifier.outbox import planned

_LONGEST = timedelta(days=30)


@dataclass(frozen=True)
class MaintenanceStep:
    """What one step did, for the CLI, the console and the tests."""

    maintenance: Maintenance
    affected: int = 0
    queued: dict[str, int] = field(default_factory=dict)
    cancelled: int = 0


def parse_ref(ref: str | int) -> int:
    match = re.fullmatch(r"(?:MNT-?)?(\d{1,9})", str(ref).strip(), re.IGNORECASE)
    if not match:
        raise MaintenanceNotFound(str(ref).strip())
    return int(match.group(1))


def get(session: Session, ref: str | int, *, for_update: bool = False) -> Maintenance:
    query = select(Maintenance).where(Maintenance.id == parse_ref(ref))
    if for_update:
        query = query.with_for_update()
    maintenance = session.exec(query).scalars().first()  # type: ignore[call-overload]
    if maintenance is None:
        raise MaintenanceNotFound(str(ref))
    return maintenance


def phase(maintenance: Maintenance, now: datetime, margin: timedelta = timedelta(0)) -> str:
    """scheduled | in_progress | overrunning (past its end by ``margin``) | completed | cancelled."""
    if maintenance.status != "scheduled":
        return maintenance.status
    if now < maintenance.starts_at:
        return "scheduled"
    return "overrunning" if now > maintenance.ends_at + margin else "in_progress"


def _text(value: str, what: str, *, required: bool, multiline: bool = False) -> str:
    value = characters.strip_invisible((value or "").strip())
    if required and not value:
        raise UsageError(f"{what} must not be empty")
    problem = characters.problem(value, multiline=multiline)
    if problem:
        raise UsageError(f"{what} {problem}; remove it")
    return value


def _window(starts_at: datetime, ends_at: datetime, now: datetime, *, future_start: bool = True) -> None:
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise UsageError("--starts and --ends need a time zone (such as 2027-03-01T02:00+03:00 or …Z)")
    if ends_at <= starts_at:
        raise UsageError("--ends must be after --starts")
    if ends_at - starts_at > _LONGEST:
        raise UsageError("a maintenance window may last at most 30 days")
    if future_start and starts_at <= now:
        raise UsageError("--starts is in the past: planned work is announced before it starts")


def _codes(config: Config, regions: list[str], services: list[str]) -> tuple[list[str], list[str]]:
    regions = list(dict.fromkeys(r.strip() for r in regions if r.strip()))
    services = list(dict.fromkeys(s.strip() for s in services if s.strip()))
    if not regions:
        raise UsageError("a maintenance needs at least one --region")
    for code in regions:
        if code not in config.regions:
            raise UsageError(f"unknown region {code!r} (known: {', '.join(sorted(config.regions))})")
    for code in services:
        if code not in config.services:
            raise UsageError(f"unknown service {code!r} (known: {', '.join(sorted(config.services))})")
    return regions, services


def _snapshot(session: Session, maintenance: Maintenance, now: datetime) -> int:
    conditions = [Subscriber.status == "active", Subscriber.region.in_(maintenance.regions)]  # type: ignore[attr-defined]
    if maintenance.services:
        conditions.append(or_(*(Subscriber.services.like(f"%;{code};%") for code in maintenance.services)))  # type: ignore[attr-defined]
    source = select(literal(maintenance.id), Subscriber.id, literal(now, UTCDateTime())).where(and_(*conditions))
    module = dialect_module(session)
    stmt = (
        module.insert(MaintenanceAudience)
        .from_select(["maintenance_id", "subscriber_id", "added_at"], source)
        .on_conflict_do_nothing()
    )
    return session.exec(stmt.execution_options(preserve_rowcount=True)).rowcount  # type: ignore[call-overload]


def audience_size(session: Session, maintenance_id: int) -> int:
    query = select(func.count()).select_from(MaintenanceAudience).where(
        MaintenanceAudience.maintenance_id == maintenance_id
    )
    return session.exec(query).scalar_one()  # type: ignore[call-overload]


def schedule(
    session: Session, config: Config, *, title: str, regions: list[str], services: list[str] | None = None,
    starts_at: datetime, ends_at: datetime, message: str = "", by: str = "", now: datetime | None = None,
    texts: dict[str, dict[str, str | None]] | None = None,
) -> MaintenanceStep:  # fmt: skip
    """Plan the work, snapshot its audience, announce it at once and plan its reminders.

    ``texts``: the title and message in other languages (``{"en": {"title": …, "message": …}}``);
    a reader of a language without them reads the default language's."""
    now = now or utcnow()
    regions, codes = _codes(config, regions, services or [])
    _window(starts_at, ends_at, now)
    maintenance = Maintenance(
        title=_text(title, "--title", required=True), message=_text(message, "--message", required=False,
        multiline=True), regions=regions, services=codes, starts_at=starts_at, ends_at=ends_at,
        announced_at=now, created_by=by, updated_at=now,
        translations=languages.check(config, texts, ("title", "message")) or None,
    )  # fmt: skip
    session.add(maintenance)
    session.flush()
    affected = _snapshot(session, maintenance, now)
    queued = {planned.ANNOUNCEMENT: planned.queue_maintenance_notice(session, config, maintenance, planned.ANNOUNCEMENT, now),
              planned.REMINDER: planned.queue_reminders(session, config, maintenance, now)}  # fmt: skip
    return MaintenanceStep(maintenance, affected=affected, queued=queued)


def _open(session: Session, ref: str | int) -> Maintenance:
    maintenance = get(session, ref, for_update=True)
    if maintenance.status != "scheduled":
        raise InvalidTransition(f"{maintenance.ref} is {maintenance.status}; it can no longer change")
    return maintenance


def reschedule(
    session: Session, config: Config, ref: str | int, *, starts_at: datetime, ends_at: datetime, by: str = "",
    now: datetime | None = None,
) -> MaintenanceStep:  # fmt: skip
    """New times: those already told hear them, the old reminders are cancelled, new ones planned."""
    now = now or utcnow()
    maintenance = _open(session, ref)
    if maintenance.starts_at <= now:
        raise InvalidTransition(f"{maintenance.ref} has started; to give it more time: notifier maintenance extend")
    _window(starts_at, ends_at, now)
    if (starts_at, ends_at) == (maintenance.starts_at, maintenance.ends_at):
        raise UsageError("those are its times already")
    cancelled = planned.cancel_maintenance_unsent(session, maintenance.id, (planned.REMINDER, planned.STARTED),  # type: ignore[arg-type]
                                                  "cancelled: the maintenance was rescheduled")  # fmt: skip
    maintenance.previous_starts_at, maintenance.previous_ends_at = maintenance.starts_at, maintenance.ends_at
    maintenance.starts_at, maintenance.ends_at = starts_at, ends_at
    maintenance.version += 1
    maintenance.updated_at = now
    session.flush()
    kind = "maintenance_rescheduled"
    queued = {kind: planned.queue_maintenance_notice(session, config, maintenance, kind, now, informed_only=True),
              planned.REMINDER: planned.queue_reminders(session, config, maintenance, now)}  # fmt: skip
    return MaintenanceStep(maintenance, audience_size(session, maintenance.id), queued, cancelled)  # type: ignore[arg-type]


def extend(
    session: Session, config: Config, ref: str | int, *, ends_at: datetime, by: str = "",
    now: datetime | None = None,
) -> MaintenanceStep:  # fmt: skip
    """It takes longer: a later end, and a notice to those already told."""
    now = now or utcnow()
    maintenance = _open(session, ref)
    if ends_at.tzinfo is None:
        raise UsageError("--ends needs a time zone (such as 2027-03-01T06:00+03:00 or …Z)")
    if ends_at <= maintenance.ends_at:
        raise UsageError("--ends must be later than the current end (to change the start: reschedule)")
    _window(maintenance.starts_at, ends_at, now, future_start=False)
    maintenance.previous_ends_at, maintenance.ends_at = maintenance.ends_at, ends_at
    maintenance.version += 1
    maintenance.updated_at = now
    session.flush()
    kind = "maintenance_extended"
    queued = {kind: planned.queue_maintenance_notice(session, config, maintenance, kind, now, informed_only=True)}
    return MaintenanceStep(maintenance, audience_size(session, maintenance.id), queued)  # type: ignore[arg-type]


def cancel(session: Session, config: Config, ref: str | int, *, by: str = "", now: datetime | None = None) -> MaintenanceStep:
    """Called off: nothing more about it goes out but the cancellation, to those already told."""
    now = now or utcnow()
    maintenance = _open(session, ref)
    if maintenance.starts_at <= now:
        raise InvalidTransition(f"{maintenance.ref} has started; finish it with: notifier maintenance complete")
    cancelled = planned.cancel_maintenance_unsent(session, maintenance.id, planned.PLANNED_KINDS,  # type: ignore[arg-type]
                                                  "cancelled: the maintenance was called off")  # fmt: skip
    maintenance.status, maintenance.cancelled_at, maintenance.updated_at = "cancelled", now, now
    kind = "maintenance_cancelled"
    queued = {kind: planned.queue_maintenance_notice(session, config, maintenance, kind, now, informed_only=True)}
    return MaintenanceStep(maintenance, audience_size(session, maintenance.id), queued, cancelled)  # type: ignore[arg-type]


def complete(session: Session, config: Config, ref: str | int, *, by: str = "", now: datetime | None = None) -> MaintenanceStep:
    """The work is done: the completed notice goes to the audience."""
    now = now or utcnow()
    maintenance = _open(session, ref)
    if maintenance.starts_at > now:
        raise InvalidTransition(f"{maintenance.ref} has not started yet; to call it off: notifier maintenance cancel")
    cancelled = planned.cancel_maintenance_unsent(session, maintenance.id, (planned.REMINDER, planned.STARTED,  # type: ignore[arg-type]
                                                  "maintenance_extended"), "cancelled: the maintenance is over")  # fmt: skip
    maintenance.status, maintenance.completed_at, maintenance.updated_at = "completed", now, now
    kind = "maintenance_completed"
    queued = {kind: planned.queue_maintenance_notice(session, config, maintenance, kind, now)}
    return MaintenanceStep(maintenance, audience_size(session, maintenance.id), queued, cancelled)  # type: ignore[arg-type]


def queue_overrun_reminders(session: Session, config: Config, now: datetime) -> int:
    """Remind on-call of every maintenance past its end by ``[maintenance].overrun_margin`` and
    not completed: once per end (an ``extend`` that overruns again reminds again). For the
    scheduler's housekeeping; returns how many notes were queued."""
    cutoff = now - config.maintenance.overrun_margin
    late = session.exec(  # type: ignore[call-overload]
        select(Maintenance).where(Maintenance.status == "scheduled", Maintenance.ends_at < cutoff)
    ).scalars()
    return sum(planned.queue_overrun_note(session, config, maintenance, now) for maintenance in late)


def list_maintenance(session: Session, *, limit: int = 50, include_done: bool = True) -> list[Maintenance]:
    query = select(Maintenance).order_by(Maintenance.starts_at.desc()).limit(limit)  # type: ignore[attr-defined]
    if not include_done:
        query = query.where(Maintenance.status == "scheduled")
    return list(session.exec(query).scalars())  # type: ignore[call-overload]


def during(session: Session, regions: list[str], moment: datetime) -> Maintenance | None:
    """The scheduled maintenance whose window holds ``moment`` and shares a region, if any."""
    found = session.exec(  # type: ignore[call-overload]
        select(Maintenance).where(Maintenance.status == "scheduled", Maintenance.starts_at <= moment,
                                  Maintenance.ends_at >= moment).order_by(Maintenance.starts_at)  # fmt: skip
    ).scalars()
    return next((m for m in found if set(m.regions) & set(regions)), None)


def message_counts(session: Session, maintenance_id: int) -> dict[str, dict[str, int]]:
    """``{kind: {state: n}}`` of one maintenance's messages, for ``maintenance show`` and reports."""
    rows = session.exec(  # type: ignore[call-overload]
        select(Message.kind, Message.state, func.count()).where(Message.maintenance_id == maintenance_id)
        .group_by(Message.kind, Message.state)
    )  # fmt: skip
    counts: dict[str, dict[str, int]] = {}
    for kind, state, n in rows:
        counts.setdefault(kind, {})[state] = n
    return counts
