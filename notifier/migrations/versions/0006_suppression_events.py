"""suppression events: bounces, complaints and auto-replies that came back, and operators' decisions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00

- ``suppression_event``: one row per hard or soft bounce, complaint, recognised
  auto-reply, soft-bounce suppression or operator's unsuppression, with the subscriber and
  outbox row it concerns (when known), the DSN status code, a detail, and where it came
  from. ``notifier.bounces.suppression`` is the one place that writes it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from notifier.models import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "suppression_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("subscriber_id", sa.Integer(), sa.ForeignKey("subscriber.id"), nullable=True),
        sa.Column("message_id", sa.Integer(), sa.ForeignKey("message.id"), nullable=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("code", sa.String(50), nullable=False),
        sa.Column("detail", sa.String(1000), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_suppression_event_subscriber_at", "suppression_event", ["subscriber_id", "at"])
    op.create_index("ix_suppression_event_message_id", "suppression_event", ["message_id"])


def downgrade() -> None:
    op.drop_table("suppression_event")
