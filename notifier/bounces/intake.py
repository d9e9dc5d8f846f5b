"""Where bounces come in: an LMTP/SMTP listener, a Maildir poller, and single files.

Owns receiving bounce, complaint and auto-reply messages and handing each to
``parsing.read_message`` and ``suppression.record`` in one write transaction:

* ``run_intake(engine, config, stop)``: the coroutine ``notifier serve`` runs in its event
  loop. It listens on ``[bounces].listen`` (LMTP or SMTP, aiosmtpd), accepting recipients of
  ``[bounces].domain`` only, and reads ``[bounces].maildir`` every ``poll_interval``;
* ``process_path``: one message file or one Maildir, once (``notifier bounces process``);
* ``process_message``: one message's bytes.

A message is acknowledged (250, or moved to the Maildir's ``cur/``) only once its events are
committed; while the database is unreachable the listener answers 451 and the MTA retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy.engine import Engine

from notifier.bounces.parsing import read_message
from notifier.bounces.suppression import Outcome, record
from notifier.config import Config
from notifier.db import write_session
from notifier.errors import DatabaseError, UsageError

log = logging.getLogger("notifier.bounces")


def process_message(
    engine: Engine, config: Config, data: bytes, *, source: str, envelope_recipients: Sequence[str] = ()
) -> list[Outcome]:
    """Read one message and record every event it carries (none for an unrelated message)."""
    secret = config.secret()
    events, delivered_to = read_message(data, envelope_recipients)
    with write_session(engine) as session:
        return [
            record(session, config, event, source=source, secret=secret, delivered_to=delivered_to)
            for event in events
        ]


@dataclass
class IntakeReport:
    messages: int = 0
    outcomes: list[Outcome] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for outcome in self.outcomes:
            kinds[outcome.kind] = kinds.get(outcome.kind, 0) + 1
        return {
            "messages": self.messages, "events": kinds,
            "status_changes": sum(1 for o in self.outcomes if o.changed),
            "unmatched": sum(1 for o in self.outcomes if o.match.subscriber_id is None),
            "outcomes": [o.as_dict() for o in self.outcomes],
        }  # fmt: skip


def process_maildir(
    engine: Engine, config: Config, maildir: Path, *, source: str = "maildir"
) -> IntakeReport:
    """Every message in ``maildir/new``, each moved to ``cur/`` (flagged seen) once recorded."""
    new, cur = maildir / "new", maildir / "cur"
    report = IntakeReport()
    for name in sorted(os.listdir(new)):
        path = new / name
        if name.startswith(".") or not path.is_file():
            continue
        report.outcomes += process_message(engine, config, path.read_bytes(), source=source)
        report.messages += 1
        os.replace(path, cur / (name.split(":", 1)[0] + ":2,S"))
    return report


def process_path(engine: Engine, config: Config, path: Path) -> IntakeReport:
    """A Maildir (a directory with ``new/`` and ``cur/``) or a single message file."""
    if path.is_dir():
        if not ((path / "new").is_dir() and (path / "cur").is_dir()):
            raise UsageError(f"{path} is a directory but not a Maildir (it has no new/ and cur/)")
        return process_maildir(engine, config, path, source="file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it: {exc.strerror}") from None
    return IntakeReport(messages=1, outcomes=process_message(engine, config, data, source="file"))


# The listener ------------------------------------------------------------------------------


class BounceHandler:
    """aiosmtpd handler: recipients of the bounce domain only; a message is recorded before 250."""

    def __init__(self, engine: Engine, config: Config) -> None:
        self.engine, self.config = engine, config
        self.lmtp = config.bounces.protocol == "lmtp"

    async def handle_RCPT(
        self, server: SMTP, session: SmtpSession, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        domain = address.rpartition("@")[2].strip().lower()
        if domain != self.config.bounces.domain:
            return f"550 5.1.1 <{address}>: only mail for {self.config.bounces.domain} is taken here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        source = "lmtp" if self.lmtp else "smtp"
        try:
            await asyncio.to_thread(
                process_message, self.engine, self.config, data, source=source,
                envelope_recipients=list(envelope.rcpt_tos),
            )  # fmt: skip
            reply = "250 2.0.0 OK: recorded"
        except DatabaseError as exc:
            log.warning("bounce not recorded, the sender will retry: %s", exc)
            reply = "451 4.3.0 cannot record it now, try again later"
        except Exception:  # a bug in parsing must not make the MTA retry forever
            log.exception("bounce from %s could not be read; dropped", envelope.mail_from)
            reply = "250 2.0.0 OK: not readable, dropped"
        # LMTP answers once per recipient (RFC 2033); aiosmtpd sends this string as is.
        return "\r\n".join([reply] * len(envelope.rcpt_tos)) if self.lmtp else reply


async def start_listener(engine: Engine, config: Config) -> asyncio.Server:
    """Listen on ``[bounces].listen`` in the running loop; the caller closes the server."""
    address = config.bounces.listen_address
    if address is None or not config.bounces.domain:
        raise UsageError("set [bounces].domain and [bounces].listen to receive bounces")
    config.secret()  # fail now, not at the first bounce
    handler, protocol = BounceHandler(engine, config), LMTP if config.bounces.protocol == "lmtp" else SMTP
    hostname = config.bounces.domain

    def factory() -> SMTP:
        return protocol(handler, hostname=hostname, data_size_limit=config.bounces.max_message_size)

    host, port = address
    try:
        return await asyncio.get_running_loop().create_server(factory, host, port)
    except OSError as exc:
        raise UsageError(
            f"[bounces].listen {config.bounces.listen}: cannot listen there: {exc.strerror}"
        ) from None


async def run_intake(engine: Engine, config: Config, stop: asyncio.Event) -> None:
    """Receive bounces until ``stop`` is set: the listener and the Maildir poller, as configured.

    Returns at once when ``[bounces]`` configures neither.
    """
    bounces = config.bounces
    maildir = (config.base_dir / bounces.maildir) if bounces.maildir else None
    if bounces.listen_address is None and maildir is None:
        return
    server = await start_listener(engine, config) if bounces.listen_address else None
    try:
        while not stop.is_set():
            if maildir is not None:
                await _poll(engine, config, maildir)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=bounces.poll_interval.total_seconds())
    finally:
        if server is not None:
            server.close()
            await server.wait_closed()


async def _poll(engine: Engine, config: Config, maildir: Path) -> None:
    try:
        report = await asyncio.to_thread(process_maildir, engine, config, maildir)
    except (DatabaseError, OSError) as exc:
        log.warning("bounce Maildir %s not read this time: %s", maildir, exc)
        return
    if report.messages:
        log.info("bounce Maildir %s: %d messages, %d events", maildir, report.messages, len(report.outcomes))
