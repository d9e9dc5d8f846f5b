"""``POST /api/alerts/alertmanager``: Prometheus Alertmanager's webhook (payload version 4)
declares incidents.

A firing alert labelled with a ``service`` and a ``region`` declares an incident for that
service, or widens the open one to the region; a resolved alert moves the open incident to
monitoring (a person resolves it: the apology needs a cause and measures). A firing alert
for an incident in monitoring means the problem has returned: the incident goes back to
identified with a public update saying so, which goes to its audience; one that fires after
the incident was resolved opens a new incident whose first update names the old one.
Alertmanager repeats notifications, so every step is idempotent.

Requests carry ``Authorization: Bearer <token>``, the token taken from the environment
variable ``[serve].alert_token_env`` names. The token is checked from the headers before a
byte of the body is read (401, whatever the body); the body is then read up to
``MAX_BODY`` (413 past it, the rest never read) and parsed. Bad payloads get a 4xx JSON
reason, never a 500.
Titles and messages are written here, never copied from alert annotations: annotations
are for engineers, incident titles go to subscribers.
"""

from __future__ import annotations

import hmac
import json
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from notifier import incidents
from notifier.config import SEVERITIES, Config
from notifier.db import write_session
from notifier.models import Incident
from notifier.rendering import Renderer
from notifier.web.bodies import read_body
from notifier.web.deps import ConfigDep, EngineDep, NowDep

SEVERITY_LABEL = "severity"
MAX_BODY = 256 * 1024  # Alertmanager's notifications are a few KB; 1,000 alerts fit
RECURRENCE_WINDOW = timedelta(days=30)  # a re-fire this soon after a resolution names the old incident


def _where(config: Config, alert: Alert) -> tuple[str | None, str | None]:
    """(service, region) from the labels the config names ([serve].alert_*_label)."""
    return alert.labels.get(config.serve.alert_service_label), alert.labels.get(
        config.serve.alert_region_label
    )


BY = "alertmanager"
_TITLE = {"ru": "Нарушена работа сервиса «{name}»", "en": "{name} is disrupted"}
_RECOVERED = {
    "ru": "По данным мониторинга, работа восстановилась. Следим за стабильностью.",
    "en": "Monitoring shows the service has recovered. We are watching it closely.",
}
_RETURNED = {
    "ru": "Мониторинг снова фиксирует сбой: проблема вернулась. Продолжаем работать над ней.",
    "en": "Monitoring shows the problem has returned. We are working on it again.",
}
_RECURRED = {
    "ru": "Похоже, сбой {ref} повторился: мониторинг снова фиксирует проблему. Разбираемся.",
    "en": "It looks like {ref} has returned: monitoring shows the problem again. We are looking into it.",
}


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict, max_length=100)
    annotations: dict[str, str] = Field(default_factory=dict, max_length=100)
    startsAt: datetime | None = None  # noqa: N815 (Alertmanager's own field names)
    endsAt: datetime | None = None  # noqa: N815
    fingerprint: str = ""


class AlertmanagerPayload(BaseModel):
    """Alertmanager's webhook body (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config)."""

    model_config = ConfigDict(extra="allow")
    version: Literal["4"] = "4"
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupKey: str = ""  # noqa: N815
    alerts: list[Alert] = Field(min_length=1, max_length=1000)


class AlertResult(BaseModel):
    actions: list[dict[str, Any]]
    ignored: list[dict[str, Any]]


def _refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": reason}}, status_code=status)


def require_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """Checked before the body is read: a caller without the token learns nothing about payloads."""
    expected: str = request.app.state.alert_token
    if not expected:
        env = request.app.state.config.serve.alert_token_env
        raise HTTPException(503, f"The alert webhook is off: set the environment variable {env} to a token.")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise HTTPException(
            401, "A valid 'Authorization: Bearer <token>' header is required.", {"WWW-Authenticate": "Bearer"}
        )


def _open_for(open_incidents: list[Incident], service: str) -> Incident | None:
    """The newest open incident that covers ``service`` (one with no services covers all)."""
    for incident in open_incidents:  # newest first
        if not incident.services or service in incident.services:
            return incident
    return None


def _check(config: Config, alert: Alert) -> str | None:
    service, region = _where(config, alert)
    if not service or not region:
        return (
            f"needs the labels {config.serve.alert_service_label!r} and {config.serve.alert_region_label!r}"
        )
    if service not in config.services:
        return f"unknown service {service!r}"
    if region not in config.regions:
        return f"unknown region {region!r}"
    return None


router = APIRouter(prefix="/api/alerts", tags=["alerts"], dependencies=[Depends(require_token)])


@router.post("/alertmanager", response_model=AlertResult, responses={
    401: {"description": "missing or wrong bearer token (checked before the body is read)"},
    413: {"description": f"the body is larger than {MAX_BODY // 1024} KB"},
    422: {"description": "nothing in the payload could be used"},
    503: {"description": "the webhook has no token configured"}})  # fmt: skip
async def alertmanager(request: Request, engine: EngineDep, config: ConfigDep, now: NowDep) -> Any:
    """Declare, widen, calm or reopen incidents from Alertmanager alerts labelled with service and region.

    The body is Alertmanager's webhook payload (version 4), at most 256 KB.
    """
    payload = _parse(await read_body(request, MAX_BODY))
    if isinstance(payload, JSONResponse):
        return payload
    return await run_in_threadpool(_act, payload, engine, config, now)


def _parse(body: bytes) -> AlertmanagerPayload | JSONResponse:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        return _refuse(400, f"The body is not JSON: {exc}")
    try:
        return AlertmanagerPayload.model_validate(data)
    except ValidationError as exc:
        reasons = []
        for error in exc.errors()[:5]:
            where = ".".join(str(part) for part in error.get("loc", ()))
            reasons.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg")))
        return _refuse(422, "Invalid payload: " + "; ".join(reasons))


def _act(payload: AlertmanagerPayload, engine: Any, config: Config, now: datetime) -> Any:
    usable, ignored = [], []
    for index, alert in enumerate(payload.alerts):
        reason = _check(config, alert)
        if reason:
            ignored.append({"alert": index, "reason": reason})
        else:
            usable.append(alert)
    if not usable:
        return _refuse(
            422, "No alert could be used: " + "; ".join(f"alert {i['alert']}: {i['reason']}" for i in ignored)
        )
    if any(a.status == "firing" for a in usable) and config.mailing.send_status_notices:
        Renderer(config).ensure_ready(["status"])
    firing = {_where(config, a) for a in usable if a.status == "firing"}
    actions: list[dict[str, Any]] = []
    with write_session(engine) as session:
        open_incidents = incidents.list_incidents(session, open_only=True, limit=500)
        for alert in usable:
            service, region = _where(config, alert)
            incident = _open_for(open_incidents, service)
            if alert.status == "firing":
                actions.append(_fire(session, config, alert, incident, open_incidents, now))
            elif incident is not None and not any(s == service for s, _ in firing):
                actions.append(_calm(session, config, incident, now))
            else:
                actions.append({"action": "none", "service": service, "region": region})
    return {"actions": actions, "ignored": ignored}


def _fire(
    session: Any, config: Config, alert: Alert, incident: Incident | None, open_incidents: list[Incident],
    now: datetime,
) -> dict[str, Any]:  # fmt: skip
    service, region = _where(config, alert)
    if incident is None:
        return _declare(session, config, alert, open_incidents, now)
    action: dict[str, Any] = {"action": "none", "incident": incident.ref, "reason": "already covered"}
    if incident.status == "monitoring":  # it had recovered: subscribers must hear it broke again
        message = _RETURNED[config.notifier.default_locale]
        incidents.post_update(
            session, config, incident.id, status="identified", message=message, by=BY, now=now,
            texts=_in_other_languages(config, message=_RETURNED),
        )  # type: ignore[arg-type]
        action = {"action": "returned", "incident": incident.ref, "status": "identified"}
    if region in incident.regions:
        return action
    result = incidents.widen_scope(
        session, config, incident.id, add_regions=[region], add_services=[], by=BY, now=now
    )  # type: ignore[arg-type]
    widened = {"incident": incident.ref, "added": result.added, "affected": result.affected}
    return {
        **action,
        **widened,
        "action": "returned and widened" if action["action"] == "returned" else "widened",
    }


def _declare(
    session: Any, config: Config, alert: Alert, open_incidents: list[Incident], now: datetime
) -> dict[str, Any]:
    """A new incident; when the same service and region had one resolved lately, its first
    public update says the problem is back and names that one."""
    service, region = _where(config, alert)
    locale = config.notifier.default_locale
    severity = alert.labels.get(SEVERITY_LABEL, "major")
    started = alert.startsAt if alert.startsAt and alert.startsAt.tzinfo else None
    if started is not None and not (now - timedelta(days=7) <= started <= now):
        started = None
    earlier = _resolved_lately(session, service, region, now)  # type: ignore[arg-type]
    result = incidents.declare(
        session, config, title=_TITLE[locale].format(name=config.services[service].name.get(locale)),
        regions=[region], services=[service], severity=severity if severity in SEVERITIES else "major",
        message=_RECURRED[locale].format(ref=earlier.ref) if earlier else "", started_at=started, by=BY, now=now,
        texts=_in_other_languages(
            config, title={code: text.format(name=config.services[service].name.get(code)) for code, text in _TITLE.items()},
            message={code: text.format(ref=earlier.ref) for code, text in _RECURRED.items()} if earlier else None,
        ),
    )  # fmt: skip
    open_incidents.insert(0, result.incident)
    action = {"action": "declared", "incident": result.incident.ref, "affected": result.affected}
    return {**action, "follows": earlier.ref} if earlier else action


def _resolved_lately(session: Any, service: str, region: str, now: datetime) -> Incident | None:
    """The newest incident over ``service`` and ``region`` resolved within ``RECURRENCE_WINDOW``."""
    for incident in incidents.list_incidents(session, limit=200):  # newest first
        if incident.status != "resolved" or incident.resolved_at is None:
            continue
        if incident.resolved_at < now - RECURRENCE_WINDOW:
            continue
        if region in incident.regions and (not incident.services or service in incident.services):
            return incident
    return None


def _calm(session: Any, config: Config, incident: Incident, now: datetime) -> dict[str, Any]:
    if incident.status not in ("investigating", "identified"):
        return {"action": "none", "incident": incident.ref, "reason": f"already {incident.status}"}
    message = _RECOVERED[config.notifier.default_locale]
    incidents.post_update(session, config, incident.id, status="monitoring", message=message, by=BY, now=now,  # type: ignore[arg-type]
                          texts=_in_other_languages(config, message=_RECOVERED))  # fmt: skip
    return {"action": "monitoring", "incident": incident.ref}


def _in_other_languages(config: Config, **fields: dict[str, str] | None) -> dict[str, dict[str, str | None]]:
    """This module's own words (``_TITLE``, ``_RECOVERED`` …) in every language but the default
    one, as ``incidents`` takes them (the console's ``title_en``, the CLI's ``--title-en``)."""
    default = config.notifier.default_locale
    texts: dict[str, dict[str, str | None]] = {}
    for field, words in fields.items():
        for code, value in (words or {}).items():
            if code != default:
                texts.setdefault(code, {})[field] = value
    return texts
