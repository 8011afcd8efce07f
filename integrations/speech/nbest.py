"""What a recogniser heard: its N best readings of an utterance and how sure it is.

Engine-neutral, so the STT service can hand them downstream (in the
``TranscriptionFrame``'s ``result``) and the NLU router can pick among the readings
without knowing which recogniser made them. The user aggregator passes on only the
turn's joined text, so the STT also adds each segment's readings to the call's
:class:`TurnReadings`, where the NLU finds them again by the turn's text.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
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
        word_logprobs: Each word's log-probability under the acoustic model (the sum of its
            tokens'), one per whitespace-separated word of ``text``; () when not known.
    """

    text: str = field(repr=False)
    score: float = 0.0
    token_logprob: float = 0.0
    word_logprobs: tuple[float, ...] = ()


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
    def word_confidences(self) -> tuple[float, ...]:
        """Each word of the best reading's probability, 0 to 1 (() when not known)."""
        if not self.hypotheses:
            return ()
        return tuple(math.exp(min(0.0, lp)) for lp in self.hypotheses[0].word_logprobs)

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


MAX_TURN_READINGS = 4
"""Most readings a turn of several segments is given (its best, then alternatives)."""


def join_recognitions(
    parts: Sequence[Recognition], max_readings: int = MAX_TURN_READINGS
) -> Recognition:
    """One turn's readings from its segments' (a turn may span several VAD segments).

    The best reading joins every segment's best. Each alternative swaps one segment's
    best for one of its own alternatives, the segments with the least sure best reading
    first. Its token log-probability is the word-weighted mean of the segments'.

    Args:
        parts: The segments' recognitions, in order (empty ones are skipped).
        max_readings: The most readings returned (the best included).
    """
    heard = [p for p in parts if p.hypotheses]
    if not heard:
        return Recognition()
    if len(heard) == 1:
        return Recognition(heard[0].hypotheses[:max_readings])
    best = [p.hypotheses[0] for p in heard]
    weights = [max(1, len(h.text.split())) for h in best]
    logprob = sum(w * h.token_logprob for w, h in zip(weights, best, strict=True)) / sum(weights)
    readings = [
        Hypothesis(
            " ".join(h.text for h in best), token_logprob=logprob, word_logprobs=_words_of(best)
        )
    ]
    for i in sorted(range(len(heard)), key=lambda i: best[i].token_logprob):
        for other in heard[i].hypotheses[1:]:
            chosen = list(best)
            chosen[i] = other
            readings.append(
                Hypothesis(
                    " ".join(h.text for h in chosen),
                    token_logprob=logprob,
                    word_logprobs=_words_of(chosen),
                )
            )
    unique = {r.text: r for r in reversed(readings)}  # the first of equal texts wins
    kept = [r for r in readings if unique.get(r.text) is r]
    return Recognition(tuple(kept[:max_readings]))


def _words_of(parts: Sequence[Hypothesis]) -> tuple[float, ...]:
    """The word log-probabilities of readings joined in order (() unless all are known)."""
    if any(len(p.word_logprobs) != len(p.text.split()) for p in parts):
        return ()
    return tuple(lp for p in parts for lp in p.word_logprobs)


def _words(text: str) -> list[str]:
    return "".join(c if c.isalnum() or c == "'" else " " for c in text.lower()).split()


class TurnReadings:
    """What the recogniser heard in one call, segment by segment, until a turn takes it.

    The STT adds each segment's :class:`Recognition`; the user aggregator joins the
    segments' best texts into the turn's text, which is all the NLU receives; the NLU
    then :meth:`take` s the readings whose texts make up that turn, to consult the other
    readings and the recogniser's confidence. Only the latest ``max_segments`` segments
    are kept (segments no turn took, e.g. a backchannel, are dropped in time).
    """

    def __init__(self, max_segments: int = 16):
        """Keep at most ``max_segments`` segments' recognitions."""
        self._parts: deque[Recognition] = deque(maxlen=max_segments)

    def __len__(self) -> int:
        """Segments held."""
        return len(self._parts)

    def add(self, recognition: Recognition) -> None:
        """A segment's recognition (in the order the segments were spoken)."""
        if recognition.hypotheses:
            self._parts.append(recognition)

    def take(self, text: str) -> Recognition | None:
        """The readings of the turn whose text is ``text`` (None: no run of segments matches).

        The latest run of held segments whose best texts join to ``text`` (ignoring case,
        punctuation and spacing) is removed with every segment before it.
        """
        parts = list(self._parts)
        found = _run_of(parts, text)
        if found is None:
            return None
        start, end = found
        for _ in range(end):
            self._parts.popleft()
        return join_recognitions(parts[start:end])

    def peek(self, text: str) -> Recognition | None:
        """The readings of the turn so far whose text is ``text``, left in place for :meth:`take`.

        For the turn-end check, which reads a turn before the NLU takes it; safe to call
        off the event loop (it reads a copy of the segments).
        """
        parts = list(self._parts)
        found = _run_of(parts, text)
        return None if found is None else join_recognitions(parts[found[0] : found[1]])


def _run_of(parts: Sequence[Recognition], text: str) -> tuple[int, int] | None:
    """The latest run ``parts[start:end]`` whose best texts join to ``text`` (None: none)."""
    wanted = _words(text)
    if not wanted:
        return None
    words = [_words(p.text) for p in parts]
    for end in range(len(parts), 0, -1):
        joined: list[str] = []
        for start in range(end - 1, -1, -1):
            joined = words[start] + joined
            if len(joined) > len(wanted):
                break
            if joined == wanted:
                return start, end
    return None
