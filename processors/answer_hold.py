"""How long a bare yes or no to the bot's yes/no question waits before the turn ends.

Asked "... Will you be able to make it?", callees answer "Yes, I'll be there." or "No, I
need to cancel it." with a pause at the comma (0.4-0.7 s). Ending the turn at once on the
bare "Yes." / "No." (a whole answer by its words) made the agent answer the yes or no while
the callee went on: the goodbye after a confirmation was talked over, and "No, I need to
cancel" got "Would you like to move it or cancel it?" with the rest said over it.
Recognisers on the phone rarely write the comma, so the words alone cannot tell "Yes," from
"Yes.": only the pause can. A :class:`AnswerHold` says how long the pause after a bare answer
must last before the turn ends (counted from the caller's last word, as every hold of
:class:`~processors.turn_hold.TurnHoldPolicy`):

- :class:`HearAnswerOut` (the default): ``pause_s`` after a bare yes or no ("Yes.", "Uh,
  no.", "Nope, sorry."); an answer with more words ("Yes, that works.", "Yep, see you
  then.") is not held, nor is a goodbye ("Okay, bye.") to "Anything else?";
- :class:`AnswerAtOnce`: no wait (the behaviour before; for tests and comparisons).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from processors.barge_in import normalize_words

ANSWER_PAUSE_S = 0.8
"""A bare yes or no ends the turn after this much pause.

Above the 0.4-0.7 s callees leave after the "Yes," of "Yes, I'll be there." (as reported
from the outbound reminder scenarios), plus the VAD's 0.064 s to hear them go on.
"""
YES_NO_WORDS = frozenset(
    {"yes", "yeah", "yea", "yep", "yup", "no", "nope", "nah", "sure", "mhm"}
    | {"absolutely", "definitely", "certainly", "correct"}
    # "nah" is heard as "Not," (held-out call bench, slt, 6 Dec 2026: "nah, | not really, no"
    # was answered 0.2 s after "Not," while the callee went on); "Certainly not."
    | {"not"}
)
"""Words that answer a yes/no question."""
YES_NO_PHRASES = (
    ("uh", "huh"),
    ("mm", "hmm"),
    ("not", "really"),
    ("not", "at", "all"),
    ("of", "course"),
)
"""Words that answer one only together ("Uh-huh.", "Not really.", "Of course.").

Held-out call bench (clean, 6 Dec 2026): "nah, not really, | no" and "Uh-huh, yes, | that
works for me." were answered at the comma ("Not really." is a whole no by its words) while
the callee went on. Not "okay" or "right": said alone they acknowledge and end the turn.
"""
SOFTENERS = frozenset(
    {"um", "umm", "uh", "uhh", "er", "erm", "ah", "oh", "hm", "hmm", "mm", "well", "okay"}
    | {"ok", "so", "sorry", "and", "but"}
)
"""Words around a bare yes or no that add nothing to it ("Uh, no.", "Nope, sorry.")."""
MAX_BARE_WORDS = 4


def is_bare_yes_no(text: str) -> bool:
    """Whether the words are a yes or a no and nothing more ("Yes.", "Uh-huh.", "Not really.")."""
    tokens = normalize_words(text).split()
    if not 0 < len(tokens) <= MAX_BARE_WORDS:
        return False
    answered, at = False, 0
    while at < len(tokens):
        phrase = next((p for p in YES_NO_PHRASES if tuple(tokens[at : at + len(p)]) == p), None)
        if phrase is not None:
            answered, at = True, at + len(phrase)
        elif tokens[at] in YES_NO_WORDS:
            answered, at = True, at + 1
        elif tokens[at] in SOFTENERS:
            at += 1
        else:
            return False
    return answered


class AnswerHold(ABC):
    """How long the pause after an answer to the bot's yes/no question must last."""

    @abstractmethod
    def pause(self, text: str) -> float:
        """The least pause (s) after ``text``, an answer to a yes/no question (0: none)."""


class AnswerAtOnce(AnswerHold):
    """A whole answer ends the turn at once."""

    def pause(self, text: str) -> float:
        """No wait."""
        return 0.0


@dataclass(frozen=True)
class HearAnswerOut(AnswerHold):
    """A bare yes or no waits ``pause_s``: the callee may be pausing at a comma.

    Parameters:
        pause_s: The pause after a bare yes or no.
    """

    pause_s: float = ANSWER_PAUSE_S

    def pause(self, text: str) -> float:
        """``pause_s`` after a bare yes or no, else none."""
        return self.pause_s if is_bare_yes_no(text) else 0.0
