"""Loading: a claimed batch of outbox rows becomes jobs ready to render.

Owns reading, for the rows a sender just claimed, everything their templates need (the
subscriber, the incident as it is *now*, the update, the callback and call of an escalation,
the pause an on-call note is about) and deciding which of them are no longer wanted:
a status notice superseded by a newer one or whose incident is resolved, anything to a
subscriber who is no longer active, an SMS to a number a gateway has refused since, an
escalation whose callback was closed, a reminder about an incident updated or resolved
since, an SMS budget note whose held mailing was released. An SMS job renders its SMS text
(``render["channel"] = "sms"``). Planned work's messages get their maintenance as it is
now (and a reminder its lead time) and are dropped once no longer wanted: a reminder or
started notice planned for a start the maintenance no longer has (rescheduled), anything but
the cancellation about a cancelled maintenance, a reminder after its completion; a
subscription confirmation gets its (pending) subscriber, and is dropped when that one is
gone or has been unsubscribed since. It neither renders nor sends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from notifier.config import Config
from notifier.db import read_session
from notifier.incidents import PUBLIC_UPDATE_KINDS
from notifier.models import (
    UNSENT_STATES,
    Call,
    Callback,
    Incident,
    MailingPause,
    Maintenance,
    Message,
    Meta,
    Subscriber,
    Update,
    utcnow,
)
from notifier.outbox import planned, sms
from notifier.outbox.queueing import escalation_level, pause_id


@dataclass
class Job:
    """One claimed message with what rendering it needs, or why it should not go."""

    message: Message
    subscriber: Subscriber | None = None
    incident: Incident | None = None
    update: Update | None = None
    render: dict[str, Any] = field(default_factory=dict)  # more keyword arguments for Renderer.render
    callback: Callback | None = None
    cancel: str | None = None  # set: cancel it instead of sending, with this reason
    wait_until: datetime | None = None  # set: not yet (the reader's quiet hours): back, uncharged, until then

    @property
    def key(self) -> tuple[str, str, str]:
        """What a paused mailing is keyed by: kind, channel and language."""
        return (self.message.kind, self.message.channel, self.message.locale)


def instance_id(engine: Engine) -> str:
    """This database's random instance id (schema 0005), for globally unique Message-IDs."""
    with read_session(engine) as session:
        meta = session.get(Meta, "instance")
    return meta.value if meta is not None else "0"


class Loader:
    """Loads claimed batches for one sender run, caching what does not change within it."""

    def __init__(self, config: Config | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self._updates: dict[int, Update] = {}
        self.config, self.clock = config, clock

    def load(self, engine: Engine, ids: Iterable[int]) -> list[Job]:
        ids = list(ids)
        if not ids:
            return []
        with read_session(engine) as session:
            rows = session.execute(
                select(Message, Subscriber)
                .outerjoin(Subscriber, Subscriber.id == Message.subscriber_id)
                .where(Message.id.in_(ids))  # type: ignore[union-attr]
                .order_by(Message.id)
            ).all()
            messages = [m for m, _ in rows]
            # Incidents are read afresh each batch: a resolve or an update may have happened.
            incidents = self._incidents(session, {m.incident_id for m in messages if m.incident_id})
            latest = self._latest_updates(session, set(incidents))
            self._cache_updates(session, {m.update_id for m in messages if m.update_id} | set(latest.values()))
            callbacks = self._callbacks(session, {m.callback_id for m in messages if m.kind == "escalation"})
            pauses = self._pauses(session, {pause_id(m.dedupe_key) for m in messages if m.kind == "paused"})
            jobs = [
                self._job(m, s, incidents, latest, callbacks, pauses, session) for m, s in rows
            ]
            _planned_jobs(session, jobs)
            return jobs

    # -- one job ----------------------------------------------------------------------

    def _job(
        self, message: Message, subscriber: Subscriber | None, incidents: dict[int, Incident],
        latest: dict[int, int], callbacks: dict[int, tuple[Callback, Call, Subscriber | None]],
        pauses: dict[int, MailingPause], session: Session,
    ) -> Job:  # fmt: skip
        incident = incidents.get(message.incident_id) if message.incident_id else None
        update = self._updates.get(message.update_id) if message.update_id else None
        job = Job(message, subscriber, incident, update)
        if message.channel == sms.CHANNEL:
            job.render = {"channel": sms.CHANNEL}
            if self.config is not None:
                region = subscriber.region if subscriber is not None else None
                job.wait_until = sms.quiet_until(self.config, incident, message.kind, region, self.clock(),
                                                 planned_work=message.maintenance_id is not None)  # fmt: skip
        if subscriber is not None and subscriber.status != "active":
            job.cancel = f"cancelled: subscriber is {subscriber.status}"
        elif message.channel == sms.CHANNEL and subscriber is not None and subscriber.phone_refused == message.recipient:
            job.cancel = "cancelled: an SMS gateway refused this number"
        elif message.kind == "status":
            job.cancel = _stale_status(message, incident, latest)
        elif message.kind == "hotline":
            # An announcement reads out the latest public update, whichever step queued it.
            job.update = self._updates.get(latest.get(message.incident_id or 0, -1), update)
        elif message.kind == "reminder":
            job.cancel = _stale_reminder(message, incident, latest)
        elif message.kind == "escalation":
            _escalation(job, callbacks.get(message.callback_id or 0))
        elif message.kind == "paused":
            _pause_note(job, pauses.get(pause_id(message.dedupe_key) or 0), session)
        elif message.kind == sms.BUDGET_NOTE:
            _budget_note(job, session)
        return job

    # -- queries ----------------------------------------------------------------------

    @staticmethod
    def _incidents(session: Session, ids: set[int]) -> dict[int, Incident]:
        if not ids:
            return {}
        found = session.execute(select(Incident).where(Incident.id.in_(ids))).scalars()  # type: ignore[union-attr]
        return {incident.id: incident for incident in found}  # type: ignore[misc]

    @staticmethod
    def _latest_updates(session: Session, incident_ids: set[int]) -> dict[int, int]:
        """The newest public update of each incident."""
        if not incident_ids:
            return {}
        rows = session.execute(
            select(Update.incident_id, Update.id)
            .where(Update.incident_id.in_(incident_ids), Update.kind.in_(PUBLIC_UPDATE_KINDS))  # type: ignore[attr-defined]
            .order_by(Update.id)
        ).all()
        return {incident_id: update_id for incident_id, update_id in rows}

    def _cache_updates(self, session: Session, ids: set[int]) -> None:
        missing = ids - self._updates.keys()
        if missing:
            for update in session.execute(select(Update).where(Update.id.in_(missing))).scalars():  # type: ignore[union-attr]
                self._updates[update.id] = update  # type: ignore[index]

    @staticmethod
    def _callbacks(session: Session, ids: set[int | None]) -> dict[int, tuple[Callback, Call, Subscriber | None]]:
        wanted = {i for i in ids if i is not None}
        if not wanted:
            return {}
        rows = session.execute(
            select(Callback, Call, Subscriber)
            .join(Call, Call.id == Callback.call_id)
            .outerjoin(Subscriber, Subscriber.id == Call.subscriber_id)
            .where(Callback.id.in_(wanted))  # type: ignore[union-attr]
        ).all()
        return {callback.id: (callback, call, subscriber) for callback, call, subscriber in rows}  # type: ignore[misc]

    @staticmethod
    def _pauses(session: Session, ids: set[int | None]) -> dict[int, MailingPause]:
        wanted = {i for i in ids if i is not None}
        if not wanted:
            return {}
        found = session.execute(select(MailingPause).where(MailingPause.id.in_(wanted))).scalars()  # type: ignore[union-attr]
        return {pause.id: pause for pause in found}  # type: ignore[misc]


def _stale_status(message: Message, incident: Incident | None, latest: dict[int, int]) -> str | None:
    if incident is None:
        return "cancelled: the incident no longer exists"
    if incident.status == "resolved":
        return "cancelled: the incident is resolved"
    if message.update_id != latest.get(incident.id or 0):
        return "superseded by a newer status notice"
    return None


def _stale_reminder(message: Message, incident: Incident | None, latest: dict[int, int]) -> str | None:
    if incident is None or incident.status == "resolved":
        return "cancelled: the incident is resolved"
    newest = latest.get(incident.id or 0)
    if newest is not None and newest != message.update_id:
        return "cancelled: the incident has been updated since"
    return None


def _escalation(job: Job, loaded: tuple[Callback, Call, Subscriber | None] | None) -> None:
    if loaded is None:
        job.cancel = "cancelled: the callback no longer exists"
        return
    callback, call, subscriber = loaded
    job.callback = callback
    if callback.done_at is not None:
        job.cancel = "cancelled: the callback was closed"
    # The escalation is about the caller, who is not the message's recipient (support is).
    job.render = {"callback": callback, "call": call, "subscriber": subscriber,
                  "level": escalation_level(job.message.dedupe_key)}  # fmt: skip


def _pause_note(job: Job, pause: MailingPause | None, session: Session) -> None:
    if pause is None:
        job.cancel = "cancelled: the paused mailing has resumed"
        return
    waiting = session.execute(
        select(func.count()).select_from(Message)
        .where(Message.kind == pause.kind, Message.channel == pause.channel, Message.locale == pause.locale,
               Message.state.in_(UNSENT_STATES))  # type: ignore[attr-defined]
    ).scalar_one()  # fmt: skip
    job.render = {"pause": pause, "waiting": waiting}


def _budget_note(job: Job, session: Session) -> None:
    message = job.message
    mailing = sms.budget_mailing(message.dedupe_key)
    update_id = message.update_id if mailing == "status" else None
    held = sms.held_count(session, message.incident_id or 0, mailing, update_id)
    if not held:
        job.cancel = "cancelled: the held SMS mailing was released or cancelled"
    job.render = {"mailing": mailing, "held": held}


def _planned_jobs(session: Session, jobs: list[Job]) -> None:
    """Give planned work's and confirmation jobs what their templates need, or why not to send."""
    wanted = {job.message.maintenance_id for job in jobs if job.message.maintenance_id}
    found = session.execute(select(Maintenance).where(Maintenance.id.in_(wanted))).scalars() if wanted else []  # type: ignore[union-attr]
    maintenances = {m.id: m for m in found}
    for job in jobs:
        message = job.message
        if message.kind == planned.CONFIRMATION:
            _confirmation(job, session)
        elif message.maintenance_id is not None and job.cancel is None:
            maintenance = maintenances.get(message.maintenance_id)
            job.render = {**job.render, "maintenance": maintenance}  # and the channel, for an SMS
            if message.kind == planned.REMINDER:
                job.render["lead"] = planned.reminder_lead(message.dedupe_key)
            job.cancel = _unwanted_planned(message, maintenance)


def _unwanted_planned(message: Message, maintenance: Maintenance | None) -> str | None:
    if maintenance is None:
        return "cancelled: the maintenance no longer exists"
    if maintenance.status == "cancelled" and message.kind != "maintenance_cancelled":
        return "cancelled: the maintenance was called off"
    if message.kind in (planned.REMINDER, planned.STARTED):
        if maintenance.status == "completed":
            return "cancelled: the maintenance is over"
        if planned.planned_start(message.dedupe_key) != int(maintenance.starts_at.timestamp()):
            return "cancelled: the maintenance was rescheduled"
    if message.kind == planned.OVERRUN and maintenance.status != "scheduled":
        return "cancelled: the maintenance is no longer running"
    return None


def _confirmation(job: Job, session: Session) -> None:
    subscriber_id = planned.confirmation_subscriber(job.message.dedupe_key)
    subscriber = session.get(Subscriber, subscriber_id) if subscriber_id else None
    channel_address = {sms.CHANNEL: subscriber.phone, "email": subscriber.email} if subscriber else {}
    address = channel_address.get(job.message.channel)
    if subscriber is None or subscriber.status not in ("pending", "active") or address != job.message.recipient:
        job.cancel = "cancelled: the subscription request is no longer open"
        return
    job.render = {**job.render, "subscriber": subscriber}  # and the channel, for an SMS
