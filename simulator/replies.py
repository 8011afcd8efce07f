"""Was the bot's reply the answer? A check of what a caller heard, for the benches.

A latency figure alone cannot tell an answer from "Sorry, could you say that again?": both
are bot audio after the caller stopped. ``bench latency`` therefore transcribes the start
of each reply as it was heard at the phone (after the call, so the transcription takes no
CPU from the calls being measured) and checks it against the response the agent's file
gives for the intent the question was an example of.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from integrations.nlu.entities import normalise as number_words_as_digits

REPLY_WINDOW_S = 4.5
"""How much of a reply is transcribed: long enough for its first dozen words."""
MATCH_WORDS = 10
"""How many of a response's first words are looked for in the reply."""
MATCH_FRACTION = 0.6
"""The share of them that must be heard (the transcription itself errs now and then)."""

_PLACEHOLDER = re.compile(r"\{[^}]*\}")
_DOLLARS = re.compile(r"\$\s*(\d[\d,.]*)")


def words(text: str) -> list[str]:
    """Lower-case words, punctuation dropped (apostrophes kept)."""
    return "".join(c if c.isalnum() or c == "'" else " " for c in text.lower()).split()


def expected_replies(agent: Any) -> dict[str, list[str]]:
    """Each example question of an intent that has a response, mapped to its response(s).

    Both the plain response and the known-caller one (the benches call as a known caller)
    count; ``{placeholders}`` are left out of the comparison.
    """
    out: dict[str, list[str]] = {}
    for intent in agent.intents:
        texts = [text for text in (intent.response, intent.response_known_caller) if text]
        if not texts:
            continue
        for example in intent.examples:
            out.setdefault(example, []).extend(texts)
    return out


def _spoken(text: str) -> list[str]:
    """Words with numbers as digits and "$95" as "95 dollars" (the recogniser prints either)."""
    return words(_DOLLARS.sub(r"\1 dollars", number_words_as_digits(text)))


def reply_answers(reply: str, expected: Iterable[str]) -> bool:
    """Whether a reply's transcript starts like one of the expected responses.

    Numbers match however they are written, and a word the transcript splits in two
    ("check up" for "checkup") still counts: the reference agent's prices reply heard as
    "I check up in cleaning as $95 without insurance" failed the check in one `bench
    latency` run out of two, with the same audio.
    """
    said = _spoken(reply)
    heard = set(said) | {a + b for a, b in zip(said, said[1:], strict=False)}
    for text in expected:
        wanted = _spoken(_PLACEHOLDER.sub(" ", text))[:MATCH_WORDS]
        if wanted and sum(w in heard for w in wanted) >= MATCH_FRACTION * len(wanted):
            return True
    return False


def answered_share(flags: Sequence[bool | None]) -> tuple[int, int]:
    """(Replies that answered, replies checked): turns with no reply are not checked."""
    checked = [f for f in flags if f is not None]
    return sum(checked), len(checked)
