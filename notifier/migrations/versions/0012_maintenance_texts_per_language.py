"""planned work's title and message per language

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 02:30:00

- ``maintenance.translations``: ``{"en": {"title": …, "message": …}}``, the texts in languages
  other than ``[notifier].default_locale`` (whose texts stay in ``title`` and ``message``), as
  ``incident.translations`` (0011).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("maintenance", schema=None) as batch_op:
        batch_op.add_column(sa.Column("translations", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("maintenance", schema=None) as batch_op:
        batch_op.drop_column("translations")
