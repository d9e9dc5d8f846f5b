"""Metrics for the people on call, in Prometheus' terms: what is waiting, what went out, how
fast, and how far each incident's mailings got.

Owns two kinds of numbers:

- what this process did, counted as it happens (``prometheus_client`` counters and a
  histogram in this module's registry): messages sent / retried / failed / bounced /
  deferred / cancelled by kind and channel, the send latency from the moment a message was
  due to the moment it was accepted, SMTP connection problems by kind. The sender and the
  SMTP messenger call :func:`count_outcome`, :func:`observe_latency` and :func:`smtp_error`;
- what the database says at the moment of a scrape (:class:`OutboxCollector`): the outbox
  by kind, channel and state, the senders and their heartbeats, paused mailings, and per
  recent incident its audience, its messages by state, the seconds from resolve to the last
  apology, and the share of the audience reached within five minutes of each update.

It does not serve HTTP (``web.metrics``) and reads no config at import time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from notifier.db import is_sqlite, read_session
from notifier.incidents import PUBLIC_UPDATE_KINDS
from notifier.models import AudienceMember, Incident, MailingPause, Message, Update, utcnow
from notifier.outbox.queueing import unwritten

__all__ = ["REGISTRY", "OutboxCollector", "count_outcome", "observe_latency", "smtp_error"]

REGISTRY = CollectorRegistry(auto_describe=True)
_OUTCOMES = Counter(
    "notifier_messages", "Messages this process finished with, by outcome", ["outcome", "kind", "channel"],
    registry=REGISTRY,
)  # fmt: skip
_LATENCY = Histogram(
    "notifier_send_latency_seconds", "From when a message was due to when the receiving end accepted it",
    ["kind", "channel"], registry=REGISTRY,
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf")),
)  # fmt: skip
_SMTP_ERRORS = Counter(
    "notifier_smtp_errors", "SMTP connection problems, by kind", ["kind"], registry=REGISTRY
)
OUTCOMES = ("sent", "retried", "failed", "bounced", "deferred", "cancelled")
RECENT = timedelta(days=7)  # resolved incidents older than this drop out of the per-incident series
REACH_WINDOW = timedelta(minutes=5)


def count_outcome(outcome: str, kind: str, channel: str, n: int = 1) -> None:
    if n:
        _OUTCOMES.labels(outcome, kind, channel).inc(n)


def observe_latency(kind: str, channel: str, seconds: float) -> None:
    _LATENCY.labels(kind, channel).observe(max(seconds, 0.0))


def smtp_error(kind: str) -> None:
    """``kind``: connect, tls, auth, throttled, timeout, disconnected, refused."""
    _SMTP_ERRORS.labels(kind).inc()


class OutboxCollector(Collector):
    """Reads the database at each scrape; registered once per web app (see ``web.metrics``)."""

    def __init__(self, engine: Engine, clock: object = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now: datetime = self.clock()  # type: ignore[operator]
        with read_session(self.engine) as session:
            yield self._outbox(session)
            yield from self._senders(session)
            yield self._paused(session)
            yield from self._incidents(session, now)

    @staticmethod
    def _outbox(session: object) -> Metric:
        family = GaugeMetricFamily(
            "notifier_outbox_messages", "Messages in the outbox, by kind, channel and state",
            labels=["kind", "channel", "state"],
        )  # fmt: skip
        rows = session.execute(  # type: ignore[attr-defined]
            select(Message.kind, Message.channel, Message.state, func.count())
            .group_by(Message.kind, Message.channel, Message.state)
        ).all()  # fmt: skip
        for labels, n in _with_owed(session, rows).items():
            family.add_metric(list(labels), n)
        return family

    def _senders(self, session: object) -> Iterable[Metric]:
        age = (
            "(julianday('now') - julianday(heartbeat_at)) * 86400.0" if is_sqlite(self.engine)
            else "EXTRACT(EPOCH FROM ((now() AT TIME ZONE 'UTC') - heartbeat_at))"
        )  # fmt: skip
        rows = session.execute(text(f"SELECT name, {age} FROM sender ORDER BY name")).all()  # type: ignore[attr-defined]
        beats = GaugeMetricFamily(
            "notifier_sender_heartbeat_age_seconds", "Seconds since each registered sender's last heartbeat",
            labels=["sender"],
        )  # fmt: skip
        for name, seconds in rows:
            beats.add_metric([name], float(seconds or 0))
        yield GaugeMetricFamily("notifier_senders", "Registered senders (notifier send, notifier serve)", value=len(rows))
        yield beats

    @staticmethod
    def _paused(session: object) -> Metric:
        family = GaugeMetricFamily(
            "notifier_mailings_paused", "Kinds of message waiting for a template fix", labels=["kind", "channel", "locale"]
        )
        for pause in session.execute(select(MailingPause)).scalars():  # type: ignore[attr-defined]
            family.add_metric([pause.kind, pause.channel, pause.locale], 1)
        return family

    def _incidents(self, session: object, now: datetime) -> Iterable[Metric]:
        recent = list(session.execute(  # type: ignore[attr-defined]
            select(Incident).where((Incident.resolved_at.is_(None)) | (Incident.resolved_at >= now - RECENT))  # type: ignore[union-attr]
        ).scalars())  # fmt: skip
        audience = GaugeMetricFamily("notifier_incident_audience", "Subscribers an incident affects", labels=["incident"])
        messages = GaugeMetricFamily(
            "notifier_incident_messages", "An incident's messages by kind, channel and state",
            labels=["incident", "kind", "channel", "state"],
        )  # fmt: skip
        apology = GaugeMetricFamily(
            "notifier_incident_apology_seconds", "Seconds from the resolve to the last apology accepted",
            labels=["incident"],
        )  # fmt: skip
        reached = GaugeMetricFamily(
            "notifier_incident_reached_within_5m_ratio",
            "Share of the audience whose notice of an update was accepted within 5 minutes of it",
            labels=["incident", "update"],
        )
        for incident in recent:
            ref = incident.ref
            size = session.execute(  # type: ignore[attr-defined]
                select(func.count()).select_from(AudienceMember).where(AudienceMember.incident_id == incident.id)
            ).scalar_one()  # fmt: skip
            audience.add_metric([ref], size)
            rows = session.execute(  # type: ignore[attr-defined]
                select(Message.kind, Message.channel, Message.state, func.count())
                .where(Message.incident_id == incident.id)
                .group_by(Message.kind, Message.channel, Message.state)
            ).all()  # fmt: skip
            for labels, n in _with_owed(session, rows, incident.id).items():
                messages.add_metric([ref, *labels], n)
            last = session.execute(  # type: ignore[attr-defined]
                select(func.max(Message.sent_at)).where(Message.incident_id == incident.id, Message.kind == "apology",
                                                        Message.state == "sent")  # fmt: skip
            ).scalar_one()
            if incident.resolved_at is not None and last is not None:
                apology.add_metric([ref], max((_aware(last) - incident.resolved_at).total_seconds(), 0.0))
            for update_id, share in self._reach(session, incident, size):
                reached.add_metric([ref, str(update_id)], share)
        return [audience, messages, apology, reached]

    @staticmethod
    def _reach(session: object, incident: Incident, size: int) -> Iterable[tuple[int, float]]:
        if not size:
            return []
        updates = session.execute(  # type: ignore[attr-defined]
            select(Update).where(Update.incident_id == incident.id, Update.kind.in_(PUBLIC_UPDATE_KINDS))  # type: ignore[attr-defined]
        ).scalars().all()  # fmt: skip
        shares = []
        for update in updates:
            sent = session.execute(  # type: ignore[attr-defined]
                select(Message.sent_at).where(Message.update_id == update.id, Message.kind == "status",
                                              Message.state == "sent")  # fmt: skip
            ).scalars().all()
            soon = sum(1 for at in sent if at is not None and _aware(at) - update.created_at <= REACH_WINDOW)
            shares.append((update.id, soon / size))
        return shares


def _with_owed(session: object, rows: Iterable[tuple[str, str, str, int]],
               incident_id: int | None = None) -> dict[tuple[str, str, str], int]:  # fmt: skip
    """Counts by (kind, channel, state), with the rows status notices still owe (queued) or owed
    and never wrote (cancelled)."""
    counted = {(kind, channel, state): n for kind, channel, state, n in rows}
    for pending, state, n in unwritten(session, incident_id):  # type: ignore[arg-type]
        key = (pending.kind, pending.channel, state)
        counted[key] = counted.get(key, 0) + n
    return counted


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)
