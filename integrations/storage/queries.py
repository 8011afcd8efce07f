"""Reading call records: filters, paged lists, one call with its turns."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, func, select

from integrations.storage.models import STAGE_COLUMNS, Call, Turn

SelectT = TypeVar("SelectT", bound=Select)
"""A SELECT of any columns; filtering keeps its columns (SQLAlchemy 2.0 and 2.1 alike)."""

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
OUTCOMES = ("resolved", "escalated", "abandoned", "failed", "in_progress")
MAX_PAGE = 500
MAX_OFFSET = 2**31 - 1
"""The largest ``offset`` a page read takes (SQLite and PostgreSQL take up to 2**63 - 1)."""
MAX_CALL_SPAN = timedelta(days=1)
"""No call lasts longer (the pipeline's idle timeout ends calls long before)."""


def parse_time(value: str, *, now: datetime | None = None) -> datetime:
    """A point in time from ``7d`` / ``24h`` / ``30m`` (ago), a date, or an ISO datetime.

    Returns:
        Naive UTC datetime.

    Raises:
        ValueError: naming the accepted forms, or saying the time is too far back (a
            duration beyond the year 1, which ``datetime`` cannot hold).
    """
    now = now or datetime.now(UTC).replace(tzinfo=None)
    match = _RELATIVE.match(value)
    try:
        if match:
            return now - timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise ValueError(
            f"{value!r} is too far from now: use a duration of at most a few thousand years "
            "(e.g. 3650d) or a date after 0001-01-01"
        ) from None
    except ValueError:
        raise ValueError(
            f"{value!r}: use a duration ago (30m, 24h, 7d, 2w), a date (2026-11-01) "
            "or an ISO datetime (2026-11-01T09:00:00Z)"
        ) from None
    return parsed


@dataclass(frozen=True)
class CallFilter:
    """Which calls to read (every field optional).

    Parameters:
        since: Calls started at or after this (UTC).
        until: Calls started before this (UTC).
        outcome: resolved, escalated, abandoned, failed, or in_progress (no end yet).
        intent: Calls with at least one turn classified as this intent.
        transport: twilio, webrtc, daily or livekit.
    """

    since: datetime | None = None
    until: datetime | None = None
    outcome: str | None = None
    intent: str | None = None
    transport: str | None = None

    def apply(self, stmt: SelectT) -> SelectT:
        """Add this filter's conditions on ``calls`` to a statement."""
        if self.since is not None:
            stmt = stmt.where(Call.started_at >= self.since)
        if self.until is not None:
            stmt = stmt.where(Call.started_at < self.until)
        if self.outcome == "in_progress":
            stmt = stmt.where(Call.outcome.is_(None))
        elif self.outcome:
            stmt = stmt.where(Call.outcome == self.outcome)
        if self.transport:
            stmt = stmt.where(Call.transport == self.transport)
        if self.intent:
            stmt = stmt.where(Call.id.in_(self._calls_with_intent()))
        return stmt

    def apply_to_turns(self, stmt: SelectT) -> SelectT:
        """Conditions on ``turns`` (joining ``calls`` only when a call field is filtered)."""
        if self.since is not None:
            stmt = stmt.where(Turn.started_at >= self.since)
        if self.until is not None:
            stmt = stmt.where(Turn.started_at < self.until)
        if self.outcome or self.transport:
            calls = CallFilter(outcome=self.outcome, transport=self.transport)
            stmt = stmt.where(Turn.call_id.in_(calls.apply(select(Call.id))))
        if self.intent:
            stmt = stmt.where(Turn.call_id.in_(self._calls_with_intent()))
        return stmt

    def _calls_with_intent(self) -> Select[Any]:
        """Ids of calls with a turn of ``intent``, the turn search bounded by the window.

        A call's turns start after the call and well within a day of it.
        """
        turns = select(Turn.call_id).where(Turn.intent == self.intent)
        if self.since is not None:
            turns = turns.where(Turn.started_at >= self.since)
        if self.until is not None and self.until < datetime.max - MAX_CALL_SPAN:
            turns = turns.where(Turn.started_at < self.until + MAX_CALL_SPAN)
        return turns


def iso(value: datetime | None) -> str | None:
    """A stored (naive UTC) datetime as ISO 8601 with ``Z``."""
    return None if value is None else value.replace(tzinfo=None).isoformat() + "Z"


def call_summary(call: Any) -> dict[str, Any]:
    """A call row as the API and the CLI show it in lists."""
    return {
        "id": call.id,
        "started_at": iso(call.started_at),
        "ended_at": iso(call.ended_at),
        "duration_secs": call.duration_secs,
        "transport": call.transport,
        "direction": call.direction,
        "caller": call.caller,
        "agent": call.agent,
        "outcome": call.outcome or "in_progress",
        "end_reason": call.end_reason,
        "turn_count": call.turn_count,
        "primary_intent": call.primary_intent,
        "escalation_reason": call.escalation_reason,
        "provider_call_id": call.provider_call_id,
        "disposition": call.disposition,
    }


def call_detail(call: Any, turns: list[Any]) -> dict[str, Any]:
    """A call with everything recorded about it, turns included."""
    out = call_summary(call)
    out["crm_prefetch_ms"] = call.crm_prefetch_ms
    out["worker_id"] = call.worker_id
    out["campaign_id"] = call.campaign_id
    out["contact_id"] = call.contact_id
    out["attempt"] = call.attempt
    out["amd_verdict"] = call.amd_verdict
    out["amd_ms"] = call.amd_ms
    out["escalation"] = (
        None
        if call.escalation_trigger is None and call.escalation_reason is None
        else {
            "trigger": call.escalation_trigger,
            "reason": call.escalation_reason,
            "summary": call.escalation_summary or {},
            "transfer_result": call.transfer_result,
            "at": iso(call.escalated_at),
        }
    )
    out["turns"] = [turn_dict(t) for t in turns]
    return out


def turn_dict(turn: Any) -> dict[str, Any]:
    """One turn as the API shows it."""
    return {
        "seq": turn.seq,
        "kind": turn.kind,
        "started_at": iso(turn.started_at),
        "caller_text": turn.caller_text,
        "bot_text": turn.bot_text,
        "intent": turn.intent,
        "confidence": turn.confidence,
        "runner_up": turn.runner_up,
        "margin": turn.margin,
        "band": turn.band,
        "path": turn.path,
        "entities": turn.entities or {},
        "reply_intent": turn.reply_intent,
        "interrupted": bool(turn.interrupted),
        "latency_ms": turn.latency_ms,
        "stages_ms": {name: getattr(turn, f"{name}_ms") for name in STAGE_COLUMNS},
        "stages_raw_ms": turn.stages or {},
    }


def list_calls(
    conn: Connection, where: CallFilter, *, limit: int = 50, offset: int = 0
) -> dict[str, Any]:
    """One page of calls, newest first, with the total matching count."""
    limit = max(1, min(int(limit), MAX_PAGE))
    offset = max(0, min(int(offset), MAX_OFFSET))
    total = conn.execute(where.apply(select(func.count()).select_from(Call))).scalar_one()
    rows = conn.execute(
        where.apply(select(Call))
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "calls": [call_summary(r) for r in rows],
    }


def get_call(conn: Connection, call_id: str) -> dict[str, Any] | None:
    """One call with its turns, or None."""
    call = conn.execute(select(Call).where(Call.id == call_id)).first()
    if call is None:
        return None
    turns = conn.execute(select(Turn).where(Turn.call_id == call_id).order_by(Turn.seq)).all()
    return call_detail(call, list(turns))


def count_calls(conn: Connection, where: CallFilter) -> int:
    """How many calls match."""
    return conn.execute(where.apply(select(func.count()).select_from(Call))).scalar_one()


def iter_calls(
    conn: Connection, where: CallFilter, *, batch: int = 1000
) -> Iterator[dict[str, Any]]:
    """Every matching call with its turns, oldest first, read in batches (keyset paging)."""
    after: tuple[datetime, str] | None = None
    while True:
        stmt = where.apply(select(Call)).order_by(Call.started_at, Call.id).limit(batch)
        if after is not None:
            stmt = stmt.where(
                (Call.started_at > after[0])
                | ((Call.started_at == after[0]) & (Call.id > after[1]))
            )
        calls = conn.execute(stmt).all()
        if not calls:
            return
        ids = [c.id for c in calls]
        turns: dict[str, list[Any]] = {i: [] for i in ids}
        for t in conn.execute(
            select(Turn).where(Turn.call_id.in_(ids)).order_by(Turn.call_id, Turn.seq)
        ):
            turns[t.call_id].append(t)
        for c in calls:
            yield call_detail(c, turns[c.id])
        after = (calls[-1].started_at, calls[-1].id)
