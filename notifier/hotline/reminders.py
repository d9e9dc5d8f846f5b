"""Stale-incident reminders: silence is the worst status.

Owns deciding which open incidents have gone without a public status update (declared or
update) for ``[hotline].stale_after`` and queueing one reminder per silence to
``[notifier].oncall_email``, and another every ``stale_after`` while the silence lasts. A new
public update re-arms it; the de-duplication key (``reminder:INCIDENT:LAST_UPDATE``, then
``…:N`` for the N-th period of the same silence) keeps it to one per period however often this runs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session

from notifier.config import Config
from notifier.incidents import PUBLIC_UPDATE_KINDS
from notifier.models import Incident, Update, utcnow
from notifier.outbox import insert_rows, message_row


def queue_stale_reminders(session: Session, config: Config, now: datetime | None = None) -> int:
    """Queue a reminder for each open incident silent for ``stale_after``; returns how many were new."""
    now = now or utcnow()
    if not config.notifier.oncall_email:
        return 0
    last = (
        select(Update.incident_id, func.max(Update.id).label("update_id"))
        .where(Update.kind.in_(PUBLIC_UPDATE_KINDS))  # type: ignore[attr-defined]
        .group_by(Update.incident_id)
        .subquery()
    )
    rows = session.execute(
        select(Incident, Update)
        .join(last, last.c.incident_id == Incident.id)
        .join(Update, Update.id == last.c.update_id)
        .where(Incident.status != "resolved", Update.created_at <= now - config.hotline.stale_after)
    ).all()
    queued = 0
    step = config.hotline.stale_after
    for incident, latest in rows:
        periods = max(1, int((now - latest.created_at) / step)) if step.total_seconds() > 0 else 1
        reminded = incident.reminded_at
        if reminded is not None and reminded >= latest.created_at and now - reminded < step:
            continue  # reminded during this silence less than stale_after ago
        key = f"reminder:{incident.id}:{latest.id}" + (f":{periods}" if periods > 1 else "")
        queued += insert_rows(session, [message_row(
            kind="reminder", channel="email", recipient=config.notifier.oncall_email,
            dedupe_key=key, locale=config.notifier.default_locale, now=now,
            incident_id=incident.id, update_id=latest.id,
        )])  # fmt: skip
        incident.reminded_at = now
        session.add(incident)
    session.flush()
    return queued
