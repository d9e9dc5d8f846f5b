"""`notifier templates check` and `notifier preview`: see what subscribers will get, before they do.

Thin wrappers over ``notifier.rendering``; the subscriber lookup here is a stop-gap simple
query until ``notifier.subscribers.find`` exists.
"""

from __future__ import annotations

import typer
from sqlalchemy import func, or_, select
from sqlmodel import Session

from notifier import incidents
from notifier.cli import app
from notifier.cli.common import console, err_console, state
from notifier.config import LOCALES
from notifier.db import read_session
from notifier.errors import SubscriberNotFound, UsageError
from notifier.models import Subscriber, Update
from notifier.rendering import KINDS, Renderer, sample_subscriber

templates_app = typer.Typer(help="Check the notification templates.", no_args_is_help=True)
app.add_typer(templates_app, name="templates")


@templates_app.command("check")
def check(ctx: typer.Context) -> None:
    """Render every template in every language with sample data, strictly; list what is broken.

    Example: notifier templates check
    """
    renderer = Renderer(state(ctx).config)
    issues = renderer.check()
    if issues:
        for issue in issues:
            err_console.print(str(issue), markup=False)
        raise typer.Exit(1)
    console.print(f"{renderer.template_count()} templates OK ({renderer.directory}).", markup=False)


def _find_subscriber(session: Session, key: str) -> Subscriber:
    text = key.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    conditions = [Subscriber.external_id == text, Subscriber.email_key == text.lower()]
    if len(digits) >= 10:
        conditions.append(Subscriber.phone.in_({"+" + digits, "+7" + digits[-10:]}))  # type: ignore[union-attr]
    query = select(Subscriber).where(or_(*conditions)).order_by(Subscriber.id).limit(1)
    found = session.exec(query).scalars().first()  # type: ignore[call-overload]
    if found is None:
        found = (
            session.exec(  # type: ignore[call-overload]
                select(Subscriber).where(func.lower(Subscriber.external_id) == text.lower()).limit(1)
            )
            .scalars()
            .first()
        )
    if found is None:
        raise SubscriberNotFound(text)
    return found


def _latest_status_update(session: Session, incident_id: int) -> Update | None:
    query = (
        select(Update)
        .where(Update.incident_id == incident_id, Update.kind.in_(("declared", "update")))  # type: ignore[attr-defined]
        .order_by(Update.id.desc())  # type: ignore[union-attr]
        .limit(1)
    )
    return session.exec(query).scalars().first()  # type: ignore[call-overload]


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
) -> None:
    """Print exactly what a subscriber would get for an incident: the subject, then the body.

    Example: notifier preview INC-1 --kind apology --subscriber ACC-000123
    """
    if kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if locale is not None and locale not in LOCALES:
        raise UsageError(f"--locale must be one of {', '.join(LOCALES)}, not {locale!r}")
    if html and kind == "hotline":
        raise UsageError("hotline announcements are plain text; drop --html")
    st = state(ctx)
    config = st.config
    with read_session(st.engine()) as session:
        incident = incidents.get(session, incident_id)
        update = _latest_status_update(session, incident.id) if kind == "status" else None  # type: ignore[arg-type]
        if subscriber_key:
            subscriber = _find_subscriber(session, subscriber_key)
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
    unsubscribe = f"{config.notifier.public_base_url}/unsubscribe/PREVIEW" if reader else ""
    rendered = Renderer(config).render(
        kind, incident=incident, locale=lang, subscriber=reader, update=update, unsubscribe_url=unsubscribe
    )
    # Plain echo: exactly the bytes a subscriber gets, no rich markup or emoji codes.
    typer.echo(f"Subject: {rendered.subject}\n")
    body = (rendered.html or "") if html else rendered.text
    typer.echo(body, nl=not body.endswith("\n"))
