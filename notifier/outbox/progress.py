"""How far each mailing of an incident has got: for the console's live view (and anyone else).

Owns summarising an incident's outbox rows by mailing — one kind of message to one channel,
for one update (each status notice is a mailing of its own) — into what a person watching it
wants: how many in all, sent, waiting (queued, retrying, being sent, held), failed, cancelled,
the rate over the last minute and, from it, the time left. Counting only; it changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlmodel import Session

from notifier.models import Message
from notifier.outbox.queueing import unwritten

RATE_WINDOW = timedelta(seconds=60)
_WAITING = ("queued", "retry", "sending", "held")


@dataclass(frozen=True)
class Mailing:
    kind: str
    channel: str
    update_id: int | None
    total: int
    sent: int
    waiting: int
    failed: int
    cancelled: int
    per_second: float  # accepted per second over the last minute
    seconds_left: float | None  # at that rate; None when nothing is moving or nothing waits
    first_sent_at: datetime | None
    last_sent_at: datetime | None

    @property
    def done(self) -> bool:
        return self.waiting == 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "done": self.done}


def mailings(session: Session, incident_id: int, now: datetime) -> list[Mailing]:
    """The incident's mailings, oldest first."""
    since = now - RATE_WINDOW
    rows = session.execute(
        select(
            Message.kind, Message.channel, Message.update_id, func.count(), func.min(Message.id),
            func.sum(case((Message.state == "sent", 1), else_=0)),
            func.sum(case((Message.state.in_(_WAITING), 1), else_=0)),  # type: ignore[attr-defined]
            func.sum(case((Message.state == "failed", 1), else_=0)),
            func.sum(case((Message.state == "cancelled", 1), else_=0)),
            func.sum(case(((Message.state == "sent") & (Message.sent_at >= since), 1), else_=0)),  # type: ignore[operator]
            func.min(Message.sent_at), func.max(Message.sent_at),
        )
        .where(Message.incident_id == incident_id)
        .group_by(Message.kind, Message.channel, Message.update_id)
    ).all()  # fmt: skip
    # Members a status notice still owes a row to count as waiting, the ones it never wrote
    # (a newer update or the resolve came first) as cancelled.
    unwritten_by: dict[tuple[str, str, int | None], dict[str, int]] = {}
    for pending, state, n in unwritten(session, incident_id):
        key = (pending.kind, pending.channel, pending.update_id)
        unwritten_by.setdefault(key, {"queued": 0, "cancelled": 0})[state] += n
    empty = (0, math.inf, 0, 0, 0, 0, 0, None, None)  # a mailing with no row written yet comes last
    rows = [*rows, *((*key, *empty) for key in unwritten_by.keys() - {tuple(row[:3]) for row in rows})]
    result = []
    for kind, channel, update_id, total, _, sent, waiting, failed, cancelled, recent, first, last in sorted(
        rows, key=lambda row: row[4]
    ):
        owed = unwritten_by.get((kind, channel, update_id), {"queued": 0, "cancelled": 0})
        total, waiting, cancelled = total + sum(owed.values()), (waiting or 0) + owed["queued"], (cancelled or 0) + owed["cancelled"]
        rate = (recent or 0) / RATE_WINDOW.total_seconds()
        left = (waiting or 0) / rate if rate and waiting else None
        result.append(Mailing(kind, channel, update_id, total, sent or 0, waiting or 0, failed or 0, cancelled or 0,
                              round(rate, 2), round(left, 1) if left is not None else None, first, last))  # fmt: skip
    return result
