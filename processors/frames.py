"""Custom frames that carry results between callagent's processors.

Processors never hold references to each other; they talk through these frames
(and the shared per-call context). Every frame is a plain dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pipecat.frames.frames import DataFrame, SystemFrame


class Band(StrEnum):
    """What the dialogue should do with an NLU decision."""

    ACT = "act"
    """High confidence: carry out the intent."""
    CLARIFY = "clarify"
    """Medium confidence: confirm the most likely intent with the caller."""
    REPAIR = "repair"
    """Low confidence or out of scope: ask again and count a failed turn."""


class DecisionPath(StrEnum):
    """Which component produced an NLU decision."""

    CLASSIFIER = "classifier"
    LLM = "llm"
    DTMF = "dtmf"
    EMPTY = "empty"


OUT_OF_SCOPE = "out_of_scope"


@dataclass
class NLUResultFrame(DataFrame):
    """The NLU router's decision for one caller turn.

    Parameters:
        text: The caller's utterance (or DTMF digit string) that was classified.
        intent: The chosen intent name, or ``out_of_scope``.
        confidence: Confidence in ``intent`` between 0 and 1.
        runner_up: The second most likely intent, if any.
        margin: ``confidence`` minus the runner-up's confidence.
        entities: Extracted entities by kind (e.g. ``{"date": "...", "digits": "4729"}``).
        path: Which component decided.
        band: What the dialogue should do.
        elapsed_ms: Time the decision took.
    """

    text: str = ""
    intent: str = OUT_OF_SCOPE
    confidence: float = 0.0
    runner_up: str | None = None
    margin: float = 0.0
    entities: dict[str, Any] = field(default_factory=dict)
    path: DecisionPath = DecisionPath.CLASSIFIER
    band: Band = Band.REPAIR
    elapsed_ms: float = 0.0


@dataclass
class BotReplyFrame(DataFrame):
    """What the dialogue decided to say for one turn (for records and the UI).

    Parameters:
        text: The reply text handed to TTS.
        intent: The intent the reply answers, if any.
        ends_call: Whether the dialogue ends the call after this reply.
    """

    text: str = ""
    intent: str | None = None
    ends_call: bool = False


@dataclass
class TurnLatencyFrame(SystemFrame):
    """One turn's caller-stop to bot-audio latency and its per-stage breakdown.

    Parameters:
        total_ms: Caller stopped speaking to the first bot audio.
        stages_ms: Named stages (endpointing, transcription, TTS, ...) in order.
    """

    total_ms: float = 0.0
    stages_ms: dict[str, float] = field(default_factory=dict)
