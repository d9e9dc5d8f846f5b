"""The console's planned work: ``/console/maintenance`` lists what is scheduled and in progress
and schedules more (the same ``notifier.maintenance.schedule`` as ``notifier maintenance
schedule``: audience snapshot, announcement at once, reminders planned).

Owns the form and the list; logins, CSRF and the page frame are the console's (``console``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from notifier import maintenance
from notifier.db import write_session
from notifier.errors import UsageError
from notifier.web.console import Codes, Text, page, redirect, words
from notifier.web.deps import ConfigDep, EngineDep, NowDep, ReadSession, TemplatesDep, UserDep, check_csrf

router = APIRouter(prefix="/console", include_in_schema=False, dependencies=[Depends(check_csrf)])


@router.get("/maintenance", response_class=HTMLResponse)
def maintenance_page(request: Request, user: UserDep, session: ReadSession, templates: TemplatesDep,
                     now: NowDep) -> Response:  # fmt: skip
    planned = maintenance.list_maintenance(session, limit=50, include_done=False)
    rows = [(item, maintenance.phase(item, now), maintenance.audience_size(session, item.id)) for item in planned]  # type: ignore[arg-type]
    return page(request, templates, "maintenance.html", user=user, rows=rows)


def _moment(value: str, field: str) -> datetime:
    """A ``datetime-local`` form value, read in UTC (the form says so)."""
    try:
        return datetime.fromisoformat(value.strip()).replace(tzinfo=UTC)
    except ValueError:
        raise UsageError(f"{field}: {value!r} is not a date and time such as 2027-03-04T09:00") from None


@router.post("/maintenance")
def schedule(
    request: Request, user: UserDep, engine: EngineDep, config: ConfigDep, now: NowDep,
    title: Annotated[str, Form()] = "", starts: Annotated[str, Form()] = "", ends: Annotated[str, Form()] = "",
    regions: Codes = [], services: Codes = [], message: Text = "",  # noqa: B006
    title_en: Annotated[str, Form()] = "", message_en: Text = "",
) -> Response:  # fmt: skip
    english = {"en": {"title": title_en or None, "message": message_en or None}}
    with write_session(engine) as session:
        step = maintenance.schedule(session, config, title=title, regions=regions, services=services,
                                    starts_at=_moment(starts, "starts"), ends_at=_moment(ends, "ends"),
                                    message=message, by=user.name, now=now, texts=english)  # fmt: skip
    t = words(user)
    return redirect(request, "/console/maintenance",
                    t("Scheduled {ref}: {affected} affected, announced.", ref=step.maintenance.ref,
                      affected=step.affected))  # fmt: skip
