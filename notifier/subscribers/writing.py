"""Writing one validated batch of the import: match, then insert the new and update the changed.

Owns the set-based upsert of a ``Batch`` inside the caller's write transaction, by the fastest
path each database offers: the stored subscribers the batch's keys name are fetched in a few
queries (``IN`` lists on SQLite, ``= ANY(array)`` on PostgreSQL); then the new rows go in with
one ``executemany`` on SQLite and one ``COPY … FROM STDIN`` on PostgreSQL, and the changed ones
with one ``executemany`` on SQLite and, on PostgreSQL, a ``COPY`` into a temporary table and one
``UPDATE … FROM`` it. The statements reach the driver as plain tuples: SQLAlchemy's per-row
parameter handling would cost as much as the database's own work.

The matching rules are ``importing``'s (this module applies them): by account number, else by
e-mail (a stored subscriber without an account number first, then the oldest), else by phone;
an update never touches ``status``. It validates nothing (``validation``).
"""

from __future__ import annotations

import marshal
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from itertools import islice
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from notifier.models import Subscriber, utcnow
from notifier.subscribers.validation import STORED

_TABLE = Subscriber.__table__  # type: ignore[attr-defined]
_LOOKUP_CHUNK = 2000  # values per IN list on SQLite
_SQLITE_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,6})?")
Row = tuple[Any, ...]  # STORED (and channels), as validation.RowRules gives it


@dataclass
class Batch:
    """One batch of the file, validated: what ``write_batch`` stores and ``importing`` reports.

    ``rows`` holds one clean row per key (a later row with the same key replaces an earlier
    one, which ``superseded`` counts); ``shared`` (e-mail, account, line) of every clean row
    with both; ``rejected`` (line, lines, reason, fields); the three key lists name what
    ``write_batch`` looks up."""

    records: int = 0
    rows: list[Row] = field(default_factory=list)
    has_channels: bool = False
    superseded: int = 0
    shared: list[tuple[str, str, int]] = field(default_factory=list)
    rejected: list[tuple[int, int, str, list[str]]] = field(default_factory=list)
    external_ids: list[str] = field(default_factory=list)
    email_keys: list[str] = field(default_factory=list)  # of rows without an account number
    phones: list[str] = field(default_factory=list)  # of rows with neither
    end: int | None = None  # the byte the batch ends at, when known (progress)

    def packed(self) -> bytes:
        """The batch as bytes, for the way back from a worker process: ``marshal`` handles tuples
        of strings several times quicker than pickle (both ends run the same Python)."""
        return marshal.dumps(tuple(getattr(self, item.name) for item in fields(self)))

    @classmethod
    def unpacked(cls, data: bytes) -> Batch:
        return cls(*marshal.loads(data))


def row_key(row: Row) -> Any:
    """The key a clean row is matched by, as a dict key: its account number, else ("e", its
    e-mail), else ("p", its phone)."""
    return row[0] or (("e", row[4]) if row[4] else ("p", row[5]))


class Counts(Protocol):
    inserted: int
    updated: int
    unchanged: int


def write_batch(connection: Connection, batch: Batch, report: Counts) -> None:
    """Store ``batch`` in the current transaction; add what was done to ``report``'s counts."""
    compared = STORED[1:] + (("channels",) if batch.has_channels else ())
    stored = _stored(connection, batch, len(compared))
    to_db = _TABLE.c.updated_at.type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
    now = to_db(utcnow()) if to_db else utcnow()  # converted once (a string on SQLite), not per row
    if not stored:
        inserts, updates = batch.rows, []
    else:
        inserts, updates = [], []
        for row in batch.rows:
            found = stored.get(row_key(row))
            if found is None:
                inserts.append(row)
            elif found[2:] != row[1:]:
                updates.append((*row[1:], now, found[0]))
            else:
                report.unchanged += 1
    columns = ("external_id", *compared)
    postgres = connection.dialect.name == "postgresql"
    if inserts:
        (_copy_new if postgres else _insert_new)(connection, columns, inserts, now)
    if updates:
        (_copy_changed if postgres else _update_changed)(connection, compared, _last_per_id(updates))
    report.inserted += len(inserts)
    report.updated += len(updates)


def _stored(connection: Connection, batch: Batch, width: int) -> dict[Any, Row]:
    """The stored subscriber each key of the batch names, as (id, external_id, compared columns…)."""
    found: dict[Any, Row] = {}
    columns = ", ".join(("id", *STORED, "channels")[: width + 2])
    postgres = connection.dialect.name == "postgresql"
    for kind, values, tag in (("external_id", batch.external_ids, None), ("email_key", batch.email_keys, "e"),
                              ("phone", batch.phones, "p")):  # fmt: skip
        # Rows without an account number prefer a stored subscriber without one, then the oldest.
        order = "" if kind == "external_id" else " ORDER BY external_id IS NOT NULL, id"
        at = 1 + STORED.index(kind)
        for chunk in [values] if postgres else _chunks(values, _LOOKUP_CHUNK):
            if not chunk:
                continue
            where = f"{kind} = ANY(%s)" if postgres else f"{kind} IN ({', '.join('?' * len(chunk))})"
            params = (chunk,) if postgres else tuple(chunk)
            for stored in connection.exec_driver_sql(
                f"SELECT {columns} FROM subscriber WHERE {where}{order}", params
            ):
                found.setdefault(stored[at] if tag is None else (tag, stored[at]), tuple(stored))
    return found


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _last_per_id(updates: list[Row]) -> list[Row]:
    """One update per stored subscriber (two rows of a batch may name one by different keys): the
    later row's, as running the updates in order would leave it."""
    by_id = {update[-1]: update for update in updates}
    return list(by_id.values()) if len(by_id) < len(updates) else updates


def _insert_new(connection: Connection, columns: tuple[str, ...], rows: list[Row], now: Any) -> None:
    if not _SQLITE_TIME.fullmatch(now):  # our own clock's text, written into the statement once
        raise ValueError(f"unexpected SQLite timestamp {now!r}")
    names = ", ".join((*columns, "status", "created_at", "updated_at"))
    marks = ", ".join("?" * len(columns))
    connection.exec_driver_sql(
        f"INSERT INTO subscriber ({names}) VALUES ({marks}, 'active', '{now}', '{now}')", rows
    )


def _update_changed(connection: Connection, compared: tuple[str, ...], updates: list[Row]) -> None:
    assignments = ", ".join(f"{name} = ?" for name in (*compared, "updated_at"))
    connection.exec_driver_sql(f"UPDATE subscriber SET {assignments} WHERE id = ?", updates)


def _copy_new(connection: Connection, columns: tuple[str, ...], rows: list[Row], now: Any) -> None:
    names = ", ".join((*columns, "status", "created_at", "updated_at"))
    tail = ("active", now, now)
    with _cursor(connection) as cursor, cursor.copy(f"COPY subscriber ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row + tail)


def _copy_changed(connection: Connection, compared: tuple[str, ...], updates: list[Row]) -> None:
    """The changed rows into a temporary table by COPY, then one UPDATE joining it."""
    names = (*compared, "updated_at", "id")
    with _cursor(connection) as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE subscriber_changes ON COMMIT DROP AS SELECT {', '.join(names)}"
            " FROM subscriber WITH NO DATA"
        )
        with cursor.copy(f"COPY subscriber_changes ({', '.join(names)}) FROM STDIN") as copy:
            for update in updates:
                copy.write_row(update)
        assignments = ", ".join(f"{name} = c.{name}" for name in (*compared, "updated_at"))
        cursor.execute(f"UPDATE subscriber s SET {assignments} FROM subscriber_changes c WHERE s.id = c.id")


def _cursor(connection: Connection) -> Any:
    """A cursor of the driver's own connection (psycopg 3), in the current transaction."""
    return connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
