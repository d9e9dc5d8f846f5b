"""senders with heartbeats, paused mailings, and this database's instance id

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:00:00

- ``sender``: one row per running sender (``notifier send``, each ``notifier serve``) with
  the machine and process it runs in and its last heartbeat (database time). A message in
  ``sending`` belongs to its sender while that row lives; it replaces the per-message lease.
- ``mailing_pause``: a kind of message (per channel and language) whose template failed to
  render; its messages wait until the templates change.
- ``notifier_meta``: key/value facts about this database; ``instance`` is a random id made
  once, so Message-IDs of two databases never collide.
- ``message.lease_until`` is dropped: leases are the senders' heartbeats now.
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from notifier.models import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sender",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("machine", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("process_start", sa.BigInteger(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "mailing_pause",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("locale", sa.String(10), nullable=False),
        sa.Column("problem", sa.String(1000), nullable=False),
        sa.Column("templates_digest", sa.String(64), nullable=False),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("kind", "channel", "locale", name="uq_mailing_pause_key"),
    )
    meta = op.create_table(
        "notifier_meta",
        sa.Column("key", sa.String(50), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
    )
    op.bulk_insert(meta, [{"key": "instance", "value": uuid.uuid4().hex}])
    # Native on PostgreSQL and on SQLite >= 3.35 (the column is in no index).
    op.execute("ALTER TABLE message DROP COLUMN lease_until")


def downgrade() -> None:
    op.add_column("message", sa.Column("lease_until", UTCDateTime(), nullable=True))
    op.drop_table("notifier_meta")
    op.drop_table("mailing_pause")
    op.drop_table("sender")
