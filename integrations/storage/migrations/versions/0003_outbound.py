"""Outbound calls: campaigns, their contacts, dial attempts, the do-not-call list.

Every call record also gains the provider's call id, and outbound ones the campaign,
contact, attempt, machine-detection verdict and disposition.

Revision ID: 0003_outbound
Revises: 0002_workers
Create Date: 2026-12-05
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003_outbound"
down_revision = "0002_workers"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
_CALL_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("provider_call_id", sa.String(64)),
    ("campaign_id", sa.String(32)),
    ("contact_id", sa.String(32)),
    ("attempt", sa.Integer()),
    ("amd_verdict", sa.String(16)),
    ("amd_ms", sa.Float()),
    ("disposition", sa.String(24)),
)


def upgrade() -> None:
    """Add the outbound tables and the new call-record columns."""
    with op.batch_alter_table("calls") as batch:
        for name, kind in _CALL_COLUMNS:
            batch.add_column(sa.Column(name, kind))
    op.create_index("ix_calls_provider_call_id", "calls", ["provider_call_id"])
    op.create_index("ix_calls_campaign_id", "calls", ["campaign_id"])
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("agent", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("rules", JSONType, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "campaign_contacts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "campaign_id",
            sa.String(32),
            sa.ForeignKey("campaigns.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("line", sa.Integer()),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("variables", JSONType, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_at", sa.DateTime()),
        sa.Column("disposition", sa.String(24)),
        sa.Column("last_attempt_id", sa.String(32)),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_contacts_due", "campaign_contacts", ["state", "next_at"])
    op.create_index("ix_contacts_campaign_state", "campaign_contacts", ["campaign_id", "state"])
    op.create_table(
        "outbound_attempts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("campaign_id", sa.String(32)),
        sa.Column(
            "contact_id",
            sa.String(32),
            sa.ForeignKey("campaign_contacts.id", ondelete="CASCADE"),
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(128), nullable=False),
        sa.Column("to_number", sa.String(32), nullable=False),
        sa.Column("variables", JSONType, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("provider_call_id", sa.String(64)),
        sa.Column("call_id", sa.String(64)),
        sa.Column("answered_by", sa.String(32)),
        sa.Column("disposition", sa.String(24)),
        sa.Column("error_code", sa.Integer()),
        sa.Column("error", sa.String(200)),
        sa.Column("worker_id", sa.String(128)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("dialed_at", sa.DateTime()),
        sa.Column("answered_at", sa.DateTime()),
        sa.Column("ended_at", sa.DateTime()),
        sa.UniqueConstraint("contact_id", "number", name="uq_attempts_contact_number"),
    )
    op.create_index("ix_attempts_provider_call_id", "outbound_attempts", ["provider_call_id"])
    op.create_index("ix_attempts_state_created", "outbound_attempts", ["state", "created_at"])
    op.create_index("ix_attempts_campaign", "outbound_attempts", ["campaign_id"])
    op.create_table(
        "do_not_call",
        sa.Column("phone", sa.String(32), primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("do_not_call")
    op.drop_table("outbound_attempts")
    op.drop_table("campaign_contacts")
    op.drop_table("campaigns")
    op.drop_index("ix_calls_campaign_id", table_name="calls")
    op.drop_index("ix_calls_provider_call_id", table_name="calls")
    with op.batch_alter_table("calls") as batch:
        for name, _kind in reversed(_CALL_COLUMNS):
            batch.drop_column(name)
