"""The full letter behind an apology SMS: ``GET /letters/<incident>/<token>``.

The SMS carries a link signed for one subscriber and one incident (``notifier.letters``);
the page is exactly the apology e-mail that subscriber gets — its HTML part, rendered by the
same templates with their own name, region, times and unsubscribe link — and nothing about
anyone else. A forged or mangled link, someone outside the incident's audience, or an
apology not yet queued get the same 404 page, so a link reveals nothing it was not made for.
The letter keeps its own inline styles (a CSP that allows them and nothing else: no scripts,
no requests out) and is never cached or indexed.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from notifier import letters, tokens
from notifier.web.deps import ConfigDep, ReadSession
from notifier.web.errors import error_response

router = APIRouter(include_in_schema=False)
_LETTER_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def _missing(request: Request) -> Response:
    t = request.app.state.t  # the same page as any unknown address: a link reveals nothing
    return error_response(request, 404, t("Page not found"), t("There is no page at this address."))


@router.get("/letters/{incident_id}/{token}", response_class=HTMLResponse)
def letter(request: Request, incident_id: int, token: str, session: ReadSession, config: ConfigDep) -> Response:
    secret = request.app.state.secret
    subscriber_id = letters.verify(secret, incident_id, token) if 0 < incident_id < 2**31 else None
    found = letters.find(session, incident_id, subscriber_id) if subscriber_id is not None else None
    if found is None:
        return _missing(request)
    incident, subscriber = found
    renderer = request.app.state.renderer
    renderer.reload_if_changed()
    unsubscribe = tokens.unsubscribe_url(config.notifier.public_base_url, tokens.make_token(secret, subscriber.id))  # type: ignore[arg-type]
    rendered = renderer.render("apology", incident=incident, locale=subscriber.locale, subscriber=subscriber,
                               unsubscribe_url=unsubscribe)  # fmt: skip
    headers = {"Content-Security-Policy": _LETTER_CSP, "Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
    return HTMLResponse(rendered.html or "", headers=headers)
