"""where a hotline call was taken: by an operator, or by the phone line itself

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 12:00:00

- ``call.source``: ``operator`` (the console and ``notifier hotline log``: every call logged
  before this revision), ``ivr`` (the automatic phone line: a caller-ID lookup or a keypad
  callback request) or ``cli``. Reports can then tell the calls the line answered on its own.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(20), nullable=False, server_default="operator"))


def downgrade() -> None:
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.drop_column("source")
