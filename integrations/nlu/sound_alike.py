"""Mends the agent's own rare words that the recogniser printed as a sound-alike.

Over the phone the recogniser spells a domain word it hears badly as a rarer word that
sounds the same: "whitening" as "widening" (an American flap t), "MetLife" as
"mid-life", "Aetna" as "Edna". The classifier then never meets the word its examples
teach. :class:`SoundAlikeWords` puts the agent's word back when a heard word is

- neither one of the agent's own words nor a common word (one the recogniser's
  tokenizer spells whole: "feeling", "three", "sounds" are never touched), and
- the only one of the agent's rare words with the same Metaphone key
  (``jellyfish.metaphone``: "widening" and "whitening" are both ``WTNNK``).

Both sides rare is what keeps it precise: measured on the development requests heard in
slt, rms and kal (``callagent nlu understanding --heard``; 6 Dec 2026), mending any word
to any agent word of the same key rewrote "sounds" as "sundays" and "last" as "lost"
(clean 307 -> 309 right but 2 -> 4 acted wrong of 393); with both sides rare, 307 / 2 ->
309 / 2 clean, 117 / 4 -> 117 / 4 in 10 dB babble, and nothing changed on the exact
words. :class:`SoundAlikeClassifier` mends each text before an
:class:`~integrations.nlu.base.IntentClassifier` reads it, so the router, the
end-of-turn check and the barge-in check all see the mended words.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

import jellyfish

from integrations.nlu.base import IntentClassifier, IntentPrediction
from integrations.speech.domain_lm import words

MIN_TARGET_LETTERS = 4
"""Shorter agent words are never put in (their keys match too much)."""
MIN_HEARD_LETTERS = 3
"""Shorter heard words are never replaced."""

_TOKEN = re.compile(r"[A-Za-z][A-Za-z'-]*")


def _key(word: str) -> str:
    return jellyfish.metaphone(word)


class SoundAlikeWords:
    """The agent's rare words and the sound-alikes the recogniser prints for them."""

    def __init__(self, agent_texts: Iterable[str], common_words: Iterable[str]):
        """Index the agent's rare words by sound.

        Args:
            agent_texts: Everything the agent file says (its examples, answers, lines).
            common_words: Words too common to be a misspelled domain word or to be put in
                (lower case; e.g. :func:`integrations.speech.moonshine_models.whole_words`).
        """
        self._common = frozenset(common_words)
        # the words as the recogniser's language model holds them ("check-up" is "checkup")
        vocabulary = {word for text in agent_texts for word in words(text)}
        self._vocabulary = frozenset(vocabulary)
        by_key: dict[str, set[str]] = defaultdict(set)
        for word in vocabulary:
            if len(word) >= MIN_TARGET_LETTERS and "'" not in word and word not in self._common:
                by_key[_key(word)].add(word)
        # a key two of the agent's words share says nothing about which one was meant
        self._by_key = {key: next(iter(ws)) for key, ws in by_key.items() if len(ws) == 1}

    @property
    def targets(self) -> frozenset[str]:
        """The agent's words a sound-alike may be mended to."""
        return frozenset(self._by_key.values())

    def mend(self, text: str) -> str:
        """``text`` with each rare sound-alike of an agent word replaced by that word."""
        if not self._by_key:
            return text

        def replace(match: re.Match[str]) -> str:
            token = match.group(0)
            word = "".join(words(token))  # "Mid-life" -> "midlife"
            if (
                len(word) < MIN_HEARD_LETTERS
                or "'" in word
                or word in self._vocabulary
                or word in self._common
            ):
                return token
            return self._by_key.get(_key(word), token)

        return _TOKEN.sub(replace, text)


class SoundAlikeClassifier:
    """An :class:`IntentClassifier` that reads each text with its sound-alikes mended."""

    def __init__(self, inner: IntentClassifier, words: SoundAlikeWords):
        """Mend with ``words`` before ``inner`` classifies."""
        self._inner = inner
        self._words = words

    @property
    def intents(self) -> tuple[str, ...]:
        """The wrapped classifier's intents."""
        return self._inner.intents

    def classify(self, text: str) -> IntentPrediction:
        """The wrapped classifier's answer for ``text`` with its sound-alikes mended."""
        return self._inner.classify(self._words.mend(text))
