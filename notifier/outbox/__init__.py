"""The outbox: the one place that knows the message table.

- ``queueing``: rows are born (one insert helper, de-duplication keys, latest wins with one
  cancel helper) and counted;
- ``claims``: senders register and keep a heartbeat, claim due rows, record what happened,
  and take back the rows of senders that stopped — by one rule;
- ``loading``: a claimed batch becomes jobs ready to render, with the check that a message
  is still wanted (superseded, resolved, unsubscribed, a closed callback …).

This root re-exports the queueing functions the lifecycle modules call; senders import
``claims`` and ``loading`` themselves.
"""

from __future__ import annotations

from notifier.outbox.queueing import (
    cancel_unsent,
    counts,
    escalation_key,
    escalation_level,
    insert_rows,
    message_row,
    queue_announcements,
    queue_apologies,
    queue_status_notices,
)

__all__ = [
    "cancel_unsent",
    "counts",
    "escalation_key",
    "escalation_level",
    "insert_rows",
    "message_row",
    "queue_announcements",
    "queue_apologies",
    "queue_status_notices",
]
