"""Puts a caller's words in the form the classifier was trained on.

Callers start with fillers and greetings ("Um, yeah, hi, I was wondering ...") that the
agent file's examples never have; a sentence encoder gives them as much weight as the
request itself. The classifier applies :func:`normalise` to its training examples and to
every utterance, so "Um, yeah, hi. What time do you open?" and "what time do you open"
are one input. The text is lower-cased, punctuation other than apostrophes becomes
space, and leading fillers, greetings and discourse words are dropped, but never the
whole utterance ("yeah" alone stays "yeah": it is an answer). So is the caller's
introduction before a request ("Hello, this is Kevin Nguyen. I need to drop my
appointment ..."): a name tells the classifier nothing about the request and pulled it
elsewhere (see :data:`INTRODUCTION`).
"""

from __future__ import annotations

import re

NORMALISER_VERSION = 3
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

INTRODUCTION = re.compile(
    r"(?i:this is|it's|it is|my name is|my name's)\s+"
    r"(?P<name>(?:[A-Z][\w'-]*\.?|\[name\])(?:\s+(?:[A-Z][\w'-]*\.?|\[name\])){0,2})"
    r"\s*[,.;!?]",
)
"""A caller naming themselves before the request, the name capitalised as the recogniser
prints names and closed by punctuation ("Hi, it's John Smith. My appointment's Monday ...").
Dev requests heard in slt, rms and kal: "Hello, this is Kevin Nguyen. I need to drop my
appointment for tomorrow. I am sick." read as the cancellation at 0.75 with it, 0.86
without; "Hi, it's John Smith. My appointment's Monday at nine. Is there anything later that
day instead?" as the next appointment at 0.50 with it, the rescheduling at 0.64 without."""
NOT_NAMES = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday today tomorrow january february "
    "march april may june july august september october november december doctor dr i".split()
)
"""Capitalised words that are not the caller's name ("It's Monday.", "It's Doctor Patel.")."""
MIN_WORDS_AFTER_INTRODUCTION = 3

_WORD = re.compile(r"[\w']+")
"""One word as :func:`normalise` splits them (runs of word characters and apostrophes)."""

_LEADING = sorted((tuple(p.split()) for p in LEADING), key=len, reverse=True)


def normalise(text: str) -> str:
    """Lower-case ``text``; drop punctuation and the fillers, greetings and introduction first."""
    spans = list(_WORD.finditer(text))
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
        elif introduced := _introduction_words(text, spans, start):
            start += introduced
        else:
            break
    return " ".join(words[start:])


def _introduction_words(text: str, spans: list[re.Match[str]], start: int) -> int:
    """How many words from word ``start`` on are the caller's introduction (0: none)."""
    if len(spans) <= start:
        return 0
    at = spans[start].start()
    found = INTRODUCTION.match(text, at)
    if found is None:
        return 0
    name = _WORD.findall(found["name"])
    if any(w.lower() in NOT_NAMES for w in name):
        return 0
    count = sum(1 for span in spans[start:] if span.end() <= found.end())
    return count if len(spans) - start - count >= MIN_WORDS_AFTER_INTRODUCTION else 0
