"""With a real Postfix in between: bounces Postfix itself generates come back to the VERP
return path, through a transport map, into notifier's LMTP listener; so do complaint reports
and auto-replies sent to the bounce domain; a DKIM-signed letter relayed by Postfix still
verifies. Postfix relays to a scripted aiosmtpd server on 127.0.0.1 that refuses some
addresses (550) and puts others off (450)."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dkim
import pytest
from sqlalchemy import select

from notifier.bounces import verp
from notifier.bounces.intake import run_intake
from notifier.config import Config, load_config
from notifier.db import read_session
from notifier.delivery.dkim import DkimSigner, dns_record, generate_key
from notifier.models import Subscriber, SuppressionEvent
from tests import postfix
from tests.bounce_samples import arf_report, out_of_office, sent_row
from tests.conftest import SECRET, free_port, write_config
from tests.smtp_server import ScriptedSmtpServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not postfix.available(), reason="Postfix is not installed (apt-get install postfix)"),
]
DOMAIN = "bounces.sfera-reporting.example"


@pytest.fixture
def backend() -> str:
    """Postfix is what is under test here; the suppression list runs on both databases elsewhere."""
    return "sqlite"


@pytest.fixture
def lmtp_config(tmp_path: Path, database_url: str, config_path: Path) -> Config:
    listen = f"127.0.0.1:{free_port()}"
    return load_config(
        write_config(tmp_path, database_url, bounces={"domain": DOMAIN, "listen": listen, "protocol": "lmtp"})
    )


@contextmanager
def intake(engine: Any, config: Config) -> Iterator[None]:
    """``run_intake`` in an event loop of its own, as ``notifier serve`` runs it."""
    loop, ready = asyncio.new_event_loop(), threading.Event()
    holder: dict[str, asyncio.Event] = {}

    async def main() -> None:
        holder["stop"] = asyncio.Event()
        ready.set()
        await run_intake(engine, config, holder["stop"])

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    host, port = config.bounces.listen_address  # type: ignore[misc]
    deadline = time.monotonic() + 10
    while socket.socket().connect_ex((host, port)) != 0:
        assert time.monotonic() < deadline and thread.is_alive(), "the bounce listener did not start"
        time.sleep(0.05)
    try:
        yield
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
        loop.close()


@pytest.fixture
def relay() -> Iterator[ScriptedSmtpServer]:
    with ScriptedSmtpServer(hostname="relay.test") as server:
        server.on(
            "RCPT",
            "dead@example.org",
            "550 5.1.1 <dead@example.org>: Recipient address rejected: no such user",
        )
        server.on("RCPT", "busy@example.org", "450 4.2.1 <busy@example.org>: mailbox busy, try later")
        yield server


@pytest.fixture
def mta(relay: ScriptedSmtpServer, lmtp_config: Config, engine: Any) -> Iterator[postfix.PostfixServer]:
    _, port = lmtp_config.bounces.listen_address  # type: ignore[misc]
    transports = {DOMAIN: f"lmtp:[127.0.0.1]:{port}"}
    with (
        intake(engine, lmtp_config),
        postfix.PostfixServer(relay_port=relay.port, transports=transports, delay_warning="1s") as server,
    ):
        yield server


def letter(to: str, row: int) -> bytes:
    return (
        f"From: Sfera Reporting <noreply@sfera-reporting.example>\r\nTo: {to}\r\nSubject: Apology\r\n"
        f"Date: Tue, 01 Dec 2026 14:10:00 +0000\r\nMessage-ID: <notifier.{row}.0f3a9c@sfera-reporting.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nWe are sorry.\r\n"
    ).encode()


def submit(mta: postfix.PostfixServer, sender: str, recipient: str, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", mta.port, timeout=30) as client:
        client.sendmail(sender, [recipient], data)


def events_of(engine: Any, subscriber: Subscriber) -> list[SuppressionEvent]:
    with read_session(engine) as session:
        query = (
            select(SuppressionEvent)
            .where(SuppressionEvent.subscriber_id == subscriber.id)
            .order_by(SuppressionEvent.id)
        )
        return list(session.execute(query).scalars())


def status_of(engine: Any, subscriber: Subscriber) -> str:
    with read_session(engine) as session:
        return session.get(Subscriber, subscriber.id).status  # type: ignore[union-attr]


def return_path(row: int) -> str:
    return verp.return_path(SECRET.encode(), row, "bounces", DOMAIN)


def test_a_dsn_postfix_generates_marks_the_subscriber_bounced_with_its_status_code(
    mta: postfix.PostfixServer, engine: Any, make_subscriber: Callable[..., Subscriber]
) -> None:
    dead, fine = make_subscriber(email="dead@example.org"), make_subscriber(email="fine@example.org")
    submit(mta, return_path(sent_row(engine, dead)), "dead@example.org", letter("dead@example.org", 1))
    submit(mta, return_path(sent_row(engine, fine)), "fine@example.org", letter("fine@example.org", 2))
    mta.wait_for(lambda: events_of(engine, dead), what="Postfix's DSN to reach the listener")
    [event] = events_of(engine, dead)
    assert (event.kind, event.code, event.source) == ("hard_bounce", "5.1.1", "lmtp")
    assert "no such user" in event.detail
    assert status_of(engine, dead) == "bounced"
    assert "status=sent" in mta.log and f"to=<{return_path(event.message_id)}>" in mta.log  # type: ignore[arg-type]
    assert status_of(engine, fine) == "active" and events_of(engine, fine) == []


def test_a_postfix_delay_notice_counts_as_a_soft_bounce_not_a_hard_one(
    mta: postfix.PostfixServer, engine: Any, make_subscriber: Callable[..., Subscriber]
) -> None:
    busy = make_subscriber(email="busy@example.org")
    row = sent_row(engine, busy)
    submit(mta, return_path(row), "busy@example.org", letter("busy@example.org", row))
    mta.wait_for(lambda: events_of(engine, busy), what="Postfix's delay notice", timeout=90)
    [event] = events_of(engine, busy)
    assert (event.kind, event.code, event.message_id) == ("soft_bounce", "4.2.1", row)
    assert status_of(engine, busy) == "active"


def test_a_complaint_report_unsubscribes_and_an_out_of_office_reply_changes_nothing(
    mta: postfix.PostfixServer, engine: Any, make_subscriber: Callable[..., Subscriber]
) -> None:
    angry, away = make_subscriber(), make_subscriber()
    angry_path, away_path = return_path(sent_row(engine, angry)), return_path(sent_row(engine, away))
    submit(
        mta, "feedback@mail.example.net", "fbl@" + DOMAIN, arf_report(angry.email or "", mail_from=angry_path)
    )
    submit(mta, "", away_path, out_of_office(away.email or "", away_path))
    mta.wait_for(
        lambda: events_of(engine, angry) and events_of(engine, away), what="the report and the reply"
    )
    assert [e.kind for e in events_of(engine, angry)] == ["complaint"]
    assert status_of(engine, angry) == "unsubscribed"
    assert [e.kind for e in events_of(engine, away)] == ["auto_reply"]
    assert status_of(engine, away) == "active"


def test_the_listener_refuses_recipients_outside_the_bounce_domain(
    mta: postfix.PostfixServer, lmtp_config: Config
) -> None:
    host, port = lmtp_config.bounces.listen_address  # type: ignore[misc]
    with smtplib.LMTP(host, port) as client:
        client.ehlo()  # LHLO, in LMTP
        client.mail("")
        code, reply = client.rcpt("someone@sfera-reporting.example")
    assert code == 550 and DOMAIN in reply.decode()


def test_a_dkim_signed_letter_relayed_by_postfix_verifies(
    mta: postfix.PostfixServer, relay: ScriptedSmtpServer, engine: Any
) -> None:
    key = generate_key()
    signer = DkimSigner("sfera-reporting.example", "s2026", key)
    record = dns_record(key).encode()
    submit(mta, return_path(1), "fine@example.org", signer.sign(letter("fine@example.org", 1)))
    mta.wait_for(lambda: relay.received, what="the relay to receive the letter")
    _, _, data = relay.received[0]
    assert b"Received:" in data and b"DKIM-Signature:" in data
    assert dkim.verify(
        data,
        dnsfunc=lambda name, timeout=5: (
            record if name == b"s2026._domainkey.sfera-reporting.example." else None
        ),
    )


def test_end_to_end_serve_sends_through_postfix_and_reads_its_bounce_back(
    relay: ScriptedSmtpServer, tmp_path: Path, database_url: str, engine: Any,
    make_subscriber: Callable[..., Subscriber], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The whole path with nothing stubbed: `notifier serve` sends the apologies, DKIM-signed with a
    VERP return path, to a real Postfix; Postfix relays them, gets a 550 for one address and
    sends its own DSN to the return path; the transport map hands it to serve's LMTP listener;
    the subscriber is bounced with the DSN's code, and the next incident does not write to them."""
    from notifier.delivery import dkim as signing
    from tests.conftest import declare_and_resolve, mail_config, recipients, wait_until
    from tests.processes import ServeProcess

    key = signing.generate_key(2048)
    monkeypatch.setenv("TEST_DKIM_KEY", signing.private_pem(key).decode())
    listen_port = free_port()
    with postfix.PostfixServer(relay_port=relay.port, transports={DOMAIN: f"lmtp:[127.0.0.1]:{listen_port}"}) as mta:
        cfg = mail_config(
            tmp_path / "serve", database_url, mta.port,
            smtp={"dkim_domain": "sfera-reporting.example", "dkim_selector": "n1", "dkim_key_env": "TEST_DKIM_KEY"},
            bounces={"domain": DOMAIN, "listen": f"127.0.0.1:{listen_port}", "protocol": "lmtp"},
            mailing={"send_status_notices": False},
            serve={"tick": "0.2s", "housekeeping": "0.5s", "shutdown_grace": "10s"},
        )  # fmt: skip
        dead = make_subscriber(region="66", email="dead@example.org")
        alive = [make_subscriber(region="66") for _ in range(3)]
        daemon = ServeProcess(cfg, tmp_path / "serve.log")
        try:
            daemon.wait_started()
            declare_and_resolve(engine, cfg, ["66"])
            wait_until(lambda: len(relay.received) >= 3, 60)
            mta.wait_for(lambda: status_of(engine, dead) == "bounced", what="the DSN to mark dead@ bounced")
        finally:
            assert daemon.stop() == 0
        assert recipients(relay) == {s.email: 1 for s in alive}
        (event,) = [e for e in events_of(engine, dead) if e.kind == "hard_bounce"]
        assert event.code == "5.1.1" and event.message_id is not None
        record = signing.dns_record(key).encode()
        for _, _, raw in relay.received:  # signed by notifier, relayed by Postfix: still valid
            assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: record)
        assert "Traceback" not in daemon.text()

    relay.received.clear()
    with postfix.PostfixServer(relay_port=relay.port) as mta:
        again = mail_config(tmp_path / "again", database_url, mta.port, mailing={"send_status_notices": False},
                            bounces={"domain": DOMAIN}, smtp={"dkim_domain": ""})  # fmt: skip
        from notifier.delivery.sender import send_due

        declare_and_resolve(engine, again, ["66"])
        assert asyncio.run(send_due(engine, again)).sent == 3
        mta.wait_for(lambda: len(relay.received) >= 3, what="the second incident's apologies")
    assert "dead@example.org" not in recipients(relay)  # the suppressed get nothing
