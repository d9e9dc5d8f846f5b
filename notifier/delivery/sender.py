"""The sender loop: claim due messages, render and compose each, push it through a
transport, record the outcomes.

Owns the pipeline and its concurrency (one feeder claiming batches ahead, one worker per
transport connection, one recorder writing outcomes in batches) and what each outcome
means for the outbox. It knows neither SQL (``delivery.queue``) nor SMTP (the transport),
nor what a letter says (``rendering``) or how it is encoded (``composing``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from notifier import hotline, tokens
from notifier.composing import Composer, message_id
from notifier.config import Config
from notifier.db import read_session
from notifier.delivery import queue
from notifier.delivery.webhook import webhook_payload
from notifier.errors import DatabaseError, DeliveryError
from notifier.models import Incident, Message, Subscriber, Update, utcnow
from notifier.rendering import Renderer

log = logging.getLogger("notifier.sender")


class Transport(Protocol):
    """Anything that can push one pre-built message to one recipient."""

    async def send(self, sender: str, recipient: str, data: bytes) -> Any: ...


@dataclass
class SendReport:
    """Counts for one run of the sender, updated as results are recorded."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    bounced: int = 0
    cancelled: int = 0
    total: int = 0  # due when the run started (for progress bars)
    started: float = field(default_factory=time.monotonic)
    # (incident ref or "-", kind) -> outcome -> count, for one log line per mailing
    mailings: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)

    def count(self, message: Message, outcome: str) -> None:
        key = (f"INC-{message.incident_id}" if message.incident_id else "-", message.kind)
        self.mailings.setdefault(key, Counter())[outcome] += 1

    def summary_lines(self) -> list[str]:
        return [
            f"{ref} {kind}: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
            for (ref, kind), counts in sorted(self.mailings.items())
        ]

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.bounced + self.cancelled

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.sent / elapsed if elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent, "retried": self.retried, "failed": self.failed, "bounced": self.bounced,
            "cancelled": self.cancelled, "seconds": round(time.monotonic() - self.started, 3),
        }  # fmt: skip


_DB_ERRORS = (DatabaseError, DBAPIError)
# Outcomes are written at least every RECORD_INTERVAL seconds or RECORD_BATCH results:
# at ~500 messages/s a crash can resend about 50 that were sent but not yet recorded.
RECORD_INTERVAL = 0.1
RECORD_BATCH = 200


class _Outage:
    """A database that stopped answering: back off between tries, give up after ``limit``.

    A full disk is not waited for: it stops the run at once with a clear message.
    """

    def __init__(self, limit: float) -> None:
        self.limit, self.delay = limit, 0.2
        self.since: float | None = None

    async def wait(self, exc: BaseException) -> None:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "disk is full" in detail or "No space left" in detail:
            raise DatabaseError(
                f"{detail.removesuffix('.')}; stopped sending (unrecorded sends stay claimed)"
            )
        now = time.monotonic()
        if self.since is None:
            self.since = now
            log.warning("database unavailable, waiting (%s)", detail)
        elif now - self.since > self.limit:
            raise DatabaseError(f"the database has not answered for {self.limit:.0f} s: {detail}")
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, 5.0)

    def ok(self) -> None:
        if self.since is not None:
            log.warning("database back after %.1f s", time.monotonic() - self.since)
        self.since, self.delay = None, 0.2


@dataclass
class _Job:
    message: Message
    subscriber: Subscriber | None


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Sender:
    """Drains the outbox through one transport. One instance per process and run."""

    def __init__(
        self,
        engine: Engine,
        config: Config,
        transport: Transport,
        *,
        renderer: Renderer | None = None,
        webhook_transport: Transport | None = None,
        worker: str | None = None,
        concurrency: int | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine, self.config, self.transport = engine, config, transport
        self.transports: dict[str, Transport | None] = {"email": transport, "webhook": webhook_transport}
        self.renderer = renderer or Renderer(config)
        self.worker = worker or default_worker_id()
        self.concurrency = concurrency or config.smtp.connections
        self.clock = clock
        domain = config.smtp.from_address.rpartition("@")[2] or "localhost"
        self.domain = domain
        self._composers = {
            locale: Composer(
                config.smtp.from_address,
                config.smtp.from_name.get(locale) if config.smtp.from_name else "",
                domain,
            )
            for locale in ("ru", "en")
        }
        self._incidents: dict[int, Incident] = {}
        self._updates: dict[int, Update] = {}
        self._latest_update: dict[int, int] = {}
        self._flushing = 0  # recordings in progress
        self._prepared: dict[int, Any] = {}  # hotline.Prepared per message of the hotline's kinds
        self._secret: bytes | None = None
        self.report = SendReport()

    # -- the run -----------------------------------------------------------------------

    async def run(
        self,
        *,
        stop: asyncio.Event | None = None,
        until_empty: bool = True,
        on_progress: Callable[[SendReport], None] | None = None,
    ) -> SendReport:
        """Send everything due (until_empty) or keep going until ``stop`` is set."""
        stop = stop or asyncio.Event()
        self.report = SendReport(total=await asyncio.to_thread(queue.due_count, self.engine, self.clock()))
        jobs: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=self.config.mailing.batch_size * 2)
        results = queue.Results()
        claimed: set[int] = set()
        fatal: list[BaseException] = []
        batch = self.config.mailing.batch_size
        limit = self.config.mailing.database_outage.total_seconds()
        claim_outage, record_outage = _Outage(limit), _Outage(limit)

        def give_up(exc: BaseException) -> None:
            fatal.append(exc)
            stop.set()

        async def feeder() -> None:
            try:
                while not stop.is_set() and not fatal:
                    if jobs.qsize() > batch // 2:
                        await asyncio.sleep(0.01)
                        continue
                    # Judge "nothing left" by the state *before* the claim: a result recorded
                    # while the claim ran may have made a retry due that the claim missed.
                    idle = jobs.empty() and not _busy[0] and not len(results) and not self._flushing
                    try:
                        loaded = await asyncio.to_thread(self._claim_and_load, batch)
                        claim_outage.ok()
                    except _DB_ERRORS as exc:
                        await claim_outage.wait(exc)
                        continue
                    if not loaded:
                        if until_empty and idle:
                            break
                        await asyncio.sleep(0.05 if until_empty else 0.5)
                        continue
                    for job in loaded:
                        claimed.add(job.message.id)  # type: ignore[arg-type]
                        await jobs.put(job)
            except DatabaseError as exc:
                give_up(exc)
            finally:
                for _ in range(self.concurrency):
                    await jobs.put(None)

        _busy = [0]

        async def worker() -> None:
            while True:
                job = await jobs.get()
                if job is None:
                    return
                if stop.is_set() and not until_empty or fatal:
                    continue  # stopping: leave it claimed; released below
                _busy[0] += 1
                try:
                    await self._deliver(job, results)
                except DeliveryError as exc:
                    give_up(exc)
                finally:
                    _busy[0] -= 1
                    claimed.discard(job.message.id)  # type: ignore[arg-type]

        async def recorder() -> None:
            # What a crash can resend is what was sent since the last flush, so flush often;
            # but each flush is a write transaction that competes with sending for the CPU.
            last = time.monotonic()
            while True:
                finished = all(t.done() for t in workers)
                due = len(results) >= RECORD_BATCH or time.monotonic() - last >= RECORD_INTERVAL
                if len(results) and (due or finished or stop.is_set()):
                    last = time.monotonic()
                    try:
                        await self._flush(results, on_progress, record_outage)
                    except DatabaseError as exc:
                        give_up(exc)
                        return
                if finished:
                    return
                await asyncio.sleep(0.01)

        workers = [asyncio.create_task(worker()) for _ in range(self.concurrency)]
        feed = asyncio.create_task(feeder())
        rec = asyncio.create_task(recorder())
        try:
            await asyncio.gather(feed, *workers)
            await rec
        finally:
            while not jobs.empty():
                job = jobs.get_nowait()
                if job is not None:
                    claimed.add(job.message.id)  # type: ignore[arg-type]
            await self._wind_down(claimed, results, on_progress, fatal)
        if fatal:
            raise fatal[0]
        return self.report

    async def _wind_down(
        self, claimed: set[int], results: queue.Results, on_progress: Any, fatal: list[BaseException]
    ) -> None:
        """Record what is left and hand back what was claimed but not sent (best effort:
        with the database gone, the leases expire and the rows are claimed again)."""
        try:
            if len(results):
                await self._flush(results, on_progress, _Outage(0 if fatal else 10))
            if claimed:
                await asyncio.to_thread(queue.release, self.engine, self.worker, claimed)
        except _DB_ERRORS as exc:
            log.warning("could not record the last results (%s); their leases will expire", exc)
            if not fatal:
                fatal.append(exc if isinstance(exc, DatabaseError) else DatabaseError(str(exc)))

    async def _flush(
        self, results: queue.Results, on_progress: Callable[[SendReport], None] | None, outage: _Outage
    ) -> None:
        """Record the results so far; while the database is away, keep them and try again."""
        batch = queue.Results(
            results.sent[:], results.retry[:], results.failed[:], results.bounced[:], results.cancelled[:]
        )
        for part in (results.sent, results.retry, results.failed, results.bounced, results.cancelled):
            part.clear()
        self._flushing += 1  # until written, retries are neither in `results` nor claimable
        try:
            await self._record(batch, outage)
        finally:
            self._flushing -= 1
        self._count(batch, on_progress)

    async def _record(self, batch: queue.Results, outage: _Outage) -> None:
        while True:
            try:
                await asyncio.to_thread(
                    queue.record, self.engine, self.worker, batch, self.config.mailing, self.clock()
                )
                outage.ok()
                break
            except _DB_ERRORS as exc:
                await outage.wait(exc)

    def _count(self, batch: queue.Results, on_progress: Callable[[SendReport], None] | None) -> None:
        r = self.report
        r.sent += len(batch.sent)
        r.retried += sum(1 for _, attempts, _ in batch.retry if attempts < self.config.mailing.max_attempts)
        r.failed += len(batch.failed) + sum(
            1 for _, a, _ in batch.retry if a >= self.config.mailing.max_attempts
        )
        r.bounced += len(batch.bounced)
        r.cancelled += len(batch.cancelled)
        if on_progress:
            on_progress(r)

    # -- one message -------------------------------------------------------------------

    def _claim_and_load(self, limit: int) -> list[_Job]:
        now = self.clock()
        ids = queue.claim(self.engine, self.worker, limit, self.config.mailing.lease, now)
        if not ids:
            return []
        with read_session(self.engine) as session:
            rows = session.execute(
                select(Message, Subscriber)
                .outerjoin(Subscriber, Subscriber.id == Message.subscriber_id)
                .where(Message.id.in_(ids))  # type: ignore[union-attr]
                .order_by(Message.id)
            ).all()
            incident_ids = {m.incident_id for m, _ in rows if m.incident_id is not None}
            self._load_incidents(session, incident_ids)
            update_ids = {m.update_id for m, _ in rows if m.update_id is not None} - self._updates.keys()
            if update_ids:
                for update in session.execute(select(Update).where(Update.id.in_(update_ids))).scalars():  # type: ignore[union-attr]
                    self._updates[update.id] = update  # type: ignore[index]
            self._prepared.update(hotline.prepare(session, [m for m, _ in rows]))
        return [_Job(message, subscriber) for message, subscriber in rows]

    def _load_incidents(self, session: Any, incident_ids: set[int]) -> None:
        """Refresh incidents each batch: a resolve or a newer update may have happened meanwhile."""
        if not incident_ids:
            return
        for incident in session.execute(select(Incident).where(Incident.id.in_(incident_ids))).scalars():  # type: ignore[union-attr]
            self._incidents[incident.id] = incident
        latest = session.execute(
            select(Update.incident_id, Update.id)
            .where(Update.incident_id.in_(incident_ids), Update.kind.in_(("declared", "update")))  # type: ignore[attr-defined]
            .order_by(Update.id)
        ).all()
        for incident_id, update_id in latest:
            self._latest_update[incident_id] = update_id

    def _stale_reason(self, job: _Job) -> str | None:
        message, subscriber = job.message, job.subscriber
        prepared = self._prepared.get(message.id)  # type: ignore[arg-type]
        if prepared is not None and prepared.cancel:
            return prepared.cancel
        if subscriber is not None and subscriber.status != "active":
            return f"cancelled: subscriber is {subscriber.status}"
        if message.kind == "status" and message.incident_id is not None:
            incident = self._incidents[message.incident_id]
            if incident.status == "resolved":
                return "cancelled: the incident is resolved"
            if message.update_id != self._latest_update.get(message.incident_id):
                return "superseded by a newer status notice"
        return None

    def _unsubscribe_url(self, subscriber_id: int) -> str:
        if self._secret is None:
            self._secret = self.config.secret()
        return tokens.unsubscribe_url(
            self.config.notifier.public_base_url, tokens.make_token(self._secret, subscriber_id)
        )

    def build(self, job: _Job) -> bytes:
        """Render and compose one message to the bytes its channel sends (MIME or JSON)."""
        message, subscriber = job.message, job.subscriber
        incident = self._incidents[message.incident_id] if message.incident_id is not None else None
        update = self._updates.get(message.update_id) if message.update_id is not None else None
        prepared = self._prepared.pop(message.id, None)  # type: ignore[arg-type]
        extra: dict[str, Any] = dict(prepared.render) if prepared is not None else {}
        update = extra.pop("update", update)
        url = self._unsubscribe_url(subscriber.id) if subscriber is not None else ""  # type: ignore[arg-type]
        reader = extra.pop("subscriber", subscriber)
        rendered = self.renderer.render(
            message.kind, incident=incident, locale=message.locale,  # type: ignore[arg-type]
            region=reader.region if reader else None, subscriber=reader, update=update,
            unsubscribe_url=url, **extra,
        )  # fmt: skip
        if message.channel == "webhook":
            return webhook_payload(
                message.kind, incident, rendered, update, prepared.callback if prepared else None
            )
        composer = self._composers.get(message.locale, self._composers["ru"])
        return composer.compose(
            message_id=message_id(message.id, self.domain),  # type: ignore[arg-type]
            to_name=subscriber.name if subscriber else "",
            to_address=message.recipient,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            date=self.clock(),
            unsubscribe_url=url or None,
        )

    async def _deliver(self, job: _Job, results: queue.Results) -> None:
        message = job.message
        reason = self._stale_reason(job)
        if reason:
            results.cancelled.append((message.id, reason))  # type: ignore[arg-type]
            self.report.count(message, "cancelled")
            return
        transport = self.transports.get(message.channel)
        if transport is None:
            results.retry.append(
                (message.id, message.attempts, f"no {message.channel} transport in this sender")
            )  # type: ignore[arg-type]
            self.report.count(message, "to retry")
            return
        data = self.build(job)
        outcome = await transport.send(self.config.smtp.from_address, message.recipient, data)
        if outcome.status == "sent":
            results.sent.append(message.id)  # type: ignore[arg-type]
            self.report.count(message, "sent")
        elif outcome.status == "permanent" and job.subscriber is not None:
            results.bounced.append((message.id, job.subscriber.id, outcome.detail))  # type: ignore[arg-type]
            self.report.count(message, "bounced")
            log.info("message %s to %s bounced: %s", message.id, message.recipient, outcome.detail)
        elif outcome.status in ("permanent", "permanent_message"):
            results.failed.append((message.id, outcome.detail))  # type: ignore[arg-type]
            self.report.count(message, "failed")
        else:
            results.retry.append((message.id, message.attempts, outcome.detail))  # type: ignore[arg-type]
            self.report.count(message, "to retry")
            if outcome.ambiguous:
                log.warning("message %s to %s: %s (it may have been delivered; a retry may duplicate it)",
                            message.id, message.recipient, outcome.detail)  # fmt: skip


async def open_transports(config: Config) -> dict[str, Transport]:
    """One transport per channel, started: SMTP (the pool) and, when available, webhooks."""
    from notifier.delivery.smtp import SmtpTransport
    from notifier.delivery.webhook import WebhookTransport

    transports: dict[str, Any] = {"email": SmtpTransport(config.smtp, password=config.smtp.password())}
    transports["webhook"] = WebhookTransport()
    opened: dict[str, Any] = {}
    try:
        for channel, transport in transports.items():
            await transport.__aenter__()
            opened[channel] = transport
    except BaseException:
        await close_transports(opened)
        raise
    return opened


async def close_transports(transports: dict[str, Any]) -> None:
    for transport in transports.values():
        try:
            await transport.__aexit__(None, None, None)
        except Exception:  # noqa: BLE001 - closing is best effort
            log.debug("closing a transport failed", exc_info=True)


async def send_due(
    engine: Engine,
    config: Config,
    *,
    on_progress: Callable[[SendReport], None] | None = None,
    worker: str | None = None,
) -> SendReport:
    """Send everything due now and return the counts (what `notifier send` does)."""
    renderer = Renderer(config)
    renderer.ensure_ready(("status", "apology", "hotline", "reminder", "escalation"))
    config.secret()  # fail before claiming anything if unsubscribe links cannot be signed
    transports = await open_transports(config)
    try:
        sender = Sender(
            engine, config, transports["email"], renderer=renderer, webhook_transport=transports.get("webhook"),
            worker=worker,
        )  # fmt: skip
        return await sender.run(on_progress=on_progress)
    finally:
        await close_transports(transports)
