"""Incident reports: what happened, to whom, and what we sent — the "learn" rule.

Owns assembling one incident's report (timeline, audience size and how many of it have no
e-mail address, messages by kind and state, the SMS among them by delivery state, first and
last delivery, the languages whose apologies wait for their texts) as plain data for the
CLI, the web and the tests.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from notifier import incidents, outbox
from notifier.bounces.suppression import mailing_counts
from notifier.config import Config
from notifier.models import AudienceMember, Message, Subscriber
from notifier.outbox.sms import sms_counts


def incident_report(session: Session, ref: str | int, config: Config | None = None) -> dict[str, Any]:
    """The report; with ``config`` it also names the languages whose apologies are held."""
    incident = incidents.get(session, ref)
    assert incident.id is not None
    sent_window = session.execute(
        select(Message.kind, func.min(Message.sent_at), func.max(Message.sent_at))
        .where(Message.incident_id == incident.id, Message.state == "sent")
        .group_by(Message.kind)
    ).all()
    return {
        **incidents.as_dict(incident),
        "audience": incidents.audience_size(session, incident.id),
        "audience_without_email": _without_email(session, incident.id),
        "apology_held_languages": [gap.as_dict() for gap in incidents.held_languages(session, config, incident)]
        if config is not None else [],
        "messages": outbox.counts(session, incident.id),
        "sms": sms_counts(session, incident.id),  # per kind: held … accepted, delivered, failed, expired
        "deliveries": {
            kind: {"first_sent_at": first, "last_sent_at": last} for kind, first, last in sent_window
        },
        "bounces": mailing_counts(session, incident.id),  # per kind: hard/soft bounces, complaints
        **_hotline(session, incident.id),
        "timeline": incidents.timeline_dicts(session, incident.id),
    }


def _without_email(session: Session, incident_id: int) -> int:
    """Audience members with no e-mail address (phone-only: SMS, if any, is all they get)."""
    return session.execute(
        select(func.count()).select_from(AudienceMember)
        .join(Subscriber, Subscriber.id == AudienceMember.subscriber_id)
        .where(AudienceMember.incident_id == incident_id, Subscriber.email.is_(None))  # type: ignore[union-attr]
    ).scalar_one()  # fmt: skip


def _hotline(session: Session, incident_id: int) -> dict[str, Any]:
    from notifier import hotline  # hotline reads incidents and reports do not need it at import

    return hotline.report_section(session, incident_id)
