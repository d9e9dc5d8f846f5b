"""Paused mailings: the kinds of message that wait while the template they need is broken.

Owns the ``mailing_pause`` rows: pausing a (kind, channel, language) when its template fails
to render at send time (with the on-call note that says which file and line, queued once),
listing the pauses, and lifting them when the templates have changed since. While a pause
stands, ``claims`` does not claim its messages; nothing of it is lost or sent twice. Which
template failed, and why, is ``rendering``'s; deciding to pause is the sender's.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from notifier.config import Config
from notifier.db import dialect_module, read_session, write_session
from notifier.models import MailingPause
from notifier.outbox.queueing import insert_rows, message_row, pause_key

Key = tuple[str, str, str]  # kind, channel, locale


def pause(session: Session, config: Config, key: Key, problem: str, digest: str, now: datetime) -> bool:
    """Pause ``key`` (once: a second failure of the same kind changes nothing); True when new.

    A new pause queues a note to ``[notifier].oncall_email`` naming the template file and line.
    """
    kind, channel, locale = key
    module = dialect_module(session)
    stmt = (
        module.insert(MailingPause)
        .values(kind=kind, channel=channel, locale=locale, problem=problem[:1000], templates_digest=digest,
                since=now)  # fmt: skip
        .on_conflict_do_nothing()
        .execution_options(preserve_rowcount=True)
    )
    if not session.exec(stmt).rowcount:  # type: ignore[call-overload]
        return False
    row = session.exec(select(MailingPause).where(  # type: ignore[call-overload]
        MailingPause.kind == kind, MailingPause.channel == channel, MailingPause.locale == locale)).scalars().one()
    if config.notifier.oncall_email and kind != "paused":
        insert_rows(session, [message_row(
            kind="paused", channel="email", recipient=config.notifier.oncall_email, dedupe_key=pause_key(row.id),
            locale=config.notifier.default_locale, now=now,
        )])  # fmt: skip
    return True


def pause_all(engine: Engine, config: Config, problems: dict[Key, str], digest: str, now: datetime) -> None:
    if problems:
        with write_session(engine) as session:
            for key, problem in problems.items():
                pause(session, config, key, problem, digest, now)


def lift_changed(engine: Engine, digest: str) -> list[MailingPause]:
    """Lift every pause made with other templates than those of ``digest``; returns them."""
    with write_session(engine) as session:
        lifted = list(session.exec(  # type: ignore[call-overload]
            select(MailingPause).where(MailingPause.templates_digest != digest)).scalars())
        if lifted:
            session.exec(delete(MailingPause).where(MailingPause.templates_digest != digest))  # type: ignore[call-overload]
        for row in lifted:
            session.expunge(row)
    return lifted


def current(engine: Engine) -> list[MailingPause]:
    with read_session(engine) as session:
        rows = list(session.exec(select(MailingPause).order_by(MailingPause.id)).scalars())  # type: ignore[call-overload]
        for row in rows:
            session.expunge(row)
    return rows


def describe(row: MailingPause) -> str:
    return f"{row.kind} ({row.channel}, {row.locale}) is paused since {row.since:%Y-%m-%d %H:%M} UTC: {row.problem}"
