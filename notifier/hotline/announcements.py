"""Hotline announcements and the operator's script.

Owns queueing each incident step's announcement to every ``[hotline].targets`` entry (one
outbox row per target; an unsent older announcement to the same target is cancelled, so the
call centre and the phone line never get a stale one after a newer one), and rendering what
an operator should say right now, in the caller's region's local time. The text itself is
the ``hotline`` template's business (``rendering``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session

from notifier import incidents
from notifier.config import LOCALES, Config
from notifier.errors import UsageError
from notifier.hotline.queueing import insert_messages, message_row
from notifier.models import UNSENT_STATES, Incident, Message, Update, utcnow
from notifier.rendering import Renderer

PUBLIC_UPDATE_KINDS = ("declared", "update")


@dataclass(frozen=True)
class ScriptEntry:
    """What to say about one incident, rendered for one region and language."""

    incident: str  # INC-n
    incident_id: int
    title: str
    status: str
    region: str  # the region whose local time the text uses
    affects_region: bool | None  # None when no caller region was given
    locale: str
    subject: str
    text: str
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def latest_public_update(session: Session, incident_id: int) -> Update | None:
    """The newest public status update (declared or update) of an incident."""
    query = (
        select(Update)
        .where(Update.incident_id == incident_id, Update.kind.in_(PUBLIC_UPDATE_KINDS))  # type: ignore[attr-defined]
        .order_by(Update.id.desc())  # type: ignore[union-attr]
        .limit(1)
    )
    return session.execute(query).scalars().first()


def queue_announcements(
    session: Session, config: Config, incident: Incident, update_id: int, now: datetime
) -> int:
    """Queue the announcement of ``update_id`` to each hotline target; returns how many were queued.

    Call it right after every declare, update, scope change and resolve. Unsent older
    announcements of this incident to the same targets are cancelled first (latest wins);
    running it twice for the same update queues nothing new.
    """
    assert incident.id is not None
    targets = config.hotline.targets
    if not targets:
        return 0
    recipients = [target.email or target.webhook for target in targets]
    session.execute(
        update(Message)
        .where(
            Message.incident_id == incident.id,
            Message.kind == "hotline",
            Message.recipient.in_(recipients),  # type: ignore[attr-defined]
            Message.state.in_(UNSENT_STATES),  # type: ignore[attr-defined]
            Message.update_id != update_id,
        )
        .values(state="cancelled", last_error="superseded by a newer hotline announcement")
    )
    rows = [
        message_row(
            kind="hotline",
            channel="email" if target.email else "webhook",
            recipient=recipient,
            dedupe_key=f"hotline:{incident.id}:{update_id}:{index}",
            locale=target.locale,
            now=now,
            incident_id=incident.id,
            update_id=update_id,
        )  # fmt: skip
        for index, (target, recipient) in enumerate(zip(targets, recipients, strict=True))
    ]
    return insert_messages(session, rows)


def check_region(config: Config, region: str | None) -> str | None:
    if region is None:
        return None
    code = region.strip()
    if code not in config.regions:
        raise UsageError(f"unknown region {code!r} (known: {', '.join(sorted(config.regions))})")
    return code


def check_locale(config: Config, locale: str | None) -> str:
    if locale is None:
        return config.notifier.default_locale
    if locale not in LOCALES:
        raise UsageError(f"--locale must be one of {', '.join(LOCALES)}, not {locale!r}")
    return locale


def script(
    session: Session, config: Config, incident_ref: str | int | None = None, region: str | None = None,
    locale: str | None = None, now: datetime | None = None, *, renderer: Renderer | None = None,
) -> list[ScriptEntry]:  # fmt: skip
    """What an operator should say right now: for one incident, or every open one (those that
    hit the caller's region first), with times in that region's local time."""
    now = now or utcnow()
    code = check_region(config, region)
    lang = check_locale(config, locale)
    if incident_ref is not None:
        chosen = [incidents.get(session, incident_ref)]
    else:
        chosen = incidents.list_incidents(session, open_only=True, limit=100)
    renderer = renderer or Renderer(config)
    entries = [_entry(session, renderer, incident, code, lang, now) for incident in chosen]
    return sorted(entries, key=lambda e: (e.affects_region is False, -e.incident_id))


def _entry(
    session: Session, renderer: Renderer, incident: Incident, region: str | None, locale: str, now: datetime
) -> ScriptEntry:
    assert incident.id is not None
    latest = latest_public_update(session, incident.id)
    rendered = renderer.render(
        "hotline", incident=incident, locale=locale, region=region, update=latest, now=now
    )
    shown = region if region is not None else next((c for c in incident.regions if c in renderer.config.regions),
                                                   next(iter(renderer.config.regions)))  # fmt: skip
    return ScriptEntry(
        incident=incident.ref, incident_id=incident.id, title=incident.title, status=incident.status,
        region=shown, affects_region=None if region is None else region in incident.regions, locale=locale,
        subject=rendered.subject, text=rendered.text, updated_at=incident.updated_at,
    )  # fmt: skip
