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

Splitting (``ranges``): for worker processes, the file is cut into byte ranges that each start
at a line that is a whole row on its own (the header's number of fields, valid CSV, not too
long). Reading a range by itself then gives exactly the records that reading the whole file
gives there: a quoted field that spans lines never crosses such a line (see above), so no
record does. Line numbers are counted as the reader counts them (``\n``, ``\r\n`` and a lone
``\r`` each end a line). A file without such lines for a long stretch is left to be read in one
process from there on.

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

    def __init__(self, text: IO[str], first_line: int = 1) -> None:
        self._readline = text.readline
        self._number = first_line - 1
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
    """Opens a path (or takes an open text file); ``header()``, then ``records(width)``.

    ``start``, ``end`` and ``first_line`` read one of the file's ``ranges`` (``end`` None: to the
    end of the file); a range that does not start the file has no header to read.
    """

    def __init__(
        self,
        path_or_file: str | os.PathLike[str] | IO[str],
        *,
        start: int = 0,
        end: int | None = None,
        first_line: int = 1,
    ) -> None:
        is_path = isinstance(path_or_file, str | os.PathLike)
        self.name = str(path_or_file) if is_path else str(getattr(path_or_file, "name", "<CSV>"))
        self._raw: IO[bytes] | None = None
        self.total: int | None = None
        self.header_end = 0  # the line the header ends on
        if is_path:
            self._raw = _open(self.name)
            self.total = os.fstat(self._raw.fileno()).st_size
            self._raw.seek(start)
            if end is not None:  # a range: read at once (ranges are a few megabytes at most)
                with self._raw:
                    self._raw = io.BytesIO(self._raw.read(end - start))
            self.text: IO[str] = io.TextIOWrapper(
                self._raw,
                encoding="utf-8-sig" if start == 0 else "utf-8",
                errors="surrogateescape",
                newline="",
            )
        else:
            self.text = path_or_file
        self._lines = _Lines(self.text, first_line)

    @property
    def position(self) -> int:
        return self._raw.tell() if self._raw else 0

    def header(self) -> list[str] | None:
        """The first non-blank record's fields (None for an empty file)."""
        for line, lines, fields, problem in self.records(None):
            if problem:
                raise UsageError(f"{self.name}: line {line}: the header is {problem}")
            self.header_end = line + lines - 1
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


def _open(name: str) -> IO[bytes]:
    try:
        return open(name, "rb")  # noqa: SIM115  (closed in CsvSource.close())
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{name}: is a directory, not a CSV file") from None
    except OSError as exc:
        raise UsageError(f"{name}: cannot read it: {exc.strerror}") from None


Range = tuple[int, int | None, int]  # (first byte, byte after the last or None: to the end, first line)
_PIECE = 4 * MAX_LINE  # bytes read at a time while looking for a place to cut
_BLOCK = 1 << 20


def ranges(path: str, header_end: int, width: int, lines: int, *, give_up_after: int) -> Iterator[Range]:
    """The file cut into byte ranges of about ``lines`` lines each, the first one holding the
    header (which ends on line ``header_end``); each cut falls just before a line that is a
    whole row of ``width`` fields by itself. When no such line comes within ``give_up_after``
    lines of where a cut is due, the last range has no end: the rest of the file, to be read
    in one go."""
    with open(path, "rb") as raw:
        counter = _LineCounter()
        start = before = 0  # where the range starts, and how many lines come before it
        at_line_start = True
        while True:
            todo = max(lines - (counter.lines - before), header_end - counter.lines)
            if todo > 64 and counter.lines:  # skip most of a range's lines in a few large reads
                piece = raw.read(min(_BLOCK, todo // 2 * (raw.tell() // counter.lines + 1)))
            else:
                piece = raw.readline(_PIECE)
                if todo <= 0 and at_line_start and _whole_row_bytes(piece, width):
                    cut = raw.tell() - len(piece)
                    yield start, cut, before + 1
                    start, before = cut, counter.lines
                elif todo <= -give_up_after:
                    yield start, None, before + 1
                    return
            if not piece:
                break
            counter.add(piece)
            at_line_start = piece.endswith(b"\n")
        yield start, raw.tell(), before + 1


def range_records(path: str, where: Range, width: int) -> list[Record]:
    """The records of one of ``ranges`` (the first one's header skipped), as ``CsvSource`` reads
    them. A range without quotes, lone ``\r`` or long lines (most of them) is split at once."""
    start, end, first_line = where
    if start > 0 and end is not None:
        with _open(path) as raw:
            raw.seek(start)
            data = raw.read(end - start)
        returns = data.count(b"\r")
        if b'"' not in data and returns == data.count(b"\r\n"):  # no quotes, no lone \r
            crlf = returns == data.count(b"\n")  # every line ends with \r\n (or none has \r)
            pieces = data.decode("utf-8", "surrogateescape").split("\r\n" if crlf and returns else "\n")
            if data.endswith(b"\n"):
                pieces.pop()
            if max(map(len, pieces), default=0) < MAX_LINE - 1:
                if returns and not crlf:
                    pieces = [text.rstrip("\r") for text in pieces]
                return [(line, 1, text.split(","), None)
                        for line, text in enumerate(pieces, first_line) if text and not text.isspace()]  # fmt: skip
    source = CsvSource(path, start=start, end=end, first_line=first_line)
    try:
        if start == 0:
            source.header()
        return list(source.records(width))
    finally:
        source.close()


class _LineCounter:
    """Counts line ends in successive pieces of bytes as ``_Lines`` does: ``\n``, ``\r\n`` and a
    lone ``\r`` each end one line (a ``\r\n`` split between two pieces too)."""

    def __init__(self) -> None:
        self.lines = 0
        self._after_cr = False

    def add(self, piece: bytes) -> None:
        ends = piece.count(b"\n")
        if b"\r" in piece:
            ends += piece.count(b"\r") - piece.count(b"\r\n") - (self._after_cr and piece.startswith(b"\n"))
        self.lines += ends
        self._after_cr = piece.endswith(b"\r")


def _whole_row_bytes(piece: bytes, width: int) -> bool:
    """Whether a physical line (read up to ``\n``) is one line for ``_Lines`` and a whole row."""
    if len(piece) >= MAX_LINE or not piece.endswith(b"\n") or b"\r" in piece[:-2] or b"\0" in piece:
        return False
    return _whole_row(piece.decode("utf-8", "surrogateescape"), width)


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
