"""A fake intent classifier (the fast, local kind the NLU router asks first)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from integrations.nlu.base import IntentClassifier, IntentPrediction


def prediction(intent: str, confidence: float, runner_up: str = "location") -> IntentPrediction:
    """A prediction for ``intent`` with the rest of the score mostly on ``runner_up``."""
    rest = (1.0 - confidence) * 0.8
    return IntentPrediction(intent, confidence, ((intent, confidence), (runner_up, rest)))


@dataclass
class ScriptedClassifier(IntentClassifier):
    """Answers from a script and records every text it was asked about, in ``calls``.

    The answer to a text is ``answers[text]`` if there is one, else ``rule(text)`` if a
    rule is given, else ``default``; with ``error`` set, every call raises it instead.
    """

    answers: dict[str, IntentPrediction] = field(default_factory=dict)
    default: IntentPrediction = field(
        default_factory=lambda: IntentPrediction("opening_hours", 0.95, (("opening_hours", 0.95),))
    )
    rule: Callable[[str], IntentPrediction] | None = None
    known: tuple[str, ...] = ("opening_hours", "book_appointment", "talk_to_human")
    error: Exception | None = None
    calls: list[str] = field(default_factory=list)

    @property
    def intents(self) -> tuple[str, ...]:
        """The in-scope intents (``known``)."""
        return self.known

    def classify(self, text: str) -> IntentPrediction:
        """The scripted answer for ``text``."""
        self.calls.append(text)
        if self.error is not None:
            raise self.error
        if text in self.answers:
            return self.answers[text]
        return self.rule(text) if self.rule is not None else self.default
