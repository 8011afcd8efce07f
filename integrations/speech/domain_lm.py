"""A small word n-gram language model of the agent's domain, for biasing the recogniser.

Built in well under a second from the agent file's own words (intent examples,
knowledge-base questions and answers, the agent's lines, slot prompts) and mixed with a
general-English model of conversational requests (e.g. the CLINC150 and BANKING77 texts
the NLU benchmarks use), so the domain's words ("cleaning", "Brightside", "MetLife")
become likelier without making ordinary speech unlikely. The recogniser adds
``weight * log P(word | previous words)`` to a hypothesis each time it completes a
word (shallow fusion, see :mod:`integrations.speech.moonshine`).

Each component is an interpolated absolute-discounting n-gram model (trigram by
default); an unseen word gets the probability of an unknown word, so a name the model
never saw costs a bounded penalty instead of being ruled out.
No package with an n-gram toolkit (e.g. ``kenlm``) is installed, and these models are
tiny (a few thousand sentences), so the counting is done here.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

BOS = "<s>"
EOS = "</s>"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_NUMBER_SPELLING = re.compile(r"(\d)-(\d)")


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` as the language model sees them (punctuation dropped).

    ``"I'd like a check-up, Friday?"`` becomes ``["i'd", "like", "a", "checkup", "friday"]``
    (hyphens inside words are dropped, so "check-up" and "checkup" are one word).
    """
    text = text.lower().replace("\u2019", "'")
    text = _NUMBER_SPELLING.sub(r"\1 \2", text)
    text = re.sub(r"(?<=[a-z])-(?=[a-z])", "", text)
    return _WORD.findall(text)


@runtime_checkable
class WordLanguageModel(Protocol):
    """Scores whole words given the words before them (natural-log probabilities)."""

    def logprob(self, word: str, history: Sequence[str]) -> float:
        """``log P(word | history)``; ``word`` may be :data:`EOS` (the sentence ends here).

        Args:
            word: A word as :func:`words` returns them, or :data:`EOS`.
            history: The sentence's words so far (the model uses the last few).
        """
        ...


class NgramModel:
    """An interpolated absolute-discounting word n-gram model.

    ``P(w | h) = max(c(h w) - D, 0) / c(h) + D * N1+(h .) / c(h) * P(w | h')`` down to a
    unigram that keeps ``unknown_mass`` for words never seen.
    """

    def __init__(
        self,
        sentences: Iterable[str],
        *,
        order: int = 3,
        discount: float = 0.75,
        unknown_mass: float = 0.02,
        vocabulary_size: int = 50_000,
    ):
        """Count the n-grams of ``sentences``.

        Args:
            sentences: Training text, one sentence or utterance per item.
            order: Longest n-gram (3: trigram).
            discount: Absolute discount D per seen n-gram.
            unknown_mass: Unigram probability mass kept for unseen words, spread over
                ``vocabulary_size`` possible words.
            vocabulary_size: How many distinct words an unseen one is assumed one of.
        """
        if order < 1:
            raise ValueError("order must be at least 1")
        self.order = order
        self._discount = discount
        self._counts: list[dict[tuple[str, ...], Counter[str]]] = [
            defaultdict(Counter) for _ in range(order)
        ]
        for sentence in sentences:
            tokens = [BOS] * (order - 1) + words(sentence) + [EOS]
            if len(tokens) == order:  # an empty sentence
                continue
            for i in range(order - 1, len(tokens)):
                for n in range(order):  # n = context length
                    self._counts[n][tuple(tokens[i - n : i])][tokens[i]] += 1
        self._totals = [{h: sum(c.values()) for h, c in level.items()} for level in self._counts]
        unigrams = self._counts[0][()]
        total = sum(unigrams.values()) or 1
        self._unigram = {w: (1 - unknown_mass) * c / total for w, c in unigrams.items()}
        self._unknown = unknown_mass / vocabulary_size
        self.vocabulary = frozenset(unigrams)

    def prob(self, word: str, history: Sequence[str]) -> float:
        """``P(word | history)`` (never 0)."""
        p = self._unigram.get(word, self._unknown)
        context = (
            ([BOS] * (self.order - 1) + list(history))[-(self.order - 1) :]
            if self.order > 1
            else []
        )
        for n in range(1, self.order):
            h = tuple(context[len(context) - n :])
            counts = self._counts[n].get(h)
            if not counts:
                break
            total = self._totals[n][h]
            seen = max(counts.get(word, 0) - self._discount, 0.0) / total
            p = seen + self._discount * len(counts) / total * p
        return p

    def logprob(self, word: str, history: Sequence[str]) -> float:
        """``log P(word | history)``."""
        return math.log(self.prob(word, history))


@dataclass(frozen=True)
class MixtureModel:
    """Linear interpolation of word models: ``sum(weight_i * P_i(w | h))``."""

    models: tuple[NgramModel, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.models) != len(self.weights) or not self.models:
            raise ValueError("one weight per model, at least one model")
        if any(w < 0 for w in self.weights) or not math.isclose(sum(self.weights), 1.0):
            raise ValueError("weights must be non-negative and sum to 1")

    def logprob(self, word: str, history: Sequence[str]) -> float:
        """``log P(word | history)`` under the mixture."""
        p = sum(w * m.prob(word, history) for m, w in zip(self.models, self.weights, strict=True))
        return math.log(p)


def build_domain_model(
    domain_texts: Iterable[str],
    general_texts: Iterable[str] = (),
    *,
    domain_weight: float = 0.5,
    order: int = 3,
) -> WordLanguageModel:
    """The agent's domain model, interpolated with general English when given.

    Args:
        domain_texts: The agent file's sentences (examples, questions, answers, lines).
        general_texts: General conversational English (empty: the domain model alone).
        domain_weight: The domain model's share of the mixture (0-1).
        order: n-gram order of both models.

    Returns:
        A :class:`WordLanguageModel`.
    """
    domain = NgramModel(domain_texts, order=order)
    general_list = list(general_texts)
    if not general_list or domain_weight >= 1.0:
        return domain
    general = NgramModel(general_list, order=order)
    return MixtureModel((domain, general), (domain_weight, 1.0 - domain_weight))
