"""The phone line over HTTP: TwiML, VoiceXML and WAV of the current announcement, the keypad,
and the caller lookup for the telephony system.

* ``GET|POST /hotline/voice/twiml``, ``/hotline/voice/vxml`` and ``/hotline/voice/httapi``
  (FreeSWITCH) (``region``, ``locale``; the platform's ``From``/``Caller`` picks a known
  caller's own region, language and personal lines);
* ``GET|POST /hotline/voice/keypad`` (``Digits`` or ``choice``; ``format`` twiml, vxml, httapi
  or json): 1 asks for a callback, 2 goes to ``[ivr].operator_number``;
* ``GET /hotline/voice/audio.wav`` (``region``, ``locale``, ``rate`` 8000 or 16000), also as
  ``/hotline/voice/regions/<region>/<locale>/<rate>.wav``: the stable URL of the region's
  announcement; ``/hotline/voice/audio/<key>.wav``: one version, by hash;
* ``GET /api/hotline/caller?phone=…``: what the IVR needs for this number, in JSON.

The documents, the keypad and anything that names a caller need the token from the
environment variable ``[ivr].token_env``, as ``Authorization: Bearer`` or as the password of
HTTP Basic (``https://ivr:TOKEN@host/…``, which every platform can be given), or a call
ticket that a document we served put in its keypad URL. A region's own WAV is public, like
the status page. Caller lookups and key presses are rate-limited per client address.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy.engine import Engine

from notifier import voice
from notifier.db import read_session, write_session
from notifier.voice import Menu, Speech
from notifier.voice.documents import dial_number
from notifier.web.deps import ConfigDep, EngineDep, NowDep

router = APIRouter(tags=["phone line"])


def _get_and_post(path: str) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """The telephony documents answer GET and POST (platforms differ): one route per method, so
    each OpenAPI operation has its own id."""

    def register(endpoint: Callable[..., Response]) -> Callable[..., Response]:
        for method in ("GET", "POST"):
            router.add_api_route(path, endpoint, methods=[method], dependencies=[Limited],
                                 operation_id=f"{endpoint.__name__}_{method.lower()}")  # fmt: skip
        return endpoint

    return register
TWIML = "application/xml"
HTTAPI = "text/xml"
VXML = "application/voicexml+xml"
_setup = threading.Lock()
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="notifier phone line", charset="UTF-8"'}


async def read_params(request: Request) -> dict[str, str]:
    """Query and (for POST) form parameters, as telephony platforms send either."""
    params = {k: v for k, v in request.query_params.items()}
    if request.method == "POST":
        form = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


Params = Annotated[dict[str, str], Depends(read_params)]


@dataclass
class LineState:
    """What the line keeps per app: the token (read once), the rate limiter, the audio cache."""

    token: str
    limits: list[RateLimitItem]
    limiter: MovingWindowRateLimiter
    cache: voice.AudioCache


def _state(request: Request) -> LineState:
    """The line's state on ``app.state.ivr``, made on first use."""
    state = request.app.state
    if getattr(state, "ivr", None) is None:
        with _setup:
            if getattr(state, "ivr", None) is None:
                config = state.config
                state.ivr = LineState(
                    token=os.environ.get(config.ivr.token_env, "").strip(), limits=parse_many(config.ivr.lookup_rate),
                    limiter=MovingWindowRateLimiter(MemoryStorage()), cache=voice.AudioCache(config),
                )  # fmt: skip
    return state.ivr


def _given_token(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return None


def _has_token(request: Request) -> bool:
    """True with the right token; None-given is False; a wrong one is refused outright."""
    expected = _state(request).token
    if not expected:
        env = request.app.state.config.ivr.token_env
        raise HTTPException(503, f"The phone line is off: set the environment variable {env} to a token.")
    given = _given_token(request)
    if given is None:
        return False
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "The token is not valid.", _CHALLENGE)
    return True


def trusted_phone(
    request: Request, params: dict[str, str], now: datetime, *, required: bool = True
) -> str | None:
    """The caller's number this request may speak for ("" if withheld): from ``From``/``Caller``
    with the token, or from a call ticket. None when neither (401 if ``required``)."""
    if _has_token(request):
        return voice.usable_phone(request.app.state.config, params.get("From") or params.get("Caller"))
    phone, expires, signature = params.get("caller"), params.get("exp", ""), params.get("sig", "")
    if phone is not None and voice.check_ticket(request.app.state.secret, phone, expires, signature, now):
        return phone
    if required:
        raise HTTPException(401, "This needs the phone line's token.", _CHALLENGE)
    return None


def rate_limited(request: Request) -> None:
    state = _state(request)
    client = request.client.host if request.client else "unknown"
    for item in state.limits:
        if not state.limiter.hit(item, "ivr", client):
            reset = state.limiter.get_window_stats(item, "ivr", client).reset_time
            retry = max(1, int(reset - time.time()) + 1)
            raise HTTPException(429, f"Too many requests: at most {item}. Try again shortly.",
                                {"Retry-After": str(retry)})  # fmt: skip


Limited = Depends(rate_limited)


def _url(request: Request, path: str, **params: str | None) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{str(request.base_url).rstrip('/')}{path}" + (f"?{query}" if query else "")


def _audio_url(request: Request, speech: Speech, rate: int = 8000) -> str:
    key = _state(request).cache.register(speech, rate)
    return _url(request, f"/hotline/voice/audio/{key}.wav")


def _rate(params: dict[str, str]) -> int:
    raw = params.get("rate", "8000")
    if raw not in {str(rate) for rate in voice.RATES}:
        raise HTTPException(400, f"rate must be one of {', '.join(map(str, voice.RATES))}, not {raw!r}")
    return int(raw)


def _answer(
    request: Request, engine: Engine, params: dict[str, str], now: datetime, phone: str, what: str | None
) -> tuple[voice.Caller, Speech]:
    """The caller and what to say to them; the lookup is logged as a call when ``what`` is given."""
    config = request.app.state.config
    opener = write_session if phone and what else read_session
    with opener(engine) as session:
        caller, speech = voice.answer(session, config, phone, now, renderer=request.app.state.renderer,
                                      region=params.get("region"), locale=params.get("locale"))  # fmt: skip
        if phone and what:
            voice.log_lookup(session, config, caller, now, what)
    return caller, speech


def _menu(request: Request, fmt: str, caller: voice.Caller, now: datetime) -> Menu:
    config = request.app.state.config
    ticket = voice.make_ticket(request.app.state.secret, caller.phone, now)
    action = _url(request, "/hotline/voice/keypad", format=fmt, region=caller.listener.region,
                  locale=caller.listener.locale, **ticket)  # fmt: skip
    digits = tuple({"callback": "1", "operator": "2"}[c] for c in voice.menu_choices(config))
    return Menu(action=action, digits=digits, timeout=config.ivr.gather_timeout)


def _voices(request: Request) -> dict[str, str]:
    names = request.app.state.config.ivr.twiml_voices
    return {"ru": names.ru, "en": names.en}


@_get_and_post("/hotline/voice/twiml")
def twiml(request: Request, params: Params, engine: EngineDep, config: ConfigDep, now: NowDep) -> Response:
    """TwiML: the announcement for the caller (or the region), then "press 1 / press 2"."""
    phone = trusted_phone(request, params, now) or ""
    caller, speech = _answer(
        request, engine, params, now, phone, None if params.get("again") else "announcement"
    )
    goodbye = voice.reply("goodbye", speech.locale)
    play = (params.get("prompt") or config.ivr.twiml_prompt) == "play"
    body = voice.twiml_menu(
        speech, _menu(request, "twiml", caller, now), goodbye, voices=_voices(request),
        audio_url=_audio_url(request, speech) if play else None,
        goodbye_url=_audio_url(request, goodbye) if play else None,
    )  # fmt: skip
    return Response(body, media_type=TWIML, headers={"Cache-Control": "no-store"})


@_get_and_post("/hotline/voice/vxml")
def vxml(request: Request, params: Params, engine: EngineDep, now: NowDep) -> Response:
    """VoiceXML 2.1: our WAV of the announcement (its text as fallback) and a one-key menu."""
    phone = trusted_phone(request, params, now) or ""
    caller, speech = _answer(
        request, engine, params, now, phone, None if params.get("again") else "announcement"
    )
    locale = speech.locale
    body = voice.vxml_menu(
        speech, _menu(request, "vxml", caller, now), voice.reply("goodbye", locale),
        voice.reply("not_understood", locale), audio_url=_audio_url(request, speech, _rate(params)),
    )  # fmt: skip
    return Response(body, media_type=VXML, headers={"Cache-Control": "no-store"})


@_get_and_post("/hotline/voice/httapi")
def httapi(request: Request, params: Params, engine: EngineDep, now: NowDep) -> Response:
    """FreeSWITCH mod_httapi: our WAV of the announcement with a one-key binding."""
    phone = trusted_phone(request, params, now) or ""
    caller, speech = _answer(
        request, engine, params, now, phone, None if params.get("again") else "announcement"
    )
    goodbye = voice.reply("goodbye", speech.locale)
    body = voice.httapi_menu(_menu(request, "httapi", caller, now), _audio_url(request, speech),
                             _audio_url(request, goodbye))  # fmt: skip
    return Response(body, media_type=HTTAPI, headers={"Cache-Control": "no-store"})


@_get_and_post("/hotline/voice/keypad")
def keypad(request: Request, params: Params, engine: EngineDep, config: ConfigDep, now: NowDep) -> Response:
    """A key pressed in the menu: 1 records a callback, 2 goes to the operator, anything else repeats."""
    phone = trusted_phone(request, params, now) or ""
    fmt = params.get("format", "twiml")
    if fmt not in ("twiml", "vxml", "httapi", "json"):
        raise HTTPException(400, f"format must be twiml, vxml, httapi or json, not {fmt!r}")
    digit = (params.get("Digits") or params.get("choice") or "").strip()[:1]
    # "1" writes: one transaction from finding the caller's open callback to promising a new one.
    with (write_session if digit == "1" else read_session)(engine) as session:
        caller = voice.identify(session, config, phone, now, region=params.get("region"),
                                locale=params.get("locale"))  # fmt: skip
        if digit == "1":
            outcome, seconds = voice.request_callback(session, config, caller, now)
    locale, operator = caller.listener.locale, config.ivr.operator_number
    if digit == "1":
        return _reply(request, fmt, "callback", voice.keypad_reply(config, outcome, seconds, locale), outcome)
    if digit == "2" and operator:
        return _reply(request, fmt, "operator", voice.reply("connecting", locale), "operator", dial=operator)
    again = {"region": caller.listener.region, "locale": locale, "again": "1",
             **voice.make_ticket(request.app.state.secret, caller.phone, now)}  # fmt: skip
    menu_url = _url(request, f"/hotline/voice/{'twiml' if fmt == 'json' else fmt}", **again)
    return _reply(request, fmt, "repeat", voice.reply("not_understood", locale), "repeat", redirect=menu_url)


def _reply(
    request: Request, fmt: str, action: str, speech: Speech, outcome: str, *, dial: str | None = None,
    redirect: str | None = None,
) -> Response:  # fmt: skip
    config = request.app.state.config
    if fmt == "json":
        return JSONResponse({"action": action, "outcome": outcome, "text": speech.text,
                             "audio_url": _audio_url(request, speech, _rate(dict(request.query_params))),
                             "number": dial_number(dial) if dial else None,
                             "menu_url": redirect})  # fmt: skip
    if fmt == "httapi":
        body = voice.httapi_reply(_audio_url(request, speech), dial=dial, redirect=redirect)
        return Response(body, media_type=HTTAPI, headers={"Cache-Control": "no-store"})
    if fmt == "vxml":
        body = voice.vxml_reply(speech, audio_url=_audio_url(request, speech), transfer=dial, goto=redirect)
        return Response(body, media_type=VXML, headers={"Cache-Control": "no-store"})
    play = config.ivr.twiml_prompt == "play"
    body = voice.twiml_reply(speech, audio_url=_audio_url(request, speech) if play else None, dial=dial,
                             redirect=redirect, voices=_voices(request))  # fmt: skip
    return Response(body, media_type=TWIML, headers={"Cache-Control": "no-store"})


def _wav(request: Request, key: str, path: Path, *, stable: bool) -> Response:
    etag = f'"{key}"'
    # The stable URL is checked every time (FreeSWITCH keeps a file for max-age, else 300 s).
    cache = "no-cache, max-age=0" if stable else "public, max-age=31536000, immutable"
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": cache})
    return FileResponse(path, media_type="audio/wav", headers={"ETag": etag, "Cache-Control": cache})


@router.get("/hotline/voice/regions/{region}/{locale}/{rate}.wav")
def region_audio(request: Request, region: str, locale: str, rate: str, params: Params, engine: EngineDep,
                 now: NowDep) -> Response:  # fmt: skip
    """The stable URL as a path ending in ``.wav``, for players that go by the file name's ending."""
    return audio(request, {**params, "region": region, "locale": locale, "rate": rate}, engine, now)


@router.get("/hotline/voice/audio.wav")
def audio(request: Request, params: Params, engine: EngineDep, now: NowDep) -> Response:
    """The current announcement as a WAV, 16-bit mono at ``rate``: the same URL always plays the newest."""
    rate = _rate(params)
    named = bool(params.get("From") or params.get("Caller") or params.get("caller"))
    phone = (trusted_phone(request, params, now) or "") if named else ""
    menu = params.get("menu", "1") != "0"
    with read_session(engine) as session:
        _, speech = voice.answer(session, request.app.state.config, phone, now, renderer=request.app.state.renderer,
                                 region=params.get("region"), locale=params.get("locale"), menu=menu)  # fmt: skip
    key, path = _state(request).cache.ensure(speech, rate)
    return _wav(request, key, path, stable=True)


@router.get("/hotline/voice/audio/{key}.wav")
def audio_version(request: Request, key: str) -> Response:
    """One version of spoken audio, by the key a document or the caller lookup handed out."""
    try:
        path = _state(request).cache.wav(key)
    except voice.AudioNotFound:
        raise HTTPException(404, "No such audio.") from None
    return _wav(request, key, path, stable=False)


@router.get("/api/hotline/caller", dependencies=[Limited])
def caller_lookup(request: Request, params: Params, engine: EngineDep, now: NowDep) -> Any:
    """What the IVR needs for the number calling: known, region, language, affected, what to say
    (and its audio), whether a callback is promised. Logged as a hotline call (source ivr)."""
    if not _has_token(request):
        raise HTTPException(401, "A valid 'Authorization: Bearer <token>' header is required.",
                            {"WWW-Authenticate": "Bearer"})  # fmt: skip
    raw = params.get("phone", "").strip()
    if not raw:
        raise HTTPException(400, "give the caller's number: ?phone=+79123456789")
    phone = voice.usable_phone(request.app.state.config, raw)
    if not phone:
        raise HTTPException(400, f"phone: {raw[:40]!r} is not a valid phone number")
    caller, speech = _answer(request, engine, params, now, phone, "caller lookup")
    audio_url = _audio_url(request, speech, _rate(params))
    return voice.summary(request.app.state.config, caller, speech.text, audio_url)
