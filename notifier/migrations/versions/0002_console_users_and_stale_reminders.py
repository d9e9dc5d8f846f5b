"""console users and stale reminders

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:57:44.841570
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import notifier.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "console_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", notifier.models.UTCDateTime(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("console_user", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_console_user_token_hash"), ["token_hash"], unique=False)

    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reminded_at", notifier.models.UTCDateTime(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.drop_column("reminded_at")

    with op.batch_alter_table("console_user", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_user_token_hash"))

    op.drop_table("console_user")
