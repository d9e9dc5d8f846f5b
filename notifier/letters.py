"""The full letter behind an apology SMS: a signed, per-recipient link to a web page that
shows exactly the apology e-mail that subscriber would get.

Owns the link's shape (``/letters/<incident>/<subscriber>.<mac>``, the mac an HMAC under the
instance secret with the incident in its purpose, so a link opens one subscriber's letter for
one incident and nothing else) and finding whose letter a link opens: a subscriber in that
incident's audience whose apology has been queued. Rendering the letter is ``rendering``'s;
serving it is ``web.letters``'s.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from notifier import tokens
from notifier.models import AudienceMember, Incident, Subscriber

__all__ = ["find", "letter_url", "make_token", "verify"]


def _purpose(incident_id: int) -> str:
    return f"letter:{incident_id}"


def make_token(secret: bytes, incident_id: int, subscriber_id: int) -> str:
    return tokens.make_token(secret, subscriber_id, purpose=_purpose(incident_id))


def verify(secret: bytes, incident_id: int, token: str) -> int | None:
    """The subscriber id a genuine token for this incident carries; None otherwise."""
    return tokens.verify_token(secret, token, purpose=_purpose(incident_id))


def letter_url(base_url: str, incident_id: int, token: str) -> str:
    return f"{base_url.rstrip('/')}/letters/{incident_id}/{token}"


def find(session: Session, incident_id: int, subscriber_id: int) -> tuple[Incident, Subscriber] | None:
    """The incident and subscriber of a letter, when that subscriber was affected and the
    incident's apology has gone out (or is queued); None for anything else."""
    row = session.execute(
        select(Incident, Subscriber)
        .join(AudienceMember, AudienceMember.incident_id == Incident.id)
        .join(Subscriber, Subscriber.id == AudienceMember.subscriber_id)
        .where(Incident.id == incident_id, Subscriber.id == subscriber_id, Incident.apology_state == "queued")
    ).first()
    return (row[0], row[1]) if row else None
