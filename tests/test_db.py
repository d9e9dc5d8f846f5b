"""Storage: migrations through `notifier init`, clear errors on an uninitialised database,
and a CLI write that waits for another process's write transaction instead of failing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from notifier.db import current_revision, head_revision, make_engine
from tests.conftest import write_config


def test_init_creates_then_reports_up_to_date(tmp_path: Path, cli) -> None:
    (tmp_path / "fresh").mkdir()
    path = write_config(tmp_path / "fresh", f"sqlite:///{tmp_path / 'fresh' / 'n.db'}")
    first = cli("init", "--json", config=path)
    assert first.exit_code == 0, first.stderr
    assert first.json()["from"] is None and first.json()["to"] == head_revision()
    again = cli("init", "--json", config=path)
    assert again.json()["from"] == head_revision()
    assert current_revision(make_engine(f"sqlite:///{tmp_path / 'fresh' / 'n.db'}")) == head_revision()


def test_commands_on_an_uninitialised_database_say_run_init(tmp_path: Path, cli) -> None:
    (tmp_path / "empty").mkdir()
    path = write_config(tmp_path / "empty", f"sqlite:///{tmp_path / 'empty' / 'n.db'}")
    result = cli("incident", "list", config=path)
    assert result.exit_code == 1
    assert "run `notifier init`" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_cli_write_waits_for_another_process_write_transaction(config, cli, make_subscriber) -> None:
    make_subscriber(region="66")
    db_file = config.database_url.removeprefix("sqlite:///")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({db_file!r}, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "c.execute(\"UPDATE subscriber SET name = name || ''\")\n"
            "print('locked', flush=True)\n"
            "time.sleep(2.0)\n"
            "c.execute('COMMIT')\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    result = cli("incident", "declare", "--title", "Сбой", "--region", "66", "--json")
    waited = time.monotonic() - started
    holder.wait(timeout=10)
    assert result.exit_code == 0, result.stderr
    assert result.json()["affected"] == 1
    assert waited > 1.0  # it waited for the lock instead of failing with "database is locked"


def test_upgrade_keeps_data_written_under_the_first_schema(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import text

    from notifier.db import _alembic_config

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(_alembic_config(engine), "0001")
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO incident (title, severity, status, regions, services, started_at, declared_at, cause,"
            " measures, apology_state, declared_by, resolved_by, updated_at) VALUES ('Старый', 'major',"
            " 'investigating', '[\"66\"]', '[]', '2026-01-01 00:00:00', '2026-01-01 00:00:00', '', '', 'none',"
            " '', '', '2026-01-01 00:00:00')"
        ))  # fmt: skip
    from notifier.db import upgrade

    assert upgrade(engine) == ("0001", head_revision())
    with engine.connect() as conn:
        assert conn.execute(text("SELECT title, reminded_at FROM incident")).one() == ("Старый", None)


def test_the_cheap_head_revision_agrees_with_alembic() -> None:
    """Every command checks the schema against the newest migration, read from the files
    themselves (Alembic's script machinery is slow to import): both must name the same one."""
    from alembic.script import ScriptDirectory

    from notifier.db import MIGRATIONS_DIR, head_revision

    assert head_revision() == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def test_the_migrations_build_exactly_the_schema_the_models_describe(engine) -> None:
    """A column, index or constraint changed in ``models`` without a migration (or the other way
    round) shows here, on SQLite and on PostgreSQL: what `notifier init` builds is what the code
    expects. (Schema 0014 dropped the name index: without it this finds the index still there.)"""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import notifier.models  # noqa: F401  (the tables)

    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert differences == []
