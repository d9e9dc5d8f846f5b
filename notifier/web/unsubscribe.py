"""One-click unsubscribe (RFC 8058) at the URL every letter's ``List-Unsubscribe`` header carries.

``POST /unsubscribe/{token}`` with the form field ``List-Unsubscribe=One-Click`` unsubscribes
at once: no cookie, no login, no CSRF token (the signed token is the proof), and a second
POST changes nothing. ``GET`` only shows a page whose button POSTs the same form, because
mail scanners fetch every link in a letter. A forged, cut or mangled token gets a 4xx page
and changes nothing. The pages never show who the token belongs to; they are in the
subscriber's language (a forged token's page: in the request's, ``deps.get_templates``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from notifier import subscribers, subscriptions
from notifier.db import read_session, write_session
from notifier.errors import SubscriberNotFound, UsageError
from notifier.models import Subscriber, utcnow
from notifier.tokens import verify_token
from notifier.web.deps import EngineDep, TemplatesDep, templates_for

router = APIRouter(include_in_schema=False)


def _subscriber_id(request: Request, token: str) -> int | None:
    return verify_token(request.app.state.secret, token)


def _invalid(request: Request, templates: TemplatesDep, status_code: int = 400) -> Response:
    return templates.TemplateResponse(
        request, "unsubscribe.html", {"state": "invalid"}, status_code=status_code
    )


def _reader_templates(request: Request, engine: EngineDep, subscriber_id: int) -> TemplatesDep:
    """The pages in the subscriber's own language (the letter they clicked was in it)."""
    with read_session(engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
    return templates_for(request, subscriber.locale if subscriber is not None else None)


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def confirm(request: Request, token: str, templates: TemplatesDep, engine: EngineDep) -> Response:
    """A confirmation page with a button; changes nothing."""
    subscriber_id = _subscriber_id(request, token)
    if subscriber_id is None:
        return _invalid(request, templates)
    templates = _reader_templates(request, engine, subscriber_id)
    return templates.TemplateResponse(request, "unsubscribe.html", {"state": "confirm", "token": token})


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
async def one_click(request: Request, token: str, engine: EngineDep, templates: TemplatesDep) -> Response:
    """RFC 8058 one-click: the body must be ``List-Unsubscribe=One-Click``."""
    subscriber_id = _subscriber_id(request, token)
    if subscriber_id is None:
        return _invalid(request, templates)
    form = await request.form()
    if form.get("List-Unsubscribe") != "One-Click":
        raise UsageError("Expected the form field List-Unsubscribe=One-Click (RFC 8058).")
    try:
        await _unsubscribe(engine, subscriber_id)
    except SubscriberNotFound:
        return _invalid(request, templates, status_code=404)
    templates = await run_in_threadpool(_reader_templates, request, engine, subscriber_id)
    return templates.TemplateResponse(request, "unsubscribe.html", {"state": "done"})


async def _unsubscribe(engine: EngineDep, subscriber_id: int) -> None:
    def work() -> None:
        with write_session(engine) as session:
            was = session.get(Subscriber, subscriber_id)
            active = was is not None and was.status == "active"
            subscribers.unsubscribe(session, subscriber_id)
            if active:  # `subscribers stats` counts who left, and how
                subscriptions.record_event(session, subscriber_id, "unsubscribed", utcnow(), source="one-click")

    await run_in_threadpool(work)
