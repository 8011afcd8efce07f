"""What the bot's latest line asked: a yes/no question, whose answer ends a turn sooner.

Turn-taking (:mod:`processors.turn_hold`) treats a bare "yes", "no" or "okay" as a whole
turn only after the bot asked a yes/no question ("Shall I book that for you?"); otherwise
it is an opener the caller goes on from.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pipecat.processors.aggregators.llm_context import LLMContext

SENTENCE_END = re.compile(r"(?:[!?]|(?<!\bdr)(?<!\bmr)(?<!\bmrs)(?<!\bms)\.)[.!?]*\s+", re.I)
"""Where a sentence ends (not after a title: "Is this Dr. Patel's office?" is one)."""
_YES_NO_QUESTION = re.compile(
    r"\b(?:shall|should|do|does|did|is|are|was|were|can|could|would|will|may|have|has|"
    r"want|ok|okay|right|correct)\b[^.?!]*\?\s*$",
    re.IGNORECASE,
)
_WH_QUESTION = re.compile(r"^\s*(?:what|when|where|which|who|whom|whose|why|how)\b", re.I)


def asks_yes_no(line: str) -> bool:
    """Whether a bot line ends with a yes/no question ("Shall I book that for you?")."""
    last = SENTENCE_END.split(line.strip())[-1] if line.strip() else ""
    return bool(_YES_NO_QUESTION.search(last)) and not _WH_QUESTION.match(last)


def bot_asked_yes_no(context: LLMContext) -> Callable[[], bool]:
    """Whether the bot's latest line in the call's context asks a yes/no question."""

    def asked() -> bool:
        for message in reversed(context.get_messages()):
            if isinstance(message, dict) and message.get("role") == "assistant":
                content = message.get("content")
                return isinstance(content, str) and asks_yes_no(content)
        return False

    return asked
