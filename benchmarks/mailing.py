"""Benchmark: send one outage's apologies to M subscribers over SMTP, against the ceiling.

Owns measuring three senders into one local SMTP sink (aiosmtpd in a separate process that
only counts, one for the whole run), one after another, with the same number of connections:

1. ``notifier send`` end to end (``send_due``: claim, render, compose, send, record) in a
   fresh subprocess per run, so its peak memory (ru_maxrss) is its own, on a database
   prepared with a real import, ``incidents.declare`` and ``incidents.resolve`` (M apologies);
2. the ceiling: N bare ``aiosmtplib.SMTP`` clients, each connected once, sending pre-built
   bytes (``Composer``, Cyrillic text + HTML the size of notifier's apology, ~10 KB on the
   wire) with ``sendmail`` from N tasks;
3. the plain sequential ``smtplib`` loop a user would otherwise write (``EmailMessage`` per
   recipient, ``send_message`` on one connection), on a subset because it is slow.

The sink offers PIPELINING (RFC 2920), as Postfix and most MTAs do; bare aiosmtplib cannot use
it (one reply read per command), notifier does: also measured with ``[smtp].pipelining = false``
to show what it saves. Also ``notifier send`` with every message DKIM-signed (the same outbox, a config that adds
``[smtp].dkim_*`` with a fresh 2048-bit key: what signing costs per message), the peak memory
of ``notifier send`` at M/5 and M messages, and correctness: the sink received M messages
from ``notifier send`` and the outbox shows M sent. Prints one table.

    python benchmarks/mailing.py [--messages 50000] [--connections 8] [--repeat 1] [--rtt 0]

``--rtt 10`` puts 10 ms of round trip between every sender and the sink (a relay in another
data centre): there the round trips a message costs, not the CPU, set the pace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import resource
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
INCIDENT_REGIONS = ["66", "54"]
OTHER_REGIONS = ["77", "50", "78", "16", "63"]
SERVICES = ["tax-reporting", "fund-reporting", "statistics", "edo"]
FIRST = [
    "Александр",
    "Елена",
    "Дмитрий",
    "Ольга",
    "Сергей",
    "Наталья",
    "Андрей",
    "Ирина",
    "Алексей",
    "Татьяна",
]
LAST = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов", "Новиков"]
FEMININE = {"Елена", "Ольга", "Наталья", "Ирина", "Татьяна"}
SENDER_ADDRESS = "noreply@sfera-reporting.example"
SENDER_NAME = "Сфера Отчётности"
SUBJECT = "Приносим извинения за сбой 12 марта: отчёты в ФНС не отправлялись 5 часов"
PARAGRAPH = (
    "Отказал дисковый массив основного сервера баз данных, а автоматическое переключение на "
    "резервный сервер не сработало из-за ошибки в его настройке. Мы перевели базу на резервный "
    "сервер и восстановили все отчёты, отправленные во время сбоя: они ушли в ФНС. "
)
POOL = 1000  # distinct pre-built messages the ceiling cycles through (recipients all differ)


# -- the sink (its own process) ------------------------------------------------------------


async def _delayed_pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds late, in order, however many
    are on the way: a link with that one-way latency and no bandwidth limit."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(due - loop.time(), 0))
            writer.write(data)
            await writer.drain()
        writer.close()

    delivering = asyncio.create_task(deliver())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((loop.time() + delay, data))
    finally:
        queue.put_nowait((0.0, b""))
        await delivering


def _sink_main(counters: Any, ports: Any, stop: Any, rtt: float = 0.0) -> None:
    """aiosmtpd on 127.0.0.1 that counts messages and bytes and forgets them; with ``rtt``
    (seconds), reached through a proxy that delays every chunk by half of it each way, as a
    relay that far away would be."""
    from aiosmtpd.smtp import SMTP

    class Counter:
        async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                              responses: list[str]) -> list[str]:  # fmt: skip
            session.host_name = hostname
            return [*responses[:-1], "250-PIPELINING", responses[-1]]  # as Postfix and most MTAs offer it

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            counters[0] += 1
            counters[1] += len(envelope.original_content or b"")
            return "250 2.0.0 Ok"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        handler = Counter()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="bench-sink", ident="bench sink"), "127.0.0.1", 0
        )
        port = sink_port = server.sockets[0].getsockname()[1]
        proxy = None
        if rtt:
            async def link(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
                sink_reader, sink_writer = await asyncio.open_connection("127.0.0.1", sink_port)
                await asyncio.gather(_delayed_pipe(client_reader, sink_writer, rtt / 2),
                                     _delayed_pipe(sink_reader, client_writer, rtt / 2), return_exceptions=True)  # fmt: skip

            proxy = await asyncio.start_server(link, "127.0.0.1", 0)
            port = proxy.sockets[0].getsockname()[1]
        ports.send(port)
        await loop.run_in_executor(None, stop.wait)
        server.close()
        if proxy is not None:
            proxy.close()

    asyncio.run(serve())


class SinkProcess:
    """``with SinkProcess() as sink:`` — ``sink.port``, ``sink.messages``, ``sink.bytes``."""

    def __init__(self, rtt: float = 0.0) -> None:
        context = multiprocessing.get_context("spawn")
        self._counters = context.RawArray("q", 2)
        self._stop = context.Event()
        receive, send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_sink_main, args=(self._counters, send, self._stop, rtt), daemon=True
        )
        self._process.start()
        deadline = time.monotonic() + 30
        while not receive.poll(0.1):
            if not self._process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sink process did not start")
        self.port: int = receive.recv()

    @property
    def messages(self) -> int:
        return int(self._counters[0])

    @property
    def bytes(self) -> int:
        return int(self._counters[1])

    def wait_for(self, count: int, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while self.messages < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages

    def __enter__(self) -> SinkProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)


# -- preparing a database with M apologies queued ------------------------------------------


def generate_csv(path: Path, affected: int, others: int, seed: int = 3) -> None:
    """``affected`` subscribers in the incident's regions, ``others`` elsewhere; mixed services."""
    rnd = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("external_id,name,email,phone,region,services,locale\r\n")
        for n in range(1, affected + others + 1):
            region = rnd.choice(INCIDENT_REGIONS if n <= affected else OTHER_REGIONS)
            services = ";".join(rnd.sample(SERVICES, rnd.randint(1, 3)))
            first, last = rnd.choice(FIRST), rnd.choice(LAST)
            name = f"{first} {last}а" if first in FEMININE else f"{first} {last}"
            locale = "en" if rnd.random() < 0.08 else "ru"
            out.write(
                f"{7700000000 + n},{name},client{n}@example.org,+7 912 {n:07d},{region},{services},{locale}\r\n"
            )


def prepare(directory: Path, messages: int, port: int, connections: int) -> dict[str, Any]:
    """A project in ``directory`` with ``messages`` apologies due; the database is copied to
    ``pristine.db`` so that every run starts from the same outbox."""
    from notifier import incidents, subscribers
    from notifier.config import load_config
    from notifier.db import make_engine, upgrade, write_session
    from notifier.demo import CASE_CAUSE, CASE_EN, CASE_MEASURES, CASE_MESSAGE, CASE_TITLE, write_demo_config
    from notifier.models import utcnow

    directory.mkdir(parents=True, exist_ok=True)
    config_path = write_demo_config(
        directory, port, database_url=f"sqlite:///{directory / 'bench.db'}", connections=connections,
        send_status_notices=False,
    )  # fmt: skip
    config = load_config(config_path)
    engine = make_engine(config.database_url)
    upgrade(engine)
    csv_path = directory / "subscribers.csv"
    generate_csv(csv_path, messages, messages // 10)
    report = subscribers.import_csv(engine, config, csv_path)
    if report.rejected:
        raise RuntimeError(f"{report.rejected} generated rows were rejected")
    now = utcnow()
    started = now - timedelta(hours=5, minutes=7)
    with write_session(engine) as session:
        declared = incidents.declare(
            session, config, title=CASE_TITLE, regions=INCIDENT_REGIONS, services=[],
            severity="major", started_at=started, by="bench", now=started + timedelta(minutes=12),
            message=CASE_MESSAGE, texts={"en": {"title": CASE_EN["title"], "message": CASE_EN["message"]}},
        )  # fmt: skip
        ref = declared.incident.ref
    with write_session(engine) as session:
        resolved = incidents.resolve(
            session, config, ref, by="bench", resolved_at=now,
            cause=CASE_CAUSE, measures=CASE_MEASURES,
            texts={"en": {"cause": CASE_EN["cause"], "measures": CASE_EN["measures"]}},
        )  # fmt: skip
        incident_id = resolved.incident.id
    queued = (resolved.queued or {}).get("apology", 0)
    if declared.affected != messages or queued != messages:
        raise RuntimeError(f"expected {messages} affected and queued, got {declared.affected} and {queued}")
    engine.dispose()
    db = directory / "bench.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(db, directory / "pristine.db")
    return {"config": str(config_path), "dkim_config": str(dkim_config(directory, config_path)),
            "unpipelined_config": str(unpipelined_config(directory, config_path)),
            "incident": incident_id, "subscribers": report.inserted}  # fmt: skip


def unpipelined_config(directory: Path, config_path: Path) -> Path:
    """The same project with ``[smtp].pipelining = false``: one command, one round trip."""
    text, n = re.subn(r"(?m)^pipelining = true", "pipelining = false", config_path.read_text(encoding="utf-8"))
    if n != 1:
        raise RuntimeError("the demo config has no single pipelining line to set")
    path = directory / "config-unpipelined.toml"
    path.write_text(text, encoding="utf-8")
    return path


def dkim_config(directory: Path, config_path: Path) -> Path:
    """The same project with DKIM on: a fresh key in a file, the [smtp].dkim_* keys set."""
    from notifier.delivery import dkim

    key_file = directory / "dkim.key"
    key_file.write_bytes(dkim.private_pem(dkim.generate_key(2048)))
    text = config_path.read_text(encoding="utf-8")
    for name, value in (("dkim_domain", "sfera-reporting.example"), ("dkim_selector", "bench"),
                        ("dkim_key_file", str(key_file))):  # fmt: skip
        text, n = re.subn(rf'(?m)^{name} = "[^"]*"', f'{name} = "{value}"', text)
        if n != 1:
            raise RuntimeError(f"the demo config has no single {name} line to set")
    signed = directory / "config-dkim.toml"
    signed.write_text(text, encoding="utf-8")
    return signed


def restore(directory: Path) -> None:
    for suffix in ("-wal", "-shm"):
        (directory / f"bench.db{suffix}").unlink(missing_ok=True)
    shutil.copyfile(directory / "pristine.db", directory / "bench.db")


def outbox_counts(config_path: str, incident_id: int) -> dict[str, dict[str, int]]:
    from notifier import outbox
    from notifier.config import load_config
    from notifier.db import make_engine, read_session

    engine = make_engine(load_config(config_path).database_url)
    try:
        with read_session(engine) as session:
            return outbox.counts(session, incident_id)
    finally:
        engine.dispose()


# -- the three senders (each runs in its own subprocess) -----------------------------------


def cpu_seconds() -> float:
    """User + system CPU of this process, all threads."""
    times = os.times()
    return times.user + times.system


def peak_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec, so a
    child forked from this (large) parent would report at least the parent's size."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_notifier(config_path: str) -> dict[str, Any]:
    from notifier.config import load_config
    from notifier.db import make_engine
    from notifier.delivery.sender import send_due

    config = load_config(config_path)
    engine = make_engine(config.database_url)
    baseline = peak_mb()
    cpu, started = cpu_seconds(), time.perf_counter()
    report = asyncio.run(send_due(engine, config))
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return {"messages": report.sent, "seconds": seconds, "cpu": cpu, "peak_mb": peak_mb(), "baseline_mb": baseline,
            "report": report.as_dict()}  # fmt: skip


def bodies() -> tuple[str, str]:
    """~1,450 characters of Cyrillic text and ~2,450 of HTML (~2.6 + ~4.2 KB of UTF-8), the
    size of notifier's rendered apology (~10 KB on the wire after base64)."""
    text = "Здравствуйте, {name}!\n\n" + (PARAGRAPH + "\n\n") * 6
    html = (
        "<!doctype html><html><body style='font-family: sans-serif'><h1>Приносим извинения</h1>"
        + "".join(f"<p style='margin: 0 0 12px'>{PARAGRAPH}</p>" for _ in range(8))
        + "<p><a href='https://example.org/unsubscribe'>Отписаться</a></p></body></html>"
    )
    return text[:1450] + "\n", html


def build_pool(count: int) -> list[bytes]:
    """``count`` distinct messages, composed the way notifier composes them."""
    from notifier.composing import Composer

    composer = Composer(SENDER_ADDRESS, SENDER_NAME)
    text, html = bodies()
    now = datetime.now(UTC)
    pool = []
    for n in range(1, count + 1):
        name = f"{FIRST[n % len(FIRST)]} {LAST[n % len(LAST)]}"
        pool.append(
            composer.compose(
                message_id=composer.message_id(n),
                to_name=name,
                to_address=f"client{n}@example.org",
                subject=SUBJECT,
                text=text.format(name=name),
                html=html,
                date=now,
                unsubscribe_url=f"https://example.org/u/{n}",
            )  # fmt: skip
        )
    return pool


def child_ceiling(port: str, messages: str, connections: str) -> dict[str, Any]:
    import aiosmtplib

    total, width = int(messages), int(connections)
    pool = build_pool(min(POOL, total))

    async def run() -> float:
        clients = [
            aiosmtplib.SMTP(hostname="127.0.0.1", port=int(port), local_hostname="bench")
            for _ in range(width)
        ]
        await asyncio.gather(*(client.connect() for client in clients))
        next_index = iter(range(total))

        async def worker(client: aiosmtplib.SMTP) -> None:
            for n in next_index:
                await client.sendmail(SENDER_ADDRESS, [f"client{n}@example.org"], pool[n % len(pool)])

        cpu, started = cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(worker(client) for client in clients))
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        await asyncio.gather(*(client.quit() for client in clients))
        return seconds, cpu

    seconds, cpu = asyncio.run(run())
    return {"messages": total, "seconds": seconds, "cpu": cpu, "peak_mb": peak_mb()}


def child_plain(port: str, messages: str) -> dict[str, Any]:
    import smtplib
    from email.headerregistry import Address
    from email.message import EmailMessage

    total = int(messages)
    text, html = bodies()
    sender = Address(SENDER_NAME, addr_spec=SENDER_ADDRESS)
    cpu, started = cpu_seconds(), time.perf_counter()
    with smtplib.SMTP("127.0.0.1", int(port), local_hostname="bench") as smtp:
        for n in range(total):
            name = f"{FIRST[n % len(FIRST)]} {LAST[n % len(LAST)]}"
            message = EmailMessage()
            message["Subject"] = SUBJECT
            message["From"] = sender
            message["To"] = Address(name, addr_spec=f"client{n}@example.org")
            message.set_content(text.format(name=name))
            message.add_alternative(html, subtype="html")
            smtp.send_message(message)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return {"messages": total, "seconds": seconds, "cpu": cpu, "peak_mb": peak_mb()}


CHILDREN: dict[str, Callable[..., dict[str, Any]]] = {
    "notifier": child_notifier,
    "ceiling": child_ceiling,
    "plain": child_plain,
}


def run_child(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"child {args[0]} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the run --------------------------------------------------------------------------------


def measure_notifier(
    sink: SinkProcess, project: dict[str, Any], directory: Path, config: str = "config"
) -> dict[str, Any]:
    """One ``notifier send`` on a fresh copy of the prepared outbox, checked against the sink."""
    restore(directory)
    before = sink.messages, sink.bytes
    result = run_child("notifier", project[config])
    expected = result["messages"]
    result["received"] = sink.wait_for(before[0] + expected) - before[0]
    result["avg_bytes"] = (sink.bytes - before[1]) / max(result["received"], 1)
    result["outbox"] = outbox_counts(project["config"], project["incident"])
    return result


# Where a py-spy sample of `notifier send` belongs: the first of these frames from the root of
# its stack (function name, file name), else "event loop, sockets, other".
STAGES = [
    ("claim + load a batch (SQL, ORM; thread)", "claim_and_load", "sender.py"),
    ("record results (SQL; thread)", "write", "sender.py"),
    ("heartbeat (SQL; thread)", "beat", "claims.py"),
    ("render templates (Jinja2, babel)", "render", "rendering.py"),
    ("DKIM signature", "sign", "dkim.py"),
    ("compose MIME bytes", "compose", "composing.py"),
    ("sign the unsubscribe token", "_unsubscribe_url", "sender.py"),
    ("SMTP send (SmtpMessenger + aiosmtplib)", "send", "smtp.py"),
    ("sender loop, other", "go", "sender.py"),
]
# py-spy counts these as busy, but they wait: the event loop in epoll, idle pool threads.
WAITING = {("EpollSelector.select", "selectors.py"), ("_worker", "concurrent/futures/thread.py")}
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^():]*):(?P<line>\d+)\)$")


def _stage(frames: list[re.Match[str] | None]) -> str:
    for frame in frames:
        for stage, function, name in STAGES:
            name_matches = frame and frame["file"].endswith(name)
            if name_matches and frame["function"].rpartition(".")[2] == function:
                return stage
    return "event loop, sockets, other"


def profile(sink: SinkProcess, project: dict[str, Any], directory: Path, output: Path) -> None:
    """One more `notifier send` under py-spy (raw collapsed stacks to ``output``); prints where
    its CPU samples go, by stage and by function (self time)."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    restore(directory)
    before = sink.messages
    command = [spy, "record", "--rate", "100", "--format", "raw", "--output", str(output), "--"]
    out = subprocess.run(
        [*command, sys.executable, __file__, "--child", "notifier", project["config"]],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(f"py-spy failed:\n{out.stderr}")
    result = json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])
    received = sink.wait_for(before + result["messages"]) - before
    print(f"\nprofile of one more notifier send ({result['messages']:,} sent, sink received {received:,}, "
          f"{result['seconds']:.1f} s under py-spy; stacks in {output}):")  # fmt: skip
    summarise(output)


def summarise(output: Path) -> None:
    """Print where the CPU samples of a py-spy raw profile go: by stage, and by function."""
    stages: dict[str, int] = {}
    leaves: dict[str, int] = {}
    total = waiting = 0
    for line in output.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [FRAME.match(frame) for frame in stack.split(";")]
        leaf = frames[-1]
        if leaf and (leaf["function"], leaf["file"]) in WAITING:
            waiting += samples
            continue
        total += samples
        stage = _stage(frames)
        stages[stage] = stages.get(stage, 0) + samples
        key = (
            f"{leaf['function']} ({leaf['file'].rsplit('site-packages/', 1)[-1]})"
            if leaf
            else stack.split(";")[-1]
        )
        leaves[key] = leaves.get(key, 0) + samples
    print(
        f"{total:,} busy samples, all threads ({waiting:,} more were waiting in epoll or idle pool threads), by stage:"
    )
    for stage, samples in sorted(stages.items(), key=lambda item: -item[1]):
        print(f"  {100 * samples / max(total, 1):5.1f} %  {stage}")
    print("top functions by self time:")
    for key, samples in sorted(leaves.items(), key=lambda item: -item[1])[:15]:
        print(f"  {100 * samples / max(total, 1):5.1f} %  {key}")


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    middle = sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2]
    return {**middle, "seconds": statistics.median(run["seconds"] for run in runs),
            "cpu": statistics.median(run["cpu"] for run in runs),
            "peak_mb": max(run["peak_mb"] for run in runs), "all_seconds": [run["seconds"] for run in runs]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000, help="the audience M (default 50,000)")
    parser.add_argument("--connections", type=int, default=8, help="SMTP connections N of every sender")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each sender; medians are printed")
    parser.add_argument("--plain", type=int, default=2000, help="messages for the slow smtplib loop")
    parser.add_argument("--small", type=int, help="the smaller audience for the memory ratio (default M/5)")
    parser.add_argument(
        "--profile", type=Path, help="then profile one more notifier send with py-spy into this file"
    )
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (default: a temp dir)")
    parser.add_argument("--rtt", type=float, default=0.0,
                        help="milliseconds of round trip between every sender and the sink (a proxy in the sink's"
                             " process delays each chunk by half each way; default 0: loopback)")  # fmt: skip
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        print(json.dumps(CHILDREN[kind](*rest)))
        return

    os.environ.setdefault("NOTIFIER_SECRET", secrets.token_urlsafe(24))
    m, n, small_m = args.messages, args.connections, args.small or max(args.messages // 5, 1)
    plain_m = min(args.plain, m)
    root = args.keep or Path(tempfile.mkdtemp(prefix="notifier-mailing-"))
    root.mkdir(parents=True, exist_ok=True)

    def say(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)

    try:
        with SinkProcess(args.rtt / 1000) as sink:
            say(f"sink (pid {sink._process.pid}) on 127.0.0.1:{sink.port}; preparing {m:,} apologies…")
            started = time.perf_counter()
            project = prepare(root / "big", m, sink.port, n)
            small = prepare(root / "small", small_m, sink.port, n)
            say(f"prepared {project['subscribers']:,} + {small['subscribers']:,} subscribers "
                f"in {time.perf_counter() - started:.0f} s")  # fmt: skip
            runs: dict[str, list[dict[str, Any]]] = {"notifier": [], "unpipelined": [], "dkim": [], "ceiling": [],
                                                     "plain": [], "small": []}  # fmt: skip
            for round_ in range(1, args.repeat + 1):
                runs["notifier"].append(measure_notifier(sink, project, root / "big"))
                say(f"round {round_}: notifier send {runs['notifier'][-1]['seconds']:.1f} s")
                runs["unpipelined"].append(measure_notifier(sink, project, root / "big", "unpipelined_config"))
                say(f"round {round_}: notifier send, pipelining off {runs['unpipelined'][-1]['seconds']:.1f} s")
                runs["dkim"].append(measure_notifier(sink, project, root / "big", "dkim_config"))
                say(f"round {round_}: notifier send, DKIM-signed {runs['dkim'][-1]['seconds']:.1f} s")
                before = sink.messages
                runs["ceiling"].append(run_child("ceiling", str(sink.port), str(m), str(n)))
                runs["ceiling"][-1]["received"] = sink.wait_for(before + m) - before
                say(f"round {round_}: ceiling {runs['ceiling'][-1]['seconds']:.1f} s")
                before = sink.messages
                runs["plain"].append(run_child("plain", str(sink.port), str(plain_m)))
                runs["plain"][-1]["received"] = sink.wait_for(before + plain_m) - before
                say(f"round {round_}: plain smtplib {runs['plain'][-1]['seconds']:.1f} s")
                runs["small"].append(measure_notifier(sink, small, root / "small"))
                say(f"round {round_}: notifier send at {small_m:,}: {runs['small'][-1]['seconds']:.1f} s")
            print_table(
                m, n, small_m, args.repeat, {kind: median_of(items) for kind, items in runs.items()}, runs, args.rtt
            )
            if args.profile:
                profile(sink, project, root / "big", args.profile)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def print_table(
    m: int,
    n: int,
    small_m: int,
    repeat: int,
    med: dict[str, dict[str, Any]],
    runs: dict[str, list[dict[str, Any]]],
    rtt: float = 0.0,
) -> None:
    def rate(result: dict[str, Any]) -> float:
        return result["messages"] / result["seconds"]

    ceiling, plain = rate(med["ceiling"]), rate(med["plain"])
    rows = [
        ("notifier send (end to end)", med["notifier"]),
        ("notifier send, pipelining off", med["unpipelined"]),
        ("notifier send, DKIM-signed", med["dkim"]),
        (f"notifier send, {small_m:,} messages", med["small"]),
        (f"ceiling: bare aiosmtplib, {n} conn.", med["ceiling"]),
        ("plain smtplib loop (subset), 1 conn.", med["plain"]),
    ]
    label = "median of " + str(repeat) if repeat > 1 else "1 run"
    link = f", {rtt:g} ms round trip to it" if rtt else ""
    print(f"\nM = {m:,} apologies, N = {n} connections, one aiosmtpd sink process{link}; seconds: {label}\n")
    header = [
        "sender",
        "messages",
        "seconds",
        "messages/s",
        "× ceiling",
        "× plain loop",
        "CPU µs/msg",
        "peak MB",
    ]
    table = [header]
    for name, result in rows:
        r = rate(result)
        table.append([name, f"{result['messages']:,}", f"{result['seconds']:.2f}", f"{r:,.0f}",
                      f"{r / ceiling:.2f}", f"{r / plain:.1f}", f"{1e6 * result['cpu'] / result['messages']:,.0f}",
                      f"{result['peak_mb']:.0f}"])  # fmt: skip
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        cells = [
            cell.ljust(w) if j == 0 else cell.rjust(w)
            for j, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("| " + " | ".join(cells) + " |")
        if i == 0:
            print(
                "|"
                + "|".join("-" * (w + 2) if j == 0 else "-" * (w + 1) + ":" for j, w in enumerate(widths))
                + "|"
            )
    big, little = med["notifier"], med["small"]
    print(f"\npeak memory of notifier send: {little['peak_mb']:.0f} MB at {small_m:,}, {big['peak_mb']:.0f} MB at "
          f"{m:,} (×{big['peak_mb'] / little['peak_mb']:.2f} for ×{m / small_m:.0f} messages; "
          f"process after imports: {big['baseline_mb']:.0f} MB)")  # fmt: skip
    signing = 1e6 * (med["dkim"]["cpu"] / med["dkim"]["messages"] - med["notifier"]["cpu"] / med["notifier"]["messages"])
    print(f"DKIM signing: {signing:,.0f} µs of CPU per message more "
          f"({100 * signing / (1e6 * med['notifier']['cpu'] / med['notifier']['messages']):.0f} % of the rest)")
    for kind in ("notifier", "unpipelined", "dkim", "ceiling", "plain", "small"):
        seconds = ", ".join(f"{s:.2f}" for s in (run["seconds"] for run in runs[kind]))
        print(f"{kind}: every run's seconds: {seconds}; sink received: "
              + ", ".join(f"{run['received']:,}" for run in runs[kind]))  # fmt: skip
    for kind, expected in (("notifier", m), ("unpipelined", m), ("dkim", m), ("small", small_m)):
        for run in runs[kind]:
            # Besides the apologies, the resolve announces itself to the config's hotline target.
            sent_total = sum(states.get("sent", 0) for states in run["outbox"].values())
            ok = run["received"] == sent_total and run["outbox"].get("apology", {}).get("sent") == expected
            print(f"check {kind}: sink received {run['received']:,} ({expected:,} apologies), outbox {run['outbox']}, "
                  f"report {run['report']}, avg {run['avg_bytes']:,.0f} bytes/message: {'OK' if ok else 'MISMATCH'}")  # fmt: skip
    print(
        f"ceiling message size: {len(build_pool(1)[0]):,} bytes (a pool of {POOL:,} distinct messages, cycled)"
    )


if __name__ == "__main__":
    main()
