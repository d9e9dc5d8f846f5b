"""The sender pipeline: claim due messages, render each, push it through its channel's
messenger, record the outcomes — while a heartbeat tells every other sender this one is alive.

Owns the pipeline and its concurrency, as small named pieces of one :class:`_Run`: a feeder
claiming batches ahead, workers pushing messages, a recorder writing outcomes in batches, a
heartbeat. It talks only to the outbox (``outbox.claims`` and ``outbox.loading``: no SQL here)
and to messengers (``delivery.Messenger``: no SMTP or HTTP here); it never asks which
channel a message is for beyond picking its messenger. What a letter says is ``rendering``'s.

What a crash can resend: outcomes are recorded at least every ``RECORD_INTERVAL`` seconds or
``RECORD_BATCH`` results, so a ``kill -9`` can resend what was accepted since the last
recording — at most the connections in flight plus what they accepted in one interval. A
template that fails to render pauses its kind of message (``outbox.pauses``) instead of
stopping the run; nothing claimed is left behind: unsent claims go back uncharged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from notifier import metrics, tokens
from notifier.composing import message_id
from notifier.config import Config
from notifier.delivery import Messenger, OutgoingMessage, SendOutcome
from notifier.errors import DatabaseError, DeliveryError, TemplateProblem
from notifier.models import utcnow
from notifier.outbox import claims, pauses
from notifier.outbox.loading import Job, Loader, instance_id
from notifier.rendering import Renderer

log = logging.getLogger("notifier.sender")

_DB_ERRORS = (DatabaseError, DBAPIError)
_METRIC_OUTCOME = {"to retry": "retried"}
RECORD_INTERVAL = 0.1
RECORD_BATCH = 200
KINDS = ("status", "apology", "hotline", "reminder", "escalation", "paused", "over_budget",
         # planned work and self-service subscriptions (rendering.PLANNED_KINDS)
         "maintenance", "maintenance_reminder", "maintenance_started", "maintenance_completed",
         "maintenance_rescheduled", "maintenance_cancelled", "maintenance_extended", "maintenance_overrun",
         "subscription_confirm")


@dataclass
class SendReport:
    """Counts for one run of the sender, updated as results are recorded."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    bounced: int = 0
    cancelled: int = 0
    deferred: int = 0
    taken_back: int = 0
    total: int = 0  # due when the run started (for progress bars)
    started: float = field(default_factory=time.monotonic)
    # (incident ref or "-", kind) -> outcome -> count, for one log line per mailing
    mailings: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the run waited for or stopped on

    def count(self, job: Job, outcome: str) -> None:
        message = job.message
        key = (f"INC-{message.incident_id}" if message.incident_id else "-", message.kind)
        self.mailings.setdefault(key, Counter())[outcome] += 1
        metrics.count_outcome(_METRIC_OUTCOME.get(outcome, outcome), message.kind, message.channel)

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
            "cancelled": self.cancelled, "deferred": self.deferred, "taken_back": self.taken_back,
            "seconds": round(time.monotonic() - self.started, 3), "notes": self.notes,
        }  # fmt: skip


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
            raise DatabaseError(f"{detail.removesuffix('.')}; stopped sending (unrecorded sends stay claimed)")
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


class Heartbeat:
    """A sender's presence kept alive: ``await heartbeat.run(until)`` beats every
    ``[mailing].heartbeat``; ``fresh`` says whether it is safe to push (the last beat is
    recent enough that nobody can have taken our messages back)."""

    def __init__(self, engine: Engine, config: Config, presence: claims.Presence | None = None) -> None:
        self.engine = engine
        self.presence = presence or claims.Presence.here()
        self.interval = config.mailing.heartbeat.total_seconds()
        self.timeout = config.mailing.heartbeat_timeout
        self.beaten = time.monotonic()
        self.lost: str | None = None  # why this presence is no longer ours

    def register(self) -> None:
        self.presence.register(self.engine, utcnow())
        self.beaten = time.monotonic()

    @property
    def fresh(self) -> bool:
        # Others take our messages back once the database has seen no beat for `timeout`;
        # stop pushing well before that (one interval, and up to a second, of margin).
        margin = self.interval + min(1.0, self.interval)
        return self.lost is None and time.monotonic() - self.beaten < self.timeout.total_seconds() - margin

    async def beat(self) -> bool:
        started = time.monotonic()
        try:
            await asyncio.to_thread(self.presence.beat, self.engine)
        except claims.LostClaims:
            self.lost = (
                f"this sender ({self.presence.name}) was silent for more than {self.timeout.total_seconds():.0f} s "
                "and its messages were taken back by another sender"
            )
            return False
        except _DB_ERRORS as exc:
            log.warning("heartbeat not recorded (%s); retrying", str(exc).splitlines()[0] if str(exc) else exc)
            return True
        self.beaten = started
        return True

    async def run(self, until: asyncio.Event) -> None:
        while not until.is_set():
            try:
                await asyncio.wait_for(until.wait(), timeout=self.interval)
            except TimeoutError:
                if not await self.beat():
                    return

    def leave(self) -> None:
        try:
            self.presence.leave(self.engine)
        except _DB_ERRORS as exc:
            log.warning("could not unregister sender %s (%s); it will be judged stopped", self.presence.name, exc)


class Sender:
    """Drains the outbox through messengers. One instance per process; ``run`` may be
    called again (``serve`` does, every tick), sharing the heartbeat when one is given."""

    def __init__(
        self,
        engine: Engine,
        config: Config,
        messengers: Mapping[str, Messenger],
        *,
        renderer: Renderer | None = None,
        heartbeat: Heartbeat | None = None,
        clock: Callable[[], datetime] = utcnow,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        self.engine, self.config, self.messengers = engine, config, messengers
        self.renderer = renderer or Renderer(config)
        self.heartbeat = heartbeat
        self.clock = clock
        self.on_notice = on_notice or (lambda line: log.info("%s", line))
        self.concurrency = max(1, sum(m.concurrency for m in messengers.values()))
        self.domain = config.smtp.from_address.rpartition("@")[2] or "localhost"
        self.paused: dict[tuple[str, str, str], str] = {}  # key -> problem, as this sender knows them
        self._instance: str | None = None
        self._secret: bytes | None = None
        self.report = SendReport()

    async def run(
        self, *, stop: asyncio.Event | None = None, until_empty: bool = True,
        on_progress: Callable[[SendReport], None] | None = None,
    ) -> SendReport:  # fmt: skip
        """Send everything due (until_empty) or keep going until ``stop`` is set."""
        own = self.heartbeat is None
        heartbeat = self.heartbeat or Heartbeat(self.engine, self.config)
        if own:
            await asyncio.to_thread(heartbeat.register)
        if self._instance is None:
            self._instance = await asyncio.to_thread(instance_id, self.engine)
        self.report = SendReport(total=await asyncio.to_thread(claims.due_count, self.engine, self.clock()))
        run = _Run(self, heartbeat, stop or asyncio.Event(), until_empty, on_progress)
        try:
            await run.go(beat=own)
        finally:
            if own:
                await asyncio.to_thread(heartbeat.leave)
        if run.fatal:
            raise run.fatal[0]
        return self.report

    # -- pieces a run calls -----------------------------------------------------------

    def notice(self, line: str) -> None:
        if line not in self.report.notes:
            self.report.notes.append(line)
            self.on_notice(line)

    def lift_pauses(self) -> None:
        """Resume the mailings paused under other templates than the current ones."""
        for row in pauses.lift_changed(self.engine, self.renderer.digest):
            self.paused.pop((row.kind, row.channel, row.locale), None)
            self.notice(f"templates changed: {row.kind} ({row.channel}, {row.locale}) resumes")
        for row in pauses.current(self.engine):
            self.paused.setdefault((row.kind, row.channel, row.locale), row.problem)

    def outgoing(self, job: Job) -> OutgoingMessage:
        """Render a job into the channel-neutral message its messenger pushes."""
        message, subscriber = job.message, job.subscriber
        extra = dict(job.render)
        reader = extra.pop("subscriber", subscriber)
        url = self._unsubscribe_url(subscriber.id) if subscriber is not None else None  # type: ignore[arg-type]
        rendered = self.renderer.render(
            message.kind, incident=job.incident, locale=message.locale, region=reader.region if reader else None,
            subscriber=reader, update=job.update, unsubscribe_url=url or "", **extra,
        )  # fmt: skip
        return OutgoingMessage(
            id=message.id, kind=message.kind, channel=message.channel, recipient=message.recipient,  # type: ignore[arg-type]
            recipient_name=subscriber.name if subscriber else "", locale=message.locale, subject=rendered.subject,
            text=rendered.text, html=rendered.html, date=self.clock(), unsubscribe_url=url,
            message_id=message_id(message.id, self.domain, self._instance or "0"),  # type: ignore[arg-type]
            facts=message_facts(job), attachments=rendered.attachments,
        )  # fmt: skip

    def _unsubscribe_url(self, subscriber_id: int) -> str:
        if self._secret is None:
            self._secret = self.config.secret()
        return tokens.unsubscribe_url(self.config.notifier.public_base_url, tokens.make_token(self._secret, subscriber_id))


class _Run:
    """One run's state and its four kinds of task: feed, work, record, beat."""

    def __init__(
        self, sender: Sender, heartbeat: Heartbeat, stop: asyncio.Event, until_empty: bool,
        on_progress: Callable[[SendReport], None] | None,
    ) -> None:  # fmt: skip
        self.s, self.heartbeat, self.stop, self.until_empty = sender, heartbeat, stop, until_empty
        self.on_progress = on_progress
        self.config = sender.config
        self.batch = self.config.mailing.batch_size
        self.jobs: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=self.batch * 2)
        self.results = claims.Results()
        self.new_pauses: dict[tuple[str, str, str], str] = {}
        self.held: set[int] = set()  # claimed and not yet pushed
        self.fatal: list[BaseException] = []
        self.busy = 0  # pushes in progress
        self.flushing = 0  # recordings in progress
        self.workers_done = asyncio.Event()
        self.loader = Loader(self.config, sender.clock)
        limit = self.config.mailing.database_outage.total_seconds()
        self.claim_outage, self.record_outage = _Outage(limit), _Outage(limit)
        # A claim that failed may still have committed (the database took it, its answer was
        # lost): its rows are ours, and nobody else will take them while we are alive.
        self.claim_unsure = False

    def give_up(self, exc: BaseException) -> None:
        if not self.fatal:
            self.fatal.append(exc)
        self.stop.set()
        for messenger in self.s.messengers.values():
            messenger.interrupt()

    async def go(self, *, beat: bool) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.feed())
                workers = [group.create_task(self.work()) for _ in range(self.s.concurrency)]
                group.create_task(self.record_loop())
                if beat:
                    group.create_task(self.beat_loop())
                await asyncio.gather(*workers, return_exceptions=True)
                self.workers_done.set()
        finally:
            while not self.jobs.empty():
                job = self.jobs.get_nowait()
                if job is not None:
                    self.held.add(job.message.id)  # type: ignore[arg-type]
            await self.wind_down()

    # -- feeding ----------------------------------------------------------------------

    async def feed(self) -> None:
        try:
            self.s.renderer.reload_if_changed(at_most_every=0)  # each pass starts from the files as they are
            await asyncio.to_thread(self.s.lift_pauses)
            while not self.stop.is_set():
                if self.jobs.qsize() > self.batch // 2:
                    await asyncio.sleep(0.01)
                    continue
                if self.s.renderer.reload_if_changed():
                    await asyncio.to_thread(self.s.lift_pauses)
                # Judge "nothing left" by the state *before* the claim: a result recorded
                # while the claim ran may have made a retry due that the claim missed.
                idle = self.jobs.empty() and not self.busy and not len(self.results) and not self.flushing
                loaded = await self.claim_and_load()
                if loaded is None:
                    continue
                if not loaded:
                    if idle and self.claim_unsure and await self.release_lost_claims():
                        continue
                    if self.until_empty and idle and not await self.others_may_leave_work():
                        break
                    await asyncio.sleep(0.05 if self.until_empty else 0.5)
                    continue
                for job in loaded:
                    self.held.add(job.message.id)  # type: ignore[arg-type]
                    await self.jobs.put(job)
        except DatabaseError as exc:
            self.give_up(exc)
        finally:
            for _ in range(self.s.concurrency):
                await self.jobs.put(None)

    async def claim_and_load(self) -> list[Job] | None:
        """A claimed batch as jobs; None when the database is away (after waiting a little)."""
        if not self.heartbeat.fresh:
            await self.wait_fresh()
            return None
        try:
            claim = await asyncio.to_thread(
                claims.claim, self.s.engine, self.heartbeat.presence, self.batch, self.s.clock(),
                self.config.mailing.heartbeat_timeout,
            )  # fmt: skip
            jobs = await asyncio.to_thread(self.loader.load, self.s.engine, claim.ids)
            self.claim_outage.ok()
        except _DB_ERRORS as exc:
            self.claim_unsure = True
            await self.claim_outage.wait(exc)
            return None
        if claim.taken_back.total:
            self.s.report.taken_back += claim.taken_back.total
            self.s.on_notice(claim.taken_back.describe())
        return jobs

    async def release_lost_claims(self) -> bool:
        """With nothing in hand, any message still ``sending`` under our name came from a claim
        whose answer was lost: back to the queue, uncharged. True if there were any."""
        name = self.heartbeat.presence.name
        try:
            lost = [i for i in await asyncio.to_thread(claims.holding, self.s.engine, name) if i not in self.held]
            if lost:
                await asyncio.to_thread(claims.release, self.s.engine, name, lost)
        except _DB_ERRORS as exc:
            await self.claim_outage.wait(exc)
            return True
        self.claim_unsure = False
        if lost:
            log.warning("%d message(s) claimed while the database was away are back in the queue", len(lost))
        return bool(lost)

    async def others_may_leave_work(self) -> bool:
        """True while messages are held by a sender on another machine whose heartbeat is late:
        it may have stopped, and then they are ours within the heartbeat timeout."""
        try:
            holders = await asyncio.to_thread(claims.holders, self.s.engine, self.heartbeat.presence)
        except _DB_ERRORS:
            return False
        late = [h for h in holders if not h.here and h.heartbeat_age > 2 * self.heartbeat.interval]
        for holder in holders:
            if holder in late:
                self.s.notice("waiting: " + holder.describe(self.config.mailing.heartbeat_timeout))
            else:
                self.s.notice(holder.describe(self.config.mailing.heartbeat_timeout))
        if late:
            await asyncio.sleep(1.0)
        return bool(late)

    async def wait_fresh(self) -> None:
        """Pushing waits while our heartbeat is stale (a database outage): others may judge us stopped."""
        while not self.heartbeat.fresh and not self.stop.is_set():
            if self.heartbeat.lost:
                self.give_up(DeliveryError(self.heartbeat.lost))
                return
            await asyncio.sleep(0.1)

    # -- working ----------------------------------------------------------------------

    async def work(self) -> None:
        while True:
            job = await self.jobs.get()
            if job is None:
                return
            if self.stop.is_set() and not self.until_empty or self.fatal:
                continue  # stopping: left in `held`, handed back below
            if not self.heartbeat.fresh:
                await self.wait_fresh()
                if self.fatal or self.stop.is_set() and not self.until_empty:
                    continue
            self.busy += 1
            try:
                await self.deliver(job)
            except DeliveryError as exc:
                self.results.deferred.append((job.message.id, f"not sent: {exc}", None))  # type: ignore[arg-type]
                self.give_up(exc)
            finally:
                self.busy -= 1
                self.held.discard(job.message.id)  # type: ignore[arg-type]

    async def deliver(self, job: Job) -> None:
        message, results, report = job.message, self.results, self.s.report
        if job.cancel:
            results.cancelled.append((message.id, job.cancel))  # type: ignore[arg-type]
            report.count(job, "cancelled")
            return
        messenger = self.s.messengers.get(message.channel)
        if messenger is None:
            results.retry.append((message.id, message.attempts, f"no {message.channel} messenger in this sender"))  # type: ignore[arg-type]
            report.count(job, "to retry")
            return
        if job.wait_until is not None:  # the reader's quiet hours: back, uncharged, until they end
            results.deferred.append((message.id, "waits for the end of the quiet hours", job.wait_until))  # type: ignore[arg-type]
            report.count(job, "deferred")
            return
        if job.key in self.s.paused:
            results.deferred.append((message.id, f"paused: {self.s.paused[job.key]}", None))  # type: ignore[arg-type]
            return
        try:
            outgoing = self.s.outgoing(job)
        except TemplateProblem as exc:
            self.pause(job, str(exc))
            return
        self.apply(job, await messenger.push(outgoing))

    def pause(self, job: Job, problem: str) -> None:
        """A template failed for this job: hold its kind (channel, language) until the templates change."""
        message = job.message
        self.results.deferred.append((message.id, f"paused: {problem}", None))  # type: ignore[arg-type]
        if job.key in self.s.paused:
            return
        self.s.paused[job.key] = self.new_pauses[job.key] = problem
        ref = f"INC-{message.incident_id} " if message.incident_id else ""
        line = (f"{ref}{message.kind} ({message.channel}, {message.locale}) paused: {problem} — fix the template; "
                "sending resumes by itself once the files change")  # fmt: skip
        log.error("%s", line)
        self.s.notice(line)

    def apply(self, job: Job, outcome: SendOutcome) -> None:
        message, results, report = job.message, self.results, self.s.report
        if outcome.status == "sent":
            results.sent.append(message.id)  # type: ignore[arg-type]
            report.count(job, "sent")
            metrics.observe_latency(message.kind, message.channel, (self.s.clock() - message.not_before).total_seconds())
        elif outcome.status == "permanent" and job.subscriber is not None:
            results.bounced.append((message.id, job.subscriber.id, outcome.detail, message.channel,  # type: ignore[arg-type]
                                    message.recipient))
            report.count(job, "bounced")
            log.info("message %s to %s bounced: %s", message.id, message.recipient, outcome.detail)
        elif outcome.status in ("permanent", "permanent_message"):
            results.failed.append((message.id, outcome.detail))  # type: ignore[arg-type]
            report.count(job, "failed")
        elif outcome.status == "deferred":
            due = self.s.clock() + timedelta(seconds=outcome.retry_after)
            results.deferred.append((message.id, outcome.detail, due))  # type: ignore[arg-type]
            report.count(job, "deferred")
        else:
            results.retry.append((message.id, message.attempts, outcome.detail))  # type: ignore[arg-type]
            report.count(job, "to retry")
            if outcome.ambiguous:
                log.warning("message %s to %s: %s (it may have been delivered; a retry may duplicate it)",
                            message.id, message.recipient, outcome.detail)  # fmt: skip

    # -- recording --------------------------------------------------------------------

    async def record_loop(self) -> None:
        # What a crash can resend is what was sent since the last flush, so flush often;
        # but each flush is a write transaction that competes with sending for the CPU.
        last = time.monotonic()
        while True:
            finished = self.workers_done.is_set()
            due = len(self.results) >= RECORD_BATCH or time.monotonic() - last >= RECORD_INTERVAL
            if (len(self.results) or self.new_pauses) and (due or finished or self.stop.is_set()):
                last = time.monotonic()
                try:
                    await self.flush(self.record_outage)
                except DatabaseError as exc:
                    self.give_up(exc)
                    return
            if finished:
                return
            await asyncio.sleep(0.01)

    async def flush(self, outage: _Outage) -> None:
        """Record the results so far; while the database is away, keep them and try again."""
        batch = self.results.take()
        problems, self.new_pauses = self.new_pauses, {}
        self.flushing += 1  # until written, deferred and retried rows are neither here nor claimable
        try:
            while True:
                try:
                    await asyncio.to_thread(self.write, batch, problems)
                    outage.ok()
                    break
                except _DB_ERRORS as exc:
                    await outage.wait(exc)
        finally:
            self.flushing -= 1
        self.count(batch)

    def write(self, batch: claims.Results, problems: dict[tuple[str, str, str], str]) -> None:
        now = self.s.clock()
        pauses.pause_all(self.s.engine, self.config, problems, self.s.renderer.digest, now)
        claims.record(self.s.engine, self.heartbeat.presence.name, batch, self.config.mailing, now)

    def count(self, batch: claims.Results) -> None:
        r, most = self.s.report, self.config.mailing.max_attempts
        r.sent += len(batch.sent)
        r.retried += sum(1 for _, attempts, _ in batch.retry if attempts < most)
        r.failed += len(batch.failed) + sum(1 for _, attempts, _ in batch.retry if attempts >= most)
        r.bounced += len(batch.bounced)
        r.cancelled += len(batch.cancelled)
        r.deferred += len(batch.deferred)
        if self.on_progress:
            self.on_progress(r)

    async def beat_loop(self) -> None:
        beat = asyncio.create_task(self.heartbeat.run(self.workers_done))
        await beat
        if self.heartbeat.lost:
            self.give_up(DeliveryError(self.heartbeat.lost))

    async def wind_down(self) -> None:
        """Record what is left and hand back what was claimed but not sent (best effort: with
        the database gone, the sender's heartbeat stops and the rows are taken back)."""
        try:
            if len(self.results) or self.new_pauses:
                await self.flush(_Outage(0 if self.fatal else 10))
            if self.held:
                reason = f"not sent: {self.fatal[0]}" if self.fatal else None
                await asyncio.to_thread(claims.release, self.s.engine, self.heartbeat.presence.name, self.held, reason)
        except _DB_ERRORS as exc:
            log.warning("could not record the last results (%s); they will be taken back", exc)
            if not self.fatal:
                self.fatal.append(exc if isinstance(exc, DatabaseError) else DatabaseError(str(exc)))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def message_facts(job: Job) -> dict[str, Any]:
    """The structured facts behind a message, for messengers whose receivers are programs."""
    incident, update, callback = job.incident, job.update, job.callback
    facts: dict[str, Any] = {
        "incident": incident.ref if incident else None,
        "title": incident.title if incident else None,
        "status": incident.status if incident else None,
        "severity": incident.severity if incident else None,
        "regions": list(incident.regions) if incident else [],
        "services": list(incident.services) if incident else [],
        "updated_at": _iso(update.created_at if update else incident.updated_at if incident else None),
    }
    if update is not None:
        facts["update"] = {"status": update.status, "message": update.message, "at": _iso(update.created_at)}
    if callback is not None:
        facts["callback"] = {"id": callback.id, "due_at": _iso(callback.due_at), "owner": callback.owner,
                             "escalations": callback.escalations, "done": callback.done_at is not None}  # fmt: skip
    return facts


async def open_messengers(config: Config) -> dict[str, Messenger]:
    """One messenger per channel, started: e-mail (the SMTP pool), webhooks, and SMS when
    ``[sms]`` names a gateway."""
    from notifier.delivery.dkim import signer_from_config
    from notifier.delivery.sms import sms_messenger
    from notifier.delivery.smtp import ReturnPath, SmtpMessenger
    from notifier.delivery.webhook import WebhookMessenger

    if not config.smtp.tls_verify and config.smtp.security != "none":
        log.warning("[smtp].tls_verify = false: the relay's certificate is NOT checked (test relays only)")
    bounces = config.bounces
    return_path = ReturnPath(config.secret(), bounces.local_part, bounces.domain) if bounces.domain else None
    wanted: list[Any] = [
        SmtpMessenger(
            config.smtp, password=config.smtp.password(), ca_file=config.smtp_ca_file,
            signer=signer_from_config(config), return_path=return_path,
            list_name=config.notifier.company.get("en"),
        ),  # fmt: skip
        WebhookMessenger(sender=config.smtp.from_address),
    ]
    wanted += [messenger for messenger in [sms_messenger(config)] if messenger is not None]
    opened: dict[str, Messenger] = {}
    try:
        for messenger in wanted:
            await messenger.start()
            opened[messenger.channel] = messenger
    except BaseException:
        await close_messengers(opened)
        raise
    return opened


async def close_messengers(messengers: Mapping[str, Messenger]) -> None:
    for messenger in messengers.values():
        try:
            await messenger.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            log.debug("closing a messenger failed", exc_info=True)


async def send_due(
    engine: Engine, config: Config, *, on_progress: Callable[[SendReport], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> SendReport:  # fmt: skip
    """Send everything due now and return the counts (what `notifier send` does)."""
    renderer = Renderer(config)
    renderer.ensure_ready(KINDS)
    config.secret()  # fail before claiming anything if unsubscribe links cannot be signed
    messengers = await open_messengers(config)
    try:
        sender = Sender(engine, config, messengers, renderer=renderer, on_notice=on_notice)
        return await sender.run(on_progress=on_progress)
    finally:
        await close_messengers(messengers)
