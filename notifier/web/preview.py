"""Previewing the apology before it is sent: the incident as it would be once resolved with
the cause, measures and compensation typed in the console, rendered for a sample subscriber.

Owns building that detached, never-saved copy of the incident. The words come from
``rendering.Renderer`` exactly as the sender will use them.
"""

from __future__ import annotations

from datetime import datetime

from notifier import compensation as policy
from notifier import languages
from notifier.config import Config
from notifier.models import Incident, Subscriber
from notifier.rendering import Rendered, Renderer
from notifier.samples import sample_subscriber


def apology_preview(
    renderer: Renderer, config: Config, incident: Incident, *, cause: str, measures: str, compensation: str,
    locale: str, now: datetime, texts: dict[str, dict[str, str]] | None = None,
) -> tuple[Rendered, Subscriber]:  # fmt: skip
    """The rendered apology and the sample subscriber it was rendered for; saves nothing.
    ``texts``: the title, cause and measures typed in other languages."""
    draft = Incident(**incident.model_dump())
    draft.translations = languages.merged(incident.translations, texts or {})
    draft.status = "resolved"
    draft.resolved_at = incident.resolved_at or now
    draft.cause = cause.strip() or incident.cause
    draft.measures = measures.strip() or incident.measures
    draft.updated_at = now
    if compensation.strip():
        draft.compensation_days = policy.parse_override(config.compensation, compensation)
    elif incident.resolved_at is None:
        draft.compensation_days = policy.by_policy(
            config.compensation, draft.severity, draft.resolved_at - draft.started_at
        )
    services = [code for code in incident.services[:1] if code in config.services] or list(config.services)[
        :1
    ]
    sample = sample_subscriber(config, region=incident.regions[0], locale=locale, services=services)
    url = config.notifier.public_base_url + "/unsubscribe/sample-token"
    rendered = renderer.render(
        "apology", incident=draft, locale=locale, subscriber=sample, unsubscribe_url=url, now=now
    )
    return rendered, sample
