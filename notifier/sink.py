"""A local SMTP server that keeps what it receives: ``notifier sink``, the demo's and the
benchmark's mail server.

Owns receiving mail on 127.0.0.1 (aiosmtpd, run on its own event loop in a background
thread so that it serves whatever the caller's thread is doing) and storing each message
as an ``.eml`` file named by a counter and its Message-ID, or in memory. It relays
nothing, and it is built to be fast: no fsync, no parsing unless someone asks for the
subject. :class:`SmtpServerThread` is the reusable part (the tests' scripted server uses it).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["ReceivedMessage", "Sink", "SmtpServerThread", "header_value"]

_HEADER_END = b"\r\n\r\n"


def header_value(raw: bytes, name: str) -> str | None:
    """The unfolded, decoded value of the first ``name`` header in ``raw``, or None.

    Cheap on purpose (a regex over the header block, RFC 2047 decoding), for printing a
    line per message without parsing the whole message.
    """
    head = raw.split(_HEADER_END, 1)[0]
    match = re.search(
        rb"(?im)^" + re.escape(name.encode()) + rb":[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", head
    )
    if match is None:
        return None
    folded = match.group(1).decode("ascii", errors="replace")
    value = re.sub(r"\r?\n(?=[ \t])", "", folded)
    try:
        return str(make_header(decode_header(value))).strip()
    except (ValueError, LookupError):  # a malformed encoded word: show it as it is
        return value


@dataclass
class ReceivedMessage:
    """One message as the sink got it. ``data`` is in memory only when the sink has no
    directory; ``path`` is the stored file otherwise."""

    number: int
    received_at: datetime
    mail_from: str
    rcpt_tos: list[str]
    path: Path | None = None
    data: bytes | None = field(default=None, repr=False)

    def raw(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    @property
    def subject(self) -> str:
        return header_value(self.raw(), "Subject") or ""


class SmtpServerThread:
    """An asyncio server for ``factory``'s protocols, on its own loop in a daemon thread.

    ``start(host, port)`` returns once it listens (``.port`` is then the real port);
    ``stop()`` closes the listener and every open connection.
    """

    def __init__(self, factory: Callable[[], asyncio.Protocol]) -> None:
        self._factory = factory
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._protocols: list[asyncio.Protocol] = []

    def _make(self) -> asyncio.Protocol:
        protocol = self._factory()
        self._protocols.append(protocol)
        return protocol

    def start(self, host: str = "127.0.0.1", port: int = 0, *, ssl: Any = None) -> None:
        """Listen on ``host:port`` (0: any free port); ``ssl`` (an SSLContext) for implicit TLS."""
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                server = loop.run_until_complete(loop.create_server(self._make, host, port, ssl=ssl))
            except BaseException as exc:  # e.g. the port is taken: report it to start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            try:
                loop.run_forever()
            finally:
                server.close()
                for protocol in self._protocols:
                    transport = getattr(protocol, "transport", None)
                    if transport is not None:
                        transport.close()
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.run_until_complete(server.wait_closed())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"smtp-server-{port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            self._thread = None
            raise failure[0]

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._protocols.clear()

    def forget_closed(self) -> None:
        """Drop finished connections from the list kept for stop() (long-running servers)."""
        self._protocols = [p for p in self._protocols if getattr(p, "transport", None) is not None]


class _StoreHandler:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        message = self.sink._store(envelope.mail_from or "", list(envelope.rcpt_tos), data)
        return f"250 2.0.0 Ok: stored as {message.number}"


class Sink:
    """``with Sink(directory) as sink: …`` — an SMTP server on 127.0.0.1 that stores mail.

    ``directory=None`` keeps messages in memory. ``on_message`` is called (in the server's
    thread) with each :class:`ReceivedMessage`. ``.messages`` counts them, ``.received``
    lists them; :meth:`wait_for` blocks until a number have arrived.
    """

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        hostname: str = "notifier-sink",
        on_message: Callable[[ReceivedMessage], Any] | None = None,
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.host = host
        self.requested_port = port
        self.hostname = hostname
        self.on_message = on_message
        self.received: list[ReceivedMessage] = []
        self._counter = 0
        self._arrived = threading.Condition()
        handler = _StoreHandler(self)
        # hostname= spares aiosmtpd a socket.getfqdn() per connection.
        self._server = SmtpServerThread(
            lambda: SMTP(handler, hostname=hostname, ident="notifier sink", enable_SMTPUTF8=True)
        )

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def messages(self) -> int:
        return len(self.received)

    def start(self) -> Sink:
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Continue numbering after what an earlier run left, never overwrite it.
            numbers = [int(p.name.split("-", 1)[0]) for p in self.directory.glob("[0-9]*-*.eml")]
            self._counter = max(numbers, default=0)
        self._server.start(self.host, self.requested_port)
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """True once at least ``count`` messages have arrived, False after ``timeout`` seconds."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.received) >= count, timeout)

    def _store(self, mail_from: str, rcpt_tos: list[str], data: bytes) -> ReceivedMessage:
        self._counter += 1
        message = ReceivedMessage(self._counter, datetime.now(UTC), mail_from, rcpt_tos)
        if self.directory is None:
            message.data = data
        else:
            mid = header_value(data[:8192], "Message-ID") or ""
            name = re.sub(r"[^A-Za-z0-9.@_-]+", "_", mid.strip("<> \t"))[:80].strip("._")
            message.path = self.directory / f"{self._counter:06d}-{name or 'message'}.eml"
            message.path.write_bytes(data)
        with self._arrived:
            self.received.append(message)
            self._arrived.notify_all()
        if self._counter % 1000 == 0:
            self._server.forget_closed()
        if self.on_message is not None:
            self.on_message(message)
        return message
