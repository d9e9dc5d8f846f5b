"""The support console under ``/console``: log in with a personal token, run incidents.

Owns the console's routes: login (a user name and a personal token; failures limited per
address and per name by ``logins``) and logout (which ends the user's sessions on the
server, see ``users.end_sessions``), the incident list with delivery progress,
declaring (with a live count of the affected), posting updates, widening scope, resolving
with cause, measures and compensation, and previewing the apology exactly as a subscriber
would get it before it is sent. Every change goes through ``notifier.incidents`` with the
logged-in user as ``by``. The console speaks its user's language (``console_user.locale``,
switched with the button in the header; default ``[notifier].default_locale``); the forms take
the English texts beside the default ones (``title_en``, ``message_en``, ``cause_en``,
``measures_en``: the CLI's ``--title-en`` …) and say which readers lack their language. Sessions live in a signed cookie scoped to ``/console`` that
carries the user's session generation; every POST (login included) must carry the session's
CSRF token (checked router-wide).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine

from notifier import incidents, languages, outbox, users
from notifier.config import LOCALES, Config
from notifier.db import read_session, write_session
from notifier.errors import UsageError
from notifier.incidents import StepResult
from notifier.rendering import Renderer
from notifier.web import text
from notifier.web.console_progress import mailing_rows
from notifier.web.deps import (
    ConfigDep,
    ConsoleUser,
    EngineDep,
    NowDep,
    ReadSession,
    TemplatesDep,
    UserDep,
    check_csrf,
    csrf_token,
    templates_for,
)
from notifier.web.logins import LoginGuard
from notifier.web.preview import apology_preview

router = APIRouter(prefix="/console", include_in_schema=False, dependencies=[Depends(check_csrf)])
Text = Annotated[str, Form(max_length=20_000)]
Name = Annotated[str, Form(max_length=users.MAX_NAME)]
# The preview's iframe shows the letter's HTML, whose styles are inline (mail clients need them);
# scripts stay forbidden (the iframe is sandboxed too).
PREVIEW_CSP = (
    "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
Codes = Annotated[list[str], Form()]


def progress(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    """Delivery progress across kinds: sent, queued (incl. sending and retrying), failed, cancelled."""
    total = {"sent": 0, "queued": 0, "failed": 0, "cancelled": 0}
    for states in counts.values():
        for state, n in states.items():
            total[state if state in total else "queued"] += n
    return total


def redirect(request: Request, url: str, flash: str = "") -> RedirectResponse:
    """See other ``url`` (303), with ``flash`` shown once on the next console page."""
    if flash:
        request.session["flash"] = flash
    return RedirectResponse(url, status_code=303)


def page(
    request: Request, templates: TemplatesDep, name: str, status_code: int = 200, **context: object
) -> Response:
    """A console page (``templates/web/console/<name>``) with its flash message and CSRF token;
    the hotline screens (``console_hotline``) use it too."""
    context.setdefault("flash", request.session.pop("flash", ""))
    context.update(csrf_token=csrf_token(request), user=context.get("user"))
    user = context.get("user")
    if isinstance(user, ConsoleUser):
        templates = templates_for(request, user.locale)
    return templates.TemplateResponse(request, f"console/{name}", context, status_code=status_code)


def words(user: ConsoleUser) -> Callable[..., str]:
    """``t`` in the user's language, for the flash lines the routes write."""
    return text.translator(user.locale)


def _english(**fields: str) -> dict[str, dict[str, str | None]]:
    """The form's ``…_en`` fields as ``incidents`` takes other languages' texts (empty = not given)."""
    return {"en": {field: value for field, value in fields.items() if value.strip()}}


def _gap_lines(user: ConsoleUser, result: StepResult) -> str:
    """" 37 English readers will get the Russian text: add title_en." for each language lacking texts."""
    t = words(user)
    lines = []
    for gap in result.untranslated:
        fields = ", ".join(o.lstrip("-").replace("-", "_") for o in gap.options)
        template = ("{readers} {language} readers: their apology is HELD until it has their language: add {fields}."
                    if gap.held else "{readers} {language} readers will get the {default} text: add {fields}.")  # fmt: skip
        lines.append(" " + t(template, readers=gap.readers, fields=fields,
                             language=languages.language_name(gap.locale, user.locale or "en"),
                             default=languages.language_name(gap.default_locale, user.locale or "en")))  # fmt: skip
    return "".join(lines)


def _templates_ready(config: Config, kind: str) -> None:
    """Refuse to queue anything while a template this step needs is broken (as the CLI does)."""
    if kind != "status" or config.mailing.send_status_notices:
        Renderer(config).ensure_ready([kind])


def _queued(result: StepResult, user: ConsoleUser | None = None) -> str:
    t = words(user) if user else text.translator("en")
    parts = [f"{n} {kind}" for kind, n in (result.queued or {}).items()]
    return t("queued {parts}", parts=", ".join(parts)) if parts else t("nothing queued")


def _write_apology(
    step: Callable[..., StepResult], engine: Engine, config: Config, ref: str, user: ConsoleUser,
    cause: str, measures: str, compensation: str, texts: dict[str, dict[str, str | None]] | None = None,
) -> StepResult:  # fmt: skip
    """Resolve or edit: both write the cause, measures and compensation the apology is made of,
    so both refuse to run while an apology template is broken."""
    _templates_ready(config, "apology")
    with write_session(engine) as session:
        if step is incidents.edit:
            incident = incidents.get(session, ref)
            # An edit of a queued apology may only complete the languages still held.
            cause = None if incident.apology_state == "queued" or cause == incident.cause else cause  # type: ignore[assignment]
            measures = None if incident.apology_state == "queued" or measures == incident.measures else measures  # type: ignore[assignment]
        return step(
            session, config, ref, cause=cause, measures=measures,
            compensation_text=compensation.strip() or None, by=user.name, texts=texts,
        )  # fmt: skip


# Login --------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, templates: TemplatesDep) -> Response:
    if isinstance(request.session.get("uid"), int):
        return RedirectResponse("/console", status_code=303)
    return page(request, templates, "login.html")


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request, engine: EngineDep, templates: TemplatesDep, name: Name = "", token: Text = ""
) -> Response:
    guard: LoginGuard = request.app.state.logins
    address = request.client.host if request.client else "unknown"
    locked = guard.locked(address, name)
    if locked is not None:
        response = page(request, templates, "login.html", status_code=429, error=locked.message, login_name=name)
        response.headers["Retry-After"] = str(locked.retry_after)
        return response
    with read_session(engine) as session:
        user = users.authenticate(session, token, name=name) if name.strip() else None
    if user is None:
        guard.failed(address, name)
        return page(request, templates, "login.html", status_code=401, login_name=name,
                    error="That name and token are not valid.")  # fmt: skip
    guard.succeeded(address, user.name)
    request.session.clear()
    request.session.update(uid=user.id, gen=user.session_generation)
    csrf_token(request)  # a fresh token for the new session
    t = text.translator(user.locale or request.app.state.config.notifier.default_locale)
    return redirect(request, "/console", t("Logged in as {name}.", name=user.name))


@router.post("/language")
def choose_language(
    request: Request, user: UserDep, engine: EngineDep, locale: Annotated[str, Form(max_length=10)] = "",
    back: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """The console's language for this user from now on (every page, every session)."""
    if locale not in LOCALES:
        raise UsageError(f"locale must be one of {', '.join(LOCALES)}")
    with write_session(engine) as session:
        users.set_locale(session, user.id, locale)
    target = back if back.startswith("/console") and "//" not in back and "\\" not in back else "/console"
    return redirect(request, target, text.translator(locale)("The console now speaks English."))


@router.post("/logout")
def logout(request: Request, engine: EngineDep) -> Response:
    """End this user's sessions on the server (every browser and copied cookie), then this one."""
    user_id = request.session.get("uid")
    if isinstance(user_id, int):
        with write_session(engine) as session:
            users.end_sessions(session, user_id)
    request.session.clear()
    return RedirectResponse("/console/login", status_code=303)


# Incidents ----------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def incident_list(request: Request, user: UserDep, session: ReadSession, templates: TemplatesDep) -> Response:
    rows = [
        (
            incident,
            incidents.audience_size(session, incident.id),
            progress(outbox.counts(session, incident.id)),
        )  # type: ignore[arg-type]
        for incident in incidents.list_incidents(session, limit=100)
    ]
    return page(request, templates, "incidents.html", user=user, rows=rows)


@router.get("/affected")
def affected(
    user: UserDep,
    session: ReadSession,
    config: ConfigDep,
    region: Annotated[list[str], Query()] = [],  # noqa: B006
    service: Annotated[list[str], Query()] = [],  # noqa: B006
) -> JSONResponse:
    """How many active subscribers an incident over these regions and services would reach."""
    unknown = [c for c in region if c not in config.regions] + [
        c for c in service if c not in config.services
    ]
    if unknown:
        return JSONResponse({"error": f"unknown code {unknown[0]!r}"}, status_code=400)
    count = incidents.count_affected(session, region, service) if region else 0
    return JSONResponse({"affected": count, "active": incidents.active_subscribers(session)})


@router.get("/declare", response_class=HTMLResponse)
def declare_form(request: Request, user: UserDep, templates: TemplatesDep) -> Response:
    return page(request, templates, "declare.html", user=user)


@router.post("/declare")
def declare(
    request: Request, user: UserDep, engine: EngineDep, config: ConfigDep, title: Text = "",
    severity: Annotated[str, Form()] = "major", regions: Codes = [], services: Codes = [],  # noqa: B006
    message: Text = "", title_en: Text = "", message_en: Text = "",
) -> Response:  # fmt: skip
    _templates_ready(config, "status")
    with write_session(engine) as session:
        result = incidents.declare(
            session, config, title=title, regions=regions, services=services, severity=severity,
            message=message, by=user.name, texts=_english(title=title_en, message=message_en),
        )  # fmt: skip
    ref = result.incident.ref
    flash = words(user)("Declared {ref}: {affected} affected, {queued}.", ref=ref, affected=result.affected,
                        queued=_queued(result, user))  # fmt: skip
    return redirect(request, f"/console/incidents/{ref}", flash + _gap_lines(user, result))


@router.get("/incidents/{ref}", response_class=HTMLResponse)
def incident_page(
    request: Request, ref: str, user: UserDep, session: ReadSession, templates: TemplatesDep, config: ConfigDep,
    now: NowDep,
) -> Response:  # fmt: skip
    incident = incidents.get(session, ref)
    assert incident.id is not None
    counts = outbox.counts(session, incident.id)
    held = incidents.held_languages(session, config, incident) if incident.apology_state == "queued" else []
    untranslated = [_gap_lines(user, StepResult(incident, untranslated=(gap,))).strip() for gap in held]
    return page(
        request, templates, "incident.html", user=user, incident=incident,
        timeline=list(reversed(incidents.timeline(session, incident.id))),
        audience=incidents.audience_size(session, incident.id), counts=counts, progress=progress(counts),
        untranslated=untranslated, mailings=mailing_rows(session, incident.id, now, user.locale),
    )  # fmt: skip


@router.post("/incidents/{ref}/update")
def post_update(
    request: Request, ref: str, user: UserDep, engine: EngineDep, config: ConfigDep,
    status: Annotated[str, Form()] = "", message: Text = "", message_en: Text = "",
) -> Response:  # fmt: skip
    _templates_ready(config, "status")
    with write_session(engine) as session:
        result = incidents.post_update(session, config, ref, status=status, message=message, by=user.name,
                                       texts=_english(message=message_en))  # fmt: skip
    ref = result.incident.ref
    flash = words(user)("{ref} is now {status}; {queued}.", ref=ref, status=result.incident.status,
                        queued=_queued(result, user))  # fmt: skip
    return redirect(request, f"/console/incidents/{ref}", flash + _gap_lines(user, result))


@router.post("/incidents/{ref}/scope")
def widen_scope(
    request: Request, ref: str, user: UserDep, engine: EngineDep, config: ConfigDep,
    regions: Codes = [], services: Codes = [],  # noqa: B006
) -> Response:  # fmt: skip
    with write_session(engine) as session:
        result = incidents.widen_scope(
            session, config, ref, add_regions=regions, add_services=services, by=user.name
        )
    ref = result.incident.ref
    t = words(user)
    flash = (t("{ref}: {added} more affected, {affected} in all; {queued}.", ref=ref, added=result.added,
               affected=result.affected, queued=_queued(result, user))
             if result.added else t("{ref}: that reaches nobody new; nothing queued.", ref=ref))  # fmt: skip
    return redirect(request, f"/console/incidents/{ref}", flash)


@router.post("/incidents/{ref}/resolve")
def resolve(
    request: Request, ref: str, user: UserDep, engine: EngineDep, config: ConfigDep,
    cause: Text = "", measures: Text = "", compensation: Text = "", title_en: Text = "", cause_en: Text = "",
    measures_en: Text = "",
) -> Response:  # fmt: skip
    result = _write_apology(incidents.resolve, engine, config, ref, user, cause, measures, compensation,
                            _english(title=title_en, cause=cause_en, measures=measures_en))  # fmt: skip
    ref, t = result.incident.ref, words(user)
    held = (t(" The apology is HELD: give a cause and measures to release it.")
            if result.apology_held and not (result.incident.cause and result.incident.measures) else "")  # fmt: skip
    flash = t("{ref} is resolved; {cancelled} unsent notices cancelled; {queued}.", ref=ref,
              cancelled=result.cancelled, queued=_queued(result, user))  # fmt: skip
    return redirect(request, f"/console/incidents/{ref}", flash + held + _gap_lines(user, result))


@router.post("/incidents/{ref}/edit")
def edit(
    request: Request, ref: str, user: UserDep, engine: EngineDep, config: ConfigDep,
    cause: Text = "", measures: Text = "", compensation: Text = "", title_en: Text = "", cause_en: Text = "",
    measures_en: Text = "",
) -> Response:  # fmt: skip
    result = _write_apology(incidents.edit, engine, config, ref, user, cause, measures, compensation,
                            _held_only(engine, config, ref, _english(title=title_en, cause=cause_en,
                                                                     measures=measures_en)))  # fmt: skip
    ref = result.incident.ref
    flash = words(user)("{ref} edited; {queued}.", ref=ref, queued=_queued(result, user))
    return redirect(request, f"/console/incidents/{ref}", flash + _gap_lines(user, result))


def _held_only(engine: Engine, config: Config, ref: str, texts: dict[str, dict[str, str | None]]) -> dict[str, dict[str, str | None]]:
    """Once apologies are queued, the form re-sends every language: keep only the held ones."""
    with read_session(engine) as session:
        incident = incidents.get(session, ref)
        if incident.apology_state != "queued":
            return texts
        held = {gap.locale for gap in incidents.held_languages(session, config, incident)}
    return {locale: values for locale, values in texts.items() if locale in held}


@router.post("/incidents/{ref}/preview", response_class=HTMLResponse)
def preview(
    request: Request, ref: str, user: UserDep, session: ReadSession, config: ConfigDep,
    templates: TemplatesDep, cause: Text = "", measures: Text = "", compensation: Text = "",
    locale: Annotated[str, Form()] = "", then: Annotated[str, Form()] = "resolve", title_en: Text = "",
    cause_en: Text = "", measures_en: Text = "",
) -> Response:  # fmt: skip
    """The apology as a sample subscriber of this incident would get it; nothing is saved."""
    if then not in ("resolve", "edit"):
        raise UsageError("then must be resolve or edit")
    if locale and locale not in LOCALES:
        raise UsageError(f"locale must be one of {', '.join(LOCALES)}")
    incident = incidents.get(session, ref)
    typed = languages.check(config, _english(title=title_en, cause=cause_en, measures=measures_en),
                            languages.INCIDENT_FIELDS)  # fmt: skip
    rendered, sample = apology_preview(
        request.app.state.renderer, config, incident, cause=cause, measures=measures,
        compensation=compensation, locale=locale or config.notifier.default_locale,
        now=request.app.state.clock(), texts=typed,
    )  # fmt: skip
    response = page(
        request, templates, "preview.html", user=user, incident=incident, rendered=rendered, sample=sample,
        form={"cause": cause, "measures": measures, "compensation": compensation, "title_en": title_en,
              "cause_en": cause_en, "measures_en": measures_en}, then=then,
        locale=locale or config.notifier.default_locale,
    )  # fmt: skip
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    return response
