"""Call-record test helpers: stores on SQLite and (when CI started one) PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from integrations.storage import CallStore
from integrations.storage.engine import sqlite_url

PG_ENV = "CALLAGENT_TEST_DATABASE_URL"
PG_SKIP = (
    f"PostgreSQL tests need {PG_ENV} (scripts/test.sh and .ci/run start a local "
    "PostgreSQL and set it)"
)


def postgres_server_url() -> str | None:
    """The test PostgreSQL URL, if one was started."""
    return os.environ.get(PG_ENV) or None


@contextmanager
def open_store(backend: str, tmp: Path) -> Iterator[CallStore]:
    """A migrated, empty store on ``backend`` (``sqlite`` or ``postgresql``)."""
    if backend == "sqlite":
        store = CallStore.open(sqlite_url(tmp / "calls.db"), spool_dir=tmp)
        try:
            yield store
        finally:
            store.close()
        return
    url = postgres_server_url()
    if url is None:
        pytest.skip(PG_SKIP)
    from integrations.storage.scratch import scratch_postgres_database

    with scratch_postgres_database(url, "callagent_test") as scratch:
        store = CallStore.open(scratch, spool_dir=tmp)
        try:
            yield store
        finally:
            store.close()


def call_row(call_id: str, started: datetime, **over: Any) -> dict[str, Any]:
    """A ``calls`` row for bulk inserts."""
    row = {
        "id": call_id,
        "transport": "twilio",
        "direction": "inbound",
        "caller": None,
        "agent": "test",
        "started_at": started,
        "ended_at": started + timedelta(seconds=30),
        "duration_secs": 30.0,
        "outcome": "resolved",
        "end_reason": "caller said goodbye",
        "turn_count": 1,
        "primary_intent": None,
        "crm_prefetch_ms": None,
        "escalation_trigger": None,
        "escalation_reason": None,
        "escalation_summary": None,
        "transfer_result": None,
        "escalated_at": None,
    }
    row.update(over)
    return row


def turn_row(call_id: str, seq: int, started: datetime, **over: Any) -> dict[str, Any]:
    """A caller ``turns`` row for bulk inserts."""
    row = {
        "call_id": call_id,
        "seq": seq,
        "kind": "caller",
        "started_at": started,
        "caller_text": "hello",
        "bot_text": "hi",
        "intent": "opening_hours",
        "confidence": 0.9,
        "runner_up": None,
        "margin": None,
        "band": "act",
        "path": "classifier",
        "entities": {},
        "reply_intent": None,
        "interrupted": False,
        "latency_ms": 400.0,
        "endpointing_ms": 200.0,
        "stt_ms": 60.0,
        "nlu_ms": 8.0,
        "llm_ms": 2.0,
        "tts_ms": 40.0,
        "transport_ms": 10.0,
        "other_ms": 80.0,
        "stages": {},
    }
    row.update(over)
    return row
