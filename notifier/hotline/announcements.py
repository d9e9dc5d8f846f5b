"""The operator's script: what to say about each open incident right now.

Owns rendering the current announcement for a caller's region (its local time) and language,
the incidents that hit that region first. Queueing the announcement to the ``[hotline]``
targets at every step is ``outbox.queue_announcements``; the text itself is the ``hotline``
template's business (``rendering``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from notifier import incidents, languages
from notifier.config import LOCALES, Config
from notifier.errors import UsageError
from notifier.models import Incident, utcnow
from notifier.rendering import Renderer


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
    latest = incidents.latest_public_update(session, incident.id)
    rendered = renderer.render(
        "hotline", incident=incident, locale=locale, region=region, update=latest, now=now
    )
    shown = region if region is not None else next((c for c in incident.regions if c in renderer.config.regions),
                                                   next(iter(renderer.config.regions)))  # fmt: skip
    return ScriptEntry(
        incident=incident.ref, incident_id=incident.id, title=languages.text(incident, "title", locale),
        status=incident.status,
        region=shown, affects_region=None if region is None else region in incident.regions, locale=locale,
        subject=rendered.subject, text=rendered.text, updated_at=incident.updated_at,
    )  # fmt: skip
