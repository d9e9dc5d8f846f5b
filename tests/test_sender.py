"""The sender end to end against a real SMTP server on 127.0.0.1: who gets what, how
often, and what each kind of server reply does to the outbox."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from notifier import incidents
from notifier.bounces import verp
from notifier.db import read_session, write_session
from notifier.delivery.sender import send_due
from notifier.errors import DeliveryError
from notifier.models import Message, Subscriber
from tests.conftest import declare_and_resolve, mail_config, recipients
from tests.smtp_server import ScriptedSmtpServer


def _config_for(config: Any, server: Any, tmp_path: Path, name: str = "sending", **sections: Any) -> Any:
    return mail_config(tmp_path / name, config.notifier.database, server.port, **sections)


def _states(engine: Any, kind: str) -> Counter[str]:
    with read_session(engine) as session:
        return Counter(m.state for m in session.exec(select(Message).where(Message.kind == kind)))


def test_exactly_the_audience_gets_the_apology_once_each(
    engine, config, make_subscriber, smtp_server, tmp_path
) -> None:
    cfg = _config_for(config, smtp_server, tmp_path, mailing={"send_status_notices": False})
    affected = {make_subscriber(region=r).email for r in ["66", "66", "54"]}
    for region in ["77", "25"]:
        make_subscriber(region=region)
    make_subscriber(region="66", status="unsubscribed")
    declare_and_resolve(engine, cfg, ["66", "54"])

    report = asyncio.run(send_due(engine, cfg))

    assert report.sent == 3
    assert recipients(smtp_server) == Counter({address: 1 for address in affected})
    assert asyncio.run(send_due(engine, cfg)).sent == 0  # a second run sends nothing again


def test_only_the_newest_status_notice_goes_out(
    engine, config, make_subscriber, smtp_server, tmp_path
) -> None:
    cfg = _config_for(config, smtp_server, tmp_path)
    make_subscriber(region="66")
    with write_session(engine) as session:
        ref = incidents.declare(
            session, cfg, title="Сбой", regions=["66"], message="Ищем причину"
        ).incident.id
    with write_session(engine) as session:
        incidents.post_update(session, cfg, ref, status="identified", message="Причина: отказ диска")
    asyncio.run(send_due(engine, cfg))
    assert len(smtp_server.received) == 1
    body = email.message_from_bytes(smtp_server.received[0][2], policy=email.policy.default)
    assert "Причина: отказ диска" in body.get_body(("plain",)).get_content()


def test_sent_message_is_proper_mime_with_unsubscribe(
    engine, config, make_subscriber, smtp_server, tmp_path
) -> None:
    cfg = _config_for(config, smtp_server, tmp_path, mailing={"send_status_notices": False})
    make_subscriber(region="66", name="Ольга Смирнова", email="olga@example.org")
    declare_and_resolve(engine, cfg, ["66"])
    asyncio.run(send_due(engine, cfg))
    ((mail_from, rcpts, raw),) = smtp_server.received
    assert rcpts == ["olga@example.org"]
    with read_session(engine) as session:
        (row,) = session.exec(select(Message).where(Message.kind == "apology")).all()
    # VERP: the envelope sender names the outbox row, signed, so a bounce days later finds it.
    assert verp.parse(cfg.secret(), mail_from, "bounces", cfg.bounces.domain) == row.id
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["From"].addresses[0].addr_spec == cfg.smtp.from_address
    assert message["List-Id"] == "Sfera Reporting <outage-notices.sfera-reporting.example>"
    assert message["Precedence"] == "bulk" and message["Auto-Submitted"] == "auto-generated"
    assert message["Feedback-ID"] == "apology:notifier:sfera-reporting.example"
    assert str(message["To"]) == "Ольга Смирнова <olga@example.org>"
    assert "извин" in str(message["Subject"]).lower()
    assert message["List-Unsubscribe"].startswith(f"<{cfg.notifier.public_base_url}/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Message-ID"].startswith("<notifier.") and message["Date"]
    assert {p.get_content_type() for p in message.walk()} >= {"text/plain", "text/html"}
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_temporary_failures_are_retried_until_delivered(
    engine, config, make_subscriber, smtp_server, tmp_path
) -> None:
    cfg = _config_for(config, smtp_server, tmp_path, mailing={"send_status_notices": False})
    addresses = {make_subscriber(region="66").email for _ in range(8)}
    smtp_server.on("DATA", "*", "451 4.3.0 Try again later", times=5)
    smtp_server.on("RCPT", "*", "450 4.2.1 Mailbox busy, try later", times=3)
    declare_and_resolve(engine, cfg, ["66"])

    report = asyncio.run(send_due(engine, cfg))

    assert report.sent == 8 and report.failed == 0 and report.retried >= 5
    assert recipients(smtp_server) == Counter({address: 1 for address in addresses})
    assert _states(engine, "apology") == Counter({"sent": 8})


def test_permanent_refusal_fails_and_bounces_only_that_recipient(
    engine, config, make_subscriber, smtp_server, tmp_path
) -> None:
    cfg = _config_for(config, smtp_server, tmp_path, mailing={"send_status_notices": False})
    good = [make_subscriber(region="66") for _ in range(4)]
    bad = make_subscriber(region="66", email="nobody@example.org")
    smtp_server.on("RCPT", "nobody@example.org", "550 5.1.1 No such user")
    declare_and_resolve(engine, cfg, ["66"])

    report = asyncio.run(send_due(engine, cfg))
    assert report.sent == 4 and report.bounced == 1
    assert recipients(smtp_server) == Counter({s.email: 1 for s in good})
    with read_session(engine) as session:
        assert session.get(Subscriber, bad.id).status == "bounced"
        failed = session.exec(select(Message).where(Message.subscriber_id == bad.id)).one()
        assert failed.state == "failed" and "550" in failed.last_error and failed.attempts == 1
    assert asyncio.run(send_due(engine, cfg)).sent == 0  # never retried


def test_authentication_failure_stops_the_run_and_bounces_nobody(
    engine, config, make_subscriber, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    with ScriptedSmtpServer(auth={"notifier": "right"}) as server:
        cfg = _config_for(config, server, tmp_path, smtp={"username": "notifier", "password_env": "TEST_SMTP_PASSWORD"},
                          mailing={"send_status_notices": False})  # fmt: skip
        for _ in range(3):
            make_subscriber(region="66")
        declare_and_resolve(engine, cfg, ["66"])
        with pytest.raises(DeliveryError, match="(?i)auth"):
            asyncio.run(send_due(engine, cfg))
        assert server.received == []
    with read_session(engine) as session:
        assert {s.status for s in session.exec(select(Subscriber))} == {"active"}
        assert {(m.state, m.attempts) for m in session.exec(select(Message))} <= {("queued", 0), ("retry", 0)}


def test_send_cli_exit_code_and_summary(engine, config, make_subscriber, smtp_server, tmp_path, cli) -> None:
    cfg = _config_for(config, smtp_server, tmp_path, mailing={"send_status_notices": False})
    make_subscriber(region="66")
    make_subscriber(region="66", email="gone@example.org")
    smtp_server.on("RCPT", "gone@example.org", "550 5.1.1 No such user")
    declare_and_resolve(engine, cfg, ["66"])
    result = cli("send", "--json", config=cfg.path)
    assert result.exit_code == 1  # something failed permanently
    assert result.json()["sent"] == 1 and result.json()["bounced"] == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_sender_killed_mid_run_loses_nothing_and_duplicates_only_in_flight(
    engine, config, make_subscriber, smtp_server, tmp_path
) -> None:
    cfg = _config_for(config, smtp_server, tmp_path, mailing={"send_status_notices": False, "batch_size": 20})
    for _ in range(120):
        make_subscriber(region="66")
    declare_and_resolve(engine, cfg, ["66"])
    smtp_server.on("DATA", "*", delay=0.02)  # slow enough to kill it mid-mailing

    env = {**os.environ, "NOTIFIER_CONFIG": str(cfg.path)}
    proc = subprocess.Popen([sys.executable, "-m", "notifier", "send"], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while len(smtp_server.received) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 0 < len(smtp_server.received) < 120

    # At once: a sender on this machine whose process is gone has its messages taken back.
    restarted = time.monotonic()
    restart = subprocess.run(
        [sys.executable, "-m", "notifier", "send"], env=env, capture_output=True, text=True, timeout=60
    )
    assert restart.returncode == 0, restart.stderr
    assert "taken back" in restart.stderr and "from a sender that stopped" in restart.stderr
    assert time.monotonic() - restarted < 20  # not after a heartbeat timeout of minutes

    counts = recipients(smtp_server)
    assert len(counts) == 120  # nobody lost
    duplicates = [address for address, n in counts.items() if n > 1]
    # Only what was in flight when it died: on a connection, or sent in the last recording
    # interval (0.1 s at most 4 connections / 0.02 s = 200 messages/s: 20) and not yet recorded.
    assert len(duplicates) <= cfg.smtp.connections + 20
    assert max(counts.values()) <= 2
    ids: dict[str, set[str]] = {}
    for _, rcpts, raw in smtp_server.received:
        ids.setdefault(rcpts[0], set()).add(email.message_from_bytes(raw)["Message-ID"])
    assert all(len(ids[address]) == 1 for address in duplicates)  # a resend is the same message
    assert _states(engine, "apology") == Counter({"sent": 120})


def test_names_and_titles_cannot_inject_headers(engine, config, make_subscriber, smtp_server, tmp_path) -> None:
    from sqlalchemy import update

    from notifier.models import Incident

    cfg = _config_for(config, smtp_server, tmp_path, mailing={"send_status_notices": False})
    # Written straight to the database, past the import's own checks: the sender must still hold.
    make_subscriber(region="66", name="Иван\r\nBcc: evil@example.net", email="ivan@example.org")
    ref = declare_and_resolve(engine, cfg, ["66"])
    with write_session(engine) as session:
        session.exec(update(Incident).where(Incident.id == ref).values(title="Сбой\r\nX-Injected: yes\r\n\r\nbody"))
    asyncio.run(send_due(engine, cfg))
    ((_, rcpts, raw),) = smtp_server.received
    assert rcpts == ["ivan@example.org"]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Bcc"] is None and message["X-Injected"] is None
    assert "evil@example.net" not in str(message["To"]).split("<")[-1]


def test_without_a_bounce_domain_the_envelope_sender_is_the_from_address(
    engine, config, make_subscriber, smtp_server, tmp_path
) -> None:
    cfg = _config_for(config, smtp_server, tmp_path, bounces={"domain": ""}, mailing={"send_status_notices": False})
    make_subscriber(region="66")
    declare_and_resolve(engine, cfg, ["66"])
    asyncio.run(send_due(engine, cfg))
    ((mail_from, _, _),) = smtp_server.received
    assert mail_from == cfg.smtp.from_address


def test_staff_notices_are_not_bulk_mail(engine, config, smtp_server, tmp_path) -> None:
    """An escalation or reminder goes to a person who must act: no List-Id, no Precedence: bulk."""
    cfg = _config_for(config, smtp_server, tmp_path, hotline={"targets": [{"email": "cc@example.org"}]},
                      mailing={"send_status_notices": False})  # fmt: skip
    with write_session(engine) as session:
        incidents.declare(session, cfg, title="Сбой", regions=["66"])
    asyncio.run(send_due(engine, cfg))
    ((_, rcpts, raw),) = smtp_server.received
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert rcpts == ["cc@example.org"] and message["List-Id"] is None and message["Precedence"] is None
    assert message["Auto-Submitted"] == "auto-generated" and message["Feedback-ID"].startswith("hotline:")


def test_dkim_signature_of_every_message_verifies(engine, config, make_subscriber, smtp_server, tmp_path, monkeypatch) -> None:
    import dkim

    from notifier.delivery import dkim as signing

    key = signing.generate_key(2048)
    monkeypatch.setenv("TEST_DKIM_KEY", signing.private_pem(key).decode())
    cfg = _config_for(config, smtp_server, tmp_path, mailing={"send_status_notices": False},
                      smtp={"dkim_domain": "sfera-reporting.example", "dkim_selector": "n1",
                            "dkim_key_env": "TEST_DKIM_KEY"})  # fmt: skip
    for name in ("Ольга Смирнова", "Irina Petrova", "Пётр"):
        make_subscriber(region="66", name=name)
    declare_and_resolve(engine, cfg, ["66"])
    asyncio.run(send_due(engine, cfg))
    record = signing.dns_record(key).encode()

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"n1._domainkey.sfera-reporting.example."
        return record

    assert len(smtp_server.received) == 3
    for _, _, raw in smtp_server.received:
        assert raw.startswith(b"DKIM-Signature: ")
        assert dkim.verify(raw, dnsfunc=dns)
        assert not dkim.verify(raw.replace(b"Subject: ", b"Subject: Re: ", 1), dnsfunc=dns)


def test_a_throttling_relay_gets_every_message_delivered_with_attempts_unchanged(
    engine, config, make_subscriber, smtp_server, tmp_path
) -> None:
    """Postfix's anvil (or an ESP) answering 421 on connect and 450 to MAIL FROM for a while:
    not the messages' fault, so none is charged an attempt, and all go out in the same run."""
    cfg = _config_for(config, smtp_server, tmp_path, mailing={"send_status_notices": False, "max_attempts": 2})
    people = {make_subscriber(region="66").email for _ in range(20)}
    declare_and_resolve(engine, cfg, ["66"])
    smtp_server.on("CONNECT", "*", "421 4.7.0 Error: too many connections from 127.0.0.1", times=2)
    smtp_server.on("MAIL", "*", "450 4.7.1 Error: too much mail from 127.0.0.1", times=6)

    report = asyncio.run(send_due(engine, cfg))

    assert report.sent == 20 and report.failed == report.retried == 0
    assert recipients(smtp_server) == Counter({p: 1 for p in people})
    with read_session(engine) as session:
        assert {m.attempts for m in session.exec(select(Message).where(Message.kind == "apology"))} == {1}
    left = [(r.command, r.times) for r in smtp_server.rules if r.times]
    assert not left  # every refusal really happened


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_a_relay_certificate_that_does_not_verify_stops_send_with_one_line_and_charges_nothing(
    engine, config, make_subscriber, tmp_path, cli, security
) -> None:
    from tests.smtp_server import self_signed

    certificate = self_signed(tmp_path / "tls")
    with ScriptedSmtpServer(tls=certificate, implicit_tls=security == "tls") as server:
        cfg = _config_for(config, server, tmp_path, smtp={"security": security},
                          mailing={"send_status_notices": False})  # fmt: skip
        for _ in range(5):
            make_subscriber(region="66")
        declare_and_resolve(engine, cfg, ["66"])
        refused = cli("send", config=cfg.path)
        assert refused.exit_code != 0 and "Traceback" not in refused.stderr
        assert refused.stderr.count("\n") == 1 and "certificate" in refused.stderr and "ca_file" in refused.stderr
        with read_session(engine) as session:
            assert {(m.state, m.attempts) for m in session.exec(select(Message))} <= {("queued", 0), ("retry", 0)}
        trusting = _config_for(config, server, tmp_path, name="trusting", mailing={"send_status_notices": False},
                               smtp={"security": security, "ca_file": str(certificate.cert)})  # fmt: skip
        delivered = cli("send", "--json", config=trusting.path)
        assert delivered.exit_code == 0, delivered.stderr
        assert delivered.json()["sent"] == 5 and len(server.received) == 5


def test_a_claim_whose_answer_was_lost_is_sent_in_the_same_run(
    engine, config, make_subscriber, smtp_server, tmp_path, monkeypatch
) -> None:
    """The database committed a claim but the connection dropped before its answer arrived:
    those rows are 'sending' under this sender's name, which nobody takes back while it lives.
    The sender finds them once it has nothing else in hand and sends them, once each."""
    from notifier.errors import DatabaseError
    from notifier.outbox import claims

    cfg = _config_for(config, smtp_server, tmp_path, mailing={"send_status_notices": False, "batch_size": 5,
                                                               "database_outage": "30s"})  # fmt: skip
    addresses = {make_subscriber(region="66").email for _ in range(12)}
    declare_and_resolve(engine, cfg, ["66"])
    real, calls = claims.claim, []

    def claim_losing_the_second_answer(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        result = real(*args, **kwargs)
        if len(calls) == 2:
            raise DatabaseError("server closed the connection unexpectedly")
        return result

    monkeypatch.setattr(claims, "claim", claim_losing_the_second_answer)
    report = asyncio.run(asyncio.wait_for(send_due(engine, cfg), 60))
    assert report.sent == 12
    assert recipients(smtp_server) == Counter({address: 1 for address in addresses})
    assert _states(engine, "apology") == Counter({"sent": 12})
