"""SMS: channels per subscriber, refused numbers, delivery reports per message

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 18:00:00

- ``subscriber.channels``: ``;email;sms;`` as chosen for the subscriber (CSV ``channels``,
  ``subscribers add --channel``); ``''`` (every subscriber before this revision) means "by
  the config": e-mail when there is an address, SMS per ``[sms].status_notices``/``apologies``.
- ``subscriber.phone_refused``: the number an SMS gateway refused permanently; no SMS goes
  to it again (a new number is tried afresh).
- ``message.delivery``, ``delivery_code``, ``delivery_at``: what the gateway's delivery
  reports said about a sent SMS (accepted, delivered, failed, expired), its code, when.
- The message state ``held`` (an SMS mailing over its budget) needs no schema change.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channels", sa.String(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("phone_refused", sa.String(), nullable=True))
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivery", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("delivery_code", sa.String(), nullable=True))
        batch_op.add_column(sa.Column("delivery_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_column("delivery_at")
        batch_op.drop_column("delivery_code")
        batch_op.drop_column("delivery")
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.drop_column("phone_refused")
        batch_op.drop_column("channels")
