"""Engine, sessions and migrations: how notifier talks to SQLite or PostgreSQL.

Owns engine creation (SQLite pragmas: WAL, busy timeout, ``BEGIN IMMEDIATE`` for writes),
the read/write session context managers, and running Alembic migrations. It does not
know any business rule. Domain functions take the ``Session`` this module hands out.
"""

from __future__ import annotations

import importlib
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.exc import DatabaseError as SqlDatabaseError
from sqlmodel import Session, create_engine

from notifier.errors import DatabaseError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 60_000


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (SQLAlchemy would otherwise pick psycopg2)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``; DatabaseError (one line, without the URL: it may hold a password)
    when SQLAlchemy cannot even parse it."""
    url = normalise_url(url)
    try:
        return _engine(url, echo)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        kind = url.partition("://")[0]
        raise DatabaseError(f"The database URL ({kind}://…) is not valid: {type(exc).__name__}") from None


def _engine(url: str, echo: bool) -> Engine:
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=5, max_overflow=5)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def dialect_module(session: Session) -> Any:
    """``sqlalchemy.dialects.sqlite`` or ``.postgresql``, for ``session``'s database: its own
    ``insert`` has ``on_conflict_do_nothing`` (what the outbox, the audience and the pauses use)."""
    return importlib.import_module(f"sqlalchemy.dialects.{session.get_bind().dialect.name}")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not pysqlite, decide how a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A write transaction takes the write lock up front: waiting happens at BEGIN,
        # under busy_timeout, instead of failing later with "database is locked".
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reading (and small writes that can wait for a lock)."""
    with _translate_errors(), Session(engine, expire_on_commit=False) as session:
        yield session


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A transaction that holds the write lock from its start; commits on success."""
    bind = engine.execution_options(sqlite_immediate=True) if is_sqlite(engine) else engine
    with _translate_errors(), Session(bind, expire_on_commit=False) as session, session.begin():
        yield session


@contextmanager
def _translate_errors() -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        raise DatabaseError(describe_operational_error(exc)) from exc
    except SqlDatabaseError as exc:
        if not _not_a_database(exc):
            raise
        raise DatabaseError(describe_operational_error(exc)) from exc


def _not_a_database(exc: SqlDatabaseError) -> bool:
    """SQLite's answer when the file is something else (a CSV written over it, say)."""
    return "file is not a database" in str(exc.orig) or "database disk image is malformed" in str(exc.orig)


def describe_operational_error(exc: SqlDatabaseError) -> str:
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    if "file is not a database" in detail or "database disk image is malformed" in detail:
        return (
            "The database file is not a SQLite database (or it is damaged): restore it from a backup, "
            "or point [notifier].database at the right file."
        )
    if "no such table" in detail or ("relation" in detail and "does not exist" in detail):
        return "The database is not initialised: run `notifier init` first."
    if "database or disk is full" in detail or "No space left" in detail:
        return f"The database's disk is full: {detail}. Nothing was recorded as done that was not."
    return f"Database error: {detail}"


# Migrations --------------------------------------------------------------------------------


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


_REVISION = re.compile(r'^revision(?:: str)? = "([^"]+)"', re.M)
_DOWN = re.compile(r'^down_revision(?:: [^=]+)? = (?:"([^"]+)"|None)', re.M)


def head_revision() -> str:
    """The newest migration, read from the files' own ``revision``/``down_revision`` lines:
    every command checks the schema, and Alembic's script machinery costs a second to import.
    (``tests/test_db.py`` checks it agrees with Alembic's ``get_current_head``.)"""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(source), _DOWN.search(source)
        if revision:
            revisions.add(revision.group(1))
        if down and down.group(1):
            parents.add(down.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else ""


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Create or upgrade the schema to the newest migration; returns (before, after)."""
    from alembic import command

    with _translate_errors():
        before = current_revision(engine)
        command.upgrade(_alembic_config(engine), "head")
        return before, current_revision(engine) or ""


def check_schema(engine: Engine) -> None:
    """Refuse to work on a database that `notifier init` has not brought up to date."""
    with _translate_errors():
        current = current_revision(engine)
    if current is None:
        raise DatabaseError("The database is not initialised: run `notifier init` first.")
    if current != head_revision():
        raise DatabaseError(
            f"The database schema is at revision {current}, this notifier needs {head_revision()}: "
            "run `notifier init` to upgrade it."
        )
