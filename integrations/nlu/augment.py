"""More training phrasings from an agent's own examples: how callers wrap a request.

An agent file lists the bare request ("what are your hours"); callers wrap it ("I was
wondering what are your hours", "I'm a patient of yours, what are your hours, thanks")
or clip it ("hours"). Each example of three words or more gets a few wrapped variants,
chosen deterministically from its text, so every intent gets the same wrappers and no
wrapper becomes a cue for one intent; short content-word variants teach terse requests.
Fillers and greetings are not added: :func:`integrations.nlu.normalise.normalise` drops
them from both the training examples and the callers' words.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

AUGMENT_VERSION = 1
"""Part of the classifier's cache key: bump when the variants change."""

PREFIXES = (
    "i was wondering",
    "i was just wondering",
    "i wanted to ask",
    "i'm calling to ask",
    "quick question",
    "i have a question",
    "can you tell me",
    "i'm a patient of yours",
    "i'm calling for my wife",
    "i'm calling for my son",
    "sorry to bother you",
    "i hope you can help",
)
SUFFIXES = ("please", "thanks", "thank you", "if possible", "if that's okay")
STOPWORDS = frozenset(
    "a an the i i'm i'd i'll me my we our you your you're to do does did is are am be can could "
    "would will should of for on in at it it's that this what when where which how there "
    "there's any some please want like need have has just get".split()
)
MIN_WORDS = 3
"""Shorter examples ("yes", "no thanks", "operator") are answers: not wrapped."""


def _pick(text: str, salt: str, options: Sequence[str], k: int) -> list[str]:
    """``k`` options chosen by a hash of the text (deterministic across processes)."""
    digest = hashlib.sha256(f"{salt}:{text}".encode()).digest()
    start = int.from_bytes(digest[:4], "big")
    return [options[(start + i * 5) % len(options)] for i in range(k)]


def has_content(text: str) -> bool:
    """Whether a (normalised) text has a word that is not a function word."""
    return any(w not in STOPWORDS for w in text.split())


def terse(text: str) -> str | None:
    """The example's content words when they are one to three ("what are your hours" -> "hours")."""
    words = [w for w in text.split() if w not in STOPWORDS]
    if 1 <= len(words) <= 3 and len(words) < len(text.split()):
        return " ".join(words)
    return None


def variants(text: str, *, per_example: int = 3) -> list[str]:
    """Wrapped and terse variants of one (normalised) example, without the example itself."""
    if len(text.split()) < MIN_WORDS:
        return []
    out = [f"{p} {text}" for p in _pick(text, "prefix", PREFIXES, per_example - 1)]
    out += [f"{text} {s}" for s in _pick(text, "suffix", SUFFIXES, 1)]
    short = terse(text)
    if short:
        out.append(short)
    return list(dict.fromkeys(out))


def augment(examples: Sequence[tuple[str, str]], *, per_example: int = 3) -> list[tuple[str, str]]:
    """The examples followed by their variants (same intent)."""
    seen = {t for t, _ in examples}
    extra = dict.fromkeys(
        (v, intent)
        for text, intent in examples
        for v in variants(text, per_example=per_example)
        if v not in seen
    )
    labels: dict[str, set[str]] = {}
    for v, intent in extra:
        labels.setdefault(v, set()).add(intent)
    return [*examples, *((v, i) for v, i in extra if len(labels[v]) == 1)]
