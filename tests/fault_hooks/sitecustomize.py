"""Test-only start-up hook: a full disk for SQLite, in the process that has this directory on
its PYTHONPATH (tests/test_faults.py puts it there for one `notifier send` subprocess).

With ``NOTIFIER_TEST_SQLITE_EXTRA_PAGES=N`` set, every SQLite connection this process opens
gets ``PRAGMA max_page_count`` = the database's page count when the process first connected,
plus N: the file may grow by N pages, then any write that needs a new page fails with
SQLITE_FULL, "database or disk is full", exactly what SQLite reports when the disk is full.
The pragma is per connection, hence a pool "connect" listener; the cap is computed once, so
connections opened later do not get a higher one.

With ``NOTIFIER_TEST_KILL_IN_WRITE_OUT=N``, the process kills itself (SIGKILL, as ``kill -9``)
inside the N-th write-out of owed status notices that wrote any row: the rows are inserted,
the claim's transaction is not yet committed. Without the variables this does nothing.
"""

from __future__ import annotations

import os
import signal
import sqlite3

_EXTRA = os.environ.get("NOTIFIER_TEST_SQLITE_EXTRA_PAGES")
_KILL_AT = os.environ.get("NOTIFIER_TEST_KILL_IN_WRITE_OUT")

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

if _KILL_AT is not None:
    from notifier.outbox import queueing

    _real_materialise = queueing.materialise
    _written: list[int] = []

    def _materialise_then_die(*args: object, **kwargs: object) -> int:
        written = _real_materialise(*args, **kwargs)  # type: ignore[arg-type]
        if written:
            _written.append(written)
            if len(_written) == int(_KILL_AT):
                os.kill(os.getpid(), signal.SIGKILL)
        return written

    queueing.materialise = _materialise_then_die  # claims calls it as queueing.materialise
