"""``run_intake`` as ``notifier serve`` runs it: the SMTP flavour of the listener (for an MX
pointed at notifier) and the Maildir poller; nothing to run when neither is configured."""

from __future__ import annotations

import asyncio
import re
import smtplib
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from notifier.bounces import verp
from notifier.bounces.intake import run_intake
from notifier.config import Config, load_config
from notifier.db import read_session
from notifier.models import Subscriber
from tests.bounce_samples import postfix_dsn, sent_row
from tests.conftest import SECRET, free_port, write_config

DOMAIN = "bounces.sfera-reporting.example"


@pytest.fixture
def backend() -> str:
    return "sqlite"


def status_of(engine: Any, subscriber: Subscriber) -> str:
    with read_session(engine) as session:
        return session.get(Subscriber, subscriber.id).status  # type: ignore[union-attr]


def configured(tmp_path: Path, database_url: str, **bounces: Any) -> Config:
    return load_config(write_config(tmp_path, database_url, bounces={"domain": DOMAIN, **bounces}))


async def until(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_the_smtp_listener_records_a_bounce_before_answering_250(
    tmp_path: Path,
    database_url: str,
    config_path: Path,
    engine: Any,
    make_subscriber: Callable[..., Subscriber],
) -> None:
    config = configured(tmp_path, database_url, listen=f"127.0.0.1:{free_port()}", protocol="smtp")
    dead = make_subscriber()
    address = verp.return_path(SECRET.encode(), sent_row(engine, dead), "bounces", DOMAIN)
    stop = asyncio.Event()
    task = asyncio.create_task(run_intake(engine, config, stop))
    host, port = config.bounces.listen_address  # type: ignore[misc]

    def deliver() -> tuple[int, bytes]:
        with smtplib.SMTP(host, port, timeout=20) as client:
            client.ehlo()
            client.mail("")
            refused = client.rcpt("postmaster@sfera-reporting.example")
            client.rset()
            client.sendmail("", [address], postfix_dsn(address, dead.email or ""))
            return refused

    await until(lambda: _listening(host, port), "the listener")
    code, _ = await asyncio.to_thread(deliver)
    assert code == 550  # not the bounce domain
    assert status_of(engine, dead) == "bounced"  # already recorded when sendmail returned
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_the_maildir_poller_reads_new_bounces_until_stopped(
    tmp_path: Path,
    database_url: str,
    config_path: Path,
    engine: Any,
    make_subscriber: Callable[..., Subscriber],
) -> None:
    maildir = tmp_path / "bounces"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    config = configured(tmp_path, database_url, maildir="bounces", poll_interval="0.2s")
    dead = make_subscriber()
    stop = asyncio.Event()
    task = asyncio.create_task(run_intake(engine, config, stop))
    (maildir / "new" / "1700000000.1.host").write_bytes(
        postfix_dsn("p@x.example", dead.email or "", message_id="<x@y>")
    )
    await until(lambda: status_of(engine, dead) == "bounced", "the poller to read the bounce")
    await until(lambda: list((maildir / "cur").iterdir()) != [], "the bounce to move to cur/")
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_intake_has_nothing_to_do_without_a_listener_or_a_maildir(config: Config, engine: Any) -> None:
    await asyncio.wait_for(run_intake(engine, config, asyncio.Event()), 5)


def _listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"domain": "not a domain"}, "[bounces].domain"),
        ({"listen": "2525"}, "host:port"),
        ({"protocol": "imap"}, "[bounces].protocol"),
        ({"local_part": "Bounces+x"}, "[bounces].local_part"),
        ({"ses_topic_arns": ["my-topic"]}, "SNS topic ARN"),
        ({"soft_bounce_threshold": 0}, "[bounces].soft_bounce_threshold"),
    ],
)
def test_bounces_config_mistakes_are_one_clear_line(
    tmp_path: Path, database_url: str, values: dict[str, Any], says: str
) -> None:
    from notifier.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(says)):
        load_config(write_config(tmp_path, database_url, bounces=values))


def test_a_listener_that_cannot_bind_says_where(
    tmp_path: Path, database_url: str, config_path: Path, engine: Any
) -> None:
    from notifier.errors import UsageError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = configured(tmp_path, database_url, listen=f"127.0.0.1:{taken.getsockname()[1]}")
        with pytest.raises(UsageError, match=r"\[bounces\].listen"):
            asyncio.run(run_intake(engine, config, asyncio.Event()))
