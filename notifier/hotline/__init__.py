"""The hotline: announcements to the call centre, caller lookup, calls, callbacks and the
reminders and escalations that keep promises from being forgotten.

One module per concern; this package root only re-exports the public functions:

* ``announcements``: the script an operator reads right now (queueing each step's
  announcement to the ``[hotline]`` targets is ``outbox.queue_announcements``);
* ``callers``: find a caller by any identifier and say whether they are affected, what they
  were sent and what to tell them;
* ``callbacks``: log a call, promise, list and close callbacks, escalate overdue ones, and the
  report section on calls and callbacks;
* ``reminders``: remind on-call of an open incident that has gone silent.

What the sender needs to render the hotline's own kinds is loaded by ``outbox.loading``.

Every function takes the Session it works in (writes expect a ``db.write_session``) and,
where it needs settings, the Config. Nothing here sends, prints or reads the clock
implicitly when a ``now`` is given.
"""

from __future__ import annotations

from notifier.hotline.announcements import ScriptEntry, script
from notifier.hotline.callbacks import (
    CallbackEntry,
    close_callback,
    list_callbacks,
    log_call,
    queue_escalations,
    report_section,
)
from notifier.hotline.callers import CallerInfo, lookup
from notifier.hotline.reminders import queue_stale_reminders

__all__ = [
    "CallbackEntry",
    "CallerInfo",
    "ScriptEntry",
    "close_callback",
    "list_callbacks",
    "log_call",
    "lookup",
    "queue_escalations",
    "queue_stale_reminders",
    "report_section",
    "script",
]
