"""Synthetic call records (deterministic), for benchmarks and tests of reading at scale."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from integrations.storage.records import utcnow

INTENTS = (
    ("opening_hours", 20),
    ("book_appointment", 18),
    ("reschedule_appointment", 10),
    ("cancel_appointment", 8),
    ("insurance", 7),
    ("location", 6),
    ("prices", 6),
    ("talk_to_human", 5),
    ("affirm", 6),
    ("deny", 3),
    ("goodbye", 8),
    ("out_of_scope", 3),
)
OUTCOMES = (("resolved", 70), ("escalated", 12), ("abandoned", 14), ("failed", 4))
REASONS = (
    "caller asked for a person",
    "repeated misunderstanding",
    "negative sentiment",
    "billing dispute",
    "emergency",
)
TRANSPORTS = (("twilio", 75), ("webrtc", 20), ("daily", 3), ("livekit", 2))


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([k for k, _ in weighted], weights=[w for _, w in weighted])[0]


def synthetic_calls(
    n: int, *, days: int = 30, seed: int = 7, now: datetime | None = None, prefix: str = "syn"
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Yield ``(calls row, turns rows)`` for ``n`` calls spread over the last ``days`` days."""
    rng = random.Random(seed)
    now = now or utcnow()
    span = days * 86400.0
    # Oldest first, as a live system records them.
    offsets = sorted((rng.random() * span for _ in range(n)), reverse=True)
    for i, offset in enumerate(offsets):
        started = now - timedelta(seconds=offset)
        outcome = _pick(rng, OUTCOMES)
        n_turns = rng.randint(0 if outcome == "abandoned" else 1, 6)
        call_id = f"{prefix}{i:08d}"
        turns = [_turn(rng, call_id, 0, started, greeting=True)]
        at = started
        primary = None
        for seq in range(1, n_turns + 1):
            at += timedelta(seconds=rng.uniform(3, 12))
            turn = _turn(rng, call_id, seq, at)
            if (
                primary is None
                and turn["band"] == "act"
                and turn["intent"] not in ("affirm", "deny")
            ):
                primary = turn["intent"]
            turns.append(turn)
        duration = (at - started).total_seconds() + rng.uniform(2, 10)
        escalated = outcome == "escalated"
        call = {
            "id": call_id,
            "transport": _pick(rng, TRANSPORTS),
            "direction": "inbound",
            "caller": f"sha256:{rng.getrandbits(96):024x}",
            "agent": "Dental front desk",
            "started_at": started,
            "ended_at": started + timedelta(seconds=duration),
            "duration_secs": round(duration, 2),
            "outcome": outcome,
            "end_reason": {
                "resolved": "caller said goodbye",
                "escalated": "transferred",
                "abandoned": "caller hung up",
                "failed": "pipeline error",
            }[outcome],
            "turn_count": n_turns,
            "primary_intent": primary,
            "crm_prefetch_ms": round(rng.lognormvariate(4.5, 0.5), 1),
            "escalation_trigger": "policy" if escalated else None,
            "escalation_reason": rng.choice(REASONS) if escalated else None,
            "escalation_summary": {"intent": primary} if escalated else None,
            "transfer_result": rng.choice(("completed", "no_answer")) if escalated else None,
            "escalated_at": at if escalated else None,
        }
        yield call, turns


def _turn(
    rng: random.Random, call_id: str, seq: int, at: datetime, *, greeting: bool = False
) -> dict[str, Any]:
    stages = {
        "endpointing": 0.0 if greeting else round(rng.lognormvariate(5.6, 0.25), 1),
        "stt": 0.0 if greeting else round(rng.lognormvariate(3.8, 0.5), 1),
        "nlu": None if greeting else round(rng.lognormvariate(2.0, 0.6), 1),
        "llm": round(
            rng.lognormvariate(1.0, 1.0) if rng.random() < 0.9 else rng.lognormvariate(6.3, 0.4), 1
        ),
        "tts": round(rng.lognormvariate(3.7, 0.4), 1),
        "transport": round(rng.lognormvariate(2.3, 0.5), 1),
        "other": round(rng.lognormvariate(1.5, 0.5), 1),
    }
    total = round(sum(v for v in stages.values() if v), 1)
    row: dict[str, Any] = {
        "call_id": call_id,
        "seq": seq,
        "kind": "greeting" if greeting else "caller",
        "started_at": at,
        "caller_text": None if greeting else "synthetic caller words",
        "bot_text": "synthetic bot reply",
        "intent": None,
        "confidence": None,
        "runner_up": None,
        "margin": None,
        "band": None,
        "path": None,
        "entities": {},
        "reply_intent": None,
        "interrupted": rng.random() < 0.08,
        "latency_ms": total,
        **{f"{k}_ms": v for k, v in stages.items()},
        "stages": {},
    }
    if not greeting:
        intent = _pick(rng, INTENTS)
        confidence = min(0.999, max(0.05, rng.betavariate(6, 1.6)))
        band = "act" if confidence >= 0.85 else "clarify" if confidence >= 0.5 else "repair"
        if intent == "out_of_scope":
            band = "repair"
        row.update(
            intent=intent,
            confidence=round(confidence, 3),
            runner_up=_pick(rng, INTENTS),
            margin=round(confidence * rng.random(), 3),
            band=band,
            path="classifier" if rng.random() < 0.93 else "llm",
            reply_intent=intent,
        )
    return row
