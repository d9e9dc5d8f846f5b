"""Test-only start-up hook: a full disk for SQLite, in the process that has this directory on
its PYTHONPATH (tests/test_faults.py puts it there for one `notifier send` subprocess).

With ``NOTIFIER_TEST_SQLITE_EXTRA_PAGES=N`` set, every SQLite connection this process opens
gets ``PRAGMA max_page_count`` = the database's page count when the process first connected,
plus N: the file may grow by N pages, then any write that needs a new page fails with
SQLITE_FULL, "database or disk is full", exactly what SQLite reports when the disk is full.
The pragma is per connection, hence a pool "connect" listener; the cap is computed once, so
connections opened later do not get a higher one. Without the variable this does nothing.
"""

from __future__ import annotations

import os
import sqlite3

_EXTRA = os.environ.get("NOTIFIER_TEST_SQLITE_EXTRA_PAGES")

if _EXTRA is not None:
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    _cap: list[int] = []

    @event.listens_for(Pool, "connect")
    def _cap_growth(dbapi_connection: object, _record: object) -> None:
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        cursor = dbapi_connection.cursor()
        if not _cap:
            _cap.append(cursor.execute("PRAGMA page_count").fetchone()[0] + int(_EXTRA))
        cursor.execute(f"PRAGMA max_page_count = {_cap[0]}")
        cursor.close()
