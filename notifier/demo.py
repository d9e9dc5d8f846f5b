"""`notifier demo`: the Kontur case end to end, on SQLite and a local sink, with no setup.

Owns writing a throw-away project (config, subscribers CSV, database) in a directory,
and driving the real pieces through it: import, declare, update, send the status
notices, resolve with a cause and measures, send the apologies. A few subscribers have only
a phone number: they get their notices and apology by SMS, through the demo's stand-in for
Kannel (``sms_sink``; it sends nothing to any phone), and its delivery reports come back to
the real web app, run here on a free port. It adds no behaviour of its own: everything it
does, a user can do with the CLI and ``notifier serve``.
"""

from __future__ import annotations

import asyncio
import csv
import email
import email.policy
import os
import random
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from notifier import incidents, outbox, subscribers
from notifier.config import load_config
from notifier.db import make_engine, read_session, upgrade, write_session
from notifier.delivery.sender import SendReport, send_due
from notifier.errors import NotifierError
from notifier.models import utcnow
from notifier.outbox.sms import sms_counts
from notifier.sink import Sink
from notifier.sms_sink import KannelStandIn

# Subscribers per region, roughly: a few large regions, many small ones.
REGION_WEIGHTS = {
    "77": 30, "50": 15, "78": 12, "16": 6, "63": 5, "02": 4, "66": 4, "74": 4, "72": 2,
    "55": 2, "54": 3, "24": 3, "38": 2, "14": 1, "25": 2, "41": 1, "39": 2,
}  # fmt: skip
SERVICE_MIXES = [
    ("tax-reporting",), ("tax-reporting", "fund-reporting"), ("tax-reporting", "statistics"),
    ("tax-reporting", "edo"), ("edo",), ("fund-reporting",),
]  # fmt: skip
SERVICE_WEIGHTS = [40, 25, 10, 10, 8, 7]
FIRST = ["Александр", "Елена", "Дмитрий", "Ольга", "Сергей", "Наталья", "Андрей", "Ирина", "Алексей", "Татьяна",
         "Михаил", "Светлана", "Павел", "Марина", "Николай", "Юлия"]  # fmt: skip
LAST = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов", "Новиков",
        "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров"]  # fmt: skip
FEMININE = {"Елена", "Ольга", "Наталья", "Ирина", "Татьяна", "Светлана", "Марина", "Юлия"}
# The case's own words; the mailing benchmark resolves its incident with them too, so that it
# sends the very apology the demo shows.
CASE_TITLE = "Не отправляются отчёты в ФНС"
CASE_MESSAGE = "Отчёты в ФНС из Свердловской и Новосибирской областей не уходят. Мы уже разбираемся."
CASE_CAUSE = (
    "Отказал дисковый массив основного сервера баз данных, а автоматическое переключение "
    "на резервный сервер не сработало из-за ошибки в его настройке."
)
# The same in English, for the readers whose language is English (a letter is wholly in its
# reader's language: without these their apologies would wait for the texts).
CASE_EN = {
    "title": "Reports to the tax service are not going out",
    "message": "Reports to the tax service from Sverdlovsk and Novosibirsk oblasts are not going out. We are on it.",
    "update": "Cause found: a database server failed. We are switching to the standby.",
    "cause": "The disk array of the main database server failed, and the automatic switch to the standby "
             "server did not work because of a mistake in its settings.",
    "measures": "We moved the database to the standby server and recovered every report sent during the "
                "outage: they have reached the tax service. We fixed the switch-over settings and added a "
                "daily check of the standby server.",
}  # fmt: skip
CASE_MEASURES = (
    "Перевели базу на резервный сервер и восстановили все отчёты, отправленные во время "
    "сбоя: они ушли в ФНС. Исправили настройку автоматического переключения и добавили "
    "ежедневную проверку резервного сервера."
)


SMS_USER, SMS_PASSWORD_ENV = "notifier", "NOTIFIER_DEMO_SMS_PASSWORD"


def write_subscribers_csv(
    path: Path, count: int, regions: list[str], *, seed: int = 7, phone_only_every: int = 0
) -> None:
    """A realistic subscriber list: Russian names, skewed regions, mixed services; every
    ``phone_only_every``-th subscriber (0: none) has a phone number and no e-mail."""
    rng = random.Random(seed)
    codes = [code for code in REGION_WEIGHTS if code in regions] or regions
    weights = [REGION_WEIGHTS.get(code, 1) for code in codes]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["external_id", "name", "email", "phone", "region", "services", "locale"])
        for n in range(1, count + 1):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            surname = last + "а" if first in FEMININE else last
            services = ";".join(rng.choices(SERVICE_MIXES, SERVICE_WEIGHTS)[0])
            locale = "en" if rng.random() < 0.08 else "ru"
            address = "" if phone_only_every and n % phone_only_every == 0 else f"client{n}@example.org"
            writer.writerow([
                f"{7700000000 + n}", f"{first} {surname}", address, f"+7 912 {n:07d}",
                rng.choices(codes, weights)[0], services, locale,
            ])  # fmt: skip


def write_demo_config(
    directory: Path, smtp_port: int, *, database_url: str | None = None, connections: int | None = None,
    send_status_notices: bool = True, sms: tuple[str, str] | None = None,
) -> Path:  # fmt: skip
    """Write ``directory/config.toml``: the example config.toml of this checkout, sending to a
    local sink on ``smtp_port`` with the shipped templates; the demo and the benchmarks use it.

    ``database_url`` (default: ``notifier.db`` next to the config), ``connections`` (default:
    the example's) and ``send_status_notices`` override the example's values; ``sms`` (a
    sendsms URL and the web's base URL for delivery reports) adds an ``[sms]`` section with
    no quiet hours (the demo runs at any hour). NotifierError if
    the example config is missing or no longer has a line this replaces.
    """
    root = Path(__file__).resolve().parent.parent
    template = root / "config.toml"
    if not template.exists():
        raise NotifierError(
            f"the demo needs the example config at {template}: install notifier with `pip install -e .`"
        )
    text = template.read_text(encoding="utf-8")
    replacements = []
    if database_url is not None:
        replacements.append(('database = "sqlite:///notifier.db"', f'database = "{database_url}"'))
    replacements.append(("port = 1025", f"port = {smtp_port}"))
    if connections is not None:
        replacements.append(("connections = 8", f"connections = {connections}"))
    if not send_status_notices:
        replacements.append(("send_status_notices = true", "send_status_notices = false"))
    replacements.append(("[notifier]\n", f'[notifier]\ntemplates = "{root / "templates"}"\n'))
    for old, new in replacements:
        if old not in text:
            raise NotifierError(f"{template} has no {old!r} to replace (the demo config is made from it)")
        text = text.replace(old, new, 1)
    if sms is not None:
        sendsms, web = sms
        text += (f'\n[sms]\ngateway = "kannel"\nsender = "Sfera"\nquiet_hours = ""\nreport_base_url = "{web}"\n'
                 f'kannel = {{ url = "{sendsms}", username = "{SMS_USER}", password_env = "{SMS_PASSWORD_ENV}" }}\n')  # fmt: skip
    path = directory / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class DemoResult:
    directory: Path
    incident: str
    affected: int
    active: int
    status_sent: int
    apologies_sent: int
    mail_dir: Path
    sample_apology: str
    sms_sent: int = 0
    sms_delivered: int = 0
    sample_sms: str = ""
    sms_file: Path | None = None


@contextmanager
def _web(sock: socket.socket, config: Any, engine: Any) -> Iterator[None]:
    """The real web app (delivery reports, letters) under uvicorn on ``sock``, in a thread."""
    import uvicorn

    from notifier.web import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(config, engine), log_level="warning", lifespan="off",
                                           access_log=False))  # fmt: skip
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def run_demo(directory: Path | None, *, count: int = 4000, say: Callable[[str], None] = print) -> DemoResult:
    """Run the whole case; ``say`` receives one line per step."""
    directory = Path(directory or tempfile.mkdtemp(prefix="notifier-demo-")).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if os.environ.get("NOTIFIER_SECRET", "") == "":
        os.environ["NOTIFIER_SECRET"] = secrets.token_urlsafe(24)
        say("NOTIFIER_SECRET was not set: using a random one for this demo (it signs unsubscribe links).")
    os.environ.setdefault(SMS_PASSWORD_ENV, secrets.token_urlsafe(12))
    mail_dir, sock = directory / "mail", _listening()
    web = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with Sink(mail_dir) as sink, KannelStandIn(directory, username=SMS_USER,
                                               password=os.environ[SMS_PASSWORD_ENV]) as phones:  # fmt: skip
        config = load_config(write_demo_config(directory, sink.port, sms=(phones.url, web)))
        engine = make_engine(config.database_url)
        upgrade(engine)
        say(f"Project in {directory}: config.toml, notifier.db; SMTP sink on 127.0.0.1:{sink.port}; "
            f"SMS to the demo's stand-in for Kannel on 127.0.0.1:{phones.port} (no phone gets anything); web on {web}.")  # fmt: skip
        with _web(sock, config, engine):
            result, sent = _case(directory, engine, config, count, say)
            sink.wait_for(sent - len(phones.messages), timeout=10)
            result.sms_delivered = _wait_delivered(engine, len(phones.messages))
        with read_session(engine) as session:
            counts = outbox.counts(session, incidents.parse_ref(result.incident))
        say(f"Outbox for {result.incident}: {counts}")
    engine.dispose()
    result.sample_apology, result.mail_dir = _sample_apology(mail_dir), mail_dir
    result.sms_sent, result.sms_file = len(phones.messages), directory / "sms.txt"
    result.sample_sms = next((m.text for m in reversed(phones.messages) if "/letters/" in m.text), "")
    say(f"{sink.messages} e-mails stored as .eml files in {mail_dir}; {result.sms_sent} SMS in "
        f"{result.sms_file}, {result.sms_delivered} of them reported delivered to {web}/sms/reports/…")  # fmt: skip
    return result


def _wait_delivered(engine: Any, expected: int, timeout: float = 10) -> int:
    """How many SMS delivery reports said "delivered", once all ``expected`` have (or time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        with read_session(engine) as session:
            delivered = sum(row.get("delivered", 0) for row in sms_counts(session).values())
        if delivered >= expected or time.monotonic() > deadline:
            return delivered
        time.sleep(0.05)


def _case(
    directory: Path, engine: Any, config: Any, count: int, say: Callable[[str], None]
) -> tuple[DemoResult, int]:
    """Import, declare, update, send, resolve, send: the result, and how many messages went."""
    csv_path = directory / "subscribers.csv"
    write_subscribers_csv(csv_path, count, list(config.regions), phone_only_every=40)
    report = subscribers.import_csv(engine, config, csv_path)
    say(f"Imported {report.imported} subscribers from {csv_path.name} across {len(config.regions)} regions "
        "(one in 40 has only a phone number).")  # fmt: skip
    now = utcnow()
    started = now - timedelta(hours=5, minutes=7)
    with write_session(engine) as session:
        declared = incidents.declare(
            session, config, title=CASE_TITLE, regions=["66", "54"], services=["tax-reporting"], severity="major",
            started_at=started, by="дежурный инженер", message=CASE_MESSAGE, now=started + timedelta(minutes=12),
            texts={"en": {"title": CASE_EN["title"], "message": CASE_EN["message"]}},
        )  # fmt: skip
        active = incidents.active_subscribers(session)
    ref = declared.incident.ref
    say(f"Declared {ref}: tax-reporting down in regions 66 (UTC+5) and 54 (UTC+7): "
        f"{declared.affected} of {active} subscribers affected ({100 * declared.affected / active:.1f} %).")  # fmt: skip
    with write_session(engine) as session:
        incidents.post_update(
            session, config, ref, status="identified", by="дежурный инженер", now=started + timedelta(minutes=40),
            message="Причина найдена: отказал сервер баз данных. Переключаем на резервный.",
            texts={"en": {"message": CASE_EN["update"]}},
        )  # fmt: skip
    sent = asyncio.run(send_due(engine, config))
    say(f"Status notices: {_sent(sent, 'status')} sent by e-mail and SMS (only the newest notice per subscriber "
        f"goes out); hotline announcements: {_sent(sent, 'hotline')} sent to the call centre.")  # fmt: skip
    with write_session(engine) as session:
        resolved = incidents.resolve(session, config, ref, by="дежурный инженер", resolved_at=now,
                                     cause=CASE_CAUSE, measures=CASE_MEASURES,
                                     texts={"en": {"cause": CASE_EN["cause"], "measures": CASE_EN["measures"]}})  # fmt: skip
    say(f"Resolved {ref} after 5 h 7 min; {(resolved.queued or {}).get('apology', 0)} apologies queued "
        f"(e-mail and SMS); compensation by policy: {resolved.incident.compensation_days} days.")  # fmt: skip
    apologies = asyncio.run(send_due(engine, config))
    say(f"Apologies: {_sent(apologies, 'apology')} sent.")
    result = DemoResult(directory, ref, declared.affected, active, _sent(sent, "status"),
                        _sent(apologies, "apology"), directory / "mail", "")  # fmt: skip
    return result, sent.sent + apologies.sent


def _sent(report: SendReport, kind: str) -> int:
    return sum(counts["sent"] for (_, k), counts in report.mailings.items() if k == kind)


def _sample_apology(mail_dir: Path) -> str:
    """The text part of one Russian apology from region 66, as the reader sees it."""
    for path in sorted(mail_dir.glob("*.eml"), reverse=True):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        body = message.get_body(("plain",))
        text = body.get_content() if body else ""
        if "извин" in str(message["Subject"]).lower() and "Екатеринбург" in text:
            return f"From: {message['From']}\nTo: {message['To']}\nSubject: {message['Subject']}\n\n{text}"
    return ""
