"""The call-record tables (SQLAlchemy 2.x declarative models).

Times are naive UTC datetimes. Each turn carries its latency per stage as
columns, so percentiles and slowest-turn queries run in SQL. The schema is
created and changed only by the Alembic migrations in ``migrations/``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base of the call-record tables."""


class Call(Base):
    """One call."""

    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    transport: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str] = mapped_column(String(16), default="inbound")
    caller: Mapped[str | None] = mapped_column(String(128))
    agent: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(DateTime())
    ended_at: Mapped[datetime | None] = mapped_column(DateTime())
    duration_secs: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str | None] = mapped_column(String(16))
    end_reason: Mapped[str | None] = mapped_column(String(200))
    turn_count: Mapped[int] = mapped_column(Integer, default=0)
    primary_intent: Mapped[str | None] = mapped_column(String(100))
    crm_prefetch_ms: Mapped[float | None] = mapped_column(Float)
    escalation_trigger: Mapped[str | None] = mapped_column(String(100))
    escalation_reason: Mapped[str | None] = mapped_column(String(300))
    escalation_summary: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    transfer_result: Mapped[str | None] = mapped_column(String(100))
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime())
    worker_id: Mapped[str | None] = mapped_column(String(128))
    """The server process that runs the call (see ``integrations.storage.workers``)."""

    __table_args__ = (
        Index("ix_calls_started_at", "started_at"),
        Index("ix_calls_worker_id", "worker_id"),
        Index("ix_calls_outcome_started_at", "outcome", "started_at"),
        Index("ix_calls_transport_started_at", "transport", "started_at"),
    )


class Turn(Base):
    """One turn of a call."""

    __tablename__ = "turns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(DateTime())
    caller_text: Mapped[str | None] = mapped_column(Text)
    bot_text: Mapped[str | None] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(String(100))
    confidence: Mapped[float | None] = mapped_column(Float)
    runner_up: Mapped[str | None] = mapped_column(String(100))
    margin: Mapped[float | None] = mapped_column(Float)
    band: Mapped[str | None] = mapped_column(String(16))
    path: Mapped[str | None] = mapped_column(String(16))
    entities: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    reply_intent: Mapped[str | None] = mapped_column(String(100))
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    endpointing_ms: Mapped[float | None] = mapped_column(Float)
    stt_ms: Mapped[float | None] = mapped_column(Float)
    nlu_ms: Mapped[float | None] = mapped_column(Float)
    llm_ms: Mapped[float | None] = mapped_column(Float)
    tts_ms: Mapped[float | None] = mapped_column(Float)
    transport_ms: Mapped[float | None] = mapped_column(Float)
    other_ms: Mapped[float | None] = mapped_column(Float)
    stages: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    __table_args__ = (
        UniqueConstraint("call_id", "seq", name="uq_turns_call_seq"),
        Index("ix_turns_started_at", "started_at"),
        Index("ix_turns_intent_started_call", "intent", "started_at", "call_id"),
        Index("ix_turns_latency", "latency_ms"),
    )


class Worker(Base):
    """A server process writing call records, and its last heartbeat."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime())
    last_seen: Mapped[datetime] = mapped_column(DateTime())


STAGE_COLUMNS = {
    "endpointing": Turn.endpointing_ms,
    "stt": Turn.stt_ms,
    "nlu": Turn.nlu_ms,
    "llm": Turn.llm_ms,
    "tts": Turn.tts_ms,
    "transport": Turn.transport_ms,
    "other": Turn.other_ms,
}
"""Each latency stage's column (same order as :data:`records.STAGES`)."""
