"""SQLModel tables: the whole business state of notifier lives here.

Owns the table definitions and the small vocabularies (states, kinds) stored in them.
It does not know how rows are selected or changed: that is ``incidents``, ``subscribers``,
``outbox`` and ``hotline``. Every timestamp is timezone-aware UTC (see ``UTCDateTime``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    String,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlmodel import Field, SQLModel


class _Table(SQLModel):
    """Base of the tables: pydantic builds a model's validator on first use, not at import."""

    model_config = {"defer_build": True}  # type: ignore[assignment]



class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns aware datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQL results on SQLite
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _time(nullable: bool = False, index: bool = False) -> Any:
    column = Column(UTCDateTime(), nullable=nullable, index=index)
    if nullable:
        return Field(default=None, sa_column=column)
    return Field(default_factory=utcnow, sa_column=column)


# Vocabularies ---------------------------------------------------------------------------

SUBSCRIBER_STATUSES = ("active", "unsubscribed", "bounced", "pending")
# "pending": subscribed on the status page, not confirmed yet: nothing but the confirmation goes to it.
MESSAGE_STATES = ("queued", "sending", "sent", "retry", "failed", "cancelled", "held")
# "held": an SMS mailing over [sms].max_messages_per_mailing, waiting for `notifier sms release`.
# What became of a sent SMS, by the gateway's delivery reports (``message.delivery``).
DELIVERY_STATES = ("accepted", "delivered", "failed", "expired")
UNSENT_STATES = ("queued", "retry")


class Subscriber(_Table, table=True):
    __tablename__ = "subscriber"
    __table_args__ = (Index("ix_subscriber_status_region", "status", "region"),)

    id: int | None = Field(default=None, primary_key=True)
    external_id: str | None = Field(default=None, sa_column=Column(String(100), unique=True, nullable=True))
    name: str = ""
    # Casefolded name, for lookup by part of it: LIKE '%part%', which no B-tree index serves, so
    # it has none (one would only cost every import a random index insert a row; schema 0014).
    name_key: str = ""
    email: str | None = None
    email_key: str | None = Field(default=None, index=True)  # lower-cased e-mail
    phone: str | None = Field(default=None, index=True)  # E.164
    region: str
    services: str = ""  # ';a;b;' so that one LIKE '%;a;%' matches a whole code
    locale: str = "ru"
    status: str = "active"
    created_at: datetime = _time()
    updated_at: datetime = _time()
    # ';email;sms;' as chosen for this subscriber; '' = by [sms].status_notices / apologies.
    channels: str = Field(default="", sa_column_kwargs={"server_default": ""})
    # The number an SMS gateway refused permanently (a bad number, like a hard bounce): no SMS
    # goes to it again; a different phone number is tried afresh.
    phone_refused: str | None = None
    # Subscribed on the status page (double opt-in) rather than imported; when it was confirmed.
    self_subscribed: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    confirmed_at: datetime | None = _time(nullable=True)

    @property
    def channel_list(self) -> list[str]:
        return [code for code in self.channels.split(";") if code]

    @property
    def service_list(self) -> list[str]:
        return [code for code in self.services.split(";") if code]


class Incident(_Table, table=True):
    __tablename__ = "incident"

    id: int | None = Field(default=None, primary_key=True)
    title: str
    severity: str = "major"
    status: str = "investigating"
    regions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    services: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    started_at: datetime = _time()
    declared_at: datetime = _time()
    resolved_at: datetime | None = _time(nullable=True)
    cause: str = ""
    measures: str = ""
    compensation_days: int | None = None
    apology_state: str = "none"  # none | held | queued
    declared_by: str = ""
    resolved_by: str = ""
    updated_at: datetime = _time()
    reminded_at: datetime | None = _time(nullable=True)  # last stale-incident reminder
    # Declared during a planned maintenance of the same regions: {"ref", "title", "announced_at"}.
    planned_work: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Texts in languages other than [notifier].default_locale: {"en": {"title", "cause", "measures"}}.
    translations: dict[str, dict[str, str]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))

    @property
    def ref(self) -> str:
        return f"INC-{self.id}"


class Update(_Table, table=True):
    """A public status message on an incident; also its timeline of who did what."""

    __tablename__ = "incident_update"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    kind: str = "update"  # declared | update | scope | resolved | edit
    status: str
    message: str = ""
    author: str = ""
    created_at: datetime = _time()
    # The message in languages other than [notifier].default_locale: {"en": {"message": …}}.
    translations: dict[str, dict[str, str]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class AudienceMember(_Table, table=True):
    __tablename__ = "audience_member"

    incident_id: int = Field(foreign_key="incident.id", primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", primary_key=True, index=True)
    added_at: datetime = _time()


class Message(_Table, table=True):
    """One notification to one recipient over one channel: the outbox row."""

    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_message_dedupe_key"),
        Index("ix_message_due", "state", "not_before"),
        Index(
            "ix_message_unsent", "not_before", "id",
            sqlite_where=text("state IN ('queued', 'retry')"), postgresql_where=text("state IN ('queued', 'retry')"),
        ),  # fmt: skip
        Index("ix_message_incident_kind_state", "incident_id", "kind", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    channel: str = "email"
    state: str = "queued"
    incident_id: int | None = Field(default=None, foreign_key="incident.id")
    subscriber_id: int | None = Field(default=None, foreign_key="subscriber.id", index=True)
    update_id: int | None = Field(default=None, foreign_key="incident_update.id")
    callback_id: int | None = None
    recipient: str = ""  # e-mail address or webhook URL, fixed when queued
    locale: str = "ru"
    dedupe_key: str
    attempts: int = 0
    not_before: datetime = _time()
    claimed_by: str | None = None  # the sender (see ``SenderRow``) holding it while ``sending``
    last_error: str | None = None
    created_at: datetime = _time()
    sent_at: datetime | None = _time(nullable=True)
    # SMS: what the gateway's delivery reports said (DELIVERY_STATES), its code, and when.
    delivery: str | None = None
    delivery_code: str | None = None
    delivery_at: datetime | None = _time(nullable=True)
    maintenance_id: int | None = Field(default=None, foreign_key="maintenance.id", index=True)


class PendingNotice(_Table, table=True):
    """A status notice owed to an incident's audience and not yet written out row by row.

    Declaring over a big audience would otherwise write one outbox row per member before it
    answers; instead the notice waits here, and senders turn it into ``message`` rows a claim's
    worth at a time, in subscriber order (``outbox.queueing.materialise``): the members up to
    ``after_subscriber`` have theirs. The rows are what they would have been (same columns,
    same de-duplication keys), so nothing downstream knows the difference; counts add the
    members still to come as queued. ``done``: none are left. ``cancelled``: the members it
    still owed when a newer update or the resolve cancelled it (counted as cancelled rows).
    """

    __tablename__ = "pending_notice"
    __table_args__ = (UniqueConstraint("incident_id", "update_id", "kind", "channel", name="uq_pending_notice"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id")
    update_id: int = Field(foreign_key="incident_update.id")
    kind: str = "status"
    channel: str = "email"
    key_prefix: str  # the rows' de-duplication keys are this and the subscriber id
    after_subscriber: int = 0
    done: bool = False
    cancelled: int = 0
    due: datetime = _time()
    created_at: datetime = _time()


class SenderRow(_Table, table=True):
    """A running sender and its heartbeat: the lease on every message it holds.

    ``heartbeat_at`` is written with the database's clock, so machines whose clocks
    disagree still agree on who is late. ``machine`` identifies a kernel and PID namespace:
    a sender on the same machine is judged alive by its process, at once.
    """

    __tablename__ = "sender"

    name: str = Field(sa_column=Column(String(200), primary_key=True))
    host: str
    machine: str
    pid: int
    process_start: int = Field(sa_column=Column(BigInteger(), nullable=False))
    started_at: datetime = _time()
    heartbeat_at: datetime = _time()


class MailingPause(_Table, table=True):
    """Messages of one kind, channel and language wait here while their template is broken."""

    __tablename__ = "mailing_pause"
    __table_args__ = (UniqueConstraint("kind", "channel", "locale", name="uq_mailing_pause_key"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    channel: str
    locale: str
    problem: str  # "file:line: message", as templates check prints it
    templates_digest: str  # of the templates when it failed: a change lifts the pause
    since: datetime = _time()


class Meta(_Table, table=True):
    """Facts about this database; ``instance`` makes its Message-IDs globally unique."""

    __tablename__ = "notifier_meta"

    key: str = Field(sa_column=Column(String(50), primary_key=True))
    value: str


class Call(_Table, table=True):
    __tablename__ = "call"

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int | None = Field(default=None, foreign_key="subscriber.id", index=True)
    caller_phone: str = ""
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    note: str = ""
    taken_by: str = ""
    source: str = Field(default="operator", sa_column_kwargs={"server_default": "operator"})  # or ivr, cli
    created_at: datetime = _time()


class Callback(_Table, table=True):
    __tablename__ = "callback"

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="call.id", index=True)
    due_at: datetime = _time(index=True)
    owner: str = ""
    done_at: datetime | None = _time(nullable=True)
    outcome: str = ""
    closed_by: str = ""
    escalations: int = 0
    created_at: datetime = _time()


class User(_Table, table=True):
    """A support-console user; the token is shown once, only its hash is stored."""

    __tablename__ = "console_user"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(100), unique=True, nullable=False))
    token_hash: str = Field(index=True)
    created_at: datetime = _time()
    disabled: bool = False
    # A console session carries the generation it was opened in; logging out or disabling the
    # user moves it on, which ends every session opened before (a copied cookie included).
    session_generation: int = 0
    locale: str | None = None  # the console's language for this user; None: [notifier].default_locale


SUPPRESSION_KINDS = ("hard_bounce", "soft_bounce", "complaint", "auto_reply", "suppressed", "unsuppressed")


class SuppressionEvent(_Table, table=True):
    """One bounce, complaint, auto-reply or operator decision about an address (``notifier.bounces``).

    ``code`` is the DSN status (``5.1.1``) or the provider's event code; ``source`` says where
    it came from (``lmtp``, ``smtp``, ``maildir``, ``file``, ``ses``, ``mailgun``, ``cli``).
    """

    __tablename__ = "suppression_event"
    __table_args__ = (Index("ix_suppression_event_subscriber_at", "subscriber_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int | None = Field(default=None, foreign_key="subscriber.id")
    message_id: int | None = Field(default=None, foreign_key="message.id", index=True)
    kind: str
    recipient: str = ""
    code: str = ""
    detail: str = ""
    source: str = ""
    at: datetime = _time()


MAINTENANCE_STATUSES = ("scheduled", "cancelled", "completed")  # "in progress" is scheduled and started


class Maintenance(_Table, table=True):
    """Planned work (``notifier.maintenance``): announced before, reminded, started, completed.

    ``version`` moves on with every change of the times (reschedule, extend): a reminder queued
    for an older version is no longer wanted.
    """

    __tablename__ = "maintenance"

    id: int | None = Field(default=None, primary_key=True)
    title: str
    message: str = ""
    # {"en": {"title": …, "message": …}}: the texts in other languages than the default's (0012)
    translations: dict[str, dict[str, str]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    regions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    services: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    starts_at: datetime = _time()
    ends_at: datetime = _time()
    status: str = "scheduled"
    version: int = 1
    previous_starts_at: datetime | None = _time(nullable=True)  # before the last reschedule
    previous_ends_at: datetime | None = _time(nullable=True)
    announced_at: datetime = _time()
    completed_at: datetime | None = _time(nullable=True)
    cancelled_at: datetime | None = _time(nullable=True)
    created_by: str = ""
    updated_at: datetime = _time()

    @property
    def ref(self) -> str:
        return f"MNT-{self.id}"


class MaintenanceAudience(_Table, table=True):
    """The subscribers a maintenance affects, snapshotted when it is scheduled."""

    __tablename__ = "maintenance_audience"

    maintenance_id: int = Field(foreign_key="maintenance.id", primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", primary_key=True, index=True)
    added_at: datetime = _time()


SUBSCRIPTION_EVENTS = ("requested", "confirmed", "changed", "unsubscribed")


class SubscriptionEvent(_Table, table=True):
    """One self-service step of a subscriber (``notifier.subscriptions``), for ``subscribers stats``."""

    __tablename__ = "subscription_event"
    __table_args__ = (Index("ix_subscription_event_kind_at", "kind", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True)
    kind: str
    source: str = "web"  # web | cli | import
    at: datetime = _time()
