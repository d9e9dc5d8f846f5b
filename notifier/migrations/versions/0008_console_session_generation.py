"""console sessions can be ended: a per-user session generation

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 16:00:00

- ``console_user.session_generation``: the generation a console session must carry to be
  honoured. Logging out and disabling the user move it on, which ends every session opened
  before it on the server side: a copied cookie stops working at once, not after 12 hours.
  Sessions opened before this revision carry none and must log in again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("console_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("console_user", schema=None) as batch_op:
        batch_op.drop_column("session_generation")
