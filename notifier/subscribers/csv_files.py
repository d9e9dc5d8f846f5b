"""The import's two CSV files: the subscribers file read tolerantly, the errors file written safely.

Reading (``CsvSource``): one physical line at a time, each at most ``MAX_LINE`` characters
(a longer one is skipped to its end and reported, never held in memory), so that one broken
row costs only itself: a stray quote, a quote that never closes, a line over any limit is
reported with its line number and reading goes on at the next line. A quoted field that
really spans lines (Excel writes them) is read as one record when its quote closes within
``MAX_RECORD_LINES`` lines, the record has the header's number of fields and none of the
lines it would take has that many fields on its own; otherwise the
opening line is reported and every following line is read again on its own: an unterminated
quote cannot swallow the rest of the file, nor any line that is a whole row by itself. Blank
lines are skipped (they still count in the line numbers).

Writing (``ErrorsWriter``): the rejected rows with their line and reason, every cell that a
spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first) prefixed with
``'`` as OWASP recommends; the database keeps what the file said.

It validates nothing (``validation``) and imports nothing (``importing``).
"""

from __future__ import annotations

import csv
import io
import os
from collections import deque
from collections.abc import Iterator
from typing import IO

from notifier.errors import UsageError

MAX_LINE = 32_768  # characters; a valid row is far shorter (7 fields of at most 1,000 each)
MAX_RECORD_LINES = 20  # lines one quoted field may span before its opening quote is called broken
ERRORS_COLUMNS = ("line", "reason")
_SHOWN = 200  # characters of an unreadable line kept in the errors file
_OPEN_QUOTE = "unexpected end of data"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_LINE_END = ("\n", "\r")

Record = tuple[int, int, list[str], str | None]  # (line, lines it spans, fields, why it is not valid CSV)


def _explain(error: str) -> str:
    if error.startswith("',' expected after"):
        return 'not valid CSV: text follows the closing quote of a field (write a quote inside a field as "")'
    if error == _OPEN_QUOTE:
        return 'not valid CSV: a quote (") opens a field that is never closed'
    if "NUL" in error:
        return "not valid CSV: the line holds a NUL character (is this a text file?)"
    return f"not valid CSV: {error}"


def _parse(lines: list[str]) -> tuple[list[str], str | None]:
    try:
        return next(csv.reader(lines, strict=True), []), None
    except csv.Error as exc:
        return [], str(exc)


def _whole_row(text: str, width: int | None) -> bool:
    fields, error = _parse([text])
    return error is None and len(fields) == width


class _Lines:
    """(line number, text with its line end, too long?) for each physical line; lines can be
    pushed back to be read again."""

    def __init__(self, text: IO[str]) -> None:
        self._readline = text.readline
        self._number = 0
        self._back: deque[tuple[int, str, bool]] = deque()

    def __iter__(self) -> Iterator[tuple[int, str, bool]]:
        return self

    def __next__(self) -> tuple[int, str, bool]:
        if self._back:
            return self._back.popleft()
        chunk = self._readline(MAX_LINE)
        if not chunk:
            raise StopIteration
        self._number += 1
        if len(chunk) < MAX_LINE or chunk.endswith(_LINE_END):
            return self._number, chunk, False
        rest = chunk
        while rest and not rest.endswith(_LINE_END):  # skip the rest of the line, bounded
            rest = self._readline(MAX_LINE)
        return self._number, chunk[:_SHOWN], True

    def push_back(self, lines: list[tuple[int, str, bool]]) -> None:
        self._back.extendleft(reversed(lines))


class CsvSource:
    """Opens a path (or takes an open text file); ``header()``, then ``records(width)``."""

    def __init__(self, path_or_file: str | os.PathLike[str] | IO[str]) -> None:
        is_path = isinstance(path_or_file, str | os.PathLike)
        self.name = str(path_or_file) if is_path else str(getattr(path_or_file, "name", "<CSV>"))
        self._raw: IO[bytes] | None = None
        self.total: int | None = None
        if is_path:
            try:
                self._raw = open(path_or_file, "rb")  # noqa: SIM115  (closed in close())
                self.total = os.fstat(self._raw.fileno()).st_size
            except FileNotFoundError:
                raise UsageError(f"{self.name}: no such file") from None
            except IsADirectoryError:
                raise UsageError(f"{self.name}: is a directory, not a CSV file") from None
            except OSError as exc:
                raise UsageError(f"{self.name}: cannot read it: {exc.strerror}") from None
            self.text: IO[str] = io.TextIOWrapper(
                self._raw, encoding="utf-8-sig", errors="surrogateescape", newline=""
            )
        else:
            self.text = path_or_file
        self._lines = _Lines(self.text)

    @property
    def position(self) -> int:
        return self._raw.tell() if self._raw else 0

    def header(self) -> list[str] | None:
        """The first non-blank record's fields (None for an empty file)."""
        for line, _, fields, problem in self.records(None):
            if problem:
                raise UsageError(f"{self.name}: line {line}: the header is {problem}")
            return fields
        return None

    def records(self, width: int | None) -> Iterator[Record]:
        """Every non-blank record; one that is not valid CSV comes with its raw text and why."""
        for line, text, too_long in self._lines:
            if too_long:
                yield line, 1, [text + "…"], f"the line is longer than {MAX_LINE:,} characters"
            elif not text.strip():
                continue
            elif '"' not in text:
                yield line, 1, text.rstrip("\r\n").split(","), None
            else:
                yield self._quoted(line, text, width)

    def _quoted(self, line: int, text: str, width: int | None) -> Record:
        fields, error = _parse([text])
        if error is None:
            return line, 1, fields, None
        if error == _OPEN_QUOTE:
            joined = self._joined(text, width)
            if joined is not None:
                return line, joined[0], joined[1], None
        return line, 1, [text.rstrip("\r\n")[:_SHOWN]], _explain(error)

    def _joined(self, first: str, width: int | None) -> tuple[int, list[str]] | None:
        """(lines, fields) of a record whose quoted field spans lines; None (the lines read are
        pushed back) when the quote does not close soon enough or the record does not fit the header."""
        parts, taken, size = [first], [], len(first)
        for entry in self._lines:
            taken.append(entry)
            _, text, too_long = entry
            size += len(text)
            if too_long or size > MAX_LINE or _whole_row(text, width):
                break  # a line that is a row by itself is one, not the end of someone's field
            parts.append(text)
            fields, error = _parse(parts)
            if error is None and (width is None or len(fields) == width):
                return len(parts), fields
            if error != _OPEN_QUOTE or len(parts) >= MAX_RECORD_LINES:
                break
        self._lines.push_back(taken)
        return None

    def close(self) -> None:
        if self._raw:
            self.text.close()


def spreadsheet_safe(value: str) -> str:
    """``value`` as a CSV cell a spreadsheet shows as text: a leading ``=``, ``+``, ``-``, ``@``,
    tab or CR (or their full-width forms) gets a ``'`` first, OWASP's rule against formula
    injection (``=HYPERLINK(…)``, ``=cmd|' /C calc'!A0``)."""
    return "'" + value if value.lstrip(" ").startswith(_FORMULA_START) else value


class ErrorsWriter:
    """The errors file: the header's columns, then ``line`` and ``reason``; every cell made safe."""

    def __init__(self, file: IO[str], header: list[str]) -> None:
        self._writer = csv.writer(file)
        self._width = len(header)
        self._writer.writerow([*map(spreadsheet_safe, header), *ERRORS_COLUMNS])

    def write(self, fields: list[str], line: int, reason: str) -> None:
        readable = [value.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for value in fields]
        cells = (readable + [""] * self._width)[: self._width]
        self._writer.writerow([*map(spreadsheet_safe, cells), line, spreadsheet_safe(reason)])


def is_errors_file(first_line: str) -> bool:
    """Whether a file's first line is the header an ``ErrorsWriter`` writes."""
    return first_line.rstrip("\r\n").lstrip("\ufeff").endswith("," + ",".join(ERRORS_COLUMNS))
