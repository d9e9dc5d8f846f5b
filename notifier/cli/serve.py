"""`notifier serve`: the long-running daemon (scheduler + sender, and the web when present)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import typer

from notifier.cli import app
from notifier.cli.common import state


def _web_runner(config: Any, engine: Any, host: str, port: int) -> Any:
    """uvicorn in the daemon's own loop; the daemon, not uvicorn, handles signals."""
    try:
        import uvicorn

        from notifier.web import create_app
    except ImportError:
        return None

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    async def run(stop: asyncio.Event) -> None:
        server = _Server(
            uvicorn.Config(create_app(config, engine), host=host, port=port, log_level="warning")
        )
        task = asyncio.create_task(server.serve())
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

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("apscheduler", "alembic", "mail.log", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    st = state(ctx)
    config, engine = st.config, st.engine()
    config.secret()  # unsubscribe links must be signable before anything is sent
    runner = (
        _web_runner(config, engine, host or config.serve.host, port or config.serve.port) if web else None
    )
    run_daemon(engine, config, web=runner)
