"""Inserting the hotline's own outbox rows, each at most once (its de-duplication key decides).

Owns only the statement: a multi-row ``INSERT … ON CONFLICT DO NOTHING`` that runs the same
on SQLite and PostgreSQL and returns how many rows were new. What goes into a row is
decided by the modules that call it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from notifier.models import Message


def message_row(
    *, kind: str, channel: str, recipient: str, dedupe_key: str, locale: str, now: datetime,
    incident_id: int | None = None, update_id: int | None = None, callback_id: int | None = None,
    not_before: datetime | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One outbox row's values, every column given (so a batch inserts with one statement)."""
    return {
        "kind": kind, "channel": channel, "state": "queued", "incident_id": incident_id, "subscriber_id": None,
        "update_id": update_id, "callback_id": callback_id, "recipient": recipient, "locale": locale,
        "dedupe_key": dedupe_key, "attempts": 0, "not_before": not_before or now, "created_at": now,
    }  # fmt: skip


def insert_messages(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert the rows whose de-duplication key is new; returns how many were."""
    if not rows:
        return 0
    module = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
    stmt = module.insert(Message).values(rows).on_conflict_do_nothing()
    return session.exec(stmt.execution_options(preserve_rowcount=True)).rowcount  # type: ignore[call-overload]
