"""Turns Pipecat's per-turn latency breakdown into named stages for records and the UI."""

from __future__ import annotations

from pipecat.observers.user_bot_latency_observer import LatencyBreakdown

# Pipecat's contribution keys, renamed to the stages a caller-facing report uses.
STAGE_NAMES: dict[str, str] = {
    "endpointing_wait": "endpointing",
    "turn_detection": "end_of_turn",
    "transcription": "stt",
    "first_request": "stt",
    "llm_inference": "llm",
    "awaiting_speakable_text": "llm",
    "turn_completion": "llm",
    "llm_tool_call": "tools",
    "function_handler": "tools",
    "sentence_aggregation": "text_aggregation",
    "speech_synthesis": "tts",
    "output_transport": "transport",
    "pipeline": "pipeline",
}


def stages_from_breakdown(breakdown: LatencyBreakdown) -> dict[str, float]:
    """Milliseconds per stage, in the order the stages happened.

    Contributions sum to the measured latency, so the stages do too.
    """
    stages: dict[str, float] = {}
    for contribution in breakdown.contributions:
        name = STAGE_NAMES.get(contribution.key, contribution.key)
        stages[name] = round(stages.get(name, 0.0) + contribution.duration_secs * 1000, 1)
    return stages
