"""What a recogniser heard: its N best readings of an utterance and how sure it is.

Engine-neutral, so the STT service can hand them downstream (in the
``TranscriptionFrame``'s ``result``) and the NLU router can pick among the readings
without knowing which recogniser made them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Hypothesis:
    """One reading of an utterance.

    Parameters:
        text: The transcript. Caller data: never log it.
        score: The decoder's ranking score per token (log domain, higher is better;
            includes any language-model bias). Only comparable within one utterance.
        token_logprob: Mean log-probability per token under the acoustic model alone.
    """

    text: str = field(repr=False)
    score: float = 0.0
    token_logprob: float = 0.0


@dataclass(frozen=True)
class Recognition:
    """The readings of one utterance, best first.

    Parameters:
        hypotheses: Up to N readings, best first, distinct texts (empty: nothing heard).
    """

    hypotheses: tuple[Hypothesis, ...] = ()

    @property
    def text(self) -> str:
        """The best reading ("" when nothing was heard)."""
        return self.hypotheses[0].text if self.hypotheses else ""

    @property
    def confidence(self) -> float:
        """How sure the recogniser is of the best reading, between 0 and 1.

        The geometric mean of its tokens' probabilities (``exp`` of the mean token
        log-probability); 0 when nothing was heard. Clean speech usually scores above
        0.8; garbled speech in noise well below.
        """
        if not self.hypotheses:
            return 0.0
        return math.exp(min(0.0, self.hypotheses[0].token_logprob))

    @property
    def alternatives(self) -> tuple[str, ...]:
        """The readings after the best one (their texts)."""
        return tuple(h.text for h in self.hypotheses[1:])

    @classmethod
    def of_text(cls, text: str) -> Recognition:
        """A single reading with no scores (from a recogniser that gives only text)."""
        text = text.strip()
        return cls((Hypothesis(text),) if text else ())


@runtime_checkable
class NBestRecognizer(Protocol):
    """A recogniser that can give its N best readings (in addition to ``transcribe``)."""

    def recognize(self, pcm16: bytes, sample_rate: int) -> Recognition:
        """Transcribe one utterance into its best readings.

        Args:
            pcm16: 16-bit signed little-endian mono PCM.
            sample_rate: Rate of ``pcm16`` in Hz.
        """
        ...
