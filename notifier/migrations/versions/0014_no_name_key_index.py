"""the subscriber name index goes: no lookup can use it

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 08:00:00

- ``ix_subscriber_name_key`` is dropped. A name is looked up by part of it
  (``name_key LIKE '%part%'``), which neither SQLite nor PostgreSQL can answer from a B-tree
  index; the index only cost every import a random insert per row (about a fifth of the
  import's writing on SQLite).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_subscriber_name_key", table_name="subscriber")


def downgrade() -> None:
    op.create_index("ix_subscriber_name_key", "subscriber", ["name_key"], unique=False)
