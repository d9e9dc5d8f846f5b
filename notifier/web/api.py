"""The status API in Atlassian Statuspage's v2 shape, so existing clients and dashboards read it.

Owns ``/api/v2/summary.json``, ``status.json``, ``incidents.json``,
``incidents/unresolved.json`` and ``components.json`` (our services are its components),
with Statuspage's field names and vocabularies: incident ``status`` investigating |
identified | monitoring | resolved, ``impact`` none | minor | major | critical, component
``status`` operational | degraded_performance | partial_outage | major_outage. Times are
ISO 8601 UTC. Like the page, it publishes incidents and public updates only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from notifier import languages
from notifier.config import Config
from notifier.web import maintenance, status
from notifier.web.deps import ConfigDep, LocaleDep, NowDep, ReadSession
from notifier.web.status import PAGE_ID, ComponentState, PublicIncident, StatusView, iso

router = APIRouter(prefix="/api/v2", tags=["status"])
Region = Annotated[str | None, Query(max_length=64, description="only incidents of this region code")]
_DESCRIPTION = {"none": "All Systems Operational", "minor": "Minor Service Outage",
                "major": "Partial System Outage", "critical": "Major System Outage"}  # fmt: skip


def _page(config: Config, view: StatusView, locale: str = "") -> dict[str, Any]:
    return {
        "id": PAGE_ID,
        "name": config.notifier.company.get(locale or config.notifier.default_locale),
        "url": config.notifier.public_base_url,
        "time_zone": "Etc/UTC",
        "updated_at": iso(view.updated_at),
    }


def _component(
    config: Config, state: ComponentState, position: int, view: StatusView, locale: str = ""
) -> dict[str, Any]:
    return {
        "id": state.code,
        "name": config.services[state.code].name.get(locale or config.notifier.default_locale),
        "status": state.status,
        "created_at": None,
        "updated_at": iso(state.updated_at or view.updated_at),
        "position": position,
        "description": None,
        "showcase": True,
        "start_date": None,
        "group_id": None,
        "page_id": PAGE_ID,
        "group": False,
        "only_show_if_degraded": False,
    }


def _incident(config: Config, item: PublicIncident, view: StatusView, locale: str = "") -> dict[str, Any]:
    incident, locale = item.incident, locale or config.notifier.default_locale
    now_status = {c.code: c.status for c in view.components}
    monitoring = [u.created_at for u in item.updates if u.status == "monitoring"]
    components = [
        {
            "id": code,
            "name": config.services[code].name.get(locale),
            "status": now_status[code],
            "page_id": PAGE_ID,
        }
        for code in (incident.services or list(config.services))
        if code in config.services
    ]
    return {
        "id": incident.ref,
        "name": languages.text(incident, "title", locale),
        "status": incident.status,
        "impact": item.impact,
        "created_at": iso(incident.declared_at),
        "updated_at": iso(incident.updated_at),
        "started_at": iso(incident.started_at),
        "monitoring_at": iso(min(monitoring)) if monitoring else None,
        "resolved_at": iso(incident.resolved_at),
        "shortlink": f"{config.notifier.public_base_url}/#{incident.ref}",
        "page_id": PAGE_ID,
        "regions": [
            {"id": code, "name": config.regions[code].name.get(locale) if code in config.regions else code}
            for code in incident.regions
        ],
        "components": components,
        "incident_updates": [
            {
                "id": str(update.id),
                "status": update.status,
                "body": languages.text(update, "message", locale),
                "incident_id": incident.ref,
                "created_at": iso(update.created_at),
                "updated_at": iso(update.created_at),
                "display_at": iso(update.created_at),
                "affected_components": None,
            }
            for update in item.updates
        ],
    }


def _status(view: StatusView) -> dict[str, str]:
    return {"indicator": view.indicator, "description": _DESCRIPTION[view.indicator]}


def _view(session: ReadSession, config: Config, now: Any, region: str | None) -> StatusView:
    """What the page shows, for one region when ``?region=`` names one (as the page does)."""
    return status.build(session, config, now=now, region=status.check_region(config, region))


@router.get("/summary.json")
def summary(session: ReadSession, config: ConfigDep, now: NowDep, locale: LocaleDep, region: Region = None) -> dict[str, Any]:
    """Page, overall status, components and unresolved incidents in one document (``?locale=``
    or ``Accept-Language`` picks the language of names and texts; ``?region=`` one region)."""
    view = _view(session, config, now, region)
    return {
        "page": _page(config, view, locale),
        "status": _status(view),
        "components": [_component(config, c, i, view, locale) for i, c in enumerate(view.components, 1)],
        "incidents": [_incident(config, item, view, locale) for item in view.open],
        "scheduled_maintenances": [
            maintenance.scheduled_maintenance(config, entry, locale)
            for entry in maintenance.public_view(session, now, status.check_region(config, region))
        ],
    }


@router.get("/status.json")
def overall_status(session: ReadSession, config: ConfigDep, now: NowDep, locale: LocaleDep) -> dict[str, Any]:
    """The overall indicator: none | minor | major | critical."""
    view = status.build(session, config, now=now)
    return {"page": _page(config, view, locale), "status": _status(view)}


@router.get("/components.json")
def components(session: ReadSession, config: ConfigDep, now: NowDep, locale: LocaleDep) -> dict[str, Any]:
    """Every service as a Statuspage component with its current status."""
    view = status.build(session, config, now=now)
    return {
        "page": _page(config, view, locale),
        "components": [_component(config, c, i, view, locale) for i, c in enumerate(view.components, 1)],
    }


@router.get("/incidents.json")
def all_incidents(
    session: ReadSession, config: ConfigDep, now: NowDep, locale: LocaleDep, region: Region = None
) -> dict[str, Any]:
    """Open incidents and those resolved in the last 30 days, newest first (``?region=``: one region's)."""
    view = _view(session, config, now, region)
    return {"page": _page(config, view, locale),
            "incidents": [_incident(config, item, view, locale) for item in view.all]}  # fmt: skip


@router.get("/incidents/unresolved.json")
def unresolved(
    session: ReadSession, config: ConfigDep, now: NowDep, locale: LocaleDep, region: Region = None
) -> dict[str, Any]:
    """Incidents not yet resolved (investigating, identified or monitoring)."""
    view = _view(session, config, now, region)
    return {"page": _page(config, view, locale),
            "incidents": [_incident(config, item, view, locale) for item in view.open]}  # fmt: skip
