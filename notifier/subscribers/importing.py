"""The CSV import: streamed, validated and upserted in bounded memory, whatever the file size.

Owns the import's course: reading records (``csv_files``: broken quoting costs only its own
line), validating rows in worker processes for big files, the set-based upsert (one write
transaction per batch, statements that run the same on SQLite and PostgreSQL), the warnings
about one e-mail under several account numbers (``duplicates``) and the ``ImportReport`` it
returns. The rules a row must satisfy live in ``validation``; finding or adding one
subscriber in ``lookup``.

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
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import IO, Any, TypeVar

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from notifier.config import Config
from notifier.db import write_session
from notifier.errors import UsageError
from notifier.models import Subscriber, utcnow
from notifier.subscribers.csv_files import CsvSource, ErrorsWriter, Record
from notifier.subscribers.duplicates import SharedMailbox, SharedMailboxes
from notifier.subscribers.validation import COLUMNS, OPTIONAL_COLUMNS, RowError, clean, row_key

KEPT_REJECTIONS = 20
PARALLEL_FROM_BYTES = 4_000_000
_T = TypeVar("_T")
_TABLE = Subscriber.__table__  # type: ignore[attr-defined]
_COMPARED = ("name", "name_key", "email", "email_key", "phone", "region", "services", "locale")


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
    ``workers`` processes validate rows (phone parsing is the costly part) while this one
    writes; None = one per CPU for files over a few megabytes, else validate in-process.
    """
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    started = time.perf_counter()
    source = CsvSource(path_or_file)
    report = ImportReport(bytes_total=source.total)
    if workers is None:
        big = (source.total or 0) > PARALLEL_FROM_BYTES
        workers = min(os.cpu_count() or 1, 4) if big else 1
    mailboxes = SharedMailboxes()
    try:
        header = _header(source.name, source.header())
        errors = ErrorsWriter(errors_writer, header) if errors_writer is not None else None
        batches = _chunks(source.records(len(header)), batch_size)
        for count, cleaned, rejected in _validated(batches, header, config, workers):
            report.rows += count
            for line, lines, reason, fields in rejected:
                _reject(report, errors, Rejection(line, reason, lines), fields)
            if cleaned:
                with write_session(engine) as session:
                    upsert_batch(session, cleaned, report)
                mailboxes.add(cleaned)
            report.bytes_read = source.position
            if on_progress:
                on_progress(report)
        report.warnings, report.shared_mailboxes = mailboxes.found(KEPT_REJECTIONS)
    finally:
        source.close()
        mailboxes.close()
    report.bytes_read = report.bytes_total or report.bytes_read
    report.seconds = time.perf_counter() - started
    if on_progress:
        on_progress(report)
    return report


_Raw = list[Record]
_Validated = tuple[int, list[dict[str, Any]], list[tuple[int, int, str, list[str]]]]


def validate_rows(header: list[str], config: Config, rows: _Raw) -> _Validated:
    """(line, fields, CSV problem) records -> (how many, the clean rows, each with its ``line``,
    and the rejected ones with their reason)."""
    cleaned, rejected = [], []
    for line, lines, fields, problem in rows:
        try:
            if problem:
                raise RowError(problem)
            if len(fields) != len(header):
                raise RowError(f"expected {len(header)} fields, found {len(fields)}")
            row = clean(dict(zip(header, fields, strict=True)), config)
        except RowError as exc:
            rejected.append((line, lines, str(exc), fields))
        else:
            row["line"] = line
            cleaned.append(row)
    return len(rows), cleaned, rejected


_worker_config: Config | None = None


def _start_worker(config: Config) -> None:
    global _worker_config
    _worker_config = config


def _validate_in_worker(header: list[str], rows: _Raw) -> _Validated:
    assert _worker_config is not None
    return validate_rows(header, _worker_config, rows)


def _validated(
    batches: Iterable[_Raw], header: list[str], config: Config, workers: int
) -> Iterator[_Validated]:
    """Validated batches in file order; with workers, at most 2 per worker in flight (bounded memory)."""
    if workers <= 1:
        for batch in batches:
            yield validate_rows(header, config, batch)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(config,)
    ) as pool:
        pending: deque[Future[_Validated]] = deque()
        for batch in batches:
            pending.append(pool.submit(_validate_in_worker, header, batch))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _reject(
    report: ImportReport, errors: ErrorsWriter | None, rejection: Rejection, fields: list[str]
) -> None:
    report.rejected += 1
    if len(report.rejections) < KEPT_REJECTIONS:
        report.rejections.append(rejection)
    if errors is not None:
        errors.write(fields, rejection.line, rejection.reason)


# Set-based upsert --------------------------------------------------------------------------


def _chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _existing(session: Session, by_key: dict[tuple[str, str], dict[str, Any]]) -> dict[tuple[str, str], Any]:
    """The stored subscriber each key names: a few IN queries, whatever the batch size."""
    found: dict[tuple[str, str], Any] = {}
    columns = [_TABLE.c.id, _TABLE.c.external_id, *(_TABLE.c[name] for name in _COMPARED), _TABLE.c.channels]
    for kind in ("external_id", "email_key", "phone"):
        values = [value for k, value in by_key if k == kind]
        column = _TABLE.c[kind]
        for chunk in _chunks(values, 2000):
            # Rows without an account number prefer a stored subscriber without one, then the oldest.
            query = (
                select(*columns)
                .where(column.in_(chunk))
                .order_by(_TABLE.c.external_id.is_not(None), _TABLE.c.id)
            )
            for stored in session.execute(query):
                found.setdefault((kind, getattr(stored, kind)), stored)
    return found


def upsert_batch(session: Session, rows: list[dict[str, Any]], report: ImportReport) -> None:
    """Insert new subscribers and update changed ones, in one executemany of each kind.

    The statements go to the driver as plain tuples (SQLAlchemy's per-row parameter handling
    cost as much as the database's own work); the one timestamp is converted once per batch.
    """
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = row_key(row)
        if key in by_key:
            report.superseded += 1
        by_key[key] = row
    existing = _existing(session, by_key)
    # A file with a channels column sets them (empty: by the config); one without keeps them.
    compared = _COMPARED + ("channels",) if rows and "channels" in rows[0] else _COMPARED
    inserted = ("external_id", *compared, "status", "created_at", "updated_at")
    connection = session.connection()
    dialect = connection.dialect
    to_db = _TABLE.c.updated_at.type.bind_processor(dialect)
    now = to_db(utcnow()) if to_db else utcnow()
    inserts, updates = [], []
    for key, row in by_key.items():
        stored = existing.get(key)
        if stored is None:
            inserts.append((row["external_id"], *(row[name] for name in compared), "active", now, now))
        elif any(getattr(stored, name) != row[name] for name in compared):
            updates.append((*(row[name] for name in compared), now, stored.id))
        else:
            report.unchanged += 1
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    if inserts:
        columns = ", ".join(inserted)
        values = ", ".join([mark] * len(inserted))
        connection.exec_driver_sql(f"INSERT INTO subscriber ({columns}) VALUES ({values})", inserts)
    if updates:
        assignments = ", ".join(f"{name} = {mark}" for name in (*compared, "updated_at"))
        connection.exec_driver_sql(f"UPDATE subscriber SET {assignments} WHERE id = {mark}", updates)
    report.inserted += len(inserts)
    report.updated += len(updates)
