"""a partial index of unsent messages, so claiming reads the head of the queue

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 11:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNSENT = sa.text("state IN ('queued', 'retry')")


def upgrade() -> None:
    op.create_index(
        "ix_message_unsent", "message", ["not_before", "id"], sqlite_where=_UNSENT, postgresql_where=_UNSENT
    )


def downgrade() -> None:
    op.drop_index("ix_message_unsent", table_name="message")
