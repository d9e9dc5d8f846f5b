"""Dependencies every route shares, declared once: config, engine, sessions, clock, templates,
the logged-in console user and the CSRF check.

Routes say what they need with these ``Annotated`` aliases; nothing here reads settings at
import time: ``create_app`` puts them on ``app.state``. Reads get a session per request;
writes open ``db.write_session`` inside the route, so a commit failure is reported as the
route's own error instead of after the response has gone.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine
from sqlmodel import Session

from notifier import users
from notifier.config import Config
from notifier.db import read_session
from notifier.web import text
from notifier.web.errors import CsrfFailed, LoginRequired


def get_config(request: Request) -> Config:
    return request.app.state.config


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_locale(request: Request) -> str:
    """The language a public page or document answers in: ``?locale=``, else ``Accept-Language``,
    else ``[notifier].default_locale`` (``text.request_locale``)."""
    return text.request_locale(
        request.query_params.get("locale"), request.headers.get("accept-language"),
        request.app.state.config.notifier.default_locale,
    )  # fmt: skip


def get_templates(request: Request) -> Jinja2Templates:
    """The pages in the request's language (``get_locale``)."""
    by_locale = getattr(request.app.state, "templates_by_locale", None)
    if not by_locale:
        return request.app.state.templates
    return by_locale.get(get_locale(request), request.app.state.templates)


def templates_for(request: Request, locale: str | None) -> Jinja2Templates:
    """The pages in ``locale`` (a console user's, a subscriber's); the default ones for None."""
    by_locale = getattr(request.app.state, "templates_by_locale", None) or {}
    return by_locale.get(locale or "", request.app.state.templates)


def get_now(request: Request) -> datetime:
    return request.app.state.clock()


def read_db(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    with read_session(engine) as session:
        yield session


LocaleDep = Annotated[str, Depends(get_locale)]
ConfigDep = Annotated[Config, Depends(get_config)]
EngineDep = Annotated[Engine, Depends(get_engine)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]
NowDep = Annotated[datetime, Depends(get_now)]
ReadSession = Annotated[Session, Depends(read_db)]


@dataclass(frozen=True)
class ConsoleUser:
    id: int
    name: str
    locale: str = ""  # the console's language for this user ("" = [notifier].default_locale)


def current_user(request: Request, engine: EngineDep) -> ConsoleUser:
    """The logged-in console user; LoginRequired if there is none, or they were disabled, or
    their sessions were ended since this one began (they logged out, anywhere)."""
    user_id, generation = request.session.get("uid"), request.session.get("gen")
    if not isinstance(user_id, int) or not isinstance(generation, int):
        raise LoginRequired()
    with read_session(engine) as session:
        user = users.get_active(session, user_id, generation)
    if user is None:
        request.session.clear()
        raise LoginRequired()
    return ConsoleUser(id=user_id, name=user.name, locale=user.locale or request.app.state.config.notifier.default_locale)


UserDep = Annotated[ConsoleUser, Depends(current_user)]


def csrf_token(request: Request) -> str:
    """This session's CSRF token, made on first use; every console form carries it."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


async def check_csrf(request: Request) -> None:
    """Refuse any non-GET console request whose form lacks this session's CSRF token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = request.session.get("csrf")
    given = (await request.form()).get("csrf_token")
    if not isinstance(expected, str) or not isinstance(given, str):
        raise CsrfFailed()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise CsrfFailed()
