"""The e-mail messenger: composes each message's MIME and pushes it through a pool of reused
aiosmtplib connections, under a rate limit, classifying every SMTP reply into a
:class:`~notifier.delivery.SendOutcome`.

Owns everything SMTP (it is the only module that imports aiosmtplib): connecting with TLS
or STARTTLS (the system's CAs, ``[smtp].ca_file``, or — loudly — no verification) and AUTH
from ``[smtp]``, one transaction per connection at a time, lazily replacing dropped
connections, and deciding what a reply means:

- 250 after DATA: ``sent``;
- 421 anywhere, 421/450/451 on connect or MAIL FROM: the relay is throttling *us* (Postfix
  anvil, an ESP's rate limit), not refusing the message: every connection backs off
  (1 s, 2 s, … 60 s) and the same message is tried again, uncharged; after
  ``[smtp].throttle_patience`` it goes back to the queue ``deferred``, still uncharged;
- other 4xx, a disconnect, a timeout, an unreachable server: ``transient`` (when the
  connection failed after the whole message was written, ``ambiguous=True``: the server
  may have accepted it);
- 5xx on RCPT: ``permanent`` (the address is bad: the caller marks it bounced);
- 5xx on DATA, or 552 (too big) on MAIL: ``permanent_message`` (this message, not the
  address);
- authentication refused, the sender address refused, a certificate or host name that
  does not verify (on STARTTLS or implicit TLS), a server that will not talk to us:
  :class:`~notifier.errors.DeliveryError`, because every further message would fail the
  same way. The run stops; the message is charged nothing.

What a message says is decided before it gets here; how its MIME is built is ``composing``.
What this messenger adds per message is the e-mail's own: the headers mailbox providers
look at (``List-Id`` and ``Precedence: bulk`` on the mailings to subscribers, a
``Feedback-ID`` per mailing kind, ``Auto-Submitted: auto-generated`` on everything), the
DKIM signature over the composed bytes (``delivery.dkim``), and the VERP envelope sender
that names the outbox row (``bounces.verp``), so a bounce coming back days later finds it.
It sends the bytes with ``sendmail`` (``send_message`` would re-serialise them, ~5 ms each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from notifier import metrics
from notifier.bounces import verp
from notifier.composing import Composer, check_address
from notifier.config import SmtpSection
from notifier.delivery import OutgoingMessage, SendOutcome
from notifier.delivery.dkim import DkimSigner
from notifier.delivery.ratelimit import RateLimiter
from notifier.errors import ConfigError, DeliveryError

__all__ = ["SmtpMessenger", "tls_context"]

log = logging.getLogger("notifier.smtp")

_AUTH_CODES = {530, 534, 535, 538}  # authentication required / too weak / refused / needs TLS
_THROTTLE_ON_MAIL = {421, 450, 451}  # RFC 5321: the server, not this recipient, cannot take it now
_TO_SUBSCRIBERS = frozenset({"status", "apology"})  # mailings to a list of people (bulk)


@dataclass(frozen=True)
class ReturnPath:
    """VERP: ``local+<row>-<signature>@domain`` as the envelope sender of every message."""

    secret: bytes
    local: str
    domain: str

    def __call__(self, row: int) -> str:
        return verp.return_path(self.secret, row, self.local, self.domain)


def _reply(code: int | None, message: str) -> str:
    text = " / ".join(line.strip() for line in str(message).splitlines() if line.strip())
    return f"{code} {text}" if code is not None else text


def tls_context(smtp: SmtpSection, ca_file: Path | None) -> ssl.SSLContext | None:
    """The TLS settings of ``[smtp]`` as an SSLContext (None without TLS).

    ``ca_file`` (a PEM bundle) is trusted in addition to the system's CAs, or instead of
    them with ``ca_system = false``; ``tls_verify = false`` checks nothing (test relays only).
    """
    if smtp.security == "none":
        return None
    if not smtp.tls_verify:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        if ca_file is not None and not smtp.ca_system:
            return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if ca_file is not None:
            context.load_verify_locations(cafile=str(ca_file))
        return context
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"[smtp].ca_file {ca_file}: not a readable PEM certificate bundle ({exc})") from None


def _wire_ready(data: bytes) -> bool:
    """True when ``data`` can go to DATA as it is: CRLF line ends only, no line starting with '.'."""
    return (
        not data.startswith(b".") and b"\r\n." not in data
        and data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")
    )  # fmt: skip


_PIPELINE_PARTS = ("_command_lock", "_buffer", "_read_response_from_buffer", "_response_waiter",
                   "_response_pending", "_set_response_exception")  # fmt: skip


def _can_pipeline(protocol: Any) -> bool:
    """aiosmtplib reads one reply per command; the pipelined exchange reads several through the
    protocol's own parts, used only when this aiosmtplib has them all."""
    return protocol is not None and all(hasattr(protocol, part) for part in _PIPELINE_PARTS)


async def _replies(protocol: Any, commands: bytes, count: int, timeout: float | None) -> list[Any]:
    """Write ``commands`` (``count`` of them) at once and return their ``count`` replies, parsed as
    aiosmtplib parses one. A lost connection or a timeout raises as for a single command; if the
    server hung up after a refusal (a 421 to MAIL), the replies it did send are returned, padded
    with that refusal, so the caller judges it as it would have."""
    replies: list[Any] = []

    def collect(data: bytes) -> None:
        waiter = protocol._response_waiter
        if waiter is None or waiter.done():
            return
        protocol._buffer.extend(data)
        try:
            while len(replies) < count and (reply := protocol._read_response_from_buffer()) is not None:
                replies.append(reply)
        except Exception as exc:  # a malformed or over-long reply, as aiosmtplib reports it
            protocol._set_response_exception(waiter, exc)
            return
        if len(replies) == count:
            waiter.set_result(replies[-1])

    protocol.data_received = collect
    try:
        protocol._response_pending = True
        protocol.write(commands)
        await protocol.read_response(timeout=timeout)
    except SMTPServerDisconnected:
        if not replies or replies[0].code == 250 and (len(replies) < 2 or replies[1].code in (250, 251)):
            raise
        replies.extend(replies[-1:] * (count - len(replies)))
    finally:
        vars(protocol).pop("data_received", None)
    return replies


class _Client(aiosmtplib.SMTP):
    """An aiosmtplib client that remembers how far the current transaction got.

    ``stage`` is "mail", "rcpt", "data" (DATA command sent) or "body" (the message and its
    final dot handed to the socket): a failure in "body" is ambiguous. ``clean`` is False
    when the RSET after a refused transaction failed, so the session state is unknown.
    """

    stage = "idle"
    clean = True
    ready = False  # the current message's bytes are known to be wire-ready
    pipelining = True  # group MAIL, RCPT and DATA in one write when the server offers PIPELINING

    async def data(self, message: str | bytes, /, **kwargs: Any) -> Any:
        self.stage = "data"
        protocol = self.protocol
        if protocol is None:
            return await super().data(message, **kwargs)
        if isinstance(message, bytes) and hasattr(protocol, "_command_lock") and (self.ready or _wire_ready(message)):
            return await self._data_as_is(protocol, message)
        write = protocol.write

        def tracking_write(chunk: bytes) -> None:
            write(chunk)
            if chunk != b"DATA\r\n":
                self.stage = "body"

        protocol.write = tracking_write  # type: ignore[method-assign]
        try:
            return await super().data(message, **kwargs)
        finally:
            vars(protocol).pop("write", None)

    async def _data_as_is(self, protocol: Any, message: bytes) -> Any:
        """DATA with bytes that are already CRLF and need no dot-stuffing: written as they are.

        aiosmtplib would run two regular expressions over the whole body first (a new copy of
        ~10 KB per message, ~11 % of the sender's CPU); composed messages never need them.
        """
        timeout = self.timeout
        if protocol._command_lock is None:
            raise SMTPServerDisconnected("Server not connected")
        async with protocol._command_lock:
            protocol._response_pending = True
            protocol.write(b"DATA\r\n")
            start = await protocol.read_response(timeout=timeout)
            if start.code != 354:
                raise SMTPDataError(start.code, start.message)
            protocol._response_pending = True
            protocol.write(message + (b".\r\n" if message.endswith(b"\r\n") else b"\r\n.\r\n"))  # one send
            self.stage = "body"
            response = await protocol.read_response(timeout=timeout)
        if response.code != 250:
            raise SMTPDataError(response.code, response.message)
        return response

    async def transact(self, sender: str, recipient: str, data: bytes, *, ready: bool = False) -> Any:
        """MAIL, RCPT, DATA for one recipient (what ``sendmail`` does, without its copies of
        the body: SIZE is the length of bytes that are already what goes on the wire).

        ``ready``: the bytes were composed here (CRLF, nothing to dot-stuff), no need to look.
        Both addresses went through ``check_address`` first, so they go on the wire as they are.
        """
        await self._ehlo_or_helo_if_needed()
        size = b" SIZE=%d" % len(data) if self.supports_extension("size") else b""
        self.ready = ready
        try:
            wire_ready = ready or _wire_ready(data)
            if wire_ready and self.pipelining and self.supports_extension("pipelining") and _can_pipeline(self.protocol):
                return await self._transact_pipelined(sender, recipient, data, size)
            self.stage = "mail"
            response = await self.execute_command(b"MAIL FROM:<" + sender.encode("ascii") + b">" + size)
            if response.code != 250:
                raise SMTPSenderRefused(response.code, response.message, sender)
            self.stage = "rcpt"
            response = await self.execute_command(b"RCPT TO:<" + recipient.encode("ascii") + b">")
            if response.code not in (250, 251):
                raise SMTPRecipientRefused(response.code, response.message, recipient)
            return await self.data(data)
        except SMTPResponseException:
            with contextlib.suppress(SMTPResponseException, SMTPServerDisconnected, SMTPTimeoutError):
                await self.rset()
            raise

    async def _transact_pipelined(self, sender: str, recipient: str, data: bytes, size: bytes) -> Any:
        """MAIL, RCPT and DATA in one write, their three replies read together (RFC 2920), then
        the body: two round trips a message instead of four.

        Every reply is read before any is judged, so a refusal never leaves a reply behind to
        be taken for the next command's; the first reply that is not a success decides, as in
        the one-at-a-time exchange (``stage`` says which command it answered).
        """
        protocol = self.protocol
        timeout = self.timeout
        commands = (b"MAIL FROM:<" + sender.encode("ascii") + b">" + size + b"\r\n"
                    b"RCPT TO:<" + recipient.encode("ascii") + b">\r\n" b"DATA\r\n")  # fmt: skip
        async with protocol._command_lock:
            self.stage = "mail"
            mail, rcpt, start = await _replies(protocol, commands, 3, timeout)
            if mail.code != 250:
                await self._end_data(protocol, start, timeout)
                raise SMTPSenderRefused(mail.code, mail.message, sender)
            self.stage = "rcpt"
            if rcpt.code not in (250, 251):
                await self._end_data(protocol, start, timeout)
                raise SMTPRecipientRefused(rcpt.code, rcpt.message, recipient)
            self.stage = "data"
            if start.code != 354:
                raise SMTPDataError(start.code, start.message)
            protocol._response_pending = True
            protocol.write(data + (b".\r\n" if data.endswith(b"\r\n") else b"\r\n.\r\n"))
            self.stage = "body"
            response = await protocol.read_response(timeout=timeout)
        if response.code != 250:
            raise SMTPDataError(response.code, response.message)
        return response

    async def _end_data(self, protocol: Any, start: Any, timeout: float | None) -> None:
        """A server that said 354 to DATA after refusing the sender or the recipient (RFC 2920
        says it must not) waits for a message: end it empty, so the session stays in step."""
        if start.code == 354:
            self.clean = False
            protocol._response_pending = True
            protocol.write(b".\r\n")
            await protocol.read_response(timeout=timeout)
            self.clean = True

    async def rset(self, *args: Any, **kwargs: Any) -> Any:
        self.clean = False
        response = await super().rset(*args, **kwargs)
        self.clean = True
        return response


class _Throttle:
    """The relay's "slow down", shared by every connection: back off together, doubling."""

    def __init__(self, ceiling: float = 60.0) -> None:
        self.until = 0.0
        self.delay = 0.0
        self.ceiling = ceiling
        self.hits = 0
        self._interrupted = asyncio.Event()

    def hit(self, detail: str) -> float:
        self.hits += 1
        metrics.smtp_error("throttled")
        if time.monotonic() >= self.until:  # a new back-off, not another connection's echo
            self.delay = min(max(self.delay * 2, 1.0), self.ceiling)
            self.until = time.monotonic() + self.delay
            log.warning("the SMTP relay is throttling us (%s): every connection waits %.0f s", detail, self.delay)
        return max(self.until - time.monotonic(), 0.0)

    def ok(self) -> None:
        if time.monotonic() >= self.until:
            self.delay = 0.0

    async def wait(self) -> bool:
        """Sleep out the back-off; False when interrupted (the run is stopping)."""
        while (left := self.until - time.monotonic()) > 0:
            if self._interrupted.is_set():
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._interrupted.wait(), timeout=left)
        return not self._interrupted.is_set()

    def interrupt(self) -> None:
        self._interrupted.set()


class _Throttled(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SmtpMessenger:
    """``async with SmtpMessenger(config.smtp, password=…) as m: outcome = await m.push(message)``.

    Up to ``smtp.connections`` pushes run at once, each on its own connection; further
    callers wait for a free one. Connections are opened on first use (``start`` opens one
    to find a wrong password or certificate before anything is claimed) and reopened when
    dropped. Each message is composed here, with the From of its language.
    """

    channel = "email"

    def __init__(
        self, smtp: SmtpSection, *, password: str | None, ca_file: Path | None = None,
        signer: DkimSigner | None = None, return_path: ReturnPath | None = None, list_name: str = "",
    ) -> None:  # fmt: skip
        if smtp.username and password is None:
            raise ConfigError(
                "[smtp].username is set but no password: name its variable in [smtp].password_env."
            )
        self.smtp = smtp
        self.password = password
        self.concurrency = smtp.connections
        self.limiter = RateLimiter(smtp.rate_limit)
        self.throttle = _Throttle()
        self.connects = 0  # connections opened, for tests and reports
        self._tls = tls_context(smtp, ca_file)
        self.signer = signer
        self.return_path = return_path
        self._composers = {
            locale: Composer(smtp.from_address, smtp.from_name.get(locale) if smtp.from_name else "")
            for locale in ("ru", "en")
        }
        domain = check_address(smtp.from_address).rpartition("@")[2]
        label = "".join(c if c.isascii() and (c.isalnum() or c in " -") else " " for c in list_name).strip()
        self._list_id = f"{' '.join(label.split())} <outage-notices.{domain}>".strip()
        self._feedback = f"notifier:{domain}"
        self._clients: list[_Client] = []
        self._idle: asyncio.Queue[_Client] = asyncio.Queue()
        self._fatal: DeliveryError | None = None

    @property
    def where(self) -> str:
        return f"{self.smtp.host}:{self.smtp.port}"

    async def start(self) -> None:
        """Create the pool and open one connection; raises DeliveryError if the server
        refuses us outright (a server that is down is not fatal: sends will be retried)."""
        hostname = self.smtp.helo_name or await asyncio.to_thread(socket.getfqdn)
        timeout = self.smtp.timeout.total_seconds() or None
        for _ in range(self.smtp.connections):
            client = _Client(
                hostname=self.smtp.host, port=self.smtp.port, local_hostname=hostname, timeout=timeout,
                use_tls=self.smtp.security == "tls", start_tls=self.smtp.security == "starttls",
                tls_context=self._tls, username=self.smtp.username or None,
                password=self.password if self.smtp.username else None,
            )  # fmt: skip
            client.pipelining = self.smtp.pipelining
            self._clients.append(client)
            self._idle.put_nowait(client)
        try:
            problem = await self._connect(self._clients[0])
        except _Throttled as exc:
            self.throttle.hit(exc.detail)
            problem = None
        if problem is not None:
            log.warning("SMTP server not reachable yet: %s", problem.detail)

    async def close(self) -> None:
        """QUIT every open connection (best effort) and forget them."""
        clients, self._clients = self._clients, []
        await asyncio.gather(*(self._quit(client) for client in clients))

    async def __aenter__(self) -> SmtpMessenger:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def interrupt(self) -> None:
        self.throttle.interrupt()

    def headers(self, message: OutgoingMessage) -> dict[str, str]:
        """What mailbox providers look at: who the list is, which mailing, that no person typed it."""
        headers = {"Auto-Submitted": "auto-generated", "Feedback-ID": f"{message.kind}:{self._feedback}"}
        if message.kind in _TO_SUBSCRIBERS:
            headers["List-Id"] = self._list_id
            headers["Precedence"] = "bulk"
        return {**headers, **message.headers}

    def compose(self, message: OutgoingMessage) -> bytes:
        """The message as the bytes of SMTP DATA (CRLF, 7-bit), with the From of its language,
        signed when DKIM is configured."""
        composer = self._composers.get(message.locale, self._composers["ru"])
        data = composer.compose(
            message_id=message.message_id, to_name=message.recipient_name, to_address=message.recipient,
            subject=message.subject, text=message.text, html=message.html, date=message.date,
            unsubscribe_url=message.unsubscribe_url, extra_headers=self.headers(message),
            attachments=message.attachments,
        )  # fmt: skip
        return self.signer.sign(data) if self.signer is not None else data

    async def push(self, message: OutgoingMessage) -> SendOutcome:
        """Compose and send one message; see the module docstring for what the outcome means."""
        try:
            recipient = check_address(message.recipient)
            data = self.compose(message)
        except ValueError as exc:
            return SendOutcome("permanent", str(exc))
        sender = self.return_path(message.id) if self.return_path is not None else self.smtp.from_address
        return await self.send(sender, recipient, data, composed=True)

    async def send(self, sender: str, recipient: str, data: bytes, *, composed: bool = False) -> SendOutcome:
        """One transaction: MAIL FROM ``sender``, RCPT TO ``recipient`` only (the envelope
        never comes from the headers), DATA ``data`` (CRLF bytes, as composed: ``composed``
        says they came from :meth:`compose`); waits out a throttling relay for up to
        ``[smtp].throttle_patience``."""
        if self._fatal is not None:
            raise self._fatal
        # aiosmtplib runs addresses through email.utils.parseaddr, which turns
        # "a@b.org, c@d.org" into a@b.org and drops CR/LF: check them ourselves first.
        try:
            sender = check_address(sender)
        except ValueError as exc:
            raise self._fail(f"The sender address cannot be used: {exc}") from None
        try:
            recipient = check_address(recipient)
        except ValueError as exc:
            return SendOutcome("permanent", str(exc))
        if not self._clients:
            raise RuntimeError("SmtpMessenger.send() before start() (or after close())")
        deadline = time.monotonic() + self.smtp.throttle_patience.total_seconds()
        while True:
            if not await self.throttle.wait():
                return SendOutcome("deferred", "the run stopped while the SMTP relay was throttling us")
            try:
                outcome = await self._send_once(sender, recipient, data, composed)
            except _Throttled as exc:
                left = self.throttle.hit(exc.detail)
                if time.monotonic() + left > deadline:
                    return SendOutcome("deferred", f"throttled by {self.where}: {exc.detail}", retry_after=left)
                continue
            if outcome.ok:
                self.throttle.ok()
            return outcome

    # ------------------------------------------------------------------------------------

    async def _send_once(self, sender: str, recipient: str, data: bytes, composed: bool) -> SendOutcome:
        await self.limiter.acquire()
        client = await self._idle.get()
        if self._fatal is not None:  # another task hit it while this one waited
            self._idle.put_nowait(client)
            raise self._fatal
        try:
            return await self._transact(client, sender, recipient, data, composed)
        except BaseException:
            client.close()  # cancelled, failed or throttled mid-command: the session state is unknown
            raise
        finally:
            self._idle.put_nowait(client)

    async def _quit(self, client: _Client) -> None:
        if not client.is_connected:
            return
        try:
            await asyncio.wait_for(client.quit(), timeout=5)
        except (SMTPException, OSError, TimeoutError):
            pass
        finally:
            client.close()

    def _fail(self, message: str) -> DeliveryError:
        self._fatal = DeliveryError(message)
        return self._fatal

    def _certificate(self, exc: ssl.SSLError) -> DeliveryError:
        metrics.smtp_error("tls")
        reason = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        how = "STARTTLS" if self.smtp.security == "starttls" else "TLS"
        return self._fail(
            f"The {how} certificate of {self.where} does not verify: {reason} "
            "(trust its CA with [smtp].ca_file, or check [smtp].host)."
        )

    async def _connect(self, client: _Client) -> SendOutcome | None:
        """Open ``client``; None when ready, a transient outcome when the server cannot be
        reached now, _Throttled when it asks us to slow down, DeliveryError when it never
        will be usable with this configuration."""
        try:
            await client.connect()
        except ssl.SSLError as exc:  # STARTTLS: the handshake's failure comes through as it is
            raise self._certificate(exc) from None
        except SMTPAuthenticationError as exc:
            metrics.smtp_error("auth")
            if exc.code < 500:
                return SendOutcome("transient", f"authentication: {_reply(exc.code, exc.message)}", exc.code)
            raise self._fail(
                f"The SMTP server {self.where} refused the login of {self.smtp.username!r}: "
                f"{_reply(exc.code, exc.message)} (check [smtp].username and the password variable)."
            ) from None
        except (SMTPConnectResponseError, SMTPHeloError) as exc:
            if exc.code in (421, 450, 451):
                raise _Throttled(_reply(exc.code, exc.message)) from None
            if exc.code < 500:
                return SendOutcome("transient", f"{self.where}: {_reply(exc.code, exc.message)}", exc.code)
            raise self._fail(
                f"The SMTP server {self.where} will not accept mail from us: {_reply(exc.code, exc.message)}"
            ) from None
        except SMTPConnectError as exc:
            if isinstance(exc.__cause__, ssl.SSLError):
                raise self._certificate(exc.__cause__) from None
            metrics.smtp_error("connect")
            return SendOutcome(
                "transient", f"cannot connect to {self.where} ({exc}); is the SMTP server running?"
            )
        except (SMTPServerDisconnected, SMTPTimeoutError, OSError) as exc:
            metrics.smtp_error("timeout" if isinstance(exc, SMTPTimeoutError) else "disconnected")
            return SendOutcome("transient", f"{self.where}: {exc or type(exc).__name__} while connecting")
        except SMTPResponseException as exc:
            # STARTTLS or AUTH refused with a code
            if exc.code == 421:
                raise _Throttled(_reply(exc.code, exc.message)) from None
            if exc.code < 500:
                return SendOutcome("transient", f"{self.where}: {_reply(exc.code, exc.message)}", exc.code)
            raise self._fail(
                f"The SMTP server {self.where} refused us: {_reply(exc.code, exc.message)}"
            ) from None
        except SMTPException as exc:
            # No STARTTLS or no AUTH offered: a configuration mismatch, not a passing problem.
            raise self._fail(f"The SMTP server {self.where} cannot be used as configured: {exc}") from None
        self.connects += 1
        return None

    async def _transact(
        self, client: _Client, sender: str, recipient: str, data: bytes, composed: bool = False
    ) -> SendOutcome:
        reused = client.is_connected
        while True:
            if not client.is_connected:
                problem = await self._connect(client)
                if problem is not None:
                    return problem
            client.stage = "idle"
            try:
                reply = await client.transact(sender, recipient, data, ready=composed)
                return SendOutcome("sent", _reply(250, reply.message), 250)
            except (SMTPServerDisconnected, SMTPTimeoutError, OSError) as exc:
                client.close()
                metrics.smtp_error("timeout" if isinstance(exc, SMTPTimeoutError) else "disconnected")
                if reused and client.stage in ("idle", "mail") and not isinstance(exc, SMTPTimeoutError):
                    # The server closed an idle connection; nothing was accepted: once more, anew.
                    reused = False
                    continue
                return SendOutcome(
                    "transient",
                    f"{exc or type(exc).__name__} during {client.stage.upper()} at {self.where}",
                    ambiguous=client.stage == "body",
                )
            except SMTPResponseException as exc:
                return self._refused(client, exc, sender)
            except SMTPRecipientsRefused as exc:
                refusal = exc.recipients[0]
                return self._refused(client, refusal, sender)
            finally:
                if client.is_connected and not client.clean:
                    client.close()
                    client.clean = True

    def _refused(self, client: _Client, exc: SMTPResponseException, sender: str) -> SendOutcome:
        code, detail = exc.code, _reply(exc.code, exc.message)
        if code == 421 or code == 503:
            client.close()  # the server is closing, or our session is out of step
        if code in _AUTH_CODES:
            raise self._fail(f"The SMTP server {self.where} wants authentication we did not give: {detail}")
        if code == 421 or (isinstance(exc, SMTPSenderRefused) and code in _THROTTLE_ON_MAIL):
            raise _Throttled(detail)
        if code < 500 or code == 503:
            return SendOutcome("transient", detail, code)
        if isinstance(exc, SMTPSenderRefused):
            if code == 552:  # over the server's size limit (SIZE on MAIL FROM)
                return SendOutcome("permanent_message", detail, code)
            raise self._fail(f"The SMTP server {self.where} refused the sender address {sender!r}: {detail}")
        if client.stage == "rcpt":
            if code == 552:  # RFC 5321 4.5.3.1.10: treat as "too many recipients", temporary
                return SendOutcome("transient", detail, code)
            return SendOutcome("permanent", detail, code)
        if isinstance(exc, SMTPDataError) or client.stage in ("data", "body"):
            return SendOutcome("permanent_message", detail, code)
        return SendOutcome("transient", detail, code)
