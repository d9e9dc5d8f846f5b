"""ESP event webhooks: ``POST /webhooks/ses`` (Amazon SES through SNS) and ``POST /webhooks/mailgun``.

Each request is authenticated as its provider documents (``notifier.bounces.sns`` and
``notifier.bounces.mailgun`` do the checking), then its events go to
``suppression.record``, the same place the bounce listener feeds. An endpoint whose
provider is not configured (``[bounces].ses_topic_arns``, ``mailgun_signing_key_env``)
answers 404; a forged or replayed request 403; a body that is not the provider's 400.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from notifier.bounces import mailgun, sns
from notifier.bounces.events import BounceEvent
from notifier.bounces.suppression import record
from notifier.config import Config
from notifier.db import write_session
from notifier.web.deps import ConfigDep, EngineDep

router = APIRouter(prefix="/webhooks", tags=["bounces"])
MAX_BODY = 512 * 1024  # SNS messages are at most 256 KB; Mailgun's events are small


def _refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": reason}}, status_code=status)


def sns_verifier(request: Request, config: Config) -> sns.SnsVerifier:
    """One verifier (and certificate cache) per app; tests put their own on ``app.state.sns_verifier``."""
    state = request.app.state
    if getattr(state, "sns_verifier", None) is None:
        state.sns_verifier = sns.SnsVerifier(config.bounces.ses_topic_arns)
    return state.sns_verifier


def mailgun_verifier(request: Request, config: Config) -> mailgun.MailgunVerifier | None:
    state = request.app.state
    if getattr(state, "mailgun_verifier", None) is None:
        key = os.environ.get(config.bounces.mailgun_signing_key_env, "").strip()
        if not key:
            return None
        state.mailgun_verifier = mailgun.MailgunVerifier(key)
    return state.mailgun_verifier


async def _body(request: Request) -> bytes | None:
    body = await request.body()
    return body if len(body) <= MAX_BODY else None


def _record(engine: Any, config: Config, events: list[BounceEvent], source: str) -> int:
    secret = config.secret()
    with write_session(engine) as session:
        for event in events:
            record(session, config, event, source=source, secret=secret)
    return len(events)


@router.post("/ses")
async def ses(request: Request, config: ConfigDep, engine: EngineDep) -> JSONResponse:
    """Amazon SNS deliveries of SES bounce and complaint notifications (subscriptions are confirmed)."""
    if not config.bounces.ses_topic_arns:
        return _refuse(404, "SES events are not taken here ([bounces].ses_topic_arns is empty)")
    body = await _body(request)
    if body is None:
        return _refuse(413, "the body is larger than an SNS message can be")
    verifier = sns_verifier(request, config)
    try:
        kind, events = await run_in_threadpool(sns.read_notification, body, verifier)
    except sns.SnsRejected as exc:
        return _refuse(exc.status, str(exc))
    recorded = await run_in_threadpool(_record, engine, config, events, "ses")
    return JSONResponse({"type": kind, "recorded": recorded})


@router.post("/mailgun")
async def mailgun_events(request: Request, config: ConfigDep, engine: EngineDep) -> JSONResponse:
    """Mailgun's signed event webhooks (failed, complained)."""
    if not config.bounces.mailgun_signing_key_env:
        return _refuse(404, "Mailgun events are not taken here ([bounces].mailgun_signing_key_env is empty)")
    verifier = mailgun_verifier(request, config)
    if verifier is None:
        return _refuse(503, f"the environment variable {config.bounces.mailgun_signing_key_env} is not set")
    body = await _body(request)
    if body is None:
        return _refuse(413, "the body is too large for a Mailgun event")
    try:
        events = mailgun.read_webhook(body, verifier)
    except mailgun.MailgunRejected as exc:
        return _refuse(exc.status, str(exc))
    recorded = await run_in_threadpool(_record, engine, config, events, "mailgun")
    return JSONResponse({"recorded": recorded})
