"""The daemon behind `notifier serve`: an APScheduler AsyncIOScheduler that only ticks.

Owns which periodic job calls what (deliver due messages; housekeeping: take back the
messages of senders that stopped, stale-incident reminders, callback escalations, notes
about planned work that overran), the
daemon's sender heartbeat, the single-daemon guard on SQLite, and a graceful stop. All
business state is in the database: a tick looks at what is due *now*, so a restart loses
nothing and whatever came due while the daemon was down goes out on the first tick. A
delivery pass runs in a task of its own: a tick while one runs does nothing (no overlap,
no "skipped" warnings). This is the only module that imports apscheduler.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import start_http_server
from sqlalchemy import text
from sqlalchemy.engine import Engine

from notifier import hotline, maintenance
from notifier.bounces.intake import run_intake
from notifier.config import Config
from notifier.db import is_sqlite, write_session
from notifier.delivery.sender import KINDS, Heartbeat, Sender, SendReport, close_messengers, open_messengers
from notifier.errors import DeliveryError, NotifierError
from notifier.models import utcnow
from notifier.outbox import claims
from notifier.rendering import Renderer
from notifier.web.metrics import registry_for

log = logging.getLogger("notifier.serve")

HOUSEKEEPING_LOCK = 0x6E6F7469  # PostgreSQL advisory lock key: one daemon at a time does housekeeping


class AlreadyRunning(NotifierError):
    exit_code = 1


class SingleDaemonLock:
    """On SQLite only one `serve` may run per database file: an OS lock next to it."""

    def __init__(self, database_path: str) -> None:
        self.path = Path(database_path + ".serve.lock")
        self._handle: Any = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            other = handle.read().strip() or "?"
            handle.close()
            raise AlreadyRunning(
                f"another `notifier serve` (pid {other}) is already running on this SQLite database; "
                "stop it first, or use PostgreSQL to run several"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class Daemon:
    """Ticks deliveries and housekeeping until stopped; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        config: Config,
        *,
        messengers: Callable[[], Awaitable[dict[str, Any]]] | None = None,
        web: Callable[[asyncio.Event], Awaitable[None]] | None = None,
    ) -> None:
        self.engine, self.config = engine, config
        self.stop = asyncio.Event()
        self.renderer = Renderer(config)
        self._make_messengers = messengers or (lambda: open_messengers(config))
        self._messengers: dict[str, Any] | None = None
        self._web = web
        self._delivering: asyncio.Task[Any] | None = None
        self._housekeeping_task: asyncio.Future[Any] | None = None
        self.heartbeat = Heartbeat(engine, config)
        self.scheduler = AsyncIOScheduler(timezone=UTC)

    async def _close_messengers(self) -> None:
        messengers, self._messengers = self._messengers, None
        await close_messengers(messengers or {})

    # -- jobs --------------------------------------------------------------------------

    async def deliver(self) -> None:
        """Start a pass unless one is running: it sends everything due now, then ends (the
        next tick looks again). The tick itself returns at once, so a long mailing never
        overlaps itself or makes the scheduler skip; stopping waits for the pass instead."""
        if self.stop.is_set() or (self._delivering is not None and not self._delivering.done()):
            return
        self._delivering = asyncio.create_task(self._deliver_pass())

    async def _housekeeping(self) -> None:
        """Like ``deliver``: a tick while housekeeping still runs (a busy database) does nothing."""
        if self.stop.is_set() or (self._housekeeping_task is not None and not self._housekeeping_task.done()):
            return
        self._housekeeping_task = asyncio.create_task(asyncio.to_thread(self.housekeeping))

    async def _deliver_pass(self) -> SendReport | None:
        if self.heartbeat.lost:
            log.error("%s; registering anew", self.heartbeat.lost)
            self.heartbeat = Heartbeat(self.engine, self.config)
            await asyncio.to_thread(self.heartbeat.register)
        try:
            if self._messengers is None:
                self._messengers = await self._make_messengers()
            sender = Sender(self.engine, self.config, self._messengers, renderer=self.renderer,
                            heartbeat=self.heartbeat)  # fmt: skip
            report = await sender.run(stop=self.stop, until_empty=True)
        except DeliveryError as exc:
            log.error("delivery stopped: %s (will try again on the next tick)", exc)
            await self._close_messengers()
            return None
        for line in report.summary_lines():
            log.info(line)
        return report

    def housekeeping(self) -> dict[str, int]:
        """Take back stopped senders' messages, remind about silent incidents, escalate overdue callbacks.

        On PostgreSQL several daemons may run: an advisory lock makes one of them do it.
        """
        now = utcnow()
        done: dict[str, int] = {}
        with write_session(self.engine) as session:
            if not is_sqlite(self.engine):
                got = session.execute(
                    text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": HOUSEKEEPING_LOCK}
                ).scalar()
                if not got:
                    return done
            done["reminders"] = hotline.queue_stale_reminders(session, self.config, now)
            done["escalations"] = hotline.queue_escalations(session, self.config, now)
            done["maintenance overrun notes"] = maintenance.queue_overrun_reminders(session, self.config, now)
        taken = claims.take_back_now(self.engine, self.config.mailing.heartbeat_timeout)
        done["taken back"] = taken.total
        if taken.total:
            log.info("housekeeping: %s", taken.describe())
        for what, n in done.items():
            if n and what != "taken back":
                log.info("housekeeping: %d %s", n, what)
        return done

    # -- running -----------------------------------------------------------------------

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT (or ``self.stop``); in-flight sends finish first."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        serve = self.config.serve
        now = datetime.now(UTC)
        # Both jobs run at once on start: whatever came due while we were down goes out now.
        # coalesce + max_instances=1: a long mailing is one run, not a pile of overlapping ones;
        # a generous misfire grace: a late tick still runs (the database says what is due).
        common = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600, "next_run_time": now}
        self.scheduler.add_job(
            self.deliver, "interval", seconds=serve.tick.total_seconds(), id="deliver", **common
        )
        self.scheduler.add_job(
            self._housekeeping,
            "interval",
            seconds=serve.housekeeping.total_seconds(),
            id="housekeeping",
            **common,
        )
        await asyncio.to_thread(self.heartbeat.register)
        beating = asyncio.create_task(self._keep_beating())
        for issue in await asyncio.to_thread(self.renderer.check, KINDS):
            log.error("template problem: %s (its messages will wait until it is fixed)", issue)
        self.scheduler.start()
        log.info(
            "notifier serve started: pid %d, sender %s, database %s, SMTP %s:%d, tick %ss",
            os.getpid(), self.heartbeat.presence.name, self.config.database_url.split("@")[-1],
            self.config.smtp.host, self.config.smtp.port, serve.tick.total_seconds(),
        )  # fmt: skip
        web_task = asyncio.create_task(self._web(self.stop)) if self._web else None
        intake = asyncio.create_task(self._bounce_intake())
        plain_metrics = self._metrics_listener()
        try:
            await self.stop.wait()
        finally:
            self.scheduler.shutdown(wait=False)
            await self._finish_in_flight(serve.shutdown_grace.total_seconds())
            if web_task is not None:
                try:
                    await asyncio.wait_for(web_task, timeout=5)
                except (TimeoutError, asyncio.CancelledError):
                    web_task.cancel()
            beating.cancel()
            await asyncio.gather(beating, intake, return_exceptions=True)
            if plain_metrics is not None:
                plain_metrics.shutdown()
            await asyncio.to_thread(self.heartbeat.leave)
            await self._close_messengers()
            log.info("notifier serve stopped")

    def _metrics_listener(self) -> Any:
        """``[serve].metrics_listen``: /metrics without a token on an address of its own, or None."""
        address = self.config.serve.metrics_address
        if address is None:
            return None
        server, _ = start_http_server(address[1], address[0], registry=registry_for(self.engine))
        log.info("metrics on http://%s:%d/metrics", *address)
        return server

    async def _bounce_intake(self) -> None:
        """The [bounces] listener and Maildir poller, when configured; a failure is logged, not fatal."""
        try:
            await run_intake(self.engine, self.config, self.stop)
        except NotifierError as exc:
            log.error("bounce intake stopped: %s", exc)

    async def _keep_beating(self) -> None:
        """The daemon's heartbeat, for its whole life (each pass shares it)."""
        while not self.stop.is_set():
            await self.heartbeat.run(self.stop)
            if self.heartbeat.lost and not self.stop.is_set():
                await asyncio.sleep(self.heartbeat.interval)  # the next pass registers anew

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("%s received: no new claims; finishing the messages in flight", sig.name)
        self.stop.set()

    async def _finish_in_flight(self, grace: float) -> None:
        task = self._delivering
        if task is None or task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=grace)
        except TimeoutError:
            log.warning("in-flight sends did not finish within %.0f s; they will be taken back", grace)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def run_daemon(
    engine: Engine, config: Config, *, web: Callable[[asyncio.Event], Awaitable[None]] | None = None
) -> None:
    """What `notifier serve` runs: the single-daemon guard, then the loop."""
    lock = SingleDaemonLock(config.database_url.removeprefix("sqlite:///")) if is_sqlite(engine) else None
    if lock is not None:
        lock.acquire()
    try:
        asyncio.run(Daemon(engine, config, web=web).run())
    finally:
        if lock is not None:
            lock.release()
