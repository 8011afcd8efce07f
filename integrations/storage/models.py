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
    provider_call_id: Mapped[str | None] = mapped_column(String(64))
    """The provider's id of the call (Twilio ``CallSid``, later the SIP ``Call-ID``)."""
    campaign_id: Mapped[str | None] = mapped_column(String(32))
    contact_id: Mapped[str | None] = mapped_column(String(32))
    attempt: Mapped[int | None] = mapped_column(Integer)
    """Outbound: which attempt at the contact (1 = the first)."""
    amd_verdict: Mapped[str | None] = mapped_column(String(16))
    """Outbound: who answered (``human``, ``machine``, ``unknown``)."""
    amd_ms: Mapped[float | None] = mapped_column(Float)
    """Outbound: answer to machine-detection verdict."""
    disposition: Mapped[str | None] = mapped_column(String(24))
    """Outbound: what the call came to (``integrations.outbound.dispositions``)."""

    __table_args__ = (
        Index("ix_calls_started_at", "started_at"),
        Index("ix_calls_provider_call_id", "provider_call_id"),
        Index("ix_calls_campaign_id", "campaign_id"),
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


class Campaign(Base):
    """An outbound campaign: one agent calling a list of contacts under its rules."""

    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    agent: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    """``running``, ``paused``, ``cancelled`` or ``completed``."""
    rules: Mapped[dict[str, Any]] = mapped_column(JSONType)
    """Calling windows, retries, caps, caller id, result webhook (``integrations.outbound``)."""
    created_at: Mapped[datetime] = mapped_column(DateTime())
    updated_at: Mapped[datetime] = mapped_column(DateTime())


class CampaignContact(Base):
    """One person a campaign calls, and where their calls stand."""

    __tablename__ = "campaign_contacts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("campaigns.id", ondelete="CASCADE")
    )
    line: Mapped[int | None] = mapped_column(Integer)
    """The CSV line it came from."""
    phone: Mapped[str] = mapped_column(String(32))
    timezone: Mapped[str] = mapped_column(String(64))
    variables: Mapped[dict[str, Any]] = mapped_column(JSONType)
    state: Mapped[str] = mapped_column(String(16))
    """``pending`` (due at ``next_at``), ``dialing``, ``done``, ``skipped``, ``cancelled``."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime | None] = mapped_column(DateTime())
    disposition: Mapped[str | None] = mapped_column(String(24))
    last_attempt_id: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(DateTime())

    __table_args__ = (
        Index("ix_contacts_due", "state", "next_at"),
        Index("ix_contacts_campaign_state", "campaign_id", "state"),
    )


class OutboundAttempt(Base):
    """One dial: placed once, never twice (``contact_id`` + ``number`` is unique)."""

    __tablename__ = "outbound_attempts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str | None] = mapped_column(String(32))
    contact_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("campaign_contacts.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer, default=1)
    agent: Mapped[str] = mapped_column(String(128))
    to_number: Mapped[str] = mapped_column(String(32))
    variables: Mapped[dict[str, Any]] = mapped_column(JSONType)
    channel: Mapped[str] = mapped_column(String(16))
    """How it is placed: ``twilio`` or ``browser``."""
    state: Mapped[str] = mapped_column(String(16))
    """``created``, ``dialing``, ``ringing``, ``in-progress``, ``ended``."""
    provider_call_id: Mapped[str | None] = mapped_column(String(64))
    call_id: Mapped[str | None] = mapped_column(String(64))
    answered_by: Mapped[str | None] = mapped_column(String(32))
    disposition: Mapped[str | None] = mapped_column(String(24))
    error_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(200))
    worker_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime())
    dialed_at: Mapped[datetime | None] = mapped_column(DateTime())
    answered_at: Mapped[datetime | None] = mapped_column(DateTime())
    ended_at: Mapped[datetime | None] = mapped_column(DateTime())

    __table_args__ = (
        UniqueConstraint("contact_id", "number", name="uq_attempts_contact_number"),
        Index("ix_attempts_provider_call_id", "provider_call_id"),
        Index("ix_attempts_state_created", "state", "created_at"),
        Index("ix_attempts_campaign", "campaign_id"),
    )


class DoNotCall(Base):
    """A number that must never be called (E.164)."""

    __tablename__ = "do_not_call"

    phone: Mapped[str] = mapped_column(String(32), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    """``spoken``, ``api``, ``cli``, ``import``."""
    added_at: Mapped[datetime] = mapped_column(DateTime())
