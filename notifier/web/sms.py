"""SMS delivery reports: ``GET|POST /sms/reports/<token>``, where the gateway calls back.

Kannel calls the ``dlr-url`` each message was sent with (``?type=%d&answer=%A`` filled in);
a described HTTP API posts its report (JSON or form) to the ``{report_url}`` it was given.
The token in the path is an HMAC of the outbox row under the instance secret
(``delivery.sms.report_token``), so nobody can report on a message they were not handed:
a forged token gets 403, a report the gateway's format does not explain 400, SMS being off
404. What the report means is ``delivery.sms.read_report``'s; what it changes is
``outbox.reports.record``'s.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from notifier.config import Config
from notifier.db import write_session
from notifier.delivery.sms import read_report, report_message_id
from notifier.errors import NotFoundError
from notifier.outbox import reports
from notifier.web.deps import ConfigDep, EngineDep

router = APIRouter(prefix="/sms", tags=["sms"])


def _refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": reason}}, status_code=status)


async def _params(request: Request) -> dict[str, str]:
    """The query string, and a POSTed form or JSON object on top of it (strings only)."""
    params = dict(request.query_params)
    if request.method == "POST":
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            try:
                data: Any = json.loads(await request.body() or b"{}")
            except ValueError:
                raise ValueError("the body is not JSON") from None
            if not isinstance(data, dict):
                raise ValueError("the JSON body is not an object")
            params.update({str(k): str(v) for k, v in data.items() if isinstance(v, str | int | float)})
        elif kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.form()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def _record(engine: Any, config: Config, message_id: int, outcome: str, code: str, detail: str, now: Any) -> Any:
    with write_session(engine) as session:
        return reports.record(session, config, message_id, outcome, code, detail, now)


@router.get("/reports/{token}", summary="An SMS gateway's delivery report (Kannel's dlr-url)")
async def delivery_report(request: Request, token: str, config: ConfigDep, engine: EngineDep) -> JSONResponse:
    return await _report(request, token, config, engine)


@router.post("/reports/{token}", summary="An SMS gateway's delivery report (a JSON or form POST)")
async def posted_delivery_report(request: Request, token: str, config: ConfigDep, engine: EngineDep) -> JSONResponse:
    return await _report(request, token, config, engine)


async def _report(request: Request, token: str, config: Config, engine: Any) -> JSONResponse:
    if not config.sms.enabled:
        return _refuse(404, "SMS is off here ([sms].gateway is empty)")
    message_id = report_message_id(request.app.state.secret, token)
    if message_id is None:
        return _refuse(403, "this report link was not issued here")
    try:
        report = read_report(config.sms, await _params(request))
    except ValueError as exc:
        return _refuse(400, str(exc))
    try:
        done = await run_in_threadpool(_record, engine, config, message_id, report.outcome, report.code,
                                       report.detail, request.app.state.clock())  # fmt: skip
    except NotFoundError as exc:
        return _refuse(404, str(exc))
    return JSONResponse({"message": done.message_id, "delivery": done.delivery, "state": done.state,
                         "number_refused": done.refused, "retried": done.retried})  # fmt: skip
