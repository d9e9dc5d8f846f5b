"""How failures look on the web: a 4xx page (or JSON under ``/api``) with a message for people.

Owns mapping the NotifierError family to HTTP statuses, the console's own refusals (no
session, bad CSRF token, too many failed logins), a body too large (413), the 404 page,
and a last-resort 500 page that shows no
traceback. Pages built here show only the error's message and never request data.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from notifier.errors import (
    ConfigError,
    DatabaseError,
    InvalidTransition,
    NotFoundError,
    NotifierError,
    TemplateProblem,
)
from notifier.web.bodies import BodyTooLarge

log = logging.getLogger("notifier.web")


class LoginRequired(Exception):
    """No console session, or its user was disabled."""


class CsrfFailed(Exception):
    """A console form came without the session's CSRF token."""


def status_for(error: NotifierError) -> int:
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, InvalidTransition):
        return 409
    if isinstance(error, DatabaseError | ConfigError | TemplateProblem):
        return 503
    return 400


def wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path.endswith(".json")


def error_response(request: Request, status: int, title: str, message: str) -> Response:
    if wants_json(request):
        return JSONResponse({"error": {"status": status, "message": message}}, status_code=status)
    templates = request.app.state.templates
    console = request.url.path.startswith("/console")
    return templates.TemplateResponse(
        request, "error.html", {"title": title, "message": message, "console": console}, status_code=status
    )


def _body_too_large(exc: BaseException | None) -> BodyTooLarge | None:
    """The BodyTooLarge behind ``exc``, however many wrappers deep (groups, causes)."""
    for _ in range(10):
        if exc is None or isinstance(exc, BodyTooLarge):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            exc = next((found for e in exc.exceptions if (found := _body_too_large(e))), None)
        else:
            exc = exc.__cause__ or exc.__context__
    return None


def install(app: FastAPI) -> None:
    """Register the handlers that keep every failure a readable 4xx (or a bare 5xx)."""
    t = app.state.t

    @app.exception_handler(NotifierError)
    async def _notifier_error(request: Request, exc: NotifierError) -> Response:
        status = status_for(exc)
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, exc)
            public = not request.url.path.startswith("/console")
            message = t("The service is temporarily unavailable. Please try again in a minute.")
            return error_response(request, status, t("Something went wrong"), message if public else str(exc))
        return error_response(request, status, t("Something went wrong"), str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        too_large = _body_too_large(exc.__cause__)  # FastAPI's form parsing wraps it in a 400
        if too_large is not None:
            return await _too_large(request, too_large)
        if exc.status_code == 404:
            return error_response(request, 404, t("Page not found"), t("There is no page at this address."))
        message = exc.detail if isinstance(exc.detail, str) else t("The request could not be completed.")
        response = error_response(request, exc.status_code, t("Something went wrong"), message)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        reasons = []
        for error in exc.errors()[:5]:
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
            reasons.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg")))
        message = "Invalid request: " + "; ".join(reasons)
        return error_response(request, 422, t("Something went wrong"), message)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        if request.method == "GET" and not wants_json(request) and not request.url.path.endswith("/affected"):
            return RedirectResponse("/console/login", status_code=303)
        return error_response(request, 401, "Login required", "Log in to the console first.")

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge) -> Response:
        response = error_response(request, 413, t("Something went wrong"), str(exc))
        response.headers["Connection"] = "close"  # the rest of the body is never read
        return response

    @app.exception_handler(CsrfFailed)
    async def _csrf_failed(request: Request, exc: CsrfFailed) -> Response:
        message = "This form has expired or did not come from the console. Reload the page and try again."
        return error_response(request, 403, "Form refused", message)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            request, 500, t("Something went wrong"), t("The request could not be completed.")
        )
