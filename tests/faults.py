"""Helpers for the fault-injection suite (tests/test_faults.py): a prepared apology mailing,
`notifier send` as a real subprocess, a throw-away PostgreSQL cluster the tests may stop and
start, and THE invariant every scenario ends with (:func:`check_invariant`).

The invariant, after a scenario (``drained``: nothing is left to send):

- every audience member has exactly one apology (none when they were no longer active when
  it was queued), and it is in a final state (sent / failed / cancelled; nothing queued,
  sending or retry);
- what the SMTP server received is a subset of the audience, and never a suppressed
  (unsubscribed or bounced) address;
- every copy of a message carries that outbox row's Message-ID, so a duplicate is the same
  message resent, never a second letter;
- duplicates at most ``max_duplicates`` recipients (the scenario's in-flight bound), at most
  ``max_copies`` copies each;
- nothing is marked sent that the server did not receive, and (drained) nothing the server
  received is recorded as anything but sent.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlmodel import select

from notifier import incidents
from notifier.composing import message_id
from notifier.config import Config
from notifier.db import make_engine, read_session, upgrade, write_session
from notifier.models import AudienceMember, Message, Subscriber, utcnow
from notifier.outbox.loading import instance_id
from notifier.sink import header_value
from tests import processes
from tests.conftest import PG_BIN, _as_postgres, free_port, mail_config
from tests.conftest import wait_until as conftest_wait_until

FINAL = {"sent", "failed", "cancelled"}
REGION = "66"


# -- a mailing ------------------------------------------------------------------------------


@dataclass
class Mailing:
    """One incident whose mailing of ``kind`` is queued (apologies: resolved; status: the first
    status notice, owed at declare); who should and should not get one."""

    engine: Any
    config: Config
    incident_id: int
    audience: set[str]  # e-mail addresses of the audience members
    suppressed: set[str]  # unsubscribed or bounced: must never receive anything
    env: dict[str, str] = field(default_factory=dict)  # for `python -m notifier` subprocesses
    kind: str = "apology"

    def states(self) -> Counter[str]:
        with read_session(self.engine) as session:
            return Counter(
                m.state
                for m in session.exec(
                    select(Message).where(Message.incident_id == self.incident_id, Message.kind == self.kind)
                )
            )

    def messages(self) -> dict[str, Message]:
        """The mailing's message per recipient address."""
        with read_session(self.engine) as session:
            rows = session.exec(
                select(Message).where(Message.incident_id == self.incident_id, Message.kind == self.kind)
            ).all()
        return {m.recipient: m for m in rows}


def mailing_config(directory: Path, database_url: str, smtp_port: int, **sections: Any) -> Config:
    """The shipped config with this scenario's SMTP port, no hotline targets, no status notices,
    small batches and a short heartbeat (a killed sender's messages come back within 2 s even
    if it were on another machine)."""
    # One reader in five reads English and the scenarios resolve in Russian only: they get the
    # Russian text rather than a held apology (the faults are about delivery, not translation).
    mailing = {"send_status_notices": False, "batch_size": 20, "heartbeat": "0.5s", "heartbeat_timeout": "2s",
               "fallback_locale": "ru", **sections.pop("mailing", {})}  # fmt: skip
    return mail_config(directory, database_url, smtp_port, mailing=mailing, **sections)


def prepare_mailing(
    engine: Any, config: Config, size: int, *, declare_only: bool = False, prefix: str = "m"
) -> Mailing:
    """``size`` active subscribers in the incident's region, plus the ones who must get nothing:
    2 unsubscribed and 2 bounced before the incident, 1 who unsubscribes after the apology is
    queued (its message must be cancelled), and 3 in other regions. Declared and resolved."""
    now = utcnow()
    numbers = count(1)

    def subscriber(email: str, region: str = REGION, status: str = "active") -> Subscriber:
        n = next(numbers)
        return Subscriber(
            external_id=f"{prefix.upper()}-{n:06d}", name=f"Абонент {n}", name_key=f"абонент {n}",
            email=email, email_key=email, phone=f"+7913{n:07d}", region=region, services=";tax-reporting;",
            locale="ru" if n % 5 else "en", status=status, created_at=now, updated_at=now,
        )  # fmt: skip

    audience = {f"{prefix}{n}@example.org" for n in range(1, size + 1)}
    suppressed = {f"{prefix}-unsub{n}@example.org" for n in (1, 2)} | {
        f"{prefix}-bounced{n}@example.org" for n in (1, 2)
    }
    late = f"{prefix}-late-unsub@example.org"
    with write_session(engine) as session:
        session.add_all([subscriber(address) for address in sorted(audience)])
        session.add_all(
            [
                subscriber(address, status="unsubscribed" if "unsub" in address else "bounced")
                for address in sorted(suppressed)
            ]
        )
        session.add(subscriber(late))
        session.add_all([subscriber(f"{prefix}-elsewhere{n}@example.org", region="77") for n in (1, 2, 3)])
    with write_session(engine) as session:
        ref = incidents.declare(session, config, title="Сбой отчётности", regions=[REGION]).incident.id
    if declare_only:
        with write_session(engine) as session:
            session.get(Subscriber, _subscriber_id(session, late)).status = "unsubscribed"  # type: ignore[union-attr]
    else:
        with write_session(engine) as session:
            incidents.resolve(session, config, ref, cause="Отказ сервера БД", measures="Резервный кластер")
        with write_session(engine) as session:
            session.get(Subscriber, _subscriber_id(session, late)).status = "unsubscribed"  # type: ignore[union-attr]
        audience.add(late)
    suppressed.add(late)  # after resolve, or (declare_only) unsubscribed before it: never written to
    env = {**os.environ, "NOTIFIER_CONFIG": str(config.path), "PYTHONUNBUFFERED": "1"}
    return Mailing(engine, config, ref, audience, suppressed, env)  # type: ignore[arg-type]


def _subscriber_id(session: Any, email: str) -> int:
    return session.exec(select(Subscriber.id).where(Subscriber.email == email)).one()


# -- the invariant --------------------------------------------------------------------------


@dataclass
class Outcome:
    copies: Counter[str]  # recipient -> copies received
    duplicates: dict[str, int]  # recipients received more than once -> copies
    states: Counter[str]


def check_invariant(
    mailing: Mailing,
    received: list[tuple[str, list[str], bytes]],
    *,
    max_duplicates: int = 0,
    max_copies: int = 2,
    drained: bool = True,
) -> Outcome:
    """Assert the suite's one invariant (see the module docstring); returns what it saw."""
    received = list(received)
    with read_session(mailing.engine) as session:
        members = set(
            session.exec(
                select(AudienceMember.subscriber_id).where(AudienceMember.incident_id == mailing.incident_id)
            ).all()
        )
        apologies = session.exec(
            select(Message).where(Message.incident_id == mailing.incident_id, Message.kind == mailing.kind)
        ).all()
        inactive = set(session.exec(select(Subscriber.id).where(Subscriber.status != "active")).all())
    per_member = Counter(m.subscriber_id for m in apologies)
    assert set(per_member) <= members, "an apology for someone outside the audience"
    assert members - set(per_member) <= inactive, "an active audience member without an apology"
    assert max(per_member.values(), default=1) == 1, f"a member has several apologies: {per_member}"
    by_address = {m.recipient: m for m in apologies}
    states = Counter(m.state for m in apologies)
    if drained:
        assert set(states) <= FINAL, f"not every apology reached a final state: {states}"

    domain = mailing.config.smtp.from_address.rpartition("@")[2]
    instance = instance_id(mailing.engine)
    copies: Counter[str] = Counter()
    for _, rcpts, raw in received:
        assert len(rcpts) == 1, f"one recipient per transaction, got {rcpts}"
        (rcpt,) = rcpts
        assert rcpt not in mailing.suppressed, f"a suppressed address received mail: {rcpt}"
        assert rcpt in by_address, f"{rcpt} is not in the audience"
        assert header_value(raw, "Message-ID") == message_id(by_address[rcpt].id, domain, instance), (  # type: ignore[arg-type]
            f"{rcpt} got a message that is not its outbox row's (another Message-ID)"
        )
        copies[rcpt] += 1
    assert set(copies) <= mailing.audience
    duplicates = {rcpt: n for rcpt, n in copies.items() if n > 1}
    assert len(duplicates) <= max_duplicates, f"{len(duplicates)} duplicated recipients > {max_duplicates}"
    assert max(copies.values(), default=1) <= max_copies, f"too many copies: {duplicates}"
    sent = {address for address, m in by_address.items() if m.state == "sent"}
    assert sent <= set(copies), f"marked sent but never received: {sorted(sent - set(copies))[:5]}"
    if drained:
        lying = {rcpt: by_address[rcpt].state for rcpt in copies if by_address[rcpt].state != "sent"}
        assert not lying, f"received but recorded as not sent: {lying}"
    return Outcome(copies, duplicates, states)


# -- processes ------------------------------------------------------------------------------


def start_send(mailing: Mailing, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`notifier send --json` in the background, stderr to ``log``."""
    return processes.start_send(env or mailing.env, log)


def run_send(mailing: Mailing, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return processes.run_send(env or mailing.env, timeout)


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.005) -> bool:
    return conftest_wait_until(predicate, timeout, step)


def one_line_error(stderr: str) -> None:
    """A NotifierError is one human line on stderr: no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "no error message at all"


# -- a PostgreSQL cluster this module owns (so it may stop it) -------------------------------


class OwnCluster:
    """Like conftest's ``pg_cluster``, but keeps its data dir so a test can stop and start it."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="notifier-faults-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        self.data, self.port = self.base / "data", free_port()
        self._n = count(1)
        subprocess.run(
            _as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        self.start()

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        options = (
            f"-k {self.base} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                          str(self.base / "log"), "-w", "-t", "30", *args]),
            check=check, capture_output=True, timeout=60,
        )  # fmt: skip

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "stop")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        name = f"faults{next(self._n)}"
        admin = create_engine(self.url("postgres").replace("postgresql://", "postgresql+psycopg://"),
                              isolation_level="AUTOCOMMIT")  # fmt: skip
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        engine = make_engine(self.url(name))
        upgrade(engine)
        engine.dispose()
        return self.url(name)

    def destroy(self) -> None:
        self._pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(self.base, ignore_errors=True)


def in_flight_bound(config: Any, data_delay: float | None) -> int:
    """How many messages one crash may leave sent but unrecorded: one per connection being
    sent, plus what the connections can send in one recording interval of the sender."""
    from notifier.delivery.sender import RECORD_BATCH, RECORD_INTERVAL

    connections = config.smtp.connections
    per_interval = RECORD_BATCH if not data_delay else math.ceil(connections / data_delay * RECORD_INTERVAL)
    return connections + min(per_interval, RECORD_BATCH)
