"""planned maintenance and self-service subscriptions

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 10:00:00

- ``maintenance``: planned work (title, message, regions, services, start and end, status
  scheduled | cancelled | completed, a ``version`` that moves on with every change of the
  times, the times before the last reschedule), and ``maintenance_audience``: its snapshot.
- ``message.maintenance_id``: the maintenance an outbox row is about (announcement,
  reminders, started/completed/rescheduled/cancelled/extended notices, on-call's overrun note).
- ``incident.planned_work``: an incident declared during a maintenance of its regions names it.
- ``subscriber.self_subscribed`` and ``confirmed_at``: subscribed on the status page (double
  opt-in; the status ``pending`` until the link is clicked, no schema change) and when it was
  confirmed; imported subscribers stay ``false`` (pre-confirmed).
- ``subscription_event``: requested / confirmed / changed / unsubscribed, for ``subscribers stats``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from notifier.models import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "maintenance",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("previous_starts_at", UTCDateTime(), nullable=True),
        sa.Column("previous_ends_at", UTCDateTime(), nullable=True),
        sa.Column("announced_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("cancelled_at", UTCDateTime(), nullable=True),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "maintenance_audience",
        sa.Column("maintenance_id", sa.Integer(), sa.ForeignKey("maintenance.id"), primary_key=True),
        sa.Column("subscriber_id", sa.Integer(), sa.ForeignKey("subscriber.id"), primary_key=True),
        sa.Column("added_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_maintenance_audience_subscriber_id", "maintenance_audience", ["subscriber_id"])
    op.create_table(
        "subscription_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("subscriber_id", sa.Integer(), sa.ForeignKey("subscriber.id"), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_subscription_event_subscriber_id", "subscription_event", ["subscriber_id"])
    op.create_index("ix_subscription_event_kind_at", "subscription_event", ["kind", "at"])
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("maintenance_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_message_maintenance_id", "maintenance", ["maintenance_id"], ["id"])
        batch_op.create_index("ix_message_maintenance_id", ["maintenance_id"])
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.add_column(sa.Column("planned_work", sa.JSON(), nullable=True))
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.add_column(sa.Column("self_subscribed", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("confirmed_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.drop_column("confirmed_at")
        batch_op.drop_column("self_subscribed")
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.drop_column("planned_work")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_maintenance_id")
        batch_op.drop_constraint("fk_message_maintenance_id", type_="foreignkey")
        batch_op.drop_column("maintenance_id")
    op.drop_table("subscription_event")
    op.drop_table("maintenance_audience")
    op.drop_table("maintenance")
