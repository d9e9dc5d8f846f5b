"""`notifier sink`: a local SMTP server that stores every message it receives as a file."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from notifier.cli import app
from notifier.errors import UsageError

if TYPE_CHECKING:
    from notifier.sink import ReceivedMessage


def _print_line(message: ReceivedMessage) -> None:
    when = message.received_at.astimezone().strftime("%H:%M:%S")
    to = ", ".join(message.rcpt_tos)
    sys.stdout.write(f"{when}  #{message.number}  {message.mail_from} -> {to}  {message.subject}\n")
    sys.stdout.flush()


@app.command("sink")
def sink(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(1025, "--port", min=0, max=65535, help="port to listen on"),
    directory: Path = typer.Option(Path("mail"), "--dir", help="where to store the .eml files"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="do not print a line per message"),
) -> None:
    """Run a local SMTP server that stores each message it receives as DIR/NNNNNN-<message-id>.eml.

    It relays nothing. Point [smtp] at it (host 127.0.0.1, port 1025, security "none") to see
    what a mailing would send. Stops on Ctrl-C.

    Example: notifier sink --port 1025 --dir mail/
    """
    from notifier.sink import Sink
    server = Sink(directory, host=host, port=port, on_message=None if quiet else _print_line)
    try:
        server.start()
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    # SIGTERM stops it as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.stdout.write(f"Listening on {host}:{server.port}, storing mail in {directory}/ (Ctrl-C to stop)\n")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    sys.stdout.write(f"Stopped after {server.messages} message{'s' if server.messages != 1 else ''}.\n")
