"""Shared fixtures: a config in a temp dir, a real database (SQLite file, and PostgreSQL
where the server binaries are), the CLI driven as a user would, and a subscriber factory.

Every test that asks for ``engine`` or ``config`` runs once per backend.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from notifier.config import Config, load_config
from notifier.db import make_engine, upgrade, write_session
from notifier.models import Subscriber, utcnow

pytest_plugins = ["tests.browser"]  # the browser and page fixtures (Debian chromium via Playwright)

REPO = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("NOTIFIER_PG_BIN", "/usr/lib/postgresql/15/bin"))
SECRET = "test-secret-0123456789abcdef"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI (CI set) nothing may be skipped: a test skipped for a missing Debian package or
    server binary fails there with its reason, so a machine that lacks one cannot pass."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where everything must run: {reason}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# PostgreSQL: one throw-away cluster per test session ------------------------------------


@dataclass
class PgCluster:
    port: int
    template: str = "notifier_template"
    _n: Any = None

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        name = f"t{next(self._n)}_{os.getpid()}"
        admin = create_engine(self.url("postgres").replace("postgresql://", "postgresql+psycopg://"),
                              isolation_level="AUTOCOMMIT")  # fmt: skip
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        admin.dispose()
        return self.url(name)


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN} (set NOTIFIER_PG_BIN)")
    # Not under pytest's root-only temp dir: the server runs as `postgres` and must reach it.
    base = Path(tempfile.mkdtemp(prefix="notifier-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    data, port = base / "data", free_port()
    subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
                   check=True, capture_output=True)  # fmt: skip
    options = f"-k {base} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"]),
                   check=True, capture_output=True)  # fmt: skip
    cluster = PgCluster(port=port, _n=count(1))
    admin = create_engine(cluster.url("postgres").replace("postgresql://", "postgresql+psycopg://"),
                          isolation_level="AUTOCOMMIT")  # fmt: skip
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{cluster.template}"'))
    admin.dispose()
    template_engine = make_engine(cluster.url(cluster.template))
    upgrade(template_engine)
    template_engine.dispose()
    try:
        yield cluster
    finally:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


# SQLite: one migrated file per session, copied for each test ----------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "postgres":
        return request.getfixturevalue("pg_cluster").new_database()
    path = tmp_path / "notifier.db"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


# Config ---------------------------------------------------------------------------------


def write_config(directory: Path, database_url: str, **overrides: dict[str, Any]) -> Path:
    """The shipped config.toml with the database (and any section keys) replaced."""
    text_ = (REPO / "config.toml").read_text(encoding="utf-8")
    text_ = text_.replace('database = "sqlite:///notifier.db"', f'database = "{database_url}"', 1)
    path = directory / "config.toml"
    path.write_text(text_, encoding="utf-8")
    if overrides:
        data = tomllib.loads(text_)
        for section, values in overrides.items():
            data.setdefault(section, {}).update(values)
        path.write_text(_dump_toml(data), encoding="utf-8")
    return path


def _dump_toml(data: dict[str, Any]) -> str:
    import json

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v, ensure_ascii=False)

    lines: list[str] = []
    for section, table in data.items():
        for key, item in table.items():
            if isinstance(item, dict) and section in {"regions", "services"}:
                lines.append(f'[{section}."{key}"]')
                lines += [f"{json.dumps(k)} = {value(x)}" for k, x in item.items()]
        plain = {
            k: v for k, v in table.items() if not (isinstance(v, dict) and section in {"regions", "services"})
        }
        if plain:
            lines.append(f"[{section}]")
            lines += [f"{json.dumps(k)} = {value(x)}" for k, x in plain.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def config_path(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NOTIFIER_SECRET", SECRET)
    monkeypatch.delenv("NOTIFIER_CONFIG", raising=False)
    monkeypatch.delenv("NOTIFIER_DATABASE_URL", raising=False)
    return write_config(tmp_path, database_url)


@pytest.fixture
def config(config_path: Path) -> Config:
    return load_config(config_path)


@pytest.fixture
def engine(config: Config) -> Iterator[Any]:
    eng = make_engine(config.database_url)
    yield eng
    eng.dispose()


# Subscribers ----------------------------------------------------------------------------


@pytest.fixture
def make_subscriber(engine: Any) -> Callable[..., Subscriber]:
    """Insert a subscriber; defaults give an active Moscow tax-reporting client."""
    numbers = count(1)

    def make(**fields: Any) -> Subscriber:
        n = next(numbers)
        services = fields.pop("services", ["tax-reporting"])
        values: dict[str, Any] = {
            "external_id": f"ACC-{n:06d}",
            "name": f"Абонент {n}",
            "email": f"client{n}@example.org",
            "phone": f"+7912{n:07d}",
            "region": "77",
            "locale": "ru",
            "status": "active",
        }
        values.update(fields)
        values["services"] = ";" + ";".join(services) + ";" if services else ""
        values["name_key"] = values["name"].casefold()
        values["email_key"] = values["email"].lower() if values["email"] else None
        values.setdefault("created_at", utcnow())
        values.setdefault("updated_at", utcnow())
        with write_session(engine) as session:
            subscriber = Subscriber(**values)
            session.add(subscriber)
        return subscriber

    return make


# The CLI --------------------------------------------------------------------------------


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        import json

        return json.loads(self.stdout)


@pytest.fixture
def cli(config_path: Path) -> Callable[..., CliResult]:
    """Run `notifier --config <test config> ARGS…` in-process, as a user would type it."""
    from notifier.cli import app

    runner = CliRunner()

    def run(*args: str, input: str | None = None, config: Path | None = None) -> CliResult:
        result = runner.invoke(app, ["--config", str(config or config_path), *args], input=input)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run


# Mail: a real SMTP server, a config pointing at it, an incident to mail about -------------


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    """A real aiosmtpd server on 127.0.0.1 that records what it accepts and can be scripted
    to fail (see tests/smtp_server.py)."""
    from tests.smtp_server import ScriptedSmtpServer

    with ScriptedSmtpServer() as server:
        yield server


def mail_config(directory: Path, database_url: str, smtp_port: int, **sections: dict[str, Any]) -> Config:
    """The shipped config sending to ``smtp_port``: 4 connections, no retry back-off, no hotline
    targets unless given; ``sections`` override any key (``mailing={"batch_size": 20}``)."""
    directory.mkdir(parents=True, exist_ok=True)
    smtp = {"port": smtp_port, "connections": 4, "timeout": "5s", **sections.pop("smtp", {})}
    mailing = {"retry_backoff": "0s", "retry_backoff_max": "0s", **sections.pop("mailing", {})}
    sections.setdefault("hotline", {"targets": []})
    return load_config(write_config(directory, database_url, smtp=smtp, mailing=mailing, **sections))


def declare_and_resolve(engine: Any, config: Config, regions: list[str], **declare: Any) -> int:
    """An incident over ``regions``, declared and resolved with a cause and measures; its id."""
    from notifier import incidents

    with write_session(engine) as session:
        ref = incidents.declare(session, config, title="Сбой отчётности", regions=regions, **declare).incident.id
    with write_session(engine) as session:
        incidents.resolve(session, config, ref, cause="Отказ сервера БД", measures="Резервный кластер")
    return ref  # type: ignore[return-value]


def recipients(server: Any) -> Any:
    """``Counter`` of envelope recipients the server accepted mail for."""
    from collections import Counter

    return Counter(rcpt for _, rcpts, _ in server.received for rcpt in rcpts)


def message_ids(server: Any) -> Any:
    """``Counter`` of the Message-IDs the server received: a duplicate is a count above 1."""
    from collections import Counter

    from notifier.sink import header_value

    return Counter(header_value(raw, "Message-ID") for _, _, raw in server.received)


def write_out(engine: Any) -> int:
    """Write out every status notice still owed as its outbox rows, as senders do when they
    claim (``outbox.queueing.materialise``); returns how many rows were written."""
    from notifier.db import write_session
    from notifier.models import utcnow
    from notifier.outbox.queueing import materialise

    with write_session(engine) as session:
        return materialise(session, 10**9, utcnow())


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.01) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
