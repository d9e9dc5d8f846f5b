"""The console's hotline screens: find a caller by any identifier, see whether they are
affected and what to say, log the call, promise a callback; the callbacks list, overdue first.

Thin routes over ``notifier.hotline`` (lookup, script, log_call, list_callbacks,
close_callback) with the logged-in user as the one who took the call or closed the callback.
The screens speak the operator's language; "what to say" to a caller is in the *caller's*
language; a call logged here is attached to the open incident the caller is affected by.
Mounted by ``create_app`` only when ``notifier.hotline`` is importable.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from notifier import hotline
from notifier.db import write_session
from notifier.errors import CallbackNotFound, UsageError
from notifier.web.console import page, redirect, words
from notifier.web.deps import ConfigDep, EngineDep, NowDep, ReadSession, TemplatesDep, UserDep, check_csrf

router = APIRouter(prefix="/console", include_in_schema=False, dependencies=[Depends(check_csrf)])
Text = Annotated[str, Form(max_length=5000)]
MAX_ID = 2**31 - 1  # the largest id a row can have on PostgreSQL


@router.get("/hotline", response_class=HTMLResponse)
def hotline_page(
    request: Request, user: UserDep, session: ReadSession, config: ConfigDep, templates: TemplatesDep,
    now: NowDep, q: Annotated[str, Query(max_length=200)] = "",
) -> Response:  # fmt: skip
    """Caller lookup (what to say in each caller's own language); without a query, what to say
    about every open incident, in the operator's."""
    renderer = request.app.state.renderer
    callers = hotline.lookup(session, config, q, now, renderer=renderer) if q.strip() else []
    script = [] if q.strip() else hotline.script(session, config, locale=user.locale or None, now=now,
                                                  renderer=renderer)  # fmt: skip
    return page(request, templates, "hotline.html", user=user, q=q, callers=callers, script=script)


@router.post("/hotline/calls")
def log_call(
    request: Request, user: UserDep, engine: EngineDep, config: ConfigDep, now: NowDep,
    subscriber: Text = "", caller_phone: Text = "", note: Text = "", callback_minutes: Annotated[str, Form()] = "",
    q: Text = "", incident: Annotated[str, Form(max_length=20)] = "",
) -> Response:  # fmt: skip
    minutes = callback_minutes.strip()
    if minutes and (not minutes.isdigit() or not 0 < int(minutes) <= 60 * 24 * 14):
        raise UsageError("a callback is promised in 1 to 20160 minutes")
    with write_session(engine) as session:
        call, callback = hotline.log_call(
            session, config, subscriber_key=subscriber or None, caller_phone=caller_phone or None, note=note,
            callback_in=timedelta(minutes=int(minutes)) if minutes else None, by=user.name, now=now,
            incident_ref=incident.strip() or None,
        )  # fmt: skip
        about = f"INC-{call.incident_id}" if call.incident_id else ""
    t = words(user)
    flash = (t("Call logged about {ref}", ref=about) if about else t("Call logged")) + (
        t("; callback #{id} promised.", id=callback.id) if callback else ".")  # fmt: skip
    return redirect(request, f"/console/hotline?q={quote(q)}", flash)


@router.get("/callbacks", response_class=HTMLResponse)
def callbacks_page(
    request: Request, user: UserDep, session: ReadSession, templates: TemplatesDep, now: NowDep
) -> Response:
    """Open callbacks, overdue ones first."""
    return page(
        request, templates, "callbacks.html", user=user, entries=hotline.list_callbacks(session, now=now)
    )


@router.post("/callbacks/{callback_id}/done")
def close_callback(
    request: Request, callback_id: str, user: UserDep, engine: EngineDep, now: NowDep, outcome: Text = ""
) -> Response:
    if not (callback_id.isascii() and callback_id.isdigit()) or not 1 <= int(callback_id) <= MAX_ID:
        raise CallbackNotFound(callback_id[:30])
    with write_session(engine) as session:
        hotline.close_callback(session, int(callback_id), outcome, by=user.name, now=now)
    return redirect(request, "/console/callbacks", words(user)("Callback #{id} closed.", id=callback_id))
