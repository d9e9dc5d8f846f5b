"""What the sender needs for the message kinds the hotline queues: hotline, reminder, escalation.

Owns loading, for a batch of claimed outbox rows, the extra keyword arguments
``Renderer.render`` needs for each (the callback, call, caller and level of an escalation;
the latest public update a hotline announcement reads out) and deciding which of them no
longer need to go (a closed callback, an incident updated or resolved since its reminder).
It does not render, compose or send.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from notifier.hotline.announcements import latest_public_update
from notifier.hotline.callbacks import escalation_level
from notifier.models import Call, Callback, Incident, Message, Subscriber

KINDS = ("hotline", "reminder", "escalation")


@dataclass(frozen=True)
class Prepared:
    render: dict[str, Any] = field(default_factory=dict)  # keyword arguments for Renderer.render
    cancel: str | None = None  # why the message should be cancelled instead of sent
    callback: Callback | None = None  # for the webhook payload of an escalation


def prepare(session: Session, messages: Iterable[Message]) -> dict[int, Prepared]:
    """``{message id: Prepared}`` for the hotline's kinds among ``messages`` (others are left out)."""
    result: dict[int, Prepared] = {}
    mine = [m for m in messages if m.kind in KINDS]
    callbacks = _callbacks(session, {m.callback_id for m in mine if m.kind == "escalation" and m.callback_id})
    latest: dict[int, Any] = {}
    for m in mine:
        if m.incident_id is not None and m.incident_id not in latest:
            latest[m.incident_id] = latest_public_update(session, m.incident_id)
        update = latest.get(m.incident_id) if m.incident_id is not None else None
        if m.kind == "hotline":
            result[m.id] = Prepared(render={"update": update})  # type: ignore[index]
        elif m.kind == "reminder":
            result[m.id] = Prepared(cancel=_reminder_cancel(session, m, update))  # type: ignore[index]
        else:
            loaded = callbacks.get(m.callback_id)  # type: ignore[arg-type]
            if loaded is None:
                result[m.id] = Prepared(cancel="cancelled: the callback no longer exists")  # type: ignore[index]
                continue
            callback, call, subscriber = loaded
            cancel = "cancelled: the callback was closed" if callback.done_at is not None else None
            render = {"callback": callback, "call": call, "subscriber": subscriber,
                      "level": escalation_level(m.dedupe_key)}  # fmt: skip
            result[m.id] = Prepared(render=render, cancel=cancel, callback=callback)  # type: ignore[index]
    return result


def _reminder_cancel(session: Session, message: Message, update: Any) -> str | None:
    incident = session.get(Incident, message.incident_id)
    if incident is None or incident.status == "resolved":
        return "cancelled: the incident is resolved"
    if update is not None and update.id != message.update_id:
        return "cancelled: the incident has been updated since"
    return None


def _callbacks(session: Session, ids: set[int]) -> dict[int, tuple[Callback, Call, Subscriber | None]]:
    if not ids:
        return {}
    rows = session.execute(
        select(Callback, Call, Subscriber)
        .join(Call, Call.id == Callback.call_id)
        .outerjoin(Subscriber, Subscriber.id == Call.subscriber_id)
        .where(Callback.id.in_(ids))  # type: ignore[union-attr]
    ).all()
    return {callback.id: (callback, call, subscriber) for callback, call, subscriber in rows}
