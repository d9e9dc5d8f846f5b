"""Planned work: announce it to the people it will affect, remind them, tell them when it starts and ends.

- ``lifecycle``: schedule, reschedule, extend, cancel, complete; the audience snapshot (same
  region/service targeting as an incident); the phase a maintenance is in; on-call's overrun
  reminder (:func:`queue_overrun_reminders`, called by the scheduler's housekeeping);
- ``letters``: what its letters say (template contexts, samples for ``templates check``, the
  ``.ics`` attachment);
- ``calendar``: the iCalendar (RFC 5545) event.

Its messages are outbox rows (``outbox.planned``) with ``not_before`` times: ``notifier serve``
sends each when it is due; nothing here sends, renders or schedules a job.
"""

from __future__ import annotations

from notifier.maintenance.lifecycle import (
    MaintenanceStep,
    audience_size,
    cancel,
    complete,
    during,
    extend,
    get,
    list_maintenance,
    message_counts,
    phase,
    queue_overrun_reminders,
    reschedule,
    schedule,
)

__all__ = [
    "MaintenanceStep", "audience_size", "cancel", "complete", "during", "extend", "get", "list_maintenance",
    "message_counts", "phase", "queue_overrun_reminders", "reschedule", "schedule",
]  # fmt: skip
