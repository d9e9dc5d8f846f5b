"""What came back about one recipient of one message: the ``BounceEvent`` every intake yields.

A DSN, an ARF report, an auto-reply and an ESP's webhook all become ``BounceEvent``s, so
``suppression.record`` is the one place that decides what they mean for a subscriber.
Owns only the data shape and its vocabulary; parsing is in ``dsn``, ``arf``, ``autoreply``
and the webhook modules, matching to an outbox row in ``matching``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["hard_bounce", "soft_bounce", "complaint", "auto_reply"]
KINDS: tuple[str, ...] = ("hard_bounce", "soft_bounce", "complaint", "auto_reply")


@dataclass(frozen=True)
class BounceEvent:
    """One event: ``recipient`` is the address that failed or complained (lower case, may be
    empty); ``code`` a DSN status (``5.1.1``) or a provider's code; ``original_message_id``
    the Message-ID of the message it is about; ``return_path`` the VERP address it names."""

    kind: Kind
    recipient: str = ""
    code: str = ""
    detail: str = ""
    original_message_id: str = ""
    return_path: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown bounce event kind {self.kind!r}")
