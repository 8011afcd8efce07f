"""Types shared by the intent classifiers: predictions, protocols and thresholds.

The router (``processors/nlu_router.py``) is built from objects that satisfy these
protocols; nothing here imports the pipeline, so the classifiers can be used and
benchmarked on their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

OUT_OF_SCOPE = "out_of_scope"
"""The intent name of an utterance the agent does not handle (same as processors.frames)."""

BandName = Literal["act", "clarify", "repair"]
"""The values of ``processors.frames.Band``."""


@dataclass(frozen=True)
class IntentPrediction:
    """One classifier's answer for one utterance.

    Parameters:
        intent: The chosen intent, or ``out_of_scope``.
        confidence: Confidence in ``intent``, between 0 and 1.
        ranking: The best intents with their scores, best first (``intent`` may be
            ``out_of_scope`` while the ranking still lists the nearest in-scope intents).
    """

    intent: str
    confidence: float
    ranking: tuple[tuple[str, float], ...] = field(default_factory=tuple)

    @property
    def runner_up(self) -> tuple[str, float] | None:
        """The best-ranked intent other than ``intent``, with its score."""
        return next(((name, s) for name, s in self.ranking if name != self.intent), None)

    @property
    def margin(self) -> float:
        """``confidence`` minus the runner-up's score (``confidence`` if there is none)."""
        second = self.runner_up
        return self.confidence - (second[1] if second else 0.0)


@runtime_checkable
class IntentClassifier(Protocol):
    """A fast, local classifier (answers in milliseconds, synchronously)."""

    @property
    def intents(self) -> tuple[str, ...]:
        """The in-scope intents it knows."""
        ...

    def classify(self, text: str) -> IntentPrediction:
        """Classify one utterance."""
        ...


@runtime_checkable
class LLMIntentClassifier(Protocol):
    """A slower classifier that reasons about the utterance (a remote or self-hosted LLM)."""

    async def classify(self, text: str) -> IntentPrediction:
        """Classify one utterance.

        Raises:
            LLMClassificationError: The model could not be reached or answered nonsense.
        """
        ...


class LLMClassificationError(RuntimeError):
    """The LLM classifier failed (HTTP error, timeout, malformed or invalid JSON)."""


@dataclass(frozen=True)
class NLUThresholds:
    """Confidence thresholds that put a decision in a band.

    The defaults are the documented ones (also in the reference agent file):

    - ``confidence >= act`` (0.85): act on the intent. The classifier's answer is
      final at this level; below it the LLM (if configured) is asked.
    - ``clarify <= confidence < act`` (0.5): confirm the most likely intent.
    - ``confidence < clarify``: repair (ask again, count a failed turn). An
      ``out_of_scope`` decision is always repaired.

    Parameters:
        act: Lowest confidence that acts.
        clarify: Lowest confidence that asks a clarifying question.
        clear_act: Lowest confidence that acts on words the recogniser heard clearly, for
            a question the agent only answers (the router's rule; None: ``act`` alone).
    """

    act: float = 0.85
    clarify: float = 0.5
    clear_act: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.clarify <= self.act <= 1.0:
            raise ValueError("NLUThresholds: need 0 <= clarify <= act <= 1")
        if self.clear_act is not None and not self.clarify <= self.clear_act <= self.act:
            raise ValueError("NLUThresholds: need clarify <= clear_act <= act")

    def band(self, intent: str, confidence: float) -> BandName:
        """The band of a decision (``out_of_scope`` is always repaired)."""
        if intent == OUT_OF_SCOPE:
            return "repair"
        if confidence >= self.act:
            return "act"
        if confidence >= self.clarify:
            return "clarify"
        return "repair"
