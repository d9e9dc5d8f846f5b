"""A real SMTP server (aiosmtpd on 127.0.0.1) whose replies a test scripts.

    server = ScriptedSmtpServer(auth={"user": "secret"}).start()
    server.on("RCPT", "bad@example.org", "550 5.1.1 No such user")
    server.on("DATA", "*", "451 4.3.0 Try later", times=1)
    server.on("DATA", "slow@example.org", delay=2.0)
    server.on("DATA", "drop@example.org", drop=True)     # take the message, then hang up
    server.on("CONNECT", "*", "421 4.7.0 Too many connections", times=2)   # refuse at the greeting
    ...

With ``tls`` (a :class:`TlsFiles` from :func:`self_signed`), the server offers STARTTLS with
that certificate, or speaks TLS from the first byte with ``implicit_tls=True``.
    server.received      # [(mail_from, rcpt_tos, data), …] of accepted (or dropped-after) messages
    server.connections   # connections accepted so far
    server.stop()

A rule matches a command ("CONNECT", "MAIL", "RCPT" or "DATA") and an address: the sender for
MAIL, the recipient for RCPT, any envelope recipient for DATA; "*" matches all (and CONNECT). The first rule
that matches and has uses left applies: an optional delay, then the reply, or a hang-up.
With ``auth``, the server offers AUTH (without TLS) and answers 535 to a wrong password.
With ``pipelining``, it offers PIPELINING (RFC 2920; aiosmtpd reads pipelined commands one by
one from its buffer, as a real server does), and ``server.chunks`` holds what each read from
the socket brought, so a test can see which commands arrived together.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from notifier.sink import SmtpServerThread


@dataclass
class Rule:
    command: str
    match: str
    reply: str | None
    delay: float
    drop: bool
    times: int | None

    def applies(self, command: str, addresses: list[str]) -> bool:
        if self.command != command or self.times == 0:
            return False
        return self.match == "*" or any(a.lower() == self.match.lower() for a in addresses)


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def self_signed(directory: Path, name: str = "127.0.0.1") -> TlsFiles:
    """A throw-away self-signed certificate for ``name`` (an IP address or a host name)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    alt = f"IP:{name}" if name.replace(".", "").isdigit() else f"DNS:{name}"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName={alt}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return TlsFiles(cert, key)


class _ScriptedSMTP(SMTP):
    """aiosmtpd's SMTP, but a CONNECT rule can answer the greeting with a refusal and hang up."""

    def __init__(self, server: ScriptedSmtpServer, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._scripted_server = server

    def data_received(self, data: bytes) -> None:
        self._scripted_server.chunks.append(data)
        super().data_received(data)

    async def _handle_client(self) -> None:
        rule = self._scripted_server._rule("CONNECT", ["*"])
        if rule is not None and rule.reply:
            await self.push(rule.reply)
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()


class _Handler:
    def __init__(self, server: ScriptedSmtpServer) -> None:
        self.server = server

    async def _scripted(self, smtp: SMTP, command: str, addresses: list[str]) -> str | None:
        rule = self.server._rule(command, addresses)
        if rule is None:
            return None
        if rule.delay:
            await asyncio.sleep(rule.delay)
        if rule.drop:
            if smtp.transport is not None:
                smtp.transport.abort()
            return "421 4.4.2 dropped (never seen by the client)"
        return rule.reply

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.server.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        reply = await self._scripted(server, "MAIL", [address])
        if reply is not None and not reply.startswith("2"):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return reply or "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = await self._scripted(server, "RCPT", [address])
        if reply is not None and not reply.startswith("2"):
            return reply
        envelope.rcpt_tos.append(address)
        return reply or "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        rule = self.server._rule("DATA", list(envelope.rcpt_tos), consume=False)
        if rule is not None and rule.drop:
            # Dropping after the final dot: the message did arrive, the client cannot know.
            self.server._record(envelope)
        reply = await self._scripted(server, "DATA", list(envelope.rcpt_tos))
        if reply is None or reply.startswith("2"):
            self.server._record(envelope)
        return reply or "250 2.0.0 Ok: queued"


class ScriptedSmtpServer:
    def __init__(
        self, *, auth: dict[str, str] | None = None, hostname: str = "scripted.test", tls: TlsFiles | None = None,
        implicit_tls: bool = False, pipelining: bool = False,
    ) -> None:  # fmt: skip
        self.auth = auth
        self.pipelining = pipelining
        self.chunks: list[bytes] = []
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.received: list[tuple[str, list[str], bytes]] = []
        self.connections = 0
        self.logins: list[str] = []
        self.rules: list[Rule] = []
        handler = _Handler(self)

        options: dict[str, object] = {"hostname": hostname}
        if tls is not None and not implicit_tls:
            options["tls_context"] = tls.server_context()
        if auth is not None:
            options.update(auth_require_tls=False, auth_required=False, authenticator=self._authenticate)

        def factory() -> SMTP:
            self.connections += 1
            return _ScriptedSMTP(self, handler, **options)

        self._thread = SmtpServerThread(factory)

    @property
    def port(self) -> int:
        return self._thread.port

    def on(
        self,
        command: str,
        match: str = "*",
        reply: str | None = None,
        *,
        delay: float = 0.0,
        drop: bool = False,
        times: int | None = None,
    ) -> ScriptedSmtpServer:
        """Script the reply to ``command`` for ``match``; ``times`` uses (None: every time)."""
        if command not in ("CONNECT", "MAIL", "RCPT", "DATA"):
            raise ValueError(f"cannot script {command!r}")
        self.rules.append(Rule(command, match, reply, delay, drop, times))
        return self

    def _rule(self, command: str, addresses: list[str], *, consume: bool = True) -> Rule | None:
        for rule in self.rules:
            if rule.applies(command, addresses):
                if consume and rule.times is not None:
                    rule.times -= 1
                return rule
        return None

    def _record(self, envelope: Envelope) -> None:
        self.received.append(
            (envelope.mail_from or "", list(envelope.rcpt_tos), envelope.original_content or b"")
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
    ) -> AuthResult:
        assert self.auth is not None
        if isinstance(auth_data, LoginPassword):
            login, password = auth_data.login.decode(), auth_data.password.decode()
            if self.auth.get(login) == password:
                self.logins.append(login)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self, port: int = 0) -> ScriptedSmtpServer:
        context = self.tls.server_context() if self.tls is not None and self.implicit_tls else None
        self._thread.start("127.0.0.1", port, ssl=context)
        return self

    def stop(self) -> None:
        self._thread.stop()

    def __enter__(self) -> ScriptedSmtpServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
