"""The web side of ``notifier serve``: public status page, status API and feed, one-click
unsubscribe, the support console and the alert webhook, as one FastAPI app.

``create_app(config, engine)`` is the only entry point: settings are passed in (nothing is
read at import time), the signing secret and the alert token are read from the environment
once, here. Every page is served under a Content-Security-Policy without 'unsafe-inline':
styles and scripts are files under ``/static/`` (``templates/web/static/``); request bodies
are bounded (``bodies``); the interactive API docs are off (their assets would come from a
CDN the policy blocks): the OpenAPI document stays at ``/api/openapi.json``. The app holds no state besides ``app.state``; business state is in the database.
Routes live one module per concern: ``public``, ``api``, ``feed``, ``unsubscribe``,
``console`` (and ``console_hotline``), ``alerts``, ``sms`` (delivery reports), ``letters``; shared dependencies in ``deps``.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from sqlalchemy.engine import Engine
from starlette.datastructures import MutableHeaders
from starlette.middleware.sessions import SessionMiddleware
from starlette.staticfiles import StaticFiles

from notifier import languages
from notifier.characters import defused, display_email
from notifier.config import LOCALES, Config, default_templates_dir
from notifier.models import utcnow
from notifier.rendering import Renderer
from notifier.web import text
from notifier.web.bodies import BodyLimit
from notifier.web.logins import LoginGuard
from notifier.wording import operator_zone

__all__ = ["create_app"]

SESSION_COOKIE = "notifier_console"
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


def _shown(value: Any) -> Any:
    """Every value a page prints, with control and direction characters (stored before they were
    refused) made visible as U+FFFD instead of reordering the page around them."""
    if isinstance(value, Markup):
        return Markup(defused(str(value)))
    return defused(value) if isinstance(value, str) else value


def _templates(config: Config, locale: str) -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(default_templates_dir() / "web"))
    env = templates.env
    env.finalize = _shown
    env.globals.update(
        t=text.translator(locale), label=text.translator(locale), local=text.local_time(config, locale),
        duration=text.duration(locale), config=config, locale=locale,
        company=config.notifier.company.get(locale),
        region_name=lambda code: config.regions[code].name.get(locale) if code in config.regions else code,
        service_name=lambda code: config.services[code].name.get(locale) if code in config.services else code,
        shown_email=display_email,
        tr=lambda row, field: languages.text(row, field, locale),  # an incident's or update's text here
        operator_time=text.operator_time(locale, operator_zone(config.notifier.operator_timezone)),
    )  # fmt: skip
    return templates


class SecurityHeaders:
    """Every response gets the security headers (a route may set its own CSP); the console's
    and the unsubscribe pages are never cached. Plain ASGI: it wraps nothing but ``send``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = scope["path"].startswith(("/console", "/unsubscribe", "/preferences", "/subscribe/confirm", "/letters"))

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")  # unsubscribe tokens live in URLs
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Content-Security-Policy", _CSP)
                headers.add_vary_header("Accept-Language")  # pages and documents answer in the asked language
                if private:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(config: Config, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> FastAPI:
    """The whole web app over ``engine``; ``clock`` gives "now" (tests may pin it).

    Raises ConfigError when the signing secret ([notifier].secret_env) is not set: it signs
    both unsubscribe links and console sessions.
    """
    from notifier.web import (
        alerts,
        api,
        bounces,
        console,
        console_maintenance,
        console_progress,
        errors,
        feed,
        ivr,
        public,
        unsubscribe,
    )
    from notifier.web import letters as letter_pages  # the full letter behind an apology SMS
    from notifier.web import maintenance as planned_pages  # planned work: page section, .ics, API
    from notifier.web import metrics as metrics_page  # Prometheus /metrics for on-call
    from notifier.web import sms as sms_reports  # SMS gateways' delivery reports
    from notifier.web import subscribe as subscribe_pages  # self-service subscribe, preferences

    secret = config.secret()
    locale = config.notifier.default_locale
    app = FastAPI(
        title=f"{config.notifier.company.get(locale)}: status API",
        summary="Statuspage-compatible status API, Atom feed and Alertmanager webhook.",
        docs_url=None, redoc_url=None, openapi_url="/api/openapi.json",
    )  # fmt: skip
    app.state.config, app.state.engine, app.state.clock = config, engine, clock
    app.state.secret = secret
    app.state.alert_token = os.environ.get(config.serve.alert_token_env, "").strip()
    app.state.templates = _templates(config, locale)
    # Each language's pages: a public page answers in ?locale= / Accept-Language, the console
    # in its user's language, the unsubscribe page in its subscriber's (``deps.get_templates``).
    app.state.templates_by_locale = {code: _templates(config, code) for code in LOCALES}
    app.state.templates_by_locale[locale] = app.state.templates
    app.state.t = text.translator(locale)
    app.state.local = text.local_time(config, locale)
    app.state.renderer = Renderer(config)
    app.state.logins = LoginGuard()

    app.add_middleware(BodyLimit)  # innermost: it raises in the route that reads too much
    session_key = hmac.new(secret, b"notifier:console-session", hashlib.sha256).hexdigest()
    app.add_middleware(
        SessionMiddleware, secret_key=session_key, session_cookie=SESSION_COOKIE, path="/console",
        max_age=12 * 3600, same_site="lax", https_only=config.notifier.public_base_url.startswith("https://"),
    )  # fmt: skip
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET"], allow_credentials=False)
    app.add_middleware(SecurityHeaders)
    errors.install(app)
    app.mount(
        "/static", StaticFiles(directory=str(default_templates_dir() / "web" / "static")), name="static"
    )

    app.include_router(public.router)
    app.include_router(api.router)
    app.include_router(feed.router)
    app.include_router(unsubscribe.router)
    app.include_router(console.router)
    app.include_router(console_progress.router)
    app.include_router(console_maintenance.router)
    app.include_router(alerts.router)
    app.include_router(bounces.router)
    app.include_router(ivr.router)
    app.include_router(planned_pages.router)
    app.include_router(subscribe_pages.router)
    app.include_router(sms_reports.router)
    app.include_router(letter_pages.router)
    app.include_router(metrics_page.router)
    _include_hotline(app)
    return app


def _include_hotline(app: FastAPI) -> None:
    """The hotline screens need ``notifier.hotline``; without it the console simply lacks them."""
    if importlib.util.find_spec("notifier.hotline") is None:
        app.state.hotline = False
        return
    from notifier.web import console_hotline

    app.state.hotline = True
    app.include_router(console_hotline.router)
