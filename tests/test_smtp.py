"""The SMTP transport against a real, scripted aiosmtpd server on 127.0.0.1: every reply is
classified right, connections are pooled and replaced, fatal conditions stop the run."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from smtp_server import ScriptedSmtpServer  # tests/ is on sys.path under pytest

from notifier.config import SmtpSection
from notifier.delivery import SendOutcome
from notifier.delivery.ratelimit import RateLimiter
from notifier.delivery.smtp import SmtpMessenger
from notifier.errors import ConfigError, DeliveryError

SENDER = "noreply@example.org"
DATA = b"Subject: test\r\nMessage-ID: <t@example.org>\r\n\r\nHello.\r\n"


@pytest.fixture(params=["one command at a time", "pipelining"])
def server(request: pytest.FixtureRequest, smtp_server: ScriptedSmtpServer) -> ScriptedSmtpServer:
    """conftest's scripted SMTP server, under the short name these tests use; every test runs
    against a server that offers PIPELINING (RFC 2920) and one that does not."""
    smtp_server.pipelining = request.param == "pipelining"
    return smtp_server


def section(port: int, **overrides: Any) -> SmtpSection:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "from_address": SENDER,
        "connections": 2,
        "timeout": timedelta(seconds=5),
        "helo_name": "sender.test",
    }
    values.update(overrides)
    return SmtpSection(**values)


async def send_one(port: int, recipient: str, **overrides: Any) -> SendOutcome:
    async with SmtpMessenger(section(port, **overrides), password=None) as transport:
        return await transport.send(SENDER, recipient, DATA)


async def test_accepted_message_is_sent_with_explicit_envelope(server: ScriptedSmtpServer) -> None:
    outcome = await send_one(server.port, "ivan@example.org")
    assert outcome.status == "sent" and outcome.ok and outcome.code == 250
    assert server.received == [(SENDER, ["ivan@example.org"], DATA)]


async def test_refused_recipient_is_permanent(server: ScriptedSmtpServer) -> None:
    server.on("RCPT", "bad@example.org", "550 5.1.1 No such user here")
    outcome = await send_one(server.port, "bad@example.org")
    assert outcome.status == "permanent"
    assert outcome.code == 550 and "No such user" in outcome.detail
    assert server.received == []


@pytest.mark.parametrize(
    ("command", "reply"),
    [("RCPT", "451 4.7.1 Greylisted, try later"), ("DATA", "451 4.3.0 Queue full"),
     ("RCPT", "450 4.2.1 Mailbox busy"), ("RCPT", "452 4.5.3 Too many recipients")],
)  # fmt: skip
async def test_4xx_for_the_message_is_transient(server: ScriptedSmtpServer, command: str, reply: str) -> None:
    server.on(command, "*", reply)
    outcome = await send_one(server.port, "ivan@example.org")
    assert outcome.status == "transient"
    assert outcome.code == int(reply[:3]) and reply[4:] in outcome.detail
    assert not outcome.ambiguous


async def test_message_refused_at_data_fails_without_bouncing(server: ScriptedSmtpServer) -> None:
    server.on("DATA", "*", "554 5.6.0 Message content rejected")
    outcome = await send_one(server.port, "ivan@example.org")
    assert outcome.status == "permanent_message" and outcome.code == 554


async def test_sender_refused_is_fatal(server: ScriptedSmtpServer) -> None:
    server.on("MAIL", "*", "553 5.7.1 Sender address rejected")
    async with SmtpMessenger(section(server.port), password=None) as transport:
        with pytest.raises(DeliveryError, match="refused the sender address"):
            await transport.send(SENDER, "ivan@example.org", DATA)
        # and the run stays stopped
        with pytest.raises(DeliveryError):
            await transport.send(SENDER, "other@example.org", DATA)


async def test_authentication_failure_is_fatal_at_start() -> None:
    with ScriptedSmtpServer(auth={"notifier": "right"}) as srv:
        transport = SmtpMessenger(section(srv.port, username="notifier"), password="wrong")
        with pytest.raises(DeliveryError, match="refused the login of 'notifier'") as info:
            await transport.start()
        assert "\n" not in str(info.value)
        await transport.close()


async def test_authentication_succeeds_with_the_right_password() -> None:
    with ScriptedSmtpServer(auth={"notifier": "right"}) as srv:
        async with SmtpMessenger(section(srv.port, username="notifier"), password="right") as transport:
            outcome = await transport.send(SENDER, "ivan@example.org", DATA)
        assert outcome.ok and srv.logins and set(srv.logins) == {"notifier"}


def test_username_without_password_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        SmtpMessenger(section(1025, username="notifier"), password=None)


async def test_pool_reuses_its_connections(server: ScriptedSmtpServer) -> None:
    async with SmtpMessenger(section(server.port, connections=3), password=None) as transport:
        outcomes = await asyncio.gather(
            *(transport.send(SENDER, f"user{i}@example.org", DATA) for i in range(30))
        )
    assert all(o.ok for o in outcomes)
    assert len(server.received) == 30
    assert server.connections == 3 and transport.connects == 3


async def test_dropped_idle_connection_is_replaced(server: ScriptedSmtpServer) -> None:
    async with SmtpMessenger(section(server.port, connections=1), password=None) as transport:
        assert (await transport.send(SENDER, "a@example.org", DATA)).ok
        # The server hangs up on the next MAIL (as after an idle timeout): nothing was accepted,
        # so the transport retries once on a new connection.
        server.on("MAIL", "*", drop=True, times=1)
        assert (await transport.send(SENDER, "b@example.org", DATA)).ok
    assert server.connections == 2
    assert [rcpts for _, rcpts, _ in server.received] == [["a@example.org"], ["b@example.org"]]


async def test_drop_after_data_is_ambiguous_and_connection_replaced(server: ScriptedSmtpServer) -> None:
    server.on("DATA", "drop@example.org", drop=True)
    async with SmtpMessenger(section(server.port, connections=1), password=None) as transport:
        outcome = await transport.send(SENDER, "drop@example.org", DATA)
        assert outcome.status == "transient" and outcome.ambiguous
        assert (await transport.send(SENDER, "next@example.org", DATA)).ok
    assert server.connections == 2
    assert len(server.received) == 2  # the server did get the dropped one


async def test_timeout_after_data_is_ambiguous(server: ScriptedSmtpServer) -> None:
    server.on("DATA", "slow@example.org", delay=3)
    outcome = await send_one(server.port, "slow@example.org", timeout=timedelta(seconds=0.5))
    assert outcome.status == "transient" and outcome.ambiguous


async def test_timeout_before_data_is_not_ambiguous(server: ScriptedSmtpServer) -> None:
    server.on("RCPT", "slow@example.org", delay=3)
    outcome = await send_one(server.port, "slow@example.org", timeout=timedelta(seconds=0.5))
    assert outcome.status == "transient" and not outcome.ambiguous


async def test_connection_is_usable_after_a_refusal(server: ScriptedSmtpServer) -> None:
    server.on("RCPT", "bad@example.org", "550 5.1.1 No such user")
    server.on("DATA", "spam@example.org", "554 5.7.1 Rejected")
    async with SmtpMessenger(section(server.port, connections=1), password=None) as transport:
        results = [
            await transport.send(SENDER, rcpt, DATA)
            for rcpt in ("bad@example.org", "ok1@example.org", "spam@example.org", "ok2@example.org")
        ]
    assert [r.status for r in results] == ["permanent", "sent", "permanent_message", "sent"]
    assert server.connections == 1
    assert [rcpts for _, rcpts, _ in server.received] == [["ok1@example.org"], ["ok2@example.org"]]


async def test_server_down_is_transient_and_says_so() -> None:
    with ScriptedSmtpServer() as srv:
        port = srv.port
    outcome = await send_one(port, "ivan@example.org")
    assert outcome.status == "transient"
    assert "cannot connect" in outcome.detail and "running" in outcome.detail


async def test_server_coming_up_later_is_used(server: ScriptedSmtpServer) -> None:
    port = server.port
    server.stop()
    async with SmtpMessenger(section(port, connections=1), password=None) as transport:
        assert (await transport.send(SENDER, "a@example.org", DATA)).status == "transient"
        server.start(port)
        assert (await transport.send(SENDER, "a@example.org", DATA)).ok


@pytest.mark.parametrize(
    "recipient", ["bad\r\naddress@example.org", "a@example.org, b@example.org", "Name <a@example.org>"]
)
async def test_unusable_recipient_address_is_permanent(server: ScriptedSmtpServer, recipient: str) -> None:
    outcome = await send_one(server.port, recipient)
    assert outcome.status == "permanent"
    assert server.received == []


async def test_unusable_sender_address_is_fatal(server: ScriptedSmtpServer) -> None:
    async with SmtpMessenger(section(server.port), password=None) as transport:
        with pytest.raises(DeliveryError, match="sender address"):
            await transport.send("a@example.org\r\nRCPT TO:<x@evil.org>", "ivan@example.org", DATA)


async def test_rate_limit_spaces_sends(server: ScriptedSmtpServer) -> None:
    async with SmtpMessenger(section(server.port, rate_limit=50, connections=4), password=None) as transport:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.gather(*(transport.send(SENDER, f"u{i}@example.org", DATA) for i in range(11)))
        elapsed = loop.time() - started
    assert transport.limiter.granted == 11
    assert elapsed >= 0.18  # 10 intervals of 20 ms, with a generous margin below 0.2 s


async def test_rate_limiter_grants_by_the_clock() -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    limiter = RateLimiter(10, burst=2, clock=lambda: now[0], sleep=fake_sleep)
    for _ in range(4):
        await limiter.acquire()
    # two at once (the burst), then one every 0.1 s
    assert slept == pytest.approx([0.1, 0.2])
    now[0] = 10.0  # a long pause refills the bucket, but only up to the burst
    slept.clear()
    for _ in range(3):
        await limiter.acquire()
    assert slept == pytest.approx([0.1])
    unlimited = RateLimiter(0, sleep=fake_sleep)
    for _ in range(100):
        await unlimited.acquire()
    assert unlimited.granted == 100 and slept == pytest.approx([0.1])


# Throttling: the relay refusing *us* for a while, not the message ------------------------


@pytest.mark.parametrize(
    ("command", "reply"),
    [("MAIL", "450 4.7.1 Error: too much mail from 127.0.0.1"), ("MAIL", "451 4.7.1 Rate limited"),
     ("MAIL", "421 4.7.0 Too many messages, closing"), ("CONNECT", "421 4.7.0 Error: too many connections"),
     ("DATA", "421 4.4.2 Closing transmission channel")],
)  # fmt: skip
async def test_throttling_relay_is_waited_out_and_the_same_message_delivered(
    server: ScriptedSmtpServer, command: str, reply: str, caplog: pytest.LogCaptureFixture
) -> None:
    server.on(command, "*", reply, times=2)
    async with SmtpMessenger(section(server.port, connections=1), password=None) as messenger:
        outcome = await messenger.send(SENDER, "ivan@example.org", DATA)
        assert outcome.status == "sent"  # in this one call: nothing to charge, nothing to retry
        assert messenger.throttle.hits == 2
    assert [rcpts for _, rcpts, _ in server.received] == [["ivan@example.org"]]
    assert "throttling us" in caplog.text


async def test_throttling_past_the_patience_defers_without_charging(server: ScriptedSmtpServer) -> None:
    server.on("MAIL", "*", "450 4.7.1 Error: too much mail from 127.0.0.1")
    smtp = section(server.port, connections=1, throttle_patience=timedelta(seconds=2))
    async with SmtpMessenger(smtp, password=None) as messenger:
        outcome = await messenger.send(SENDER, "ivan@example.org", DATA)
    assert outcome.status == "deferred" and outcome.retry_after > 0
    assert "450" in outcome.detail and server.received == []


async def test_interrupt_ends_a_throttle_wait_at_once(server: ScriptedSmtpServer) -> None:
    server.on("MAIL", "*", "450 4.7.1 Slow down")
    async with SmtpMessenger(section(server.port, connections=1), password=None) as messenger:
        pushing = asyncio.create_task(messenger.send(SENDER, "ivan@example.org", DATA))
        await asyncio.sleep(0.3)  # it hit the throttle and waits a second
        messenger.interrupt()
        outcome = await asyncio.wait_for(pushing, timeout=0.5)
    assert outcome.status == "deferred"


# TLS: self-signed and private-CA relays ---------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from smtp_server import self_signed

    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_certificate_that_does_not_verify_stops_with_one_line(certificate: Any, security: str) -> None:
    with ScriptedSmtpServer(tls=certificate, implicit_tls=security == "tls") as srv:
        messenger = SmtpMessenger(section(srv.port, security=security), password=None)
        with pytest.raises(DeliveryError) as failure:
            await messenger.start()
        await messenger.close()
        assert srv.received == []
    message = str(failure.value)
    assert "certificate" in message and "does not verify" in message and "ca_file" in message
    assert "\n" not in message


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_ca_file_trusts_a_private_certificate(certificate: Any, security: str) -> None:
    with ScriptedSmtpServer(tls=certificate, implicit_tls=security == "tls") as srv:
        async with SmtpMessenger(section(srv.port, security=security), password=None, ca_file=certificate.cert) as m:
            outcome = await m.send(SENDER, "ivan@example.org", DATA)
        assert outcome.status == "sent" and len(srv.received) == 1
        async with SmtpMessenger(section(srv.port, security=security, tls_verify=False), password=None) as m:
            assert (await m.send(SENDER, "olga@example.org", DATA)).status == "sent"


async def test_ca_file_that_is_not_a_certificate_is_a_config_error(tmp_path: Any) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"\[smtp\].ca_file"):
        SmtpMessenger(section(1025, security="starttls"), password=None, ca_file=bogus)


# DATA as it is: composed bytes skip aiosmtplib's whole-body passes ---------------------------


async def test_wire_ready_bytes_skip_the_clients_body_passes(server: ScriptedSmtpServer, monkeypatch) -> None:
    import aiosmtplib.protocol

    passes: list[int] = []
    original = aiosmtplib.protocol.normalize_message_line_endings
    monkeypatch.setattr(aiosmtplib.protocol, "normalize_message_line_endings",
                        lambda data: passes.append(len(data)) or original(data))  # fmt: skip
    body = DATA + b"x" * 70 + b"\r\n" * 1 + (b"y" * 76 + b"\r\n") * 60
    outcome = await send_one(server.port, "ivan@example.org")
    assert outcome.status == "sent" and passes == []
    async with SmtpMessenger(section(server.port), password=None) as messenger:
        assert (await messenger.send(SENDER, "olga@example.org", body)).status == "sent"
    assert passes == [] and server.received[-1][2] == body


@pytest.mark.parametrize(
    "data",
    [b"Subject: dots\r\n\r\n.hidden line\r\n..two\r\nend\r\n", b".starts with a dot\r\n", b"Subject: lf\n\nbare\nlf\n"],
)
async def test_bytes_that_need_stuffing_or_line_ends_still_arrive_intact(server: ScriptedSmtpServer, data: bytes) -> None:
    async with SmtpMessenger(section(server.port), password=None) as messenger:
        assert (await messenger.send(SENDER, "ivan@example.org", data)).status == "sent"
    assert server.received[-1][2] == data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _grouped(chunks: list[bytes]) -> list[bool]:
    """For each MAIL the server read: did RCPT and DATA come in the same read?"""
    return [b"RCPT TO:" in chunk and b"DATA\r\n" in chunk for chunk in chunks if b"MAIL FROM:" in chunk]


@pytest.mark.parametrize(("offered", "wanted", "together"), [(True, True, True), (False, True, False),
                                                             (True, False, False)])  # fmt: skip
async def test_pipelining_sends_mail_rcpt_and_data_in_one_write_when_offered_and_wanted(
    offered: bool, wanted: bool, together: bool
) -> None:
    with ScriptedSmtpServer(pipelining=offered) as srv:
        srv.on("RCPT", "bad@example.org", "550 5.1.1 No such user")
        async with SmtpMessenger(section(srv.port, connections=1, pipelining=wanted), password=None) as messenger:
            results = [(await messenger.send(SENDER, rcpt, DATA)).status
                       for rcpt in ("a@example.org", "bad@example.org", "b@example.org")]  # fmt: skip
        assert results == ["sent", "permanent", "sent"]
        assert [rcpts for _, rcpts, _ in srv.received] == [["a@example.org"], ["b@example.org"]]
        assert _grouped(srv.chunks) == [together] * 3


async def test_a_server_that_says_354_after_refusing_the_recipient_is_kept_in_step() -> None:
    """RFC 2920 says DATA must fail when no recipient was accepted; a server that answers 354
    anyway gets an empty message ended at once, and the next message is not taken for its body."""
    seen: list[bytes] = []

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 odd.test ESMTP\r\n")
        in_data = refused = False
        while line := await reader.readline():
            seen.append(line)
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    writer.write(b"554 5.5.1 No valid recipients\r\n" if refused else b"250 2.0.0 Queued\r\n")
                continue
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-odd.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb == b"MAIL":
                refused = False
                writer.write(b"250 2.1.0 Ok\r\n")
            elif verb == b"RCPT":
                refused = b"bad@" in line
                writer.write(b"550 5.1.1 No such user\r\n" if refused else b"250 2.1.5 Ok\r\n")
            elif verb == b"DATA":
                in_data = True
                writer.write(b"354 Go ahead\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 Bye\r\n")
                break
            else:
                writer.write(b"250 Ok\r\n")
        writer.close()

    odd = await asyncio.start_server(session, "127.0.0.1", 0)
    port = odd.sockets[0].getsockname()[1]
    async with odd, SmtpMessenger(section(port, connections=1), password=None) as messenger:
        first = await messenger.send(SENDER, "bad@example.org", DATA)
        second = await messenger.send(SENDER, "ivan@example.org", DATA)
    assert (first.status, first.code) == ("permanent", 550)
    assert second.status == "sent"
    assert seen[1:6] == [b"MAIL FROM:<noreply@example.org>\r\n", b"RCPT TO:<bad@example.org>\r\n", b"DATA\r\n",
                         b".\r\n", b"RSET\r\n"]  # fmt: skip
    assert seen.count(b"MAIL FROM:<noreply@example.org>\r\n") == 2
