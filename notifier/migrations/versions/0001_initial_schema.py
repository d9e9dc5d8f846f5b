"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 10:38:12.170650
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import notifier.models

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "incident",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("severity", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("started_at", notifier.models.UTCDateTime(), nullable=False),
        sa.Column("declared_at", notifier.models.UTCDateTime(), nullable=False),
        sa.Column("resolved_at", notifier.models.UTCDateTime(), nullable=True),
        sa.Column("cause", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("measures", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("compensation_days", sa.Integer(), nullable=True),
        sa.Column("apology_state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("declared_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("resolved_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("updated_at", notifier.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "subscriber",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=True),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("name_key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("email_key", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("region", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("services", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("locale", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", notifier.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", notifier.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_id"),
    )
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscriber_email_key"), ["email_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscriber_name_key"), ["name_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscriber_phone"), ["phone"], unique=False)
        batch_op.create_index("ix_subscriber_status_region", ["status", "region"], unique=False)

    op.create_table(
        "audience_member",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("added_at", notifier.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscriber.id"],
        ),
        sa.PrimaryKeyConstraint("incident_id", "subscriber_id"),
    )
    with op.batch_alter_table("audience_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audience_member_subscriber_id"), ["subscriber_id"], unique=False)

    op.create_table(
        "call",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("caller_phone", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("taken_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", notifier.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscriber.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_incident_id"), ["incident_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_call_subscriber_id"), ["subscriber_id"], unique=False)

    op.create_table(
        "incident_update",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("author", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", notifier.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("incident_update", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incident_update_incident_id"), ["incident_id"], unique=False)

    op.create_table(
        "callback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("due_at", notifier.models.UTCDateTime(), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("done_at", notifier.models.UTCDateTime(), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("created_at", notifier.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["call.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("callback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_callback_call_id"), ["call_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_callback_due_at"), ["due_at"], unique=False)

    op.create_table(
        "message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("update_id", sa.Integer(), nullable=True),
        sa.Column("callback_id", sa.Integer(), nullable=True),
        sa.Column("recipient", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("locale", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("dedupe_key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", notifier.models.UTCDateTime(), nullable=False),
        sa.Column("lease_until", notifier.models.UTCDateTime(), nullable=True),
        sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", notifier.models.UTCDateTime(), nullable=False),
        sa.Column("sent_at", notifier.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscriber.id"],
        ),
        sa.ForeignKeyConstraint(
            ["update_id"],
            ["incident_update.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key", name="uq_message_dedupe_key"),
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index("ix_message_due", ["state", "not_before"], unique=False)
        batch_op.create_index(
            "ix_message_incident_kind_state", ["incident_id", "kind", "state"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_message_subscriber_id"), ["subscriber_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_subscriber_id"))
        batch_op.drop_index("ix_message_incident_kind_state")
        batch_op.drop_index("ix_message_due")

    op.drop_table("message")
    with op.batch_alter_table("callback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_callback_due_at"))
        batch_op.drop_index(batch_op.f("ix_callback_call_id"))

    op.drop_table("callback")
    with op.batch_alter_table("incident_update", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_update_incident_id"))

    op.drop_table("incident_update")
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_subscriber_id"))
        batch_op.drop_index(batch_op.f("ix_call_incident_id"))

    op.drop_table("call")
    with op.batch_alter_table("audience_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audience_member_subscriber_id"))

    op.drop_table("audience_member")
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.drop_index("ix_subscriber_status_region")
        batch_op.drop_index(batch_op.f("ix_subscriber_phone"))
        batch_op.drop_index(batch_op.f("ix_subscriber_name_key"))
        batch_op.drop_index(batch_op.f("ix_subscriber_email_key"))

    op.drop_table("subscriber")
    op.drop_table("incident")
