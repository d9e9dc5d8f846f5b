"""``/history.atom``: the status page's history as an Atom feed (RFC 4287), one entry per incident.

Owns the feed's XML (built with ElementTree, so titles and messages are escaped). It shows
what the page shows: open incidents and those resolved in the last 30 days with their
public updates, newest first; in the language ``?locale=`` or ``Accept-Language`` asks for,
and for one region with ``?region=`` (as the page).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from markupsafe import escape

from notifier import languages
from notifier.web import status, text
from notifier.web.deps import ConfigDep, LocaleDep, NowDep, ReadSession
from notifier.web.status import iso

router = APIRouter(tags=["status"])
ATOM = "http://www.w3.org/2005/Atom"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


@router.get(
    "/history.atom", response_class=Response, responses={200: {"content": {"application/atom+xml": {}}}}
)
def history(
    request: Request, session: ReadSession, config: ConfigDep, now: NowDep, locale: LocaleDep,
    region: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:  # fmt: skip
    """Open and recent incidents with their public updates, as Atom."""
    view = status.build(session, config, now=now, region=status.check_region(config, region))
    t = label = text.translator(locale)
    local = text.local_time(config, locale)
    base = config.notifier.public_base_url
    host = urlsplit(base).hostname or "notifier"
    feed = ET.Element("feed", {"xmlns": ATOM, "xml:lang": locale})
    _sub(feed, "id", f"tag:{host},2024:{status.HISTORY.days}d-history")
    _sub(feed, "title", f"{config.notifier.company.get(locale)}: {t('Service status')}")
    _sub(feed, "updated", iso(view.updated_at))
    _sub(feed, "link", rel="alternate", type="text/html", href=base + "/")
    _sub(feed, "link", rel="self", type="application/atom+xml", href=base + "/history.atom")
    for item in view.all:
        incident = item.incident
        entry = _sub(feed, "entry")
        _sub(entry, "id", f"tag:{host},2024:incident:{incident.id}")
        _sub(entry, "title", f"{languages.text(incident, 'title', locale)} ({label(incident.status)})")
        _sub(entry, "published", iso(incident.declared_at))
        _sub(entry, "updated", iso(incident.updated_at))
        _sub(entry, "link", rel="alternate", type="text/html", href=f"{base}/#{incident.ref}")
        author = _sub(entry, "author")
        _sub(author, "name", config.notifier.company.get(locale))
        region = view.region or (incident.regions[0] if incident.regions else None)
        parts = [
            f"<p><small>{escape(local(u.created_at, region))}</small> — <strong>{escape(label(u.status))}</strong>"
            f"{'. ' + str(escape(languages.text(u, 'message', locale))) if u.message else ''}</p>"
            for u in item.updates
        ]
        _sub(entry, "content", "\n".join(parts), type="html")
    body = ET.tostring(feed, encoding="unicode", xml_declaration=False)
    return Response('<?xml version="1.0" encoding="utf-8"?>\n' + body, media_type="application/atom+xml")
