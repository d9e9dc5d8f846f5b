"""The iCalendar (RFC 5545) event of a maintenance: the ``.ics`` its letters carry and the page links.

Owns turning a maintenance into one ``VEVENT`` (``icalendar``): start and end in UTC, a UID
stable for the maintenance and a SEQUENCE that grows with each change of its times (so a
calendar that imported the first announcement moves the event on a reschedule), STATUS
CANCELLED once it is called off, and a description giving the times in the reader's own
zone too. A pure function of its arguments: data in, bytes out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from notifier import languages
from notifier.models import Maintenance

__all__ = ["CONTENT_TYPE", "filename", "ics"]

CONTENT_TYPE = "text/calendar"


def filename(maintenance: Maintenance) -> str:
    return f"maintenance-{maintenance.id}.ics"


def ics(
    maintenance: Maintenance, *, domain: str, url: str, company: str, zone: ZoneInfo | None = None,
    zone_label: str = "", description: str = "", now: datetime | None = None, locale: str = "",
) -> bytes:  # fmt: skip
    """The maintenance as a calendar with one event; ``zone`` adds the local times to its description."""
    calendar = Calendar()
    calendar.add("prodid", "-//notifier//planned maintenance//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if maintenance.status == "cancelled" else "PUBLISH")
    event = Event()
    event.add("uid", f"maintenance-{maintenance.id}@{domain}")
    event.add("sequence", maintenance.version)
    event.add("dtstamp", (now or maintenance.updated_at).astimezone(UTC))
    event.add("dtstart", maintenance.starts_at.astimezone(UTC))
    event.add("dtend", maintenance.ends_at.astimezone(UTC))
    title, message = (languages.text(maintenance, field, locale) for field in ("title", "message"))
    event.add("summary", f"{company}: {title}")
    text = [description or message]
    if zone is not None:
        start, end = maintenance.starts_at.astimezone(zone), maintenance.ends_at.astimezone(zone)
        text.append(f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} {zone_label or zone.key}")
    text.append(f"{maintenance.starts_at.astimezone(UTC):%Y-%m-%d %H:%M} – {maintenance.ends_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
    event.add("description", "\n".join(part for part in text if part))
    event.add("url", url)
    event.add("status", "CANCELLED" if maintenance.status == "cancelled" else "CONFIRMED")
    event.add("transp", "TRANSPARENT")
    calendar.add_component(event)
    return calendar.to_ical()
