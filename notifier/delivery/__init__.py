"""Delivery: pushing rendered messages out through messengers.

This package's root holds what the sender pipeline and every messenger share, and nothing
else: the channel-neutral :class:`OutgoingMessage` a messenger receives, the
:class:`SendOutcome` it answers with, and the :class:`Messenger` interface (after
listmonk's ``Messenger.Push``). The pipeline (``delivery.sender``) knows only the outbox
and messengers; each messenger turns an ``OutgoingMessage`` into its own wire format in a
module of its own (``delivery.smtp``: MIME over SMTP; ``delivery.webhook``: JSON over
HTTP). Adding a channel is one new module. Importing the package imports no transport
library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

__all__ = ["Messenger", "OutgoingMessage", "SendOutcome", "Status"]

Status = Literal["sent", "transient", "permanent", "permanent_message", "deferred"]


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One rendered message to one recipient, in no channel's format yet.

    ``message_id`` is globally unique and stable for its outbox row across retries (a
    receiver can recognise a resend); ``facts`` are the structured facts behind the text
    (incident, update, callback) for receivers that are programs, not people; ``attachments``
    are files that go with it where the channel can carry them.
    """

    id: int  # the outbox row
    kind: str
    channel: str
    recipient: str  # an e-mail address, a URL, a phone number: what the row was queued to
    recipient_name: str
    locale: str
    subject: str
    text: str
    html: str | None
    message_id: str
    date: datetime
    unsubscribe_url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)
    attachments: tuple[Any, ...] = ()  # ``composing.Attachment``s (an announcement's .ics); e-mail only


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What happened to one message on one attempt.

    - ``sent``: the receiving end took responsibility for it.
    - ``transient``: this message could not go now (4xx for it, a disconnect, a timeout):
      retry later with back-off; the attempt counts.
    - ``permanent``: the recipient is refused (5xx on RCPT): fail it and mark the address
      bounced.
    - ``permanent_message``: this message is refused (5xx on DATA), not the address: fail
      it without bouncing anyone.
    - ``deferred``: not the message's fault (a relay throttling *us*): put it back without
      charging the attempt, not before ``retry_after`` seconds.

    ``ambiguous`` marks a transient outcome where the connection failed after the whole
    message had been sent: the receiver may have accepted it, so a retry may duplicate.
    ``detail`` is one line for the outbox's last error (the server's reply, or why not).
    A problem that every further message would hit too (a password refused, a certificate
    that does not verify) is not an outcome: the messenger raises ``DeliveryError``.
    """

    status: Status
    detail: str = ""
    code: int | None = None
    ambiguous: bool = False
    retry_after: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "sent"


class Messenger(Protocol):
    """A channel: ``await start()``, then ``await push(message)`` from up to ``concurrency``
    tasks at once, then ``await close()``. ``interrupt()`` ends any waiting a push does for
    the channel's own reasons (a throttle) with a ``deferred`` outcome: the run is stopping."""

    channel: str
    concurrency: int

    async def start(self) -> None: ...

    async def push(self, message: OutgoingMessage) -> SendOutcome: ...

    def interrupt(self) -> None: ...

    async def close(self) -> None: ...
