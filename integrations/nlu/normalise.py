"""Puts a caller's words in the form the classifier was trained on.

Callers start with fillers and greetings ("Um, yeah, hi, I was wondering ...") that the
agent file's examples never have; a sentence encoder gives them as much weight as the
request itself. The classifier applies :func:`normalise` to its training examples and to
every utterance, so "Um, yeah, hi. What time do you open?" and "what time do you open"
are one input. The text is lower-cased, punctuation other than apostrophes becomes
space, and leading fillers, greetings and discourse words are dropped, but never the
whole utterance ("yeah" alone stays "yeah": it is an answer).
"""

from __future__ import annotations

import re

NORMALISER_VERSION = 2
"""Part of the classifier's cache key: bump when the rules change."""

_PUNCTUATION = re.compile(r"[^\w\s']+")
_SPACES = re.compile(r"\s+")

LEADING = (
    "um",
    "umm",
    "uh",
    "uhh",
    "er",
    "erm",
    "ah",
    "hmm",
    "mm",
    "mhm",
    "oh",
    "hi",
    "hello",
    "hey",
    "hiya",
    "hi there",
    "hey there",
    "hello there",
    "good morning",
    "good afternoon",
    "good evening",
    "so",
    "well",
    "okay",
    "ok",
    "alright",
    "all right",
    "yeah so",
    "yes hello",
    "yeah hi",
    "yes hi",
    "and",
    "like",
    "just",
)
"""Words and phrases dropped from the start of an utterance (longest match first)."""

ANSWER_WORDS = ("yeah", "yes", "yep", "bye")
"""Dropped from the start only before a longer request (alone or nearly so they answer).

"bye" is there because the recogniser hears a caller's opening "Hi," as "Bye." ("And bye.
Something came up at work and I need a different day ...": 14 of the 393 development
requests heard clean in slt, rms and kal start so); a caller never says goodbye before
the request, and "Bye, thanks." or "Okay bye." alone is still read as a goodbye.
"""
MIN_WORDS_AFTER_ANSWER = 3
KEPT = (("uh", "huh"), ("mm", "hmm"), ("mhm",))
"""Backchannels that mean yes: never dropped."""

_LEADING = sorted((tuple(p.split()) for p in LEADING), key=len, reverse=True)


def normalise(text: str) -> str:
    """Lower-case ``text``, drop punctuation and the fillers and greetings it starts with."""
    words = _SPACES.sub(" ", _PUNCTUATION.sub(" ", text.lower())).strip().split()
    start = 0
    while start < len(words):
        rest = words[start:]
        if any(tuple(rest[: len(k)]) == k for k in KEPT):
            break
        match = next(
            (p for p in _LEADING if tuple(rest[: len(p)]) == p and len(rest) > len(p)), None
        )
        if match is not None:
            start += len(match)
        elif rest[0] in ANSWER_WORDS and len(rest) > MIN_WORDS_AFTER_ANSWER:
            start += 1
        else:
            break
    return " ".join(words[start:])
