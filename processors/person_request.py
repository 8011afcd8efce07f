"""The phrasings that ask for a person, whatever the classifier made of the turn.

:class:`PersonRequest` searches a caller's words with these (case-insensitive) beside the
agent file's own ``escalation.explicit_request.phrases``: the escalation's
``explicit_request`` trigger on calls, and ``callagent nlu understanding`` scoring a turn
as the call would hand it off.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from processors.frames import DecisionPath

_PERSON = (
    r"(human|person|people|someone|somebody|operator|representative|rep|agent|receptionist|"
    r"staff|member of staff|real (person|human)|live (person|agent)|the front desk|a manager)"
)
PERSON_REQUEST_PATTERNS: tuple[str, ...] = (
    rf"\b(talk|speak|chat)\b.{{0,25}}\b(to|with)\b.{{0,12}}\b{_PERSON}\b",
    rf"\b(transfer|connect|put)\b.{{0,20}}\b(me|through)\b.{{0,20}}\b{_PERSON}\b",
    rf"\b(get|give|find) me\b.{{0,12}}\b{_PERSON}\b",
    r"\b(want|need|like)\b.{0,6}\b(a |an )?(real |live )?(human|person|operator|"
    r"representative)\b(?! (who|that|to))",
    # a bare word, perhaps with "please" ("An agent, please.": dev requests heard in kal)
    r"^\W*(an? |the )?(real |live )?(operator|representative|agent|human|person)"
    r"(,? please)?\W*$",
)
"""Regular expressions for "let me talk to a person", "put me through to the front desk",
"I need a live agent", or the bare word ("Representative.", "An agent, please.")."""


class PersonRequest:
    """Whether a caller's words ask for a person: the built-in phrasings and the agent's own."""

    def __init__(self, phrases: Iterable[str] = ()) -> None:
        """Compile the patterns.

        Args:
            phrases: The agent file's extra regular expressions
                (``escalation.explicit_request.phrases``).
        """
        self._patterns = [
            re.compile(p, re.IGNORECASE) for p in (*PERSON_REQUEST_PATTERNS, *phrases)
        ]

    def asks(self, text: str, path: DecisionPath | None = None) -> bool:
        """Whether ``text`` asks for a person (never a keyed turn's: its text is digits)."""
        return path is not DecisionPath.DTMF and any(p.search(text) for p in self._patterns)
