"""Call records: calls and their turns.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    """Create ``calls`` and ``turns`` with their indexes."""
    op.create_table(
        "calls",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("caller", sa.String(128)),
        sa.Column("agent", sa.String(128)),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime()),
        sa.Column("duration_secs", sa.Float()),
        sa.Column("outcome", sa.String(16)),
        sa.Column("end_reason", sa.String(200)),
        sa.Column("turn_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("primary_intent", sa.String(100)),
        sa.Column("crm_prefetch_ms", sa.Float()),
        sa.Column("escalation_trigger", sa.String(100)),
        sa.Column("escalation_reason", sa.String(300)),
        sa.Column("escalation_summary", JSONType),
        sa.Column("transfer_result", sa.String(100)),
        sa.Column("escalated_at", sa.DateTime()),
    )
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_index("ix_calls_outcome_started_at", "calls", ["outcome", "started_at"])
    op.create_index("ix_calls_transport_started_at", "calls", ["transport", "started_at"])
    op.create_table(
        "turns",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "call_id",
            sa.String(64),
            sa.ForeignKey("calls.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("caller_text", sa.Text()),
        sa.Column("bot_text", sa.Text()),
        sa.Column("intent", sa.String(100)),
        sa.Column("confidence", sa.Float()),
        sa.Column("runner_up", sa.String(100)),
        sa.Column("margin", sa.Float()),
        sa.Column("band", sa.String(16)),
        sa.Column("path", sa.String(16)),
        sa.Column("entities", JSONType),
        sa.Column("reply_intent", sa.String(100)),
        sa.Column("interrupted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("latency_ms", sa.Float()),
        sa.Column("endpointing_ms", sa.Float()),
        sa.Column("stt_ms", sa.Float()),
        sa.Column("nlu_ms", sa.Float()),
        sa.Column("llm_ms", sa.Float()),
        sa.Column("tts_ms", sa.Float()),
        sa.Column("transport_ms", sa.Float()),
        sa.Column("other_ms", sa.Float()),
        sa.Column("stages", JSONType),
        sa.UniqueConstraint("call_id", "seq", name="uq_turns_call_seq"),
    )
    op.create_index("ix_turns_started_at", "turns", ["started_at"])
    op.create_index("ix_turns_intent_started_call", "turns", ["intent", "started_at", "call_id"])
    op.create_index("ix_turns_latency", "turns", ["latency_ms"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("turns")
    op.drop_table("calls")
