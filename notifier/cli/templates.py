"""`notifier templates check` and `notifier preview`: see what subscribers will get, before they do
(by e-mail, or by SMS with its segment count).

Thin wrappers over ``notifier.rendering``; the subscriber is found by any key
(``notifier.subscribers.get_one``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import typer

from notifier.cli import app
from notifier.cli.common import console, err_console, state
from notifier.errors import UsageError

if TYPE_CHECKING:
    from sqlmodel import Session

if TYPE_CHECKING:
    from notifier.config import Config
    from notifier.models import Subscriber, Update

templates_app = typer.Typer(help="Check the notification templates.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")


@templates_app.command("check")
def check(ctx: typer.Context) -> None:
    """Render every template in every language with sample data, strictly; list what is broken.

    Example: notifier templates check
    """
    from notifier.rendering import Renderer
    renderer = Renderer(state(ctx).config)
    issues = renderer.check()
    if issues:
        for issue in issues:
            err_console.print(str(issue), markup=False)
        raise typer.Exit(1)
    console.print(f"{renderer.template_count()} templates OK ({renderer.directory}).", markup=False)


def _latest_status_update(session: Session, incident_id: int) -> Update | None:
    from sqlalchemy import select

    from notifier.models import Update
    query = (
        select(Update)
        .where(Update.incident_id == incident_id, Update.kind.in_(("declared", "update")))  # type: ignore[attr-defined]
        .order_by(Update.id.desc())  # type: ignore[union-attr]
        .limit(1)
    )
    return session.exec(query).scalars().first()  # type: ignore[call-overload]


def _unsubscribe_url(config: Config, reader: Subscriber) -> str:
    """The subscriber's real link when the secret is set (a sample subscriber has no id)."""
    from notifier import tokens
    secret = os.environ.get(config.notifier.secret_env, "")
    if reader.id is None or len(secret) < 16:
        return f"{config.notifier.public_base_url}/unsubscribe/PREVIEW"
    return tokens.unsubscribe_url(
        config.notifier.public_base_url, tokens.make_token(config.secret(), reader.id)
    )


@app.command("preview")
def preview(
    ctx: typer.Context,
    incident_id: str = typer.Argument(..., metavar="ID", help="incident id, e.g. INC-1"),
    kind: str = typer.Option(..., "--kind", help="status | apology | hotline"),
    subscriber_key: str | None = typer.Option(
        None, "--subscriber", help="account number, e-mail or phone (default: a sample subscriber)"
    ),
    html: bool = typer.Option(False, "--html", help="print the HTML part instead of the text"),
    locale: str | None = typer.Option(None, "--locale", help="ru | en (default: the subscriber's)"),
    channel: str = typer.Option("email", "--channel", help="email | sms (the SMS text and its segments)"),
) -> None:
    """Print exactly what a subscriber would get for an incident: the subject, then the body
    (with --channel sms: the segments it costs, then the SMS text).

    Example: notifier preview INC-1 --kind apology --subscriber ACC-000123
    """
    from notifier import incidents, subscribers
    from notifier.config import LOCALES
    from notifier.db import read_session
    from notifier.models import AudienceMember
    from notifier.rendering import KINDS, SMS_KINDS, Renderer
    from notifier.samples import sample_subscriber
    if kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if channel not in ("email", "sms"):
        raise UsageError(f"--channel must be email or sms, not {channel!r}")
    if channel == "sms" and (kind not in SMS_KINDS or html):
        raise UsageError("--channel sms previews a status notice or an apology, as plain text (no --html)")
    if locale is not None and locale not in LOCALES:
        raise UsageError(f"--locale must be one of {', '.join(LOCALES)}, not {locale!r}")
    if html and kind == "hotline":
        raise UsageError("hotline announcements are plain text; drop --html")
    st = state(ctx)
    config = st.config
    with read_session(st.engine()) as session:
        incident = incidents.get(session, incident_id)
        update = _latest_status_update(session, incident.id) if kind in ("status", "hotline") else None  # type: ignore[arg-type]
        if subscriber_key:
            subscriber = subscribers.get_one(session, config, subscriber_key)
            if kind != "hotline" and session.get(AudienceMember, (incident.id, subscriber.id)) is None:
                who = subscriber.external_id or subscriber.email or subscriber.phone
                raise UsageError(
                    f"{who} is not in {incident.ref}'s audience (not affected): they get no {kind} message; "
                    f"drop --subscriber to preview a sample letter"
                )
        else:
            subscriber = sample_subscriber(
                config, region=incident.regions[0], locale=locale or config.notifier.default_locale,
                services=incident.services[:1] or None,
            )  # fmt: skip
        session.expunge_all()
    if kind == "hotline":
        reader, lang = None, locale or (config.hotline.targets[0].locale if config.hotline.targets else "ru")
    else:
        reader, lang = subscriber, locale or subscriber.locale
    unsubscribe = _unsubscribe_url(config, reader) if reader else ""
    if channel == "sms":
        _preview_sms(config, kind, incident, lang, subscriber, update)
        return
    rendered = Renderer(config).render(
        kind, incident=incident, locale=lang, subscriber=reader, update=update, unsubscribe_url=unsubscribe
    )
    # Plain echo: exactly the bytes a subscriber gets, no rich markup or emoji codes.
    typer.echo(f"Subject: {rendered.subject}\n")
    body = (rendered.html or "") if html else rendered.text
    typer.echo(body, nl=not body.endswith("\n"))


def _preview_sms(config: Config, kind: str, incident: Any, locale: str, reader: Subscriber, update: Any) -> None:
    """The SMS and what it costs: ``Segments: 2 segments, UCS-2 (…)``, then the text."""
    from notifier import segments
    from notifier.rendering import Renderer
    signable = reader.id is not None and len(os.environ.get(config.notifier.secret_env, "")) >= 16
    # A real subscriber's link when it can be signed (None: the renderer signs it), else a placeholder.
    letter = None if signable else f"{config.notifier.public_base_url}/letters/{incident.id}/PREVIEW"
    rendered = Renderer(config).render(kind, incident=incident, locale=locale, subscriber=reader, update=update,
                                       channel="sms", letter_url=letter)  # fmt: skip
    typer.echo(f"Segments: {segments.count(rendered.text).describe()}; at most {config.sms.max_segments} allowed\n")
    typer.echo(rendered.text)
