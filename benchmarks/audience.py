"""Benchmark: import N subscribers from CSV, then declare an incident over ~6 % of them.

Owns measuring the two steps that touch the whole subscriber base, each in its own
subprocess so that its peak memory (ru_maxrss) is its own: ``subscribers.import_csv`` (rows/s,
peak MB) and ``incidents.declare`` (seconds, peak MB; with and without status notices), and
the floor they are compared with: one hand-written ``INSERT INTO audience_member … SELECT``
in raw sqlite3 on the same file. Prints one table.

    python benchmarks/audience.py [--rows 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
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


def write_config(directory: Path, *, status_notices: bool = True) -> Path:
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    text = text.replace(
        'database = "sqlite:///notifier.db"', f'database = "sqlite:///{directory / "bench.db"}"', 1
    )
    if not status_notices:
        text = text.replace("send_status_notices = true", "send_status_notices = false", 1)
    path = directory / ("config.toml" if status_notices else "config-quiet.toml")
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
    from notifier.db import make_engine

    config = load_config(config_path)
    engine = make_engine(config.database_url)
    baseline = peak_mb()
    started = time.perf_counter()
    report = subscribers.import_csv(engine, config, csv_path)
    seconds = time.perf_counter() - started
    return {"rows": report.rows, "inserted": report.inserted, "rejected": report.rejected, "seconds": seconds,
            "rows_per_s": report.rows / seconds, "peak_mb": peak_mb(), "baseline_mb": baseline}  # fmt: skip


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
        csv_path = directory / "subscribers.csv"
        started = time.perf_counter()
        generate_csv(csv_path, args.rows, list(config.regions))
        print(f"generated {args.rows:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - started:.1f} s; importing…", file=sys.stderr)  # fmt: skip

        imported = run_child("import", str(config_path), str(csv_path))
        declared = run_child("declare", str(config_path))
        quiet = run_child("declare", str(quiet_path))
        floor = raw_floor(directory / "bench.db")
        share = 100 * declared["affected"] / imported["inserted"] if imported["inserted"] else 0
        rows = [
            ("subscribers in the file", f"{imported['rows']:,.0f} ({imported['rejected']:,.0f} rejected)"),
            ("import rows/s", f"{imported['rows_per_s']:,.0f} ({imported['seconds']:.1f} s)"),
            (
                "import peak MB",
                f"{imported['peak_mb']:.0f} (process at start: {imported['baseline_mb']:.0f})",
            ),
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
