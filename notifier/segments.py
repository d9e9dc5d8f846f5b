"""How many SMS segments a text costs: GSM-7 (160 characters, 153 per part when split) or
UCS-2 (70, 67 per part) as soon as one character is outside the GSM 03.38 alphabet.

Owns the GSM 03.38 default alphabet and its extension table (``^{}\\[~]|€`` and form feed
cost two septets each), and the arithmetic of concatenated messages: each part of a long
message carries a 6-byte header, which leaves 153 septets or 67 UCS-2 characters, and a
part never splits an escape sequence or a surrogate pair. Plain functions of a string;
``rendering`` (``templates check``, ``preview --channel sms``) and the SMS messenger use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["GSM7", "UCS2", "Segments", "count"]

GSM7, UCS2 = "GSM-7", "UCS-2"
_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_EXTENDED = frozenset("^{}\\[~]|€\f")
# (one message, one part of a concatenated message), in septets or UTF-16 units.
_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}


@dataclass(frozen=True)
class Segments:
    """``count`` parts of ``encoding``; ``units`` septets (GSM-7) or UTF-16 units (UCS-2)."""

    count: int
    encoding: str
    units: int
    characters: int

    @property
    def capacity(self) -> int:
        """How many units fit in this many segments."""
        single, part = _LIMITS[self.encoding]
        return single if self.count == 1 else self.count * part

    def __str__(self) -> str:
        noun = "segment" if self.count == 1 else "segments"
        return f"{self.count} {noun}, {self.encoding}"

    def describe(self) -> str:
        """``2 segments, UCS-2 (118 characters; up to 134 fit in 2)``."""
        return f"{self} ({self.characters} characters; up to {self.capacity} fit in {self.count})"


def is_gsm7(text: str) -> bool:
    """Whether every character of ``text`` is in the GSM 03.38 alphabet (with its extension)."""
    return all(char in _BASIC or char in _EXTENDED for char in text)


def _costs(text: str, encoding: str) -> list[int]:
    """Units per character: septets in GSM-7, UTF-16 code units in UCS-2."""
    if encoding == GSM7:
        return [2 if char in _EXTENDED else 1 for char in text]
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


def _parts(costs: list[int], size: int) -> int:
    """Parts of at most ``size`` units, never splitting one character's units."""
    parts, used = 1, 0
    for cost in costs:
        if used + cost > size:
            parts, used = parts + 1, 0
        used += cost
    return parts


def count(text: str) -> Segments:
    """The segments ``text`` is sent in (an empty text is one segment)."""
    encoding = GSM7 if is_gsm7(text) else UCS2
    costs = _costs(text, encoding)
    units = sum(costs)
    single, part = _LIMITS[encoding]
    n = 1 if units <= single else max(_parts(costs, part), math.ceil(units / part))
    return Segments(n, encoding, units, len(text))


def sms_text(rendered: str) -> str:
    """A rendered SMS template as it is sent: lines stripped, blank lines dropped, no trailing newline."""
    return "\n".join(line.strip() for line in rendered.strip().splitlines() if line.strip())


def over_limit(text: str, max_segments: int) -> str | None:
    """Why ``text`` may not be sent under ``[sms].max_segments``, or None when it fits."""
    found = count(text)
    if found.count <= max_segments:
        return None
    return f"renders {found.describe()}, more than [sms].max_segments = {max_segments}; shorten it"
