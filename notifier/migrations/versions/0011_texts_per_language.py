"""texts per language: an incident's and each update's translations, the console user's language

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 23:40:00

- ``incident.translations``: ``{"en": {"title": …, "cause": …, "measures": …}}``, the texts in
  languages other than ``[notifier].default_locale`` (whose texts stay in ``title``, ``cause``
  and ``measures``). A third language is one more key, not a schema change.
- ``incident_update.translations``: ``{"en": {"message": …}}`` for each public update.
- ``console_user.locale``: the language the support console speaks to this user; NULL (every
  user before this revision) means ``[notifier].default_locale``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.add_column(sa.Column("translations", sa.JSON(), nullable=True))
    with op.batch_alter_table("incident_update", schema=None) as batch_op:
        batch_op.add_column(sa.Column("translations", sa.JSON(), nullable=True))
    with op.batch_alter_table("console_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locale", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("console_user", schema=None) as batch_op:
        batch_op.drop_column("locale")
    with op.batch_alter_table("incident_update", schema=None) as batch_op:
        batch_op.drop_column("translations")
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.drop_column("translations")
