"""The public view of incidents: what the status page, the status API and the feed show.

Owns choosing what is public (open incidents, those resolved in the last 30 days, their
public updates — never authors, audiences or internal scope notes), the per-service status
derived from open incidents, and the Statuspage vocabularies. It reads through the domain
module ``incidents`` and renders nothing: ``public`` and ``api`` turn a ``StatusView`` into
HTML, JSON or Atom.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from notifier import incidents
from notifier.config import Config
from notifier.errors import UsageError
from notifier.models import Incident, Update

PAGE_ID = "notifier"  # the page's id in the Statuspage-shaped documents (api, maintenance)
HISTORY = timedelta(days=30)
PUBLIC_KINDS = ("declared", "update", "resolved")
# Our severity -> Statuspage impact; and the component status an open incident causes.
IMPACT = {"minor": "minor", "major": "major", "critical": "critical"}
COMPONENT_STATUS = {"minor": "degraded_performance", "major": "partial_outage", "critical": "major_outage"}
_COMPONENT_RANK = ["operational", "degraded_performance", "partial_outage", "major_outage"]
_INDICATOR = {"operational": "none", "degraded_performance": "minor", "partial_outage": "major",
              "major_outage": "critical"}  # fmt: skip


@dataclass(frozen=True)
class PublicIncident:
    incident: Incident
    updates: list[Update]  # public ones, newest first

    @property
    def impact(self) -> str:
        return IMPACT.get(self.incident.severity, "major")

    def covers_service(self, code: str) -> bool:
        return not self.incident.services or code in self.incident.services


@dataclass(frozen=True)
class ComponentState:
    code: str
    status: str  # operational | degraded_performance | partial_outage | major_outage
    updated_at: datetime | None


@dataclass(frozen=True)
class StatusView:
    open: list[PublicIncident]
    resolved: list[PublicIncident]
    components: list[ComponentState]
    updated_at: datetime
    region: str | None = None
    all: list[PublicIncident] = field(default_factory=list)  # open and resolved, newest first

    @property
    def indicator(self) -> str:
        """Statuspage's overall indicator: none | minor | major | critical."""
        worst = max((_COMPONENT_RANK.index(c.status) for c in self.components), default=0)
        return _INDICATOR[_COMPONENT_RANK[worst]]


def _component_status(incident: Incident) -> str:
    if incident.status == "monitoring":
        return "degraded_performance"
    return COMPONENT_STATUS.get(incident.severity, "partial_outage")


def build(
    session: Session, config: Config, *, now: datetime, region: str | None = None, limit: int = 100
) -> StatusView:
    """What the public sees now, optionally only incidents that touch ``region``."""
    since = now - HISTORY
    chosen: list[PublicIncident] = []
    for incident in incidents.list_incidents(session, limit=limit):
        if region is not None and region not in incident.regions:
            continue
        if incident.status == "resolved" and (incident.resolved_at or incident.updated_at) < since:
            continue
        updates = [u for u in incidents.timeline(session, incident.id) if u.kind in PUBLIC_KINDS]  # type: ignore[arg-type]
        chosen.append(PublicIncident(incident, list(reversed(updates))))
    open_ = [p for p in chosen if p.incident.status != "resolved"]
    resolved = [p for p in chosen if p.incident.status == "resolved"]
    components = []
    for code in config.services:
        hit = [p.incident for p in open_ if p.covers_service(code)]
        status = max((_component_status(i) for i in hit), key=_COMPONENT_RANK.index, default="operational")
        updated = max((i.updated_at for i in hit), default=None)
        components.append(ComponentState(code, status, updated))
    updated_at = max((p.incident.updated_at for p in chosen), default=now)
    return StatusView(open_, resolved, components, updated_at, region, chosen)


def check_region(config: Config, region: str | None) -> str | None:
    """``?region=`` as given (None when empty); an unknown code is a UsageError (400)."""
    code = (region or "").strip() or None
    if code is not None and code not in config.regions:
        raise UsageError("There is no region with that code.")
    return code


def iso(at: datetime | None) -> str | None:
    """Statuspage-style ISO 8601 in UTC with milliseconds."""
    if at is None:
        return None
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
