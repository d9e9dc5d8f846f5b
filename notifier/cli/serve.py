"""`notifier serve`: the long-running daemon (scheduler + sender, and the web when present).

The web's address is taken before anything else starts: the port is checked and bound
first, so a busy port or a bad address is one ``error:`` line and exit 2, not a daemon that
started its scheduler and then found it cannot listen. uvicorn serves on that socket.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from collections.abc import Iterator
from typing import Any

import typer

from notifier.cli import app
from notifier.cli.common import bounded, state
from notifier.errors import UsageError


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening; UsageError (one line) when it cannot be."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"cannot listen on {host}:{port}: no such address ({exc})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restarts need not wait
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = " (is another notifier serve running? use --port)" if exc.errno == errno.EADDRINUSE else ""
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
    return sock


def _web_runner(config: Any, engine: Any, sock: socket.socket) -> Any:
    """uvicorn in the daemon's own loop, on the socket bound already; the daemon, not uvicorn,
    handles signals."""
    import asyncio

    try:
        import uvicorn

        from notifier.web import create_app
    except ImportError:
        return None

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    host, port = sock.getsockname()[:2]

    async def run(stop: asyncio.Event) -> None:
        server = _Server(
            uvicorn.Config(create_app(config, engine), host=host, port=port, log_level="warning")
        )
        task = asyncio.create_task(server.serve(sockets=[sock]))
        logging.getLogger("notifier.serve").info("web on http://%s:%d/", host, port)
        await stop.wait()
        server.should_exit = True
        await task

    return run


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="web address to listen on (default [serve].host)"),
    port: int | None = typer.Option(None, "--port", help="web port (default [serve].port)"),
    web: bool = typer.Option(True, "--web/--no-web", help="also serve the status page, API and console"),
) -> None:
    """Run the daemon: deliver due messages on every tick, reclaim leases, remind, escalate.

    Stops on SIGTERM/SIGINT after the messages in flight are sent (within [serve].shutdown_grace).
    Example: notifier serve --port 8080
    """
    from notifier.scheduler import run_daemon

    if port is not None:
        bounded(port, "--port", 1, 65535)
    st = state(ctx)
    sock = listening_socket(host or st.config.serve.host, port or st.config.serve.port) if web else None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("apscheduler", "alembic", "mail.log", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config, engine = st.config, st.engine()
    config.secret()  # unsubscribe links must be signable before anything is sent
    runner = _web_runner(config, engine, sock) if sock is not None else None
    try:
        run_daemon(engine, config, web=runner)
    finally:
        if sock is not None:
            sock.close()
