"""The hotline: announcements to the call centre, caller lookup, calls, callbacks and the
reminders and escalations that keep promises from being forgotten.

One module per concern; this package root only re-exports the public functions:

* ``announcements``: queue each incident step's announcement to the ``[hotline]`` targets
  (latest wins), and the script an operator reads right now;
* ``callers``: find a caller by any identifier and say whether they are affected, what they
  were sent and what to tell them;
* ``callbacks``: log a call, promise, list and close callbacks, escalate overdue ones, and the
  report section on calls and callbacks;
* ``reminders``: remind on-call of an open incident that has gone silent;
* ``notices``: what the sender needs to render and judge the hotline's own message kinds.

Every function takes the Session it works in (writes expect a ``db.write_session``) and,
where it needs settings, the Config. Nothing here sends, prints or reads the clock
implicitly when a ``now`` is given.
"""

from __future__ import annotations

from notifier.hotline.announcements import ScriptEntry, latest_public_update, queue_announcements, script
from notifier.hotline.callbacks import (
    CallbackEntry,
    close_callback,
    list_callbacks,
    log_call,
    queue_escalations,
    report_section,
)
from notifier.hotline.callers import CallerInfo, lookup
from notifier.hotline.notices import Prepared, prepare
from notifier.hotline.reminders import queue_stale_reminders

__all__ = [
    "CallbackEntry",
    "CallerInfo",
    "Prepared",
    "ScriptEntry",
    "close_callback",
    "latest_public_update",
    "list_callbacks",
    "log_call",
    "lookup",
    "prepare",
    "queue_announcements",
    "queue_escalations",
    "queue_stale_reminders",
    "report_section",
    "script",
]
