"""Benchmark: one outage's M apologies (default 200,000) drained by 1, 2 and 4 `notifier send`
processes at once from one PostgreSQL outbox, into local SMTP sinks; plus the outbox's own
cost (claim + record per message, no SMTP) and one sender on SQLite against PostgreSQL.

Owns:

- a throw-away PostgreSQL 15 cluster (``initdb``/``pg_ctl`` from ``NOTIFIER_PG_BIN``, default
  /usr/lib/postgresql/15/bin; fsync off, like the tests' cluster), on 127.0.0.1;
- one prepared outbox (M subscribers in the incident's regions, M/10 elsewhere, inserted in
  bulk; ``incidents.declare`` + ``incidents.resolve`` queue the M apologies), copied for every
  run (``CREATE DATABASE … TEMPLATE``, or a file copy on SQLite) so each starts the same;
- ONE SINK PROCESS PER SENDER (aiosmtpd on its own port, in its own process): sender i talks
  to sink i only, so one sink's single core is not the limit at 4 senders. Every sink appends
  each message's Message-ID to its log; duplicates and losses are counted from those logs
  against the outbox's ids. Senders, sinks and PostgreSQL all share this machine's cores;
- the rate: messages / (last message received − first message received, over all sinks), so
  the ~2 s start-up of each `notifier send` process is not counted (wall time including it is
  printed too);
- the claim/record overhead: ``outbox.claims.claim`` of 500 + ``claims.record`` of those 500 as sent, in
  a loop over a fresh copy of the outbox, timed per message, in this process, no SMTP.

Prints one table.

    python benchmarks/scale.py [--messages 200000] [--senders 1,2,4] [--connections 4]
                               [--overhead 20000] [--sqlite-messages M] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("NOTIFIER_PG_BIN", "/usr/lib/postgresql/15/bin"))
INCIDENT_REGIONS = ["66", "54"]
OTHER_REGIONS = ["77", "50", "78"]
FIRST = ["Александр", "Елена", "Дмитрий", "Ольга", "Сергей", "Наталья", "Андрей", "Ирина"]
LAST = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов"]
MESSAGE_ID = re.compile(rb"(?im)^Message-ID:[ \t]*(<[^>\r\n]*>)")


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- PostgreSQL -------------------------------------------------------------------------------


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Cluster:
    """A throw-away PostgreSQL cluster: ``with Cluster() as pg: pg.url("db")``."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise SystemExit(f"PostgreSQL server binaries not found in {PG_BIN} (set NOTIFIER_PG_BIN)")
        self.base = Path(tempfile.mkdtemp(prefix="notifier-scale-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        self.data, self.port = self.base / "data", free_port()

    def __enter__(self) -> Cluster:
        subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]),
                       check=True, capture_output=True, timeout=120)  # fmt: skip
        options = (
            f"-k {self.base} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=256MB"
        )
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                                     str(self.base / "log"), "-w", "start"]),
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        return self

    def __exit__(self, *exc_info: object) -> None:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url("postgres").replace("postgresql://", "postgresql+psycopg://"),
                               isolation_level="AUTOCOMMIT")  # fmt: skip
        try:
            with engine.connect() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()


# -- the sinks (one process each) ----------------------------------------------------------


def _sink_main(log_path: str, ports: Any, stop: Any, times: Any) -> None:
    """aiosmtpd on 127.0.0.1 that appends each message's Message-ID to ``log_path``."""
    import asyncio

    from aiosmtpd.smtp import SMTP

    out = open(log_path, "ab", buffering=1 << 16)  # noqa: SIM115 - closed below, after the loop

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            data = envelope.original_content or b""
            match = MESSAGE_ID.search(data[: data.find(b"\r\n\r\n")])
            out.write((match.group(1) if match else b"<none>") + b"\n")
            now = time.time()
            if times[0] == 0:
                times[0] = now
            times[1] = now
            times[2] += 1
            return "250 2.0.0 Ok"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        handler = Handler()
        server = await loop.create_server(lambda: SMTP(handler, hostname="scale-sink"), "127.0.0.1", 0)
        ports.send(server.sockets[0].getsockname()[1])
        await loop.run_in_executor(None, stop.wait)
        server.close()

    try:
        asyncio.run(serve())
    finally:
        out.close()


class Sink:
    """A sink process: ``.port``, ``.received``, ``.first``/``.last`` (epoch seconds), ``.log``."""

    def __init__(self, log: Path) -> None:
        context = multiprocessing.get_context("spawn")
        self.log = log
        self._times = context.RawArray("d", 3)
        self._stop = context.Event()
        receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_sink_main, args=(str(log), send, self._stop, self._times))
        self._process.start()
        if not receive.poll(30):
            raise RuntimeError("a sink process did not start")
        self.port: int = receive.recv()

    @property
    def received(self) -> int:
        return int(self._times[2])

    @property
    def first(self) -> float:
        return self._times[0]

    @property
    def last(self) -> float:
        return self._times[1]

    def close(self) -> None:
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)

    def message_ids(self) -> list[str]:
        return self.log.read_text(encoding="ascii").split()


# -- preparing an outbox -------------------------------------------------------------------


def write_config(directory: Path, database_url: str, port: int, connections: int) -> Path:
    from tomllib import loads

    text = (REPO / "config.toml").read_text(encoding="utf-8")
    for old, new in [
        ('database = "sqlite:///notifier.db"', f'database = "{database_url}"'),
        ("port = 1025", f"port = {port}"),
        ("connections = 8", f"connections = {connections}"),
        ("send_status_notices = true", "send_status_notices = false"),
        ("[notifier]\n", f'[notifier]\ntemplates = "{REPO / "templates"}"\n'),
        (
            'targets = [\n  { email = "callcentre@sfera-reporting.example", locale = "ru" },\n]',
            "targets = []",
        ),
    ]:
        if old not in text:
            raise RuntimeError(f"config.toml has no {old!r} to replace")
        text = text.replace(old, new, 1)
    loads(text)  # fail here, not in a child, if the edit broke it
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def prepare(database_url: str, directory: Path, messages: int) -> dict[str, Any]:
    """Subscribers inserted in bulk, then a real declare + resolve: ``messages`` apologies queued."""
    from sqlalchemy import insert

    from notifier import incidents
    from notifier.config import load_config
    from notifier.db import make_engine, upgrade, write_session
    from notifier.models import Subscriber, utcnow

    config = load_config(write_config(directory, database_url, 25, 1))
    engine = make_engine(database_url)
    upgrade(engine)
    rnd = random.Random(5)
    now = utcnow()
    total = messages + messages // 10
    chunk: list[dict[str, Any]] = []

    def flush() -> None:
        with write_session(engine) as session:
            session.execute(insert(Subscriber), chunk)
        chunk.clear()

    for n in range(1, total + 1):
        name = f"{rnd.choice(FIRST)} {rnd.choice(LAST)}"
        email = f"client{n}@example.org"
        chunk.append({
            "external_id": str(7700000000 + n), "name": name, "name_key": name.casefold(), "email": email,
            "email_key": email, "phone": f"+7912{n:07d}",
            "region": rnd.choice(INCIDENT_REGIONS if n <= messages else OTHER_REGIONS),
            "services": ";tax-reporting;", "locale": "en" if rnd.random() < 0.08 else "ru", "status": "active",
            "created_at": now, "updated_at": now,
        })  # fmt: skip
        if len(chunk) == 10_000:
            flush()
    if chunk:
        flush()
    started = now - timedelta(hours=5, minutes=7)
    with write_session(engine) as session:
        declared = incidents.declare(
            session, config, title="Не отправляются отчёты в ФНС", regions=INCIDENT_REGIONS,
            severity="major", started_at=started, by="bench", now=started + timedelta(minutes=12),
            texts={"en": {"title": "Tax reports are not being sent"}},
        )  # fmt: skip
        ref = declared.incident.id
    with write_session(engine) as session:
        resolved = incidents.resolve(
            session, config, ref, by="bench", resolved_at=now,
            cause="Отказал дисковый массив основного сервера баз данных, а автоматическое переключение "
                  "на резервный сервер не сработало из-за ошибки в его настройке.",
            measures="Перевели базу на резервный сервер, восстановили все отчёты, отправленные во время "
                     "сбоя, и исправили настройку переключения.",
            texts={"en": {"cause": "The main database server's disk array failed, and the switch to the standby "
                                   "did not work because of a mistake in its settings.",
                          "measures": "We moved the database to the standby server, recovered every report sent "
                                      "during the outage and fixed the switch-over settings."}},
        )  # fmt: skip
    queued = (resolved.queued or {}).get("apology", 0)
    engine.dispose()
    if queued != messages:
        raise RuntimeError(f"expected {messages} apologies queued, got {queued}")
    return {"incident": ref}


def apology_ids(database_url: str, incident: int) -> tuple[set[str], dict[str, int]]:
    """The Message-IDs every apology must arrive with, and the outbox's states."""
    from sqlalchemy import text

    from notifier.composing import message_id
    from notifier.db import make_engine
    from notifier.outbox.loading import instance_id

    engine = make_engine(database_url)
    try:
        instance = instance_id(engine)  # Message-IDs are <notifier.ROW.INSTANCE@domain>
        with engine.connect() as conn:
            ids = conn.execute(
                text("SELECT id FROM message WHERE incident_id = :i AND kind = 'apology'"), {"i": incident}
            ).scalars()
            expected = {message_id(i, "sfera-reporting.example", instance) for i in ids}
            states = dict(
                conn.execute(
                    text("SELECT state, count(*) FROM message WHERE incident_id = :i GROUP BY state"),
                    {"i": incident},
                ).all()
            )
    finally:
        engine.dispose()
    return expected, states


# -- one run: N senders at once --------------------------------------------------------------


def run_senders(database_url: str, incident: int, senders: int, connections: int, directory: Path,
                timeout: float) -> dict[str, Any]:  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    sinks = [Sink(directory / f"sink{i}.log") for i in range(senders)]
    procs: list[subprocess.Popen[str]] = []
    try:
        configs = [
            write_config(directory / f"s{i}", database_url, sinks[i].port, connections)
            for i in range(senders)
        ]
        started = time.time()
        for i, config in enumerate(configs):
            env = {**os.environ, "NOTIFIER_CONFIG": str(config)}
            procs.append(subprocess.Popen([sys.executable, "-m", "notifier", "send", "--json"], env=env,
                                          stdout=subprocess.PIPE, stderr=(directory / f"s{i}.err").open("w"),
                                          text=True))  # fmt: skip
        reports = []
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            if proc.returncode not in (0, 1):
                raise RuntimeError(f"notifier send exited {proc.returncode}: see {directory}/s*.err")
            reports.append(json.loads(out.strip().splitlines()[-1]))
        wall = time.time() - started
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for sink in sinks:
            sink.close()
    expected, states = apology_ids(database_url, incident)
    got = Counter(mid for sink in sinks for mid in sink.message_ids())
    first = min(sink.first for sink in sinks if sink.received)
    last = max(sink.last for sink in sinks)
    received = sum(got.values())
    return {
        "senders": senders, "received": received, "seconds": last - first, "wall": wall,
        "rate": received / max(last - first, 1e-9), "per_sender": [r["sent"] for r in reports],
        "duplicates": sum(n - 1 for n in got.values() if n > 1), "lost": len(expected - set(got)),
        "strangers": len(set(got) - expected), "states": states,
    }  # fmt: skip


# -- the outbox's own cost ------------------------------------------------------------------


def overhead(database_url: str, messages: int) -> dict[str, float]:
    """Claim 500 + record 500 sent, until ``messages`` are done: µs per message of each."""
    from notifier.config import MailingSection
    from notifier.db import make_engine
    from notifier.models import utcnow
    from notifier.outbox import claims

    engine = make_engine(database_url)
    policy = MailingSection()
    presence = claims.Presence.here()
    presence.register(engine, utcnow())
    claim_s = record_s = 0.0
    done = 0
    try:
        while done < messages:
            started = time.perf_counter()
            ids = claims.claim(engine, presence, 500, utcnow(), policy.heartbeat_timeout).ids
            claimed = time.perf_counter()
            if not ids:
                break
            claims.record(engine, presence.name, claims.Results(sent=ids), policy, utcnow())
            record_s += time.perf_counter() - claimed
            claim_s += claimed - started
            done += len(ids)
    finally:
        presence.leave(engine)
        engine.dispose()
    return {
        "messages": done,
        "claim_us": 1e6 * claim_s / max(done, 1),
        "record_us": 1e6 * record_s / max(done, 1),
    }


# -- the run --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000, help="apologies M (default 200,000)")
    parser.add_argument("--senders", default="1,2,4", help="sender process counts to run (default 1,2,4)")
    parser.add_argument("--connections", type=int, default=4, help="SMTP connections of each sender")
    parser.add_argument("--overhead", type=int, default=20_000, help="messages for the claim/record loop")
    parser.add_argument(
        "--sqlite-messages", type=int, help="M for the SQLite vs PostgreSQL run (default M; 0 = skip)"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="per run, seconds")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args()
    os.environ.setdefault("NOTIFIER_SECRET", secrets.token_urlsafe(24))
    counts = [int(n) for n in args.senders.split(",") if n.strip()]
    lite_m = args.messages if args.sqlite_messages is None else args.sqlite_messages
    root = args.keep or Path(tempfile.mkdtemp(prefix="notifier-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    costs: dict[str, dict[str, float]] = {}
    try:
        with Cluster() as pg:
            say(f"PostgreSQL on 127.0.0.1:{pg.port}; preparing {args.messages:,} apologies…")
            started = time.perf_counter()
            pg.admin('CREATE DATABASE "pristine"')
            project = prepare(pg.url("pristine"), root / "pristine", args.messages)
            say(f"prepared in {time.perf_counter() - started:.0f} s")
            for n in counts:
                pg.admin(f'CREATE DATABASE "run{n}" TEMPLATE "pristine"')
                result = run_senders(pg.url(f"run{n}"), project["incident"], n, args.connections,
                                     root / f"run{n}", args.timeout)  # fmt: skip
                result["backend"] = "PostgreSQL"
                rows.append(result)
                say(f"{n} sender(s): {result['rate']:,.0f} messages/s, {result['duplicates']} duplicates, "
                    f"{result['lost']} lost")  # fmt: skip
                pg.admin(f'DROP DATABASE "run{n}"')
            pg.admin('CREATE DATABASE "overhead" TEMPLATE "pristine"')
            costs["PostgreSQL"] = overhead(pg.url("overhead"), min(args.overhead, args.messages))
        if lite_m:
            say(f"SQLite: preparing {lite_m:,} apologies…")
            url = f"sqlite:///{root / 'lite' / 'pristine.db'}"
            lite = prepare(url, root / "lite", lite_m)
            with sqlite3.connect(root / "lite" / "pristine.db") as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            for name in ("run.db", "overhead.db"):
                shutil.copyfile(root / "lite" / "pristine.db", root / "lite" / name)
            result = run_senders(f"sqlite:///{root / 'lite' / 'run.db'}", lite["incident"], 1, args.connections,
                                 root / "lite" / "run", args.timeout)  # fmt: skip
            result["backend"] = "SQLite"
            rows.append(result)
            say(f"SQLite, 1 sender: {result['rate']:,.0f} messages/s")
            costs["SQLite"] = overhead(
                f"sqlite:///{root / 'lite' / 'overhead.db'}", min(args.overhead, lite_m)
            )
        print_table(args, rows, costs)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def print_table(args: Any, rows: list[dict[str, Any]], costs: dict[str, dict[str, float]]) -> None:
    cpus = os.cpu_count()
    print(f"\n`notifier send` processes started at once on one outbox, {args.connections} SMTP connections each, "
          f"one aiosmtpd sink process per sender; {cpus} CPU cores shared by senders, sinks and the database\n")  # fmt: skip
    header = ["database", "senders", "messages", "seconds", "messages/s", "× 1 sender", "per sender",
              "duplicates", "lost", "wall s (with start-up)", "claim µs/msg", "record µs/msg"]  # fmt: skip
    table = [header]
    base = {row["backend"]: row["rate"] for row in rows if row["senders"] == 1}
    for row in rows:
        cost = costs.get(row["backend"], {})
        table.append([
            row["backend"], str(row["senders"]), f"{row['received']:,}", f"{row['seconds']:.1f}",
            f"{row['rate']:,.0f}", f"{row['rate'] / base.get(row['backend'], row['rate']):.2f}",
            " + ".join(f"{n:,}" for n in row["per_sender"]), str(row["duplicates"]), str(row["lost"]),
            f"{row['wall']:.1f}", f"{cost.get('claim_us', 0):.0f}", f"{cost.get('record_us', 0):.0f}",
        ])  # fmt: skip
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, r in enumerate(table):
        print(
            "| "
            + " | ".join(
                c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            + " |"
        )
        if i == 0:
            print(
                "|"
                + "|".join("-" * (w + 2) if j == 0 else "-" * (w + 1) + ":" for j, w in enumerate(widths))
                + "|"
            )
    print()
    for backend, cost in costs.items():
        print(f"outbox cost on {backend}: claim {cost['claim_us']:.0f} µs + record {cost['record_us']:.0f} µs per "
              f"message (500 per claim and per record, {cost['messages']:,.0f} messages, no SMTP)")  # fmt: skip
    for row in rows:
        ok = row["duplicates"] == 0 and row["lost"] == 0 and row["strangers"] == 0
        print(f"check {row['backend']}, {row['senders']} sender(s): sinks' logs {row['received']:,} Message-IDs, "
              f"{row['duplicates']} duplicates, {row['lost']} lost, {row['strangers']} unknown; outbox "
              f"{row['states']}: {'OK' if ok else 'MISMATCH'}")  # fmt: skip


if __name__ == "__main__":
    main()
