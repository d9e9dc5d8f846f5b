"""Self-service subscriptions on the web: the subscribe form, the confirmation link, the preferences page.

Owns ``/subscribe`` (GET the form, POST a request: the same "check your inbox" answer
whether the address is new, known or refused; 429 past ``[subscriptions]``'s limits per
address and per client), ``/subscribe/confirm/{token}`` (GET shows a button, because mail
scanners fetch every link; POST confirms) and ``/preferences/{token}`` (the signed link in
every letter's footer: region, services, channels, language, or unsubscribe from
everything — for this one address, which the page says when it is a distribution list).
The rules live in ``notifier.subscriptions``; bad input is a 400 with one short line.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from notifier import subscriptions
from notifier.db import read_session, write_session
from notifier.errors import NotFoundError, UsageError
from notifier.models import Subscriber
from notifier.web.deps import ConfigDep, EngineDep, NowDep, TemplatesDep, templates_for

router = APIRouter(include_in_schema=False)


def _enabled(request: Request) -> None:
    if not request.app.state.config.subscriptions.enabled:
        raise NotFoundError("Self-service subscriptions are switched off here.")


def _limits(request: Request) -> subscriptions.RequestLimits:
    limits = getattr(request.app.state, "subscribe_limits", None)
    if limits is None:
        limits = request.app.state.subscribe_limits = subscriptions.RequestLimits(request.app.state.config)
    return limits


def _choice(form: FormData, default_locale: str) -> subscriptions.Choice:
    def texts(name: str) -> tuple[str, ...]:
        return tuple(str(v) for v in form.getlist(name) if isinstance(v, str))[:50]

    return subscriptions.Choice(region=str(form.get("region") or ""), services=texts("service"),
                                locale=str(form.get("locale") or default_locale),
                                channels=texts("channel") or ("email",))  # fmt: skip


@router.get("/subscribe", response_class=HTMLResponse)
def form(request: Request, templates: TemplatesDep, config: ConfigDep, region: str = "") -> Response:
    """The subscribe form (``?region=66`` preselects a region)."""
    _enabled(request)
    chosen = region if region in config.regions else ""
    return templates.TemplateResponse(request, "subscribe.html", {"state": "form", "chosen": chosen})


@router.post("/subscribe", response_class=HTMLResponse)
async def request_subscription(request: Request, templates: TemplatesDep, engine: EngineDep, config: ConfigDep,
                               now: NowDep) -> Response:  # fmt: skip
    """A subscription request: a confirmation e-mail (rate-limited); the answer never says whether
    the address was known."""
    _enabled(request)
    data = await request.form()
    email, phone = str(data.get("email") or "").strip(), str(data.get("phone") or "").strip()
    if phone and not config.sms.enabled:
        raise UsageError("subscribing by phone needs SMS, which is off here: give an e-mail address")
    if email and phone:
        raise UsageError("give an e-mail address or a mobile number, not both")
    if phone:
        address, email = subscriptions.normalised_phone(config, phone), ""
    else:
        address = email = subscriptions.normalised(email)
    choice = _choice(data, config.notifier.default_locale).checked(config)
    client = request.client.host if request.client else "unknown"
    if _limits(request).refused(address, client):
        return templates.TemplateResponse(request, "subscribe.html", {"state": "limited"}, status_code=429,
                                          headers={"Retry-After": "3600"})  # fmt: skip
    with write_session(engine) as session:
        subscriptions.request_subscription(session, config, email, choice, now, phone=address if phone else "")
    return templates.TemplateResponse(request, "subscribe.html", {"state": "sent", "by_sms": bool(phone)})


@router.get("/subscribe/confirm/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str, templates: TemplatesDep) -> Response:
    """A page with one button: opening the link alone changes nothing."""
    _enabled(request)
    return templates.TemplateResponse(request, "subscribe.html", {"state": "confirm", "token": token})


@router.post("/subscribe/confirm/{token}", response_class=HTMLResponse)
def confirm(request: Request, token: str, templates: TemplatesDep, engine: EngineDep, now: NowDep) -> Response:
    _enabled(request)
    with write_session(engine) as session:
        subscriber = subscriptions.confirm(session, request.app.state.secret, token, now)
    if subscriber is None:
        return templates.TemplateResponse(request, "subscribe.html", {"state": "invalid"}, status_code=400)
    return templates.TemplateResponse(request, "subscribe.html", {"state": "confirmed"})


def _owner(request: Request, engine: EngineDep, token: str) -> tuple[Subscriber, bool] | None:
    subscriber_id = subscriptions.preferences_subscriber(request.app.state.secret, token)
    if subscriber_id is None:
        return None
    with read_session(engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            return None
        return subscriber, subscriptions.is_distribution_list(session, subscriber)


def _preferences(request: Request, templates: TemplatesDep, token: str, found: tuple[Subscriber, bool] | None,
                 state: str = "form", status_code: int = 200, locale: str | None = None) -> Response:  # fmt: skip
    if found is None:
        return templates.TemplateResponse(request, "preferences.html", {"state": "invalid"}, status_code=404)
    subscriber, shared = found
    context: dict[str, Any] = {"state": state, "token": token, "s": subscriber, "shared": shared}
    templates = templates_for(request, locale or subscriber.locale)  # the subscriber's own language
    return templates.TemplateResponse(request, "preferences.html", context, status_code=status_code)


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preferences(request: Request, token: str, templates: TemplatesDep, engine: EngineDep) -> Response:
    """The subscriber's preferences, reached from a letter's footer."""
    return _preferences(request, templates, token, _owner(request, engine, token))


@router.post("/preferences/{token}", response_class=HTMLResponse)
async def save_preferences(request: Request, token: str, templates: TemplatesDep, engine: EngineDep,
                           config: ConfigDep, now: NowDep) -> Response:  # fmt: skip
    """Save the form (``action=save``) or unsubscribe from everything (``action=unsubscribe``)."""
    found = _owner(request, engine, token)
    if found is None:
        return _preferences(request, templates, token, None)
    data = await request.form()
    action = data.get("action")
    with write_session(engine) as session:
        if action == "unsubscribe":
            subscriptions.unsubscribe_everything(session, found[0].id, now)  # type: ignore[arg-type]
        elif action == "save":
            subscriptions.change_preferences(session, config, found[0].id,  # type: ignore[arg-type]
                                             _choice(data, found[0].locale), now)  # fmt: skip
        else:
            raise UsageError("Choose Save or Unsubscribe from everything.")
    state = "unsubscribed" if action == "unsubscribe" else "saved"
    # "Saved" in the language the page was read in (the next letters follow the new choice).
    return _preferences(request, templates, token, _owner(request, engine, token), state, locale=found[0].locale)
