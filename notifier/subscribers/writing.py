"""Writing the import's validated batches: each one staged, then upserted by a few set-based statements.

Owns ``Batch`` (one validated batch: its clean rows staged for the database, its rejections and
counts) and ``Writer``, which upserts batches, one write transaction each, on one connection
held for the whole import. The rows reach the database the fastest way it offers, prepared by
whichever process validated them: for SQLite a small database image (``Connection.serialize``)
that the writer deserializes into an attached in-memory schema, for PostgreSQL ``COPY … FROM
STDIN`` text into a temporary table. Then the same statements run on both: find the stored
subscriber each row names (before anything is written), count and apply the changes
(``UPDATE … FROM``), insert the rest in file order (``INSERT … SELECT``). No row crosses into
Python in the writing process: its time goes to the database's own work. On SQLite the
write-ahead log is copied into the database every ``WAL_PAGES`` pages during an import, not
every 1,000 (a page many batches change is copied once), and once more at the end.

The matching rules are ``importing``'s (this module applies them): by account number, else by
e-mail (a stored subscriber without an account number first, then the oldest), else by phone;
when two rows of a batch name one stored subscriber, the later one that changes it wins; an
update never touches ``status``. It validates nothing (``validation``).
"""

from __future__ import annotations

import csv
import io
import marshal
import re
import sqlite3
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from notifier.db import describe_operational_error
from notifier.errors import DatabaseError
from notifier.models import Subscriber, utcnow
from notifier.subscribers.validation import STORED

_TABLE = Subscriber.__table__  # type: ignore[attr-defined]
_SQLITE_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?")
_MAYBE_NULL = ("external_id", "email", "email_key", "phone")  # never '' (validation makes them None)
WAL_PAGES = 10_000  # SQLite: write-ahead log pages (4 KiB each) between two checkpoints of an import
Row = tuple[Any, ...]  # STORED (and channels), as validation.RowRules gives it


@dataclass
class Batch:
    """One batch of the file, validated: what ``Writer.write`` stores and ``importing`` reports.

    ``rows`` holds one clean row per key (a later row with the same key replaces an earlier
    one, which ``superseded`` counts); ``shared`` (e-mail, account, line) of every clean row
    with both; ``rejected`` (line, lines, reason, fields). ``stage`` turns ``rows`` into
    ``staged`` for one database, which is all that crosses from a worker process."""

    records: int = 0
    rows: list[Row] = field(default_factory=list)
    has_channels: bool = False
    superseded: int = 0
    shared: list[tuple[str, str, int]] = field(default_factory=list)
    rejected: list[tuple[int, int, str, list[str]]] = field(default_factory=list)
    staged: bytes | None = None
    count: int = 0  # rows staged
    end: int | None = None  # the byte the batch ends at, when known (progress)

    def stage(self, dialect: str) -> None:
        """``rows`` -> ``staged``: a SQLite database image, or PostgreSQL COPY text (CSV)."""
        columns = _columns(self.has_channels)
        if dialect == "sqlite":
            image = sqlite3.connect(":memory:")
            image.execute(f"CREATE TABLE rows ({', '.join(columns)})")
            image.executemany(f"INSERT INTO rows VALUES ({', '.join('?' * len(columns))})", self.rows)
            image.commit()
            self.staged = image.serialize()
            image.close()
        else:
            text = io.StringIO()
            csv.writer(text, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerows(
                (n, *row) for n, row in enumerate(self.rows)
            )
            self.staged = text.getvalue().encode("utf-8", "surrogateescape")
        self.count, self.rows = len(self.rows), []

    def packed(self) -> bytes:
        """The batch, staged, as bytes for the way back from a worker process (``marshal``: quick
        for these plain values, and both ends run the same Python)."""
        return marshal.dumps(tuple(getattr(self, item.name) for item in fields(self)))

    @classmethod
    def unpacked(cls, data: bytes) -> Batch:
        return cls(*marshal.loads(data))


class Counts(Protocol):
    inserted: int
    updated: int
    unchanged: int


def _columns(has_channels: bool) -> tuple[str, ...]:
    return STORED + (("channels",) if has_channels else ())


class Writer:
    """Upserts batches, one write transaction each, on one connection held for the import."""

    def __init__(self, engine: Engine) -> None:
        self.dialect = engine.dialect.name
        self._connection: Connection = engine.connect().execution_options(sqlite_immediate=True)
        if self.dialect == "sqlite":  # outside any transaction, once: SQLite allows no ATTACH inside one
            raw = self._connection.connection.driver_connection
            if "incoming" not in {row[1] for row in raw.execute("PRAGMA database_list")}:
                raw.execute("ATTACH DATABASE ':memory:' AS incoming")
            raw.execute(
                "CREATE TEMP TABLE IF NOT EXISTS import_target (r INTEGER PRIMARY KEY, target INTEGER)"
            )
            # Copy the write-ahead log into the database every WAL_PAGES pages instead of every
            # 1,000: a page that many batches change (an index's) is copied once, not once a
            # batch. The last copy is made by ``close``, within the import.
            self._checkpoint_every = raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            raw.execute(f"PRAGMA wal_autocheckpoint = {max(WAL_PAGES, self._checkpoint_every)}")

    def write(self, batch: Batch, report: Counts) -> None:
        """Store ``batch`` (staging it first if that was not done elsewhere); add what was done
        to ``report``'s counts."""
        if batch.staged is None:
            batch.stage(self.dialect)
        if not batch.count:
            return
        try:
            if self.dialect == "sqlite":
                self._connection.connection.driver_connection.deserialize(batch.staged, name="incoming")
            with self._connection.begin():
                inserted, updated = self._upsert(batch)
        except (DBAPIError, sqlite3.OperationalError) as exc:
            raise DatabaseError(describe_operational_error(exc)) from exc
        report.inserted += inserted
        report.updated += updated
        report.unchanged += batch.count - inserted - updated

    def _upsert(self, batch: Batch) -> tuple[int, int]:
        sqlite = self.dialect == "sqlite"
        names = _columns(batch.has_channels)
        incoming, target = (
            ("incoming.rows", "temp.import_target") if sqlite else ("import_incoming", "import_target")
        )
        row_number = "rowid" if sqlite else "r"
        to_db = _TABLE.c.updated_at.type.dialect_impl(self._connection.dialect).bind_processor(
            self._connection.dialect
        )
        now = to_db(utcnow()) if to_db else utcnow()
        run = self._connection.exec_driver_sql
        if sqlite:
            run(f"DELETE FROM {target}")
        else:  # the temporary tables have no statistics: JIT would compile for an imagined cost
            run("SET LOCAL jit = off")
            self._copy_in(batch.staged or b"", names)
        run(_targets_sql(sqlite, incoming, target, row_number))
        compared = names[1:]
        differs = f"({', '.join(f's.{n}' for n in compared)}) {'IS NOT' if sqlite else 'IS DISTINCT FROM'} ({', '.join(f'i.{n}' for n in compared)})"
        changed = (f"FROM {target} t JOIN {incoming} i ON i.{row_number} = t.r JOIN subscriber s ON s.id = t.target"
                   f" WHERE {differs}")  # fmt: skip
        updated = run(f"SELECT count(*) {changed}").scalar_one()
        if updated:
            stamp = _sqlite_literal(now) if sqlite else "%(now)s"
            run(
                f"UPDATE subscriber AS u SET ({', '.join((*compared, 'updated_at'))}) ="
                f" ({', '.join(f'c.{n}' for n in compared)}, {stamp})"
                f" FROM (SELECT t.target, {', '.join(f'i.{n}' for n in compared)} FROM {target} t"
                f" JOIN {incoming} i ON i.{row_number} = t.r WHERE t.r IN (SELECT max(t.r) {changed} GROUP BY t.target)) AS c"
                " WHERE u.id = c.target",
                {} if sqlite else {"now": now},
            )
        stamp = _sqlite_literal(now) if sqlite else "%(now)s"
        inserted = run(
            f"INSERT INTO subscriber ({', '.join((*names, 'status', 'created_at', 'updated_at'))})"
            f" SELECT {', '.join(names)}, 'active', {stamp}, {stamp} FROM {incoming} i"
            f" WHERE i.{row_number} NOT IN (SELECT r FROM {target}) ORDER BY i.{row_number}",
            {} if sqlite else {"now": now},
        ).rowcount
        return inserted, updated

    def _copy_in(self, staged: bytes, names: tuple[str, ...]) -> None:
        """PostgreSQL: the batch's COPY text into a temporary table that the commit drops."""
        columns = ", ".join(f"{name} text" for name in names)
        nullable = ", ".join(_MAYBE_NULL)
        with self._connection.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(f"CREATE TEMPORARY TABLE import_incoming (r integer, {columns}) ON COMMIT DROP")
            with cursor.copy(
                f"COPY import_incoming (r, {', '.join(names)}) FROM STDIN (FORMAT csv, FORCE_NULL ({nullable}))"
            ) as copy:
                copy.write(staged)

    def close(self) -> None:
        """Give the connection back as it was lent (pooled: the next user must not find our schema)."""
        try:
            if self.dialect == "sqlite":
                raw = self._connection.connection.driver_connection
                raw.execute("DROP TABLE IF EXISTS temp.import_target")
                raw.execute("DETACH DATABASE incoming")
                raw.execute(f"PRAGMA wal_autocheckpoint = {self._checkpoint_every}")
                raw.execute("PRAGMA wal_checkpoint(PASSIVE)")  # readers are not waited for
        finally:
            self._connection.close()


def _targets_sql(sqlite: bool, incoming: str, target: str, row_number: str) -> str:
    """The stored subscriber each incoming row names, found before anything is written (one
    index probe a row; MATERIALIZED so that the probe is not repeated for the filter)."""
    first = "ORDER BY s.external_id IS NOT NULL, s.id LIMIT 1"
    found = (
        f"WITH found AS MATERIALIZED (SELECT i.{row_number} AS r, CASE"
        " WHEN i.external_id IS NOT NULL THEN (SELECT s.id FROM subscriber s WHERE s.external_id = i.external_id)"
        f" WHEN i.email_key IS NOT NULL THEN (SELECT s.id FROM subscriber s WHERE s.email_key = i.email_key {first})"
        f" ELSE (SELECT s.id FROM subscriber s WHERE s.phone = i.phone {first}) END AS target FROM {incoming} i)"
    )
    if sqlite:
        return (
            f"{found} INSERT INTO {target} (r, target) SELECT r, target FROM found WHERE target IS NOT NULL"
        )
    return f"CREATE TEMPORARY TABLE {target} ON COMMIT DROP AS {found} SELECT r, target FROM found WHERE target IS NOT NULL"


def _sqlite_literal(now: Any) -> str:
    if not isinstance(now, str) or not _SQLITE_TIME.fullmatch(now):  # our own clock's text, nothing else
        raise ValueError(f"unexpected SQLite timestamp {now!r}")
    return f"'{now}'"
