"""Turning rendered text into the exact bytes of an e-mail (RFC 5322 + MIME).

Owns the wire format of outgoing mail: headers (RFC 2047 encoded words for Cyrillic
names and subjects, folded to 78 columns), the multipart/alternative body with base64
parts (inside a multipart/mixed when the message has attachments, such as an ``.ics``), ``Message-ID``, ``Date`` and the RFC 8058 one-click ``List-Unsubscribe`` pair.
It does not render templates, sign tokens or talk SMTP. Everything here is a pure
function of its arguments (data in, bytes out), and fast: the bytes are assembled
directly, because ``email.message.EmailMessage`` spends ~6 ms re-folding headers
(see PERFORMANCE.md); what is the same for a whole mailing (From) is encoded once in
a :class:`Composer`.

Header injection: this Python predates the fix for CVE-2024-6923, so every header
value is checked here. Text meant for people (display names, subjects) has every run
of control characters (CR, LF, NUL, TAB, DEL, U+2028 …) collapsed to one space and direction
and invisible characters (U+202E, U+200B …) dropped (``characters.one_line``), since a
stray newline in a title is a typo, not a reason to drop a notice. Machine values
(addresses, Message-IDs, URLs, extra headers) are refused with ``ValueError``: they come
from code or validated data, and a newline in one is a bug or an attack.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from notifier import characters

__all__ = ["Attachment", "Composer", "check_address", "encode_header_text", "message_id"]

MAX_LINE = 78  # RFC 5322 2.1.1: SHOULD; the hard limit is 998
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_ATOM_TEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext
_MACHINE_VALUE = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")  # printable ASCII, single spaces
_MESSAGE_ID = re.compile(r"<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\[\]:-]+>")
_URL = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]+")  # printable ASCII without '<' and '>'

# Base64 bodies use only [A-Za-z0-9+/=] and '=' only as trailing padding, so "=_" can never
# start a body line: a constant boundary cannot collide, and the bytes stay reproducible.
BOUNDARY = "=_notifier_alt_0"
MIXED_BOUNDARY = "=_notifier_mix_0"  # around the body and its attachments
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}")


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with a message: an ASCII file name, its MIME type (parameters allowed), the bytes."""

    filename: str
    content_type: str
    data: bytes


def collapse_controls(text: str) -> str:
    """Display text with every run of control characters replaced by one space, and direction
    and invisible characters (U+202E, U+200B …) dropped: a name or subject cannot mislead."""
    return characters.one_line(text)


def _encoded_words(text: str, first_room: int, *, at_spaces: bool = False) -> list[str]:
    """``text`` as UTF-8 B encoded words; the first fits ``first_room`` columns, the rest 77.

    ``at_spaces`` (for display names) splits after a space where it can, the space kept
    inside the earlier word: RFC 2047 readers drop the folding whitespace between encoded
    words, but Python's address parser keeps it, so a name cut mid-word would come back
    with a stray space there (a space cut gives Python a double space, readers the right text).
    """
    data = text.encode("utf-8")
    words: list[str] = []
    start = 0
    room = first_room
    while start < len(data):
        # An encoded word costs 12 columns of "=?utf-8?B?" + "?=", and 4 per 3 bytes.
        size = max(3, (room - 12) // 4 * 3)
        end = min(start + size, len(data))
        # Never split a multi-byte character: step back over continuation bytes.
        while end < len(data) and end > start + 1 and (data[end] & 0xC0) == 0x80:
            end -= 1
        if at_spaces and end < len(data):
            space = data.rfind(b" ", start + 1, end)
            if space > 0:
                end = space + 1
        words.append("=?utf-8?B?" + binascii.b2a_base64(data[start:end], newline=False).decode() + "?=")
        start = end
        room = MAX_LINE - 1
    return words


def encode_header_text(name: str, text: str) -> str:
    """An unstructured header line (no CRLF), e.g. ``Subject: …``, safe and folded.

    Control characters become spaces. Printable ASCII that fits on one line (and does not
    look like an encoded word) goes as it is; anything else becomes UTF-8 encoded words
    folded so that no line exceeds 78 characters.
    """
    text = collapse_controls(text)
    prefix = name + ": "
    if text.isascii() and len(prefix) + len(text) <= MAX_LINE and "=?" not in text:
        return prefix + text
    return prefix + "\r\n ".join(_encoded_words(text, MAX_LINE - len(prefix)))


def _phrase(name: str, header: str) -> list[str]:
    """A display name as the words of a phrase (RFC 5322 3.2.5), ready to fold after ``header: ``."""
    name = collapse_controls(name)
    if not name:
        return []
    if name.isascii() and "=?" not in name and len(header) + 2 + len(name) <= MAX_LINE:
        if _ATOMS.fullmatch(name):
            return [name]
        return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return _encoded_words(name, MAX_LINE - len(header) - 2, at_spaces=True)


def check_address(address: str) -> str:
    """A bare ``local@domain`` address, or ValueError. Minimal on purpose: it only keeps the
    header and the SMTP envelope intact (no spaces or controls, exactly one ``@``, no angle
    brackets, quotes, commas or other specials). A non-ASCII domain is IDNA-encoded."""
    local, at, domain = address.partition("@")
    if not at or not local or not domain or "@" in domain:
        raise ValueError(f"{address!r} is not an e-mail address (it needs exactly one @)")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{address!r} has a domain that cannot be IDNA-encoded") from None
    if not _ATOM_TEXT.fullmatch(local) or not re.fullmatch(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f.:]+\]", domain):
        raise ValueError(
            f"{address!r} is not an e-mail address this sender can use "
            "(no spaces, control characters, <>, quotes, commas or non-ASCII local parts)"
        )
    return local + "@" + domain


def message_id(outbox_id: int, domain: str, instance: str = "0") -> str:
    """The Message-ID of one outbox row, ``<notifier.ROW.INSTANCE@domain>``.

    Stable for the row, so a retry carries the same id and a receiver can recognise the
    duplicate; globally unique (RFC 5322 3.6.4) through ``instance``, the random id each
    database is made with: a rebuilt database, or another one, never reuses an id.
    """
    if not re.fullmatch(r"[A-Za-z0-9.-]+", domain):
        raise ValueError(f"{domain!r} is not a domain name for a Message-ID")
    if not re.fullmatch(r"[A-Za-z0-9]+", instance):
        raise ValueError(f"{instance!r} is not an instance id for a Message-ID")
    return f"<notifier.{int(outbox_id)}.{instance}@{domain}>"


def _machine_value(value: str, what: str, pattern: re.Pattern[str] = _MACHINE_VALUE) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{what} {value!r} must be printable ASCII without line breaks")
    return value


def _base64_body(text: str) -> bytes:
    # encodebytes gives 76-character lines ending in LF; SMTP wants CRLF.
    return base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")


class Composer:
    """Composes the messages of one mailing; the From header is encoded once.

    ``from_name`` is the display name already chosen for the mailing's language
    (``smtp.from_name.get(locale)``); ``domain`` (default: the From address's) names
    Message-IDs made by :meth:`message_id`.
    """

    def __init__(self, from_address: str, from_name: str | None = None, domain: str | None = None) -> None:
        self.from_address = check_address(from_address)
        self.domain = domain or self.from_address.rpartition("@")[2]
        self.from_header = self._address_header("From", from_name or "", self.from_address)
        self._subjects: dict[str, str] = {}

    def message_id(self, outbox_id: int, instance: str = "0") -> str:
        return message_id(outbox_id, self.domain, instance)

    @staticmethod
    def _address_header(header: str, name: str, address: str) -> str:
        words = _phrase(name, header)
        if not words:
            return f"{header}: {address}"
        lines = [f"{header}: {words[0]}"]
        lines.extend(" " + word for word in words[1:])
        if len(lines[-1]) + len(address) + 3 > MAX_LINE:
            lines.append(f" <{address}>")
        else:
            lines[-1] += f" <{address}>"
        return "\r\n".join(lines)

    def _subject(self, subject: str) -> str:
        # A mailing usually has one subject (or one per language): encode it once.
        line = self._subjects.get(subject)
        if line is None:
            line = encode_header_text("Subject", subject)
            if len(self._subjects) < 64:
                self._subjects[subject] = line
        return line

    def compose(
        self,
        *,
        message_id: str,
        to_name: str,
        to_address: str,
        subject: str,
        text: str,
        html: str | None,
        date: datetime,
        unsubscribe_url: str | None,
        extra_headers: Mapping[str, str] | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> bytes:
        """One message as the bytes to hand to SMTP ``DATA``: CRLF line ends, 7-bit.

        With ``html`` the body is multipart/alternative (text, then HTML); without, a single
        text/plain part. ``unsubscribe_url`` adds ``List-Unsubscribe`` and the RFC 8058
        ``List-Unsubscribe-Post`` one-click header. ``date`` must be timezone-aware.
        With ``attachments`` the body and the files go inside a multipart/mixed; without, the
        bytes are exactly as they were before attachments existed.
        Raises ValueError for an unusable address, Message-ID, URL or extra header.
        """
        if date.tzinfo is None:
            raise ValueError("the Date of a message must be timezone-aware")
        headers = [
            "Date: " + format_datetime(date),
            self.from_header,
            self._address_header("To", to_name, check_address(to_address)),
            self._subject(subject),
            "Message-ID: " + _machine_value(message_id, "Message-ID", _MESSAGE_ID),
            "MIME-Version: 1.0",
        ]
        if unsubscribe_url is not None:
            url = _machine_value(unsubscribe_url, "unsubscribe URL", _URL)
            # One line even past 78 columns (a URL cannot be folded; 998 is the hard limit):
            # a value starting on a continuation line confuses some parsers.
            if len(url) > 900:
                raise ValueError("the unsubscribe URL is too long for a header line")
            headers.append(f"List-Unsubscribe: <{url}>")
            headers.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
        if extra_headers:
            for name, value in extra_headers.items():
                if not _HEADER_NAME.fullmatch(name):
                    raise ValueError(f"{name!r} is not a header name")
                headers.append(f"{name}: {_machine_value(value, 'header ' + name)}")
        if attachments:
            return _mixed(headers, text, html, attachments)
        if html is None:
            headers.append("Content-Type: text/plain; charset=utf-8")
            headers.append("Content-Transfer-Encoding: base64")
            return ("\r\n".join(headers) + "\r\n\r\n").encode("ascii") + _base64_body(text)
        headers.append(f'Content-Type: multipart/alternative; boundary="{BOUNDARY}"')
        part_head = (
            f"\r\n--{BOUNDARY}\r\nContent-Type: text/%s; charset=utf-8\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
        )
        return b"".join(
            (
                ("\r\n".join(headers) + "\r\n").encode("ascii"),
                (part_head % "plain").encode("ascii"),
                _base64_body(text),
                (part_head % "html").encode("ascii"),
                _base64_body(html),
                f"\r\n--{BOUNDARY}--\r\n".encode("ascii"),
            )
        )


def _mixed(headers: list[str], text: str, html: str | None, attachments: Sequence[Attachment]) -> bytes:
    """The message as multipart/mixed: the text (or text and HTML alternative), then each file."""
    if html is None:
        body = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + _base64_body(text)
    else:
        part_head = (
            f"\r\n--{BOUNDARY}\r\nContent-Type: text/%s; charset=utf-8\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
        )
        body = b"".join((f'Content-Type: multipart/alternative; boundary="{BOUNDARY}"\r\n'.encode("ascii"),
                         (part_head % "plain").encode("ascii"), _base64_body(text),
                         (part_head % "html").encode("ascii"), _base64_body(html),
                         f"\r\n--{BOUNDARY}--".encode("ascii")))  # fmt: skip
    pieces = [("\r\n".join([*headers, f'Content-Type: multipart/mixed; boundary="{MIXED_BOUNDARY}"']) + "\r\n").encode("ascii"),
              f"\r\n--{MIXED_BOUNDARY}\r\n".encode("ascii"), body]  # fmt: skip
    for attachment in attachments:
        if not _FILENAME.fullmatch(attachment.filename):
            raise ValueError(f"attachment name {attachment.filename!r} must be a plain ASCII file name")
        kind = _machine_value(attachment.content_type, "attachment type")
        pieces.append(
            (f"\r\n--{MIXED_BOUNDARY}\r\nContent-Type: {kind}; name=\"{attachment.filename}\"\r\n"
             f"Content-Disposition: attachment; filename=\"{attachment.filename}\"\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\n").encode("ascii")
            + base64.encodebytes(attachment.data).replace(b"\n", b"\r\n")
        )  # fmt: skip
    pieces.append(f"\r\n--{MIXED_BOUNDARY}--\r\n".encode("ascii"))
    return b"".join(pieces)
