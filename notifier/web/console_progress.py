"""The console's live view of each mailing: ``GET /console/incidents/<ref>/progress.json``, polled
by ``/static/console-progress.js`` on the incident page so the numbers move without a reload.

Owns the JSON the page reads: per mailing (``outbox.progress``) its label in the console user's
language, the counts, the rate over the last minute and the time left. Console users only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from notifier import incidents
from notifier.outbox import progress
from notifier.web import text
from notifier.web.deps import NowDep, ReadSession, UserDep

router = APIRouter(prefix="/console", include_in_schema=False)


def mailing_rows(session: Any, incident_id: int, now: Any, locale: str) -> list[dict[str, Any]]:
    """The incident's mailings, each with a ``label`` such as "status · email · update 2"."""
    t = text.translator(locale)
    updates = {u.id: n for n, u in enumerate(
        (u for u in incidents.timeline(session, incident_id) if u.kind in incidents.PUBLIC_UPDATE_KINDS), 1)}  # fmt: skip
    rows = []
    for mailing in progress.mailings(session, incident_id, now):
        label = f"{t(mailing.kind)} · {mailing.channel}"
        if mailing.update_id in updates:
            label += " · " + t("update {n}", n=updates[mailing.update_id])
        rows.append({"label": label, **mailing.as_dict()})
    return rows


@router.get("/incidents/{ref}/progress.json")
def progress_json(ref: str, user: UserDep, session: ReadSession, now: NowDep) -> dict[str, Any]:
    incident = incidents.get(session, ref)
    assert incident.id is not None
    return {"incident": incident.ref, "at": now.isoformat(),
            "mailings": mailing_rows(session, incident.id, now, user.locale)}  # fmt: skip
