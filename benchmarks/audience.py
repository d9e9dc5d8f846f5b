"""Benchmark: import N subscribers from CSV, then declare an incident over ~6 % of them.

Owns measuring the two steps that touch the whole subscriber base, each in its own
subprocess so that its peak memory (ru_maxrss, the worker processes included) is its own:
``subscribers.import_csv`` (rows/s against the 50,000 rows/s goal, peak MB at 200,000 rows and
at N, on SQLite and on a throw-away PostgreSQL 15 cluster started here as tests/conftest.py
starts one) and ``incidents.declare`` (seconds, peak MB; with and without status notices), and
the floor they are compared with: one hand-written ``INSERT INTO audience_member … SELECT``
in raw sqlite3 on the same file. Prints one table, and the machine's load average around each
import (other work on the same cores slows it down).

    python benchmarks/audience.py [--rows 1000000] [--repeat 3] [--keep DIR] [--no-postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("NOTIFIER_PG_BIN", "/usr/lib/postgresql/15/bin"))
GOAL_ROWS_PER_S = 50_000
SMALL_ROWS = 200_000  # the size peak memory is compared at
# A few large regions, the rest smaller (weights, not percentages).
BIG_REGIONS = {"77": 20.0, "50": 12.0, "78": 10.0}
INCIDENT_REGIONS = ["66", "54"]
SERVICE_ODDS = {"tax-reporting": 0.7, "fund-reporting": 0.35, "statistics": 0.25, "edo": 0.3}
SURNAMES = [
    "Иванов",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Петров",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
]
FIRST = ["Александр", "Мария", "Дмитрий", "Анна", "Сергей", "Елена", "Андрей", "Ольга", "Алексей", "Наталья"]


def write_config(directory: Path, *, status_notices: bool = True, database: str | None = None,
                 name: str | None = None) -> Path:  # fmt: skip
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    url = database or f"sqlite:///{directory / 'bench.db'}"
    text = text.replace('database = "sqlite:///notifier.db"', f'database = "{url}"', 1)
    if not status_notices:
        text = text.replace("send_status_notices = true", "send_status_notices = false", 1)
    path = directory / (name or ("config.toml" if status_notices else "config-quiet.toml"))
    path.write_text(text, encoding="utf-8")
    return path


def generate_csv(path: Path, rows: int, regions: list[str], seed: int = 1) -> None:
    rnd = random.Random(seed)
    small = [code for code in regions if code not in BIG_REGIONS]
    codes = list(BIG_REGIONS) + small
    weights = list(BIG_REGIONS.values()) + [58.0 / len(small)] * len(small)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("external_id,name,email,phone,region,services,locale\r\n")
        for n in range(rows):
            region = rnd.choices(codes, weights)[0]
            services = [code for code, odds in SERVICE_ODDS.items() if rnd.random() < odds] or ["edo"]
            number = 9_000_000_000 + n
            phone = rnd.choice(
                (
                    f"+7{number}",
                    f"8 ({str(number)[:3]}) {str(number)[3:6]}-{str(number)[6:8]}-{str(number)[8:]}",
                    f"8{number}",
                )
            )
            name = f"{rnd.choice(SURNAMES)} {rnd.choice(FIRST)} {n}"
            email = f"client{n}@{rnd.choice(('example.org', 'Example.RU', 'mail.example.com'))}"
            external_id = f"ACC-{n:08d}" if rnd.random() > 0.02 else ""
            if rnd.random() < 0.001:
                email = "broken@"  # a few bad rows, as in real exports
            locale = "en" if rnd.random() < 0.05 else rnd.choice(("ru", ""))
            out.write(f"{external_id},{name},{email},{phone},{region},{';'.join(services)},{locale}\r\n")


def peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # validation workers
    return max(own, children) / 1024


def child_import(config_path: str, csv_path: str) -> dict[str, float]:
    from notifier import subscribers
    from notifier.config import load_config
    from notifier.db import make_engine, upgrade

    config = load_config(config_path)
    engine = make_engine(config.database_url)
    upgrade(engine)  # a fresh database each time: a new file, or a new PostgreSQL database
    baseline = peak_mb()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    cpu_before = _cpu_seconds()
    report = subscribers.import_csv(engine, config, csv_path)
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    return {"rows": report.rows, "inserted": report.inserted, "rejected": report.rejected, "seconds": seconds,
            "rows_per_s": report.rows / seconds, "cpu_us_per_row": cpu / report.rows * 1e6,
            "peak_mb": peak_mb(), "baseline_mb": baseline,
            "load": (load_before + os.getloadavg()[0]) / 2, "shared": report.shared_mailboxes}  # fmt: skip


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the validation workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextmanager
def pg_cluster() -> Iterator[str]:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (as tests/conftest.py starts one); yields the
    URL of its server (append a database name); stopped and removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="notifier-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = base / "data"
    subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
                   check=True, capture_output=True)  # fmt: skip
    options = f"-k {base} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"),
                                 "-w", "start"]), check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                       capture_output=True)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


def pg_database(server: str, name: str) -> str:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


def first_rows(source: Path, target: Path, rows: int) -> None:
    """The header and the first ``rows`` rows of ``source`` (the generator's first rows)."""
    with source.open("rb") as lines, target.open("wb") as out:
        for _ in range(rows + 1):
            out.write(lines.readline())


def import_runs(
    directory: Path, csv_small: Path, csv_path: Path, postgres: bool, repeat: int
) -> dict[str, dict[str, Any]]:
    """Imports of SMALL_ROWS and (``repeat`` times) of all rows into fresh databases: SQLite (the
    last one is the database the declare steps use), then PostgreSQL when its binaries are here.
    The full import's figures are the median run's, with the others' rows/s beside them."""
    runs = {}
    for label, path in (("small", csv_small), ("full", csv_path)):
        tries = []
        for _ in range(repeat if label == "full" else 1):
            for suffix in ("", "-wal", "-shm"):
                (directory / f"bench.db{suffix}").unlink(missing_ok=True)
            tries.append(run_child("import", str(directory / "config.toml"), str(path)))
        runs[f"sqlite {label}"] = _median_run(tries)
    if postgres and (PG_BIN / "initdb").exists():
        with pg_cluster() as server:
            for label, path in (("small", csv_small), ("full", csv_path)):
                tries = []
                for n in range(repeat if label == "full" else 1):
                    database = pg_database(server, f"bench_{label}_{n}")
                    tries.append(run_child("import", str(write_config(directory, database=database, name="pg.toml")),
                                           str(path)))  # fmt: skip
                runs[f"postgres {label}"] = _median_run(tries)
    return runs


def _median_run(tries: list[dict[str, float]]) -> dict[str, Any]:
    ordered = sorted(tries, key=lambda run: run["rows_per_s"])
    return {**ordered[len(ordered) // 2], "all_rows_per_s": [run["rows_per_s"] for run in tries]}


def import_table(runs: dict[str, dict[str, Any]], rows: int) -> list[tuple[str, str]]:
    table = [("subscribers in the file", f"{runs['sqlite full']['rows']:,.0f} "
                                         f"({runs['sqlite full']['rejected']:,.0f} rejected)")]  # fmt: skip
    for backend in ("sqlite", "postgres"):
        full, small = runs.get(f"{backend} full"), runs.get(f"{backend} small")
        if full is None or small is None:
            continue
        name = "SQLite" if backend == "sqlite" else "PostgreSQL"
        table += [
            (f"import rows/s, {name}", f"{full['rows_per_s']:,.0f} ({full['seconds']:.1f} s; "
                                       f"{full['rows_per_s'] / GOAL_ROWS_PER_S:.2f}× the {GOAL_ROWS_PER_S:,} goal; "
                                       f"load average {full['load']:.1f})"),
            (f"import runs, {name}", f"median of {len(full['all_rows_per_s'])}: "
                                     + ", ".join(f"{value:,.0f}" for value in full["all_rows_per_s"]) + " rows/s"),
            (f"import CPU µs/row, {name}", f"{full['cpu_us_per_row']:.1f} (this process and its workers; a "
                                           f"database server's own CPU not counted)"),
            (f"import peak MB, {name}", f"{small['peak_mb']:.0f} at {small['rows']:,.0f} rows, {full['peak_mb']:.0f} at "
                                        f"{rows:,} (process at start: {full['baseline_mb']:.0f})"),
        ]  # fmt: skip
    return table


def child_declare(config_path: str) -> dict[str, float]:
    from notifier import incidents
    from notifier.config import load_config
    from notifier.db import make_engine, write_session

    config = load_config(config_path)
    engine = make_engine(config.database_url)
    baseline = peak_mb()
    started = time.perf_counter()
    with write_session(engine) as session:
        result = incidents.declare(session, config, title="Отчёты не отправляются", regions=INCIDENT_REGIONS,
                                   services=["tax-reporting"], message="Ищем причину", by="bench")  # fmt: skip
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "affected": result.affected, "queued": sum((result.queued or {}).values()),
            "peak_mb": peak_mb(), "baseline_mb": baseline, "incident": result.incident.id}  # fmt: skip


def raw_floor(db_path: Path) -> dict[str, float]:
    """The same audience, selected and inserted by one hand-written statement."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("BEGIN IMMEDIATE")
    incident = conn.execute(
        "INSERT INTO incident (title, severity, status, regions, services, started_at, declared_at, cause, measures,"
        " apology_state, declared_by, resolved_by, updated_at)"
        " SELECT title, severity, status, regions, services, started_at, declared_at, cause, measures,"
        " apology_state, declared_by, resolved_by, updated_at FROM incident ORDER BY id LIMIT 1"
    ).lastrowid
    conn.execute("COMMIT")
    placeholders = ",".join("?" * len(INCIDENT_REGIONS))
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    cursor = conn.execute(
        "INSERT INTO audience_member (incident_id, subscriber_id, added_at)"
        f" SELECT ?, id, datetime('now') FROM subscriber WHERE status = 'active' AND region IN ({placeholders})"
        " AND services LIKE '%;tax-reporting;%'",
        (incident, *INCIDENT_REGIONS),
    )
    conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return {"seconds": seconds, "affected": cursor.rowcount}


def run_child(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (default: a temp dir)")
    parser.add_argument("--no-postgres", action="store_true", help="import into SQLite only")
    parser.add_argument("--repeat", type=int, default=3, help="full imports per database (the median is shown)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = child_import(*rest) if kind == "import" else child_declare(*rest)
        print(json.dumps(result))
        return

    directory = args.keep or Path(tempfile.mkdtemp(prefix="notifier-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        from notifier.config import load_config
        from notifier.db import make_engine, upgrade

        config_path, quiet_path = write_config(directory), write_config(directory, status_notices=False)
        config = load_config(config_path)
        engine = make_engine(config.database_url)
        upgrade(engine)
        engine.dispose()
        csv_path, csv_small = directory / "subscribers.csv", directory / "subscribers-small.csv"
        started = time.perf_counter()
        generate_csv(csv_path, args.rows, list(config.regions))
        first_rows(csv_path, csv_small, min(SMALL_ROWS, args.rows))
        print(f"generated {args.rows:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - started:.1f} s; importing…", file=sys.stderr)  # fmt: skip

        runs = import_runs(directory, csv_small, csv_path, postgres=not args.no_postgres, repeat=args.repeat)
        imported = runs["sqlite full"]
        declared = run_child("declare", str(config_path))
        quiet = run_child("declare", str(quiet_path))
        floor = raw_floor(directory / "bench.db")
        share = 100 * declared["affected"] / imported["inserted"] if imported["inserted"] else 0
        rows = [
            *import_table(runs, args.rows),
            ("audience size", f"{declared['affected']:,.0f} ({share:.1f} % of subscribers)"),
            (
                "declare s, with status notices",
                f"{declared['seconds']:.2f} ({declared['queued']:,.0f} queued)",
            ),
            ("declare s, without status notices", f"{quiet['seconds']:.2f}"),
            ("raw-SQL floor s (audience only)", f"{floor['seconds']:.2f} ({floor['affected']:,.0f} rows)"),
            (
                "ratio declare/floor",
                f"{declared['seconds'] / floor['seconds']:.1f}× with notices, "
                f"{quiet['seconds'] / floor['seconds']:.1f}× without",
            ),  # fmt: skip
            (
                "declare peak MB",
                f"{declared['peak_mb']:.0f} (process at start: {declared['baseline_mb']:.0f})",
            ),
        ]
        width = max(len(name) for name, _ in rows)
        print(f"| {'measure':<{width}} | value |\n|{'-' * (width + 2)}|-------|")
        for name, value in rows:
            print(f"| {name:<{width}} | {value} |")
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
