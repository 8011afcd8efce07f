"""Crash recovery: which server process owns each call, and each process's heartbeat.

Revision ID: 0002_workers
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_workers"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``calls.worker_id`` and the ``workers`` heartbeat table."""
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("worker_id", sa.String(128)))
    op.create_index("ix_calls_worker_id", "calls", ["worker_id"])
    op.create_table(
        "workers",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("workers")
    op.drop_index("ix_calls_worker_id", table_name="calls")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("worker_id")
