"""Beam search over Moonshine's decoder, optionally biased by a word language model.

The decoder proposes next-token log-probabilities; each beam keeps its tokens and, when a word
language model is given (:mod:`integrations.speech.domain_lm`), adds its weighted log-probability
at every completed word, so the agent's own vocabulary wins close calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from integrations.speech.domain_lm import EOS, WordLanguageModel
from integrations.speech.domain_lm import words as lm_words

START_TOKEN = 1
"""The decoder's start-of-text token."""
END_TOKEN = 2
"""The decoder's end-of-text token (ids up to it are control tokens)."""
SPACE = "\u2581"
"""The tokenizer's word-start mark."""
SPACE_BYTES = SPACE.encode()

StepFunction = Callable[[list[int], list[int]], np.ndarray]
"""One decoder step: (last token per beam, parent index per beam) -> next-token logits."""


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


@dataclass(frozen=True)
class Beam:
    """One partial (or finished) reading in the beam search.

    Parameters:
        tokens: Token ids so far (no start or end token).
        am_logprob: Sum of the tokens' log-probabilities under the model.
        lm_score: Weighted language-model log-probabilities plus word bonuses so far.
        words: The completed words, as the language model sees them.
        partial: Bytes of the word being spelled (not yet scored by the language model).
        steps: Tokens scored, including the end token once finished.
        token_logprobs: Each token's log-probability under the model, in order (the end
            token's not included): per-word confidences are read off them.
    """

    tokens: tuple[int, ...] = ()
    am_logprob: float = 0.0
    lm_score: float = 0.0
    words: tuple[str, ...] = ()
    partial: bytes = b""
    steps: int = 0
    token_logprobs: tuple[float, ...] = ()

    @property
    def score(self) -> float:
        """The ranking score: model log-probability plus the language-model bias."""
        return self.am_logprob + self.lm_score


class BeamSearch:
    """Beam search over SentencePiece tokens with word-level shallow fusion.

    The language model scores whole words, so it is consulted only when a word is
    complete: when the next token starts a new word (its piece begins with "\u2581")
    or the end token arrives (which also scores the end of the sentence). Each
    completed word adds ``weight * log P(word | previous words) + word_bonus`` (the
    bonus offsets the cost every extra word pays, which would otherwise favour
    dropping words). The search ends when ``width`` readings have ended (or at
    ``max_tokens``); they are ranked by score per token. With width 1 and no language
    model this is greedy decoding.
    """

    def __init__(
        self,
        vocabulary: list[bytes],
        width: int,
        language_model: WordLanguageModel | None = None,
        weight: float = 0.0,
        word_bonus: float = 0.0,
    ):
        """Set up a search.

        Args:
            vocabulary: Token pieces by id (see :func:`load_vocabulary`).
            width: Readings kept per step (1: greedy).
            language_model: Word model for shallow fusion (None: none).
            weight: Its weight.
            word_bonus: Added per completed word when a language model is used.
        """
        self._vocabulary = vocabulary
        self._width = max(1, width)
        self._lm = language_model if weight > 0 else None
        self._weight = weight
        self._bonus = word_bonus if self._lm is not None else 0.0

    def run(self, step: StepFunction, max_tokens: int) -> list[Beam]:
        """Decode up to ``max_tokens`` tokens; return the finished readings, best first."""
        width = self._width
        alive = [Beam()]
        last, parents = [START_TOKEN], [0]
        finished: list[Beam] = []
        for _ in range(max_tokens):
            logprobs = _log_softmax(step(last, parents).astype(np.float64))
            candidates: list[tuple[Beam, bool, int]] = []
            for index, beam in enumerate(alive):
                row = logprobs[index]
                if width == 1:
                    top = [int(np.argmax(row))]
                else:
                    top = [int(t) for t in np.argpartition(-row, width)[: width + 1]]
                for token in top:
                    extended, ended = self._extend(beam, token, float(row[token]))
                    candidates.append((extended, ended, index))
            candidates.sort(key=lambda candidate: candidate[0].score, reverse=True)
            next_alive: list[Beam] = []
            next_parents: list[int] = []
            for rank, (beam, ended, parent) in enumerate(candidates):
                if ended:
                    if rank < width:
                        finished.append(beam)
                elif len(next_alive) < width:
                    next_alive.append(beam)
                    next_parents.append(parent)
            if len(finished) >= width or not next_alive:
                break
            alive, parents = next_alive, next_parents
            last = [b.tokens[-1] for b in alive]
        else:
            finished.extend(alive)
        if not finished:
            finished = alive
        # Ranked per token: summed scores would favour readings that stop early.
        return sorted(finished, key=lambda b: b.score / max(1, b.steps), reverse=True)[:width]

    def _extend(self, beam: Beam, token: int, token_logprob: float) -> tuple[Beam, bool]:
        """``beam`` followed by ``token``: (the new beam, whether it ended)."""
        am_logprob = beam.am_logprob + token_logprob
        if token == END_TOKEN:
            words, delta = self._complete(beam.words, beam.partial, end=True)
            ended = Beam(
                beam.tokens,
                am_logprob,
                beam.lm_score + delta,
                words,
                b"",
                beam.steps + 1,
                beam.token_logprobs,
            )
            return ended, True
        piece = self._vocabulary[token] if token < len(self._vocabulary) else b""
        if token <= END_TOKEN:
            piece = b""
        words, lm_score, partial = beam.words, beam.lm_score, beam.partial
        if piece.startswith(SPACE_BYTES) and partial and self._lm is not None:
            words, delta = self._complete(words, partial, end=False)
            lm_score += delta
            partial = piece[len(SPACE_BYTES) :]
        elif piece.startswith(SPACE_BYTES):
            partial = piece[len(SPACE_BYTES) :]
        else:
            partial += piece
        return Beam(
            (*beam.tokens, token),
            am_logprob,
            lm_score,
            words,
            partial,
            beam.steps + 1,
            (*beam.token_logprobs, token_logprob),
        ), False

    def _complete(
        self, history: tuple[str, ...], partial: bytes, *, end: bool
    ) -> tuple[tuple[str, ...], float]:
        """Score the word in ``partial`` (and the sentence end): (new history, bias)."""
        if self._lm is None:
            return history, 0.0
        delta = 0.0
        for word in lm_words(partial.decode("utf-8", errors="ignore")):
            delta += self._weight * self._lm.logprob(word, history) + self._bonus
            history = (*history, word)
        if end:
            delta += self._weight * self._lm.logprob(EOS, history)
        return history, delta


def word_logprobs(
    vocabulary: list[bytes], tokens: tuple[int, ...], token_logprobs: tuple[float, ...]
) -> tuple[float, ...]:
    """Each spelled word's log-probability: the sum of its tokens' (a word starts at "\u2581").

    Args:
        vocabulary: Token pieces by id.
        tokens: A reading's token ids (no start or end token).
        token_logprobs: Their log-probabilities, in the same order.

    Returns:
        One value per whitespace-separated word of the reading's text (control tokens and
        pieces that spell no character are skipped); () when the lengths disagree.
    """
    if len(tokens) != len(token_logprobs):
        return ()
    words: list[tuple[bytes, float]] = []
    pending, new_word = 0.0, True
    for token, logprob in zip(tokens, token_logprobs, strict=True):
        piece = vocabulary[token] if END_TOKEN < token < len(vocabulary) else b""
        if piece.startswith(SPACE_BYTES):
            piece, new_word = piece[len(SPACE_BYTES) :], True
        if not piece.strip():  # a bare word mark or a control token: counts for what follows
            pending += logprob
            continue
        if new_word or not words:
            words.append((piece, pending + logprob))
        else:
            spelled, total = words[-1]
            words[-1] = (spelled + piece, total + pending + logprob)
        pending, new_word = 0.0, False
    return tuple(total for _, total in words)
