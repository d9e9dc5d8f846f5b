"""Planned work on the web: the status page's upcoming and in-progress maintenance, the ``.ics``
download, and Statuspage's scheduled-maintenance documents.

Owns ``/maintenance/{id}.ics`` and ``/api/v2/scheduled-maintenances.json``, ``…/upcoming.json``
(still *scheduled*) and ``…/active.json`` (*in_progress*), with Statuspage's keys: ``id``,
``name``, ``status`` scheduled | in_progress | verifying | completed, ``impact`` ``maintenance``,
``scheduled_for``, ``scheduled_until``, ``started_at``, ``resolved_at``, ``incident_updates``,
``components``, ``shortlink``, ``page_id`` … (times ISO 8601 UTC). A cancelled maintenance is
published nowhere. :func:`public_view` is what the status page shows (``public`` calls it).
Like the rest of the public side, no personal data: titles, messages, times, regions, services.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy import select
from sqlmodel import Session

from notifier import languages, maintenance
from notifier.config import Config
from notifier.errors import MaintenanceNotFound, UsageError
from notifier.maintenance import calendar
from notifier.models import Maintenance
from notifier.web.deps import ConfigDep, LocaleDep, NowDep, ReadSession
from notifier.web.status import PAGE_ID, iso
from notifier.wording import zone_label

router = APIRouter(tags=["status"])
_STATUS = {"scheduled": "scheduled", "in_progress": "in_progress", "overrunning": "in_progress",
           "completed": "completed"}  # fmt: skip


@dataclass(frozen=True)
class PublicMaintenance:
    item: Maintenance
    phase: str  # scheduled | in_progress | completed (Statuspage's words)

    def covers_service(self, code: str) -> bool:
        return not self.item.services or code in self.item.services


def _published(session: Session, now: datetime, limit: int = 50) -> list[PublicMaintenance]:
    found = session.exec(  # type: ignore[call-overload]
        select(Maintenance).where(Maintenance.status != "cancelled").order_by(Maintenance.starts_at.desc()).limit(limit)  # type: ignore[attr-defined]
    ).scalars()
    return [PublicMaintenance(m, _STATUS[maintenance.phase(m, now)]) for m in found]


def public_view(session: Session, now: datetime, region: str | None = None) -> list[PublicMaintenance]:
    """Upcoming and in-progress maintenance (of ``region``), the soonest first."""
    shown = [m for m in _published(session, now) if m.phase != "completed"]
    if region is not None:
        shown = [m for m in shown if region in m.item.regions]
    return sorted(shown, key=lambda m: m.item.starts_at)


@router.get("/maintenance/{maintenance_id}.ics", include_in_schema=False)
def ics_file(
    session: ReadSession, config: ConfigDep, now: NowDep, locale: LocaleDep, maintenance_id: str,
    region: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:  # fmt: skip
    """The maintenance as an iCalendar event, its times in UTC (and in ``region``'s zone in the text)."""
    if region is not None and region not in config.regions:
        raise UsageError("There is no region with that code.")
    if not maintenance_id.isdigit():
        raise MaintenanceNotFound(maintenance_id)
    item = maintenance.get(session, int(maintenance_id))
    area = config.regions[region] if region else None
    data = calendar.ics(
        item, domain=config.smtp.from_address.rpartition("@")[2] or "localhost",
        url=config.notifier.public_base_url.rstrip("/") + "/", company=config.notifier.company.get(locale),
        zone=area.zone if area else None, zone_label=zone_label(area.timezone, locale) if area else "", now=now,
        locale=locale,
    )  # fmt: skip
    return Response(data, media_type=calendar.CONTENT_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{calendar.filename(item)}"'})  # fmt: skip


# Statuspage's documents -------------------------------------------------------------------


def _page(config: Config, now: datetime) -> dict[str, Any]:
    return {"id": PAGE_ID, "name": config.notifier.company.get(config.notifier.default_locale),
            "url": config.notifier.public_base_url, "time_zone": "Etc/UTC", "updated_at": iso(now)}  # fmt: skip


def _updates(entry: PublicMaintenance, locale: str) -> list[dict[str, Any]]:
    item = entry.item
    steps = [("scheduled", item.announced_at, languages.text(item, "message", locale))]
    if entry.phase in ("in_progress", "completed"):
        steps.append(("in_progress", item.starts_at, ""))
    if item.completed_at is not None:
        steps.append(("completed", item.completed_at, ""))
    return [
        {"id": f"{item.ref}-{status}", "status": status, "body": body, "incident_id": item.ref,
         "created_at": iso(at), "updated_at": iso(at), "display_at": iso(at), "affected_components": None}
        for status, at, body in reversed(steps)
    ]  # fmt: skip


def scheduled_maintenance(config: Config, entry: PublicMaintenance, locale: str = "") -> dict[str, Any]:
    """One maintenance in Statuspage's shape, its texts in ``locale`` (default: the default language)."""
    item, locale = entry.item, locale or config.notifier.default_locale
    return {
        "id": item.ref, "name": languages.text(item, "title", locale), "status": entry.phase, "impact": "maintenance",
        "created_at": iso(item.announced_at), "updated_at": iso(item.updated_at), "monitoring_at": None,
        "started_at": iso(item.starts_at) if entry.phase != "scheduled" else None,
        "resolved_at": iso(item.completed_at), "scheduled_for": iso(item.starts_at),
        "scheduled_until": iso(item.ends_at), "shortlink": f"{config.notifier.public_base_url}/#{item.ref}",
        "page_id": PAGE_ID,
        "regions": [{"id": c, "name": config.regions[c].name.get(locale) if c in config.regions else c}
                    for c in item.regions],
        "components": [{"id": code, "name": config.services[code].name.get(locale), "status": "under_maintenance"
                        if entry.phase == "in_progress" else "operational", "page_id": PAGE_ID}
                       for code in (item.services or list(config.services)) if code in config.services],
        "incident_updates": _updates(entry, locale),
    }  # fmt: skip


def _document(config: Config, now: datetime, entries: list[PublicMaintenance], locale: str) -> dict[str, Any]:
    return {"page": _page(config, now),
            "scheduled_maintenances": [scheduled_maintenance(config, e, locale) for e in entries]}  # fmt: skip


@router.get("/api/v2/scheduled-maintenances.json")
def all_maintenances(session: ReadSession, config: ConfigDep, now: NowDep, locale: LocaleDep) -> dict[str, Any]:
    """The 50 most recent scheduled maintenances: scheduled, in progress and completed."""
    return _document(config, now, _published(session, now), locale)


@router.get("/api/v2/scheduled-maintenances/upcoming.json")
def upcoming(session: ReadSession, config: ConfigDep, now: NowDep, locale: LocaleDep) -> dict[str, Any]:
    """Maintenances still in the *scheduled* state, soonest first."""
    return _document(config, now, [e for e in public_view(session, now) if e.phase == "scheduled"], locale)


@router.get("/api/v2/scheduled-maintenances/active.json")
def active(session: ReadSession, config: ConfigDep, now: NowDep, locale: LocaleDep) -> dict[str, Any]:
    """Maintenances *in progress* (started and not completed)."""
    return _document(config, now, [e for e in public_view(session, now) if e.phase == "in_progress"], locale)

