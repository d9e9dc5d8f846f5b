"""The NotifierError family: every failure a user can cause, with a message written for them.

The CLI prints ``str(error)`` as one line on stderr and exits with ``error.exit_code``;
the web turns them into 4xx pages. Anything that is not a NotifierError is a bug.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from notifier.models import Subscriber


class NotifierError(Exception):
    """A mistake or condition the user can act on. ``str()`` is the whole message."""

    exit_code = 1


class ConfigError(NotifierError):
    """config.toml is missing, unreadable or invalid."""

    exit_code = 2


class UsageError(NotifierError):
    """A command-line argument or input value is invalid."""

    exit_code = 2


class NotFoundError(NotifierError):
    """Something named by the user (an incident, a subscriber) does not exist."""

    exit_code = 1


class IncidentNotFound(NotFoundError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No incident by the id of {ref!r} was found (see: notifier incident list).")


class SubscriberNotFound(NotFoundError):
    def __init__(self, key: str) -> None:
        super().__init__(f"No subscriber matches {key!r} (try an account number, e-mail or phone).")


class MaintenanceNotFound(NotFoundError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"No maintenance by the id of {ref!r} was found (see: notifier maintenance list).")


class InvalidTransition(NotifierError):
    """An incident cannot move to the requested status."""


class TemplateProblem(NotifierError):
    """A template does not exist, does not compile or fails to render."""


class DatabaseError(NotifierError):
    """The database is unreachable, not initialised, or out of space."""


class DeliveryError(NotifierError):
    """Sending cannot go on at all (authentication refused, sender address refused)."""


class CallbackNotFound(NotFoundError):
    def __init__(self, callback_id: int | str) -> None:
        super().__init__(
            f"No callback by the id of {callback_id!r} was found (see: notifier callbacks --all)."
        )


class CallbackClosed(NotifierError):
    """A callback that is already done cannot be closed again."""


class AmbiguousSubscriber(NotifierError):
    """An identifier matches more than one subscriber (at most 50 are counted)."""

    exit_code = 2

    def __init__(self, key: str, found: list[Subscriber]) -> None:
        sample = ", ".join(s.external_id or s.email or s.phone or f"#{s.id}" for s in found[:3])
        super().__init__(
            f"{key!r} matches {len(found)}{'+' if len(found) >= 50 else ''} subscribers ({sample}"
            f"{', …' if len(found) > 3 else ''}); give an account number, e-mail or phone"
        )
