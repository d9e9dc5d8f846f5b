"""The SMTP transport: a pool of reused aiosmtplib connections, a rate limit, and the
classification of every SMTP reply into a :class:`~notifier.delivery.SendOutcome`.

Owns everything SMTP (it is the only module that imports aiosmtplib): connecting with
TLS or STARTTLS and AUTH from ``[smtp]``, one transaction per connection at a time,
lazily replacing dropped connections, and deciding what a reply means:

- 250 after DATA: ``sent``;
- 4xx anywhere, a disconnect, a timeout, an unreachable server: ``transient`` (when the
  connection failed after the whole message was written, ``ambiguous=True``: the server
  may have accepted it);
- 5xx on RCPT: ``permanent`` (the address is bad: the caller marks it bounced);
- 5xx on DATA, or 552 (too big) on MAIL: ``permanent_message`` (this message, not the
  address);
- authentication refused, the sender address refused, a certificate that does not
  verify, a server that will not talk to us: :class:`~notifier.errors.DeliveryError`,
  because every further message would fail the same way. The run stops.

It does not know what a message says or how it was built: it sends pre-built bytes
with ``sendmail`` (``send_message`` would re-serialise them, ~5 ms each).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPDataError,
    SMTPException,
    SMTPHeloError,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from notifier.composing import check_address
from notifier.config import SmtpSection
from notifier.delivery import SendOutcome
from notifier.delivery.ratelimit import RateLimiter
from notifier.errors import ConfigError, DeliveryError

__all__ = ["SmtpTransport"]

log = logging.getLogger("notifier.smtp")

_AUTH_CODES = {530, 534, 535, 538}  # authentication required / too weak / refused / needs TLS


def _reply(code: int | None, message: str) -> str:
    text = " / ".join(line.strip() for line in str(message).splitlines() if line.strip())
    return f"{code} {text}" if code is not None else text


class _Client(aiosmtplib.SMTP):
    """An aiosmtplib client that remembers how far the current transaction got.

    ``stage`` is "mail", "rcpt", "data" (DATA command sent) or "body" (the message and its
    final dot handed to the socket): a failure in "body" is ambiguous. ``clean`` is False
    when the RSET after a refused transaction failed, so the session state is unknown.
    """

    stage = "idle"
    clean = True

    async def mail(self, *args: Any, **kwargs: Any) -> Any:
        self.stage = "mail"
        return await super().mail(*args, **kwargs)

    async def rcpt(self, *args: Any, **kwargs: Any) -> Any:
        self.stage = "rcpt"
        return await super().rcpt(*args, **kwargs)

    async def data(self, message: str | bytes, /, **kwargs: Any) -> Any:
        self.stage = "data"
        protocol = self.protocol
        if protocol is None:
            return await super().data(message, **kwargs)
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

    async def rset(self, *args: Any, **kwargs: Any) -> Any:
        self.clean = False
        response = await super().rset(*args, **kwargs)
        self.clean = True
        return response


class SmtpTransport:
    """``async with SmtpTransport(config.smtp, password=config.smtp.password()) as t:
    outcome = await t.send(sender, recipient, data)``.

    Up to ``smtp.connections`` sends run at once, each on its own connection; further
    callers wait for a free one. Connections are opened on first use (``start`` opens one
    to find a wrong password before anything is claimed) and reopened when dropped.
    """

    def __init__(self, smtp: SmtpSection, *, password: str | None) -> None:
        if smtp.username and password is None:
            raise ConfigError(
                "[smtp].username is set but no password: name its variable in [smtp].password_env."
            )
        self.smtp = smtp
        self.password = password
        self.limiter = RateLimiter(smtp.rate_limit)
        self.connects = 0  # connections opened, for tests and reports
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
                hostname=self.smtp.host,
                port=self.smtp.port,
                local_hostname=hostname,
                timeout=timeout,
                use_tls=self.smtp.security == "tls",
                start_tls=self.smtp.security == "starttls",
                username=self.smtp.username or None,
                password=self.password if self.smtp.username else None,
            )
            self._clients.append(client)
            self._idle.put_nowait(client)
        problem = await self._connect(self._clients[0])
        if problem is not None:
            log.warning("SMTP server not reachable yet: %s", problem.detail)

    async def close(self) -> None:
        """QUIT every open connection (best effort) and forget them."""
        clients, self._clients = self._clients, []
        await asyncio.gather(*(self._quit(client) for client in clients))

    async def __aenter__(self) -> SmtpTransport:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def send(self, sender: str, recipient: str, data: bytes) -> SendOutcome:
        """One transaction: MAIL FROM ``sender``, RCPT TO ``recipient`` only (the envelope
        never comes from the headers), DATA ``data`` (CRLF bytes, as composed)."""
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
            raise RuntimeError("SmtpTransport.send() before start() (or after close())")
        await self.limiter.acquire()
        client = await self._idle.get()
        if self._fatal is not None:  # another task hit it while this one waited
            self._idle.put_nowait(client)
            raise self._fatal
        try:
            return await self._transact(client, sender, recipient, data)
        except BaseException:
            client.close()  # cancelled or failed mid-command: the session state is unknown
            raise
        finally:
            self._idle.put_nowait(client)

    # ------------------------------------------------------------------------------------

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

    async def _connect(self, client: _Client) -> SendOutcome | None:
        """Open ``client``; None when ready, a transient outcome when the server cannot be
        reached now, DeliveryError when it never will be with this configuration."""
        try:
            await client.connect()
        except SMTPAuthenticationError as exc:
            if exc.code < 500:
                return SendOutcome("transient", f"authentication: {_reply(exc.code, exc.message)}", exc.code)
            raise self._fail(
                f"The SMTP server {self.where} refused the login of {self.smtp.username!r}: "
                f"{_reply(exc.code, exc.message)} (check [smtp].username and the password variable)."
            ) from None
        except (SMTPConnectResponseError, SMTPHeloError) as exc:
            if exc.code < 500:
                return SendOutcome("transient", f"{self.where}: {_reply(exc.code, exc.message)}", exc.code)
            raise self._fail(
                f"The SMTP server {self.where} will not accept mail from us: {_reply(exc.code, exc.message)}"
            ) from None
        except SMTPConnectError as exc:
            if isinstance(exc.__cause__, ssl.SSLCertVerificationError):
                raise self._fail(
                    f"The TLS certificate of {self.where} does not verify: {exc.__cause__.verify_message}."
                ) from None
            return SendOutcome(
                "transient", f"cannot connect to {self.where} ({exc}); is the SMTP server running?"
            )
        except (SMTPServerDisconnected, SMTPTimeoutError, OSError) as exc:
            return SendOutcome("transient", f"{self.where}: {exc or type(exc).__name__} while connecting")
        except SMTPResponseException as exc:
            # STARTTLS or AUTH refused with a code
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

    async def _transact(self, client: _Client, sender: str, recipient: str, data: bytes) -> SendOutcome:
        reused = client.is_connected
        while True:
            if not client.is_connected:
                problem = await self._connect(client)
                if problem is not None:
                    return problem
            client.stage = "idle"
            try:
                _, reply = await client.sendmail(sender, [recipient], data)
                return SendOutcome("sent", _reply(250, reply), 250)
            except (SMTPServerDisconnected, SMTPTimeoutError, OSError) as exc:
                client.close()
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
