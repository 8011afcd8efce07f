"""The hand-off summary a human agent gets: who, why, what was said and understood.

Built by the escalation processor from what it watched during the call; delivered to the
agent's desktop (screen-pop webhook), to the browser client (WebRTC) and read out to the
person answering (the whisper). Caller data: never log it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from integrations.crm.base import Authentication, CallerRecord

TRIGGER_REASONS = {
    "explicit_request": "the caller asked for a person",
    "failed_turns": "the agent did not understand the caller several times in a row",
    "negative_sentiment": "the caller sounded upset",
    "out_of_scope": "the request needs a person",
    "max_duration": "the call ran longer than the agent handles alone",
    "server_stopping": "the agent's server was shutting down",
}


@dataclass
class CallObservations:
    """What the escalation processor saw during the call."""

    call_id: str
    transport: str
    started_at: datetime = field(default_factory=datetime.now)
    transcript: list[dict[str, str]] = field(default_factory=list)
    intents: list[dict[str, Any]] = field(default_factory=list)
    entities: dict[str, Any] = field(default_factory=dict)
    sentiment: list[float] = field(default_factory=list)
    record: CallerRecord | None = None


def build_summary(
    seen: CallObservations, *, trigger: str, detail: str, now: datetime | None = None
) -> dict[str, Any]:
    """The structured summary (JSON-ready)."""
    now = now or datetime.now()
    record = seen.record
    auth = record.auth if record is not None else Authentication()
    scores = seen.sentiment
    return {
        "call_id": seen.call_id,
        "transport": seen.transport,
        "reason": trigger,
        "reason_text": TRIGGER_REASONS.get(trigger, trigger),
        "reason_detail": detail,
        "started_at": seen.started_at.isoformat(timespec="seconds"),
        "escalated_at": now.isoformat(timespec="seconds"),
        "duration_s": round((now - seen.started_at).total_seconds(), 1),
        "caller": record.summary() if record is not None else None,
        "authentication": auth.as_dict(),
        "intents": list(seen.intents),
        "entities": dict(seen.entities),
        "sentiment": {
            "last": scores[-1] if scores else 0.0,
            "min": min(scores) if scores else 0.0,
            "mean": round(sum(scores) / len(scores), 3) if scores else 0.0,
            "turns": list(scores),
        },
        "transcript": list(seen.transcript),
    }


def whisper_text(summary: dict[str, Any], agent_name: str = "") -> str:
    """A few spoken sentences for the person answering, before the caller is connected."""
    caller = summary.get("caller") or {}
    who = caller.get("name") or "An unidentified caller"
    auth = (summary.get("authentication") or {}).get("status", "unverified")
    parts = [f"Incoming transfer{f' from the {agent_name}' if agent_name else ''}."]
    parts.append(f"{who}, {'verified' if auth == 'verified' else 'not verified'}.")
    parts.append(f"Reason: {summary.get('reason_text', summary.get('reason', 'transfer'))}.")
    asked = [
        i["intent"]
        for i in summary.get("intents", [])
        if i.get("band") == "act"
        and i.get("intent") not in ("affirm", "deny", "out_of_scope", "talk_to_human")
    ]
    if asked:
        parts.append(
            "They asked about "
            + ", ".join(a.removeprefix("kb:").replace("_", " ") for a in dict.fromkeys(asked))
            + "."
        )
    nxt = caller.get("next_appointment")
    if nxt:
        parts.append(f"Next appointment: {nxt.get('kind', 'appointment')}.")
    if caller.get("open_cases"):
        parts.append(f"{len(caller['open_cases'])} open case.")
    return " ".join(parts)
