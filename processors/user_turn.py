"""The text of the caller's turn that just ended, as the user aggregator put it in the context."""

from __future__ import annotations

from typing import Any

from pipecat.frames.frames import LLMContextFrame


def user_text(frame: LLMContextFrame) -> str:
    """The text of the turn that just ended: the context's last message, if the caller's.

    "" when the last message is not a ``user`` one, e.g. the note the user aggregator
    adds for a turn that ended with no transcript (an empty turn).
    """
    messages = list(frame.context.get_messages())
    last = messages[-1] if messages else None
    if not isinstance(last, dict) or last.get("role") != "user":
        return ""
    content: Any = last.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        ]
        return " ".join(p for p in parts if p)
    return ""
