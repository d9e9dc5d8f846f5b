"""Delivery: pushing composed messages out through a transport.

This package's root holds only what every transport shares, the :class:`SendOutcome`
of one attempt; the sender loop lives in ``delivery.sender``, the outbox queue in
``delivery.queue`` and each transport in its own module (``delivery.smtp``). Importing
the package imports no transport library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["SendOutcome", "Status"]

Status = Literal["sent", "transient", "permanent", "permanent_message"]


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What happened to one message on one attempt.

    - ``sent``: the server took responsibility for it.
    - ``transient``: try again later (4xx, disconnect, timeout, server unreachable).
    - ``permanent``: the recipient address is refused (5xx on RCPT): fail it and mark
      the address bounced.
    - ``permanent_message``: this message is refused (5xx on DATA), not the address:
      fail it without bouncing anyone.

    ``ambiguous`` marks a transient outcome where the connection failed after the whole
    message had been sent: the server may have delivered it, so a retry may duplicate.
    ``detail`` is one line for the outbox's last error (the server's reply, or why not).
    """

    status: Status
    detail: str = ""
    code: int | None = None
    ambiguous: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "sent"

    @property
    def retry(self) -> bool:
        return self.status == "transient"
