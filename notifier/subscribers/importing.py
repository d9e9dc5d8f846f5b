"""The CSV import: streamed, validated and upserted in bounded memory, whatever the file size.

Owns the import's course: reading records (``csv_files``: broken quoting costs only its own
line), validating them batch by batch, writing each batch in one transaction (``writing``: the
fastest path of each database), the warnings about one e-mail under several account numbers
(``duplicates``) and the ``ImportReport`` it returns. A big file is cut into byte ranges
(``csv_files.ranges``) that worker processes read and validate on their own while this
process writes, so both cores work and only validated tuples cross between processes; at most
two ranges per worker are in flight, so memory stays flat whatever the file's size. The rules
a row must satisfy live in ``validation``; finding or adding one subscriber in ``lookup``.

Import rules worth knowing:

* A row is matched to an existing subscriber by ``external_id`` when it has one, else by
  e-mail (case-insensitive), else by phone; it updates that subscriber or inserts a new one.
* An update never changes ``status``: an unsubscribed or bounced subscriber stays so.
* The optional ``channels`` column (``email;sms``) sets a subscriber's channels; a file
  without it leaves them as they are.
* When the same key appears twice in one file, the later row wins (counted as ``superseded``
  when both fall in one batch, as an update otherwise).
* Every bad row is reported with its line number and reason, whatever is wrong with it
  (CSV quoting included), and every valid row is imported: a rejection never stops the import.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import IO, Any

from sqlalchemy.engine import Engine

from notifier.config import Config
from notifier.errors import UsageError
from notifier.subscribers.csv_files import CsvSource, ErrorsWriter, Range, Record, range_records, ranges
from notifier.subscribers.duplicates import SharedMailbox, SharedMailboxes
from notifier.subscribers.validation import COLUMNS, OPTIONAL_COLUMNS, RowError, RowRules
from notifier.subscribers.writing import Batch, Writer

KEPT_REJECTIONS = 20
PARALLEL_FROM_BYTES = 4_000_000
GIVE_UP_AFTER = 50_000  # lines without a place to cut before the rest is read in this process


# CSV import --------------------------------------------------------------------------------


@dataclass
class Rejection:
    line: int
    reason: str
    lines: int = 1  # physical lines the record spans (a quoted field with line breaks)

    @property
    def where(self) -> str:
        return f"line {self.line}" if self.lines == 1 else f"lines {self.line}–{self.line + self.lines - 1}"


@dataclass
class ImportReport:
    """What an import did; ``rejections`` keeps only the first few (see ``errors_writer``)."""

    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    superseded: int = 0
    bytes_read: int = 0
    bytes_total: int | None = None
    seconds: float = 0.0
    rejections: list[Rejection] = field(default_factory=list)
    shared_mailboxes: int = 0  # e-mails given to more than one account number in the file
    warnings: list[SharedMailbox] = field(default_factory=list)  # the first few of them

    @property
    def imported(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "inserted": self.inserted, "updated": self.updated,
            "unchanged": self.unchanged, "rejected": self.rejected, "superseded": self.superseded,
            "seconds": round(self.seconds, 3),
            "rejections": [{"line": r.line, "lines": r.lines, "reason": r.reason} for r in self.rejections],
            "shared_mailboxes": self.shared_mailboxes, "warnings": [w.as_dict() for w in self.warnings],
        }  # fmt: skip


def _header(name: str, fields: list[str] | None) -> list[str]:
    if fields is None:
        raise UsageError(f"{name}: the file is empty; expected the header {','.join(COLUMNS)}")
    header = [column.strip().lstrip("\ufeff").lower() for column in fields]
    unknown = [column for column in header if column not in COLUMNS + OPTIONAL_COLUMNS]
    missing = [column for column in COLUMNS if column not in header]
    doubled = sorted({column for column in header if header.count(column) > 1})
    problems = []
    if missing:
        problems.append("missing column" + ("s " if len(missing) > 1 else " ") + ", ".join(missing))
    if unknown:
        problems.append(
            "unknown column" + ("s " if len(unknown) > 1 else " ") + ", ".join(map(repr, unknown))
        )
    if doubled:
        problems.append("repeated column" + ("s " if len(doubled) > 1 else " ") + ", ".join(doubled))
    if problems:
        raise UsageError(f"{name}: bad header: {'; '.join(problems)} (expected {','.join(COLUMNS)})")
    return header


def import_csv(
    engine: Engine,
    config: Config,
    path_or_file: str | os.PathLike[str] | IO[str],
    *,
    batch_size: int = 5000,
    on_progress: Callable[[ImportReport], None] | None = None,
    errors_writer: IO[str] | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Import subscribers from a CSV file: validate each row, upsert the valid ones batch by batch.

    Raises UsageError (before importing anything) when the file cannot be read or its header
    is wrong. Any other problem is one row's: a row that is not valid CSV, not UTF-8 or breaks
    a rule is rejected with its line number, and the import goes on. Rejected rows go to
    ``report`` and ``errors_writer`` (cells a spreadsheet would run neutralised).
    ``workers`` processes read and validate ranges of the file while this one writes; None =
    one per CPU for files over a few megabytes, else everything in this process.
    """
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    started = time.perf_counter()
    source = CsvSource(path_or_file)
    report = ImportReport(bytes_total=source.total)
    if workers is None:
        big = (source.total or 0) > PARALLEL_FROM_BYTES
        workers = min(os.cpu_count() or 1, 4) if big else 1
    mailboxes = SharedMailboxes(tempfile.mkdtemp(prefix="notifier-import-"))
    writer: Writer | None = None
    try:
        header = _header(source.name, source.header())
        errors = ErrorsWriter(errors_writer, header) if errors_writer is not None else None
        rules = RowRules(header, config)
        writer = Writer(engine)
        if workers > 1 and source.total is not None:
            batches = _in_workers(source, rules, config, (workers, batch_size), (mailboxes, writer.dialect))
        else:
            batches = _in_process(source, rules, batch_size)
        for batch in batches:
            _record(writer, batch, report, errors, mailboxes)
            report.bytes_read = batch.end if batch.end is not None else source.position
            if on_progress:
                on_progress(report)
        report.warnings, report.shared_mailboxes = mailboxes.found(KEPT_REJECTIONS)
    finally:
        source.close()
        mailboxes.close()
        if writer is not None:
            writer.close()
        shutil.rmtree(mailboxes.directory, ignore_errors=True)
    report.bytes_read = report.bytes_total or report.bytes_read
    report.seconds = time.perf_counter() - started
    if on_progress:
        on_progress(report)
    return report


def _record(
    writer: Writer,
    batch: Batch,
    report: ImportReport,
    errors: ErrorsWriter | None,
    mailboxes: SharedMailboxes,
) -> None:
    """One validated batch: its rejections reported, its rows written in one transaction."""
    report.rows += batch.records
    report.superseded += batch.superseded
    for line, lines, reason, fields in batch.rejected:
        report.rejected += 1
        if len(report.rejections) < KEPT_REJECTIONS:
            report.rejections.append(Rejection(line, reason, lines))
        if errors is not None:
            errors.write(fields, line, reason)
    mailboxes.add(batch.shared)
    writer.write(batch, report)


# Validating batches: here, or in worker processes ------------------------------------------


def validate_rows(rules: RowRules, records: list[Record]) -> Batch:
    """(line, lines, fields, CSV problem) records -> a ``Batch``: the clean rows, one per key (the
    later row wins), and the rejected ones with their reason."""
    batch = Batch(records=len(records), has_channels=rules.has_channels)
    width = len(rules.header)
    by_key: dict[Any, tuple[Any, ...]] = {}
    for line, lines, fields, problem in records:
        try:
            if problem:
                raise RowError(problem)
            if len(fields) != width:
                raise RowError(f"expected {width} fields, found {len(fields)}")
            row = rules(fields)
        except RowError as exc:
            batch.rejected.append((line, lines, str(exc), fields))
            continue
        if row[0] and row[4]:
            batch.shared.append((row[4], row[0], line))
        key = row[0] or (("e", row[4]) if row[4] else ("p", row[5]))  # account, else e-mail, else phone
        if key in by_key:
            batch.superseded += 1
        by_key[key] = row
    batch.rows = list(by_key.values())
    return batch


def _in_process(source: CsvSource, rules: RowRules, batch_size: int) -> Iterator[Batch]:
    records = source.records(len(rules.header))
    while chunk := list(islice(records, batch_size)):
        yield validate_rows(rules, chunk)


_worker_rules: RowRules | None = None
_worker_mailboxes: SharedMailboxes | None = None
_worker_dialect = ""


def _start_worker(header: list[str], config: Config, mailboxes: str, dialect: str) -> None:
    global _worker_rules, _worker_mailboxes, _worker_dialect
    _worker_rules, _worker_mailboxes, _worker_dialect = (
        RowRules(header, config),
        SharedMailboxes(mailboxes),
        dialect,
    )


def _validate_range(path: str, where: Range) -> bytes:
    """In a worker: read one range of the file on its own, validate it, note its e-mails under
    account numbers (in the worker's own file), stage its rows for the database and send the
    rest back (``Batch.packed``)."""
    assert _worker_rules is not None and _worker_mailboxes is not None
    batch = validate_rows(_worker_rules, range_records(path, where, len(_worker_rules.header)))
    _worker_mailboxes.add(batch.shared)
    batch.shared, batch.end = [], where[1]
    batch.stage(_worker_dialect)
    return batch.packed()


def _in_workers(
    source: CsvSource,
    rules: RowRules,
    config: Config,
    sizes: tuple[int, int],
    into: tuple[SharedMailboxes, str],
) -> Iterator[Batch]:
    """Batches in file order, validated (and staged for the ``into`` database) by worker processes
    that read the file's ranges themselves; at most two ranges per worker in flight (bounded memory)."""
    workers, batch_size = sizes
    mailboxes, dialect = into
    rest: Range | None = None
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker,
        initargs=(rules.header, config, str(mailboxes.directory), dialect),
    ) as pool:  # fmt: skip
        pending: deque[Future[bytes]] = deque()
        for where in ranges(source.name, source.header_end, len(rules.header), batch_size,
                            give_up_after=GIVE_UP_AFTER):  # fmt: skip
            if where[1] is None:
                rest = where
                break
            pending.append(pool.submit(_validate_range, source.name, where))
            if len(pending) >= 2 * workers:
                yield Batch.unpacked(pending.popleft().result())
        while pending:
            yield Batch.unpacked(pending.popleft().result())
    if rest is not None:  # no place to cut for a long stretch: the rest is read here
        yield from _rest_in_process(source.name, rest, rules, batch_size)


def _rest_in_process(path: str, where: Range, rules: RowRules, batch_size: int) -> Iterator[Batch]:
    start, _, first_line = where
    source = CsvSource(path, start=start, first_line=first_line)
    try:
        if start == 0:
            source.header()
        for batch in _in_process(source, rules, batch_size):
            batch.end = source.position
            yield batch
    finally:
        source.close()
