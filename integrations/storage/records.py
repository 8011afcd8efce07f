"""What a call record is made of: plain dataclasses, independent of any database.

The recorder (``processors/call_recorder.py``) builds these as a call goes; the
store (:mod:`integrations.storage.store`) persists them. Each one can be turned into
a JSON-safe dict and back, which is how the writer spools records to a local file
while the database cannot be reached.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

MAX_TEXT_CHARS = 4000
"""Longer caller or bot texts are cut to this many characters in the record."""


class Outcome(StrEnum):
    """How a call ended, from the caller's point of view."""

    RESOLVED = "resolved"
    """The caller got an answer or said goodbye, and no one was escalated to."""
    ESCALATED = "escalated"
    """The call was handed (or was to be handed) to a person."""
    ABANDONED = "abandoned"
    """The caller hung up mid-flow, or before saying anything."""
    FAILED = "failed"
    """The pipeline failed."""


class TurnKind(StrEnum):
    """What started a turn."""

    GREETING = "greeting"
    """The bot's opening line (no caller text)."""
    CALLER = "caller"
    """The caller said (or keyed) something and the bot answered."""
    PROMPT = "prompt"
    """The bot spoke on its own (idle prompt, goodbye after silence)."""


STAGES = ("endpointing", "stt", "nlu", "llm", "tts", "transport", "other")
"""Per-stage latency columns of a turn, in the order they happen."""

# Stage names from ``processors/turn_latency.py`` mapped onto the record's columns.
_STAGE_COLUMNS = {
    "endpointing": "endpointing",
    "end_of_turn": "endpointing",
    "stt": "stt",
    "llm": "llm",
    "tools": "llm",
    "text_aggregation": "llm",
    "tts": "tts",
    "transport": "transport",
}


def utcnow() -> datetime:
    """The current UTC time as a naive datetime (how records store time)."""
    return datetime.now(UTC).replace(tzinfo=None)


def clean_text(value: Any) -> str | None:
    """A text field as stored: a string cut to :data:`MAX_TEXT_CHARS`, or None."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text[:MAX_TEXT_CHARS]


def clean_number(value: Any) -> float | None:
    """A finite float, or None for anything else (NaN, strings, None)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def json_safe(value: Any, depth: int = 0) -> Any:
    """A JSON-serializable copy of ``value`` (unknown objects become strings)."""
    if depth > 8:
        return str(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v, depth + 1) for v in value]
    return str(value)


def stage_columns(stages_ms: dict[str, float]) -> dict[str, float | None]:
    """Fold a turn's named latency stages into the record's stage columns.

    ``nlu`` is not part of Pipecat's breakdown (it is measured by the NLU router)
    and stays None here; anything unnamed goes to ``other``.
    """
    columns: dict[str, float | None] = dict.fromkeys(STAGES)
    for name, value in stages_ms.items():
        number = clean_number(value)
        if number is None:
            continue
        column = _STAGE_COLUMNS.get(name, "other")
        columns[column] = round((columns[column] or 0.0) + number, 1)
    return columns


class _Record:
    """JSON round-trip for the record dataclasses (datetimes as ISO strings)."""

    _datetimes: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of every field."""
        return {k: json_safe(v) for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Rebuild a record from :meth:`to_dict` output (unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        values = {k: v for k, v in data.items() if k in names}
        for key in cls._datetimes:
            if isinstance(values.get(key), str):
                values[key] = datetime.fromisoformat(values[key])
        return cls(**values)


@dataclass
class CallStart(_Record):
    """A call as known when it starts.

    Parameters:
        call_id: Our id for the call.
        transport: ``twilio``, ``webrtc``, ``daily`` or ``livekit``.
        direction: ``inbound`` or ``outbound``.
        caller: The caller's identity as stored (hashed, redacted or plain).
        started_at: When the call started (UTC).
        agent: The agent's name.
        worker_id: The server process running the call (set by the store).
        provider_call_id: The provider's id of the call (Twilio ``CallSid``).
        campaign_id: Outbound: the campaign it belongs to.
        contact_id: Outbound: the campaign contact called.
        attempt: Outbound: which attempt at the contact (1 = the first).
    """

    _datetimes: ClassVar[tuple[str, ...]] = ("started_at",)

    call_id: str
    transport: str
    direction: str = "inbound"
    caller: str | None = None
    started_at: datetime = field(default_factory=utcnow)
    agent: str | None = None
    worker_id: str | None = None
    provider_call_id: str | None = None
    campaign_id: str | None = None
    contact_id: str | None = None
    attempt: int | None = None


@dataclass
class TurnRecord(_Record):
    """One turn: what the caller said, what the NLU decided, what the bot said, how fast.

    Parameters:
        call_id: The call the turn belongs to.
        seq: The turn's position in the call (0 first).
        kind: What started the turn.
        started_at: When the turn started (UTC).
        caller_text: The caller's words (or ``DTMF: ...``), None for bot-only turns.
        bot_text: What the bot said in answer.
        intent: The NLU's chosen intent.
        confidence: Confidence in ``intent``.
        runner_up: The second most likely intent.
        margin: ``confidence`` minus the runner-up's.
        band: ``act``, ``clarify`` or ``repair``.
        path: Which NLU component decided (classifier, llm, dtmf, empty).
        entities: Extracted entities.
        reply_intent: The intent the dialogue's reply answered.
        interrupted: Whether the caller barged in while the bot was speaking.
        latency_ms: Caller stopped speaking to first bot audio (greeting: call start to audio).
        stages_ms: The latency breakdown by named stage, as measured.
        nlu_ms: Time the NLU decision took.
    """

    _datetimes: ClassVar[tuple[str, ...]] = ("started_at",)

    call_id: str
    seq: int
    kind: str = TurnKind.CALLER
    started_at: datetime = field(default_factory=utcnow)
    caller_text: str | None = None
    bot_text: str | None = None
    intent: str | None = None
    confidence: float | None = None
    runner_up: str | None = None
    margin: float | None = None
    band: str | None = None
    path: str | None = None
    entities: dict[str, Any] = field(default_factory=dict)
    reply_intent: str | None = None
    interrupted: bool = False
    latency_ms: float | None = None
    stages_ms: dict[str, float] = field(default_factory=dict)
    nlu_ms: float | None = None

    def stage_columns(self) -> dict[str, float | None]:
        """Latency per record stage (``nlu`` from the NLU router's own timing)."""
        columns = stage_columns(self.stages_ms)
        columns["nlu"] = self.nlu_ms
        return columns


@dataclass
class Escalation(_Record):
    """A hand-over to a person.

    Parameters:
        trigger: What triggered it (e.g. ``caller_request``, ``nlu_failures``, ``sentiment``).
        reason: A short human-readable reason.
        summary: The summary handed to the person taking over.
        transfer_result: How the transfer went (e.g. ``completed``, ``failed``, ``no_answer``).
        at: When it happened (UTC).
    """

    _datetimes: ClassVar[tuple[str, ...]] = ("at",)

    trigger: str | None = None
    reason: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    transfer_result: str | None = None
    at: datetime = field(default_factory=utcnow)


@dataclass
class CallEnd(_Record):
    """How a call ended.

    Parameters:
        call_id: The call.
        ended_at: When it ended (UTC).
        duration_secs: How long it lasted.
        outcome: resolved, escalated, abandoned or failed.
        end_reason: Why it ended, in words (e.g. ``caller said goodbye``).
        turn_count: How many caller turns it had.
        primary_intent: The first intent the agent acted on.
    """

    _datetimes: ClassVar[tuple[str, ...]] = ("ended_at",)

    call_id: str
    ended_at: datetime
    duration_secs: float
    outcome: str
    end_reason: str
    turn_count: int = 0
    primary_intent: str | None = None


@dataclass
class CallUpdate(_Record):
    """Facts learnt during a call that belong to the call, not a turn.

    Parameters:
        call_id: The call.
        crm_prefetch_ms: Time the CRM caller-record prefetch took.
        escalation: The escalation, if one happened.
        amd_verdict: Outbound: who answered (``human``, ``machine``, ``unknown``).
        amd_ms: Outbound: answer to machine-detection verdict.
        disposition: Outbound: what the call came to (a ``Disposition`` value).
    """

    call_id: str
    crm_prefetch_ms: float | None = None
    escalation: Escalation | None = None
    amd_verdict: str | None = None
    amd_ms: float | None = None
    disposition: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallUpdate:
        """Rebuild an update, including its nested escalation."""
        escalation = data.get("escalation")
        return cls(
            call_id=data["call_id"],
            crm_prefetch_ms=data.get("crm_prefetch_ms"),
            escalation=Escalation.from_dict(escalation) if escalation else None,
            amd_verdict=data.get("amd_verdict"),
            amd_ms=data.get("amd_ms"),
            disposition=data.get("disposition"),
        )
