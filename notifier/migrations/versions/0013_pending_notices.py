"""status notices written out by the senders, a batch at a time

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 04:40:00

- ``pending_notice``: a status notice owed to an incident's audience that has not been written
  out as one ``message`` row per member yet (``models.PendingNotice``). Senders write the rows
  as they claim, so a declare over a big audience answers without waiting for them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from notifier.models import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("update_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("key_prefix", sa.String(), nullable=False),
        sa.Column("after_subscriber", sa.Integer(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.Column("due", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.ForeignKeyConstraint(["update_id"], ["incident_update.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("incident_id", "update_id", "kind", "channel", name="uq_pending_notice"),
    )


def downgrade() -> None:
    op.drop_table("pending_notice")
