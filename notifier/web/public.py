"""The public status page ``/``: open incidents, the last 30 days, per-service status.

Owns the page's routes and the region filter (planned work comes from ``web.maintenance``). What is public is decided in
``web.status``; this module only picks the region and hands the view to the template.
No personal data ever reaches it: incidents and their public updates only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from notifier.errors import UsageError
from notifier.web import maintenance, status
from notifier.web.deps import ConfigDep, NowDep, ReadSession, TemplatesDep

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def status_page(
    request: Request,
    session: ReadSession,
    config: ConfigDep,
    templates: TemplatesDep,
    now: NowDep,
    region: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    """The status page, optionally for one region (``/?region=66``)."""
    region = (region or "").strip() or None
    if region is not None and region not in config.regions:
        raise UsageError(request.app.state.t("There is no region with that code."))
    view = status.build(session, config, now=now, region=region)
    planned = maintenance.public_view(session, now, region)  # upcoming and in-progress planned work
    return templates.TemplateResponse(request, "status.html", {"view": view, "now": now, "planned": planned})


@router.get("/robots.txt", response_class=HTMLResponse)
def robots() -> HTMLResponse:
    return HTMLResponse(
        "User-agent: *\nDisallow: /console\nDisallow: /unsubscribe\n", media_type="text/plain"
    )
