"""When a caller's new turn goes on with the one before: one request said in two turns.

A caller's turn can end inside their request (a pause at a full stop, a filler) and the
agent starts answering; the caller goes on. Two processors then join the two turns into
one, so the NLU decides the whole request: :class:`~processors.fragment_join.FragmentJoiner`
(any answer) and :class:`~processors.action_hold.ActionWithdrawal` (a held irreversible
action). They share what is here: how soon the caller went on (:class:`Continuation`),
the rule that says whether that is going on (:class:`JoinRule`) and the joining of the
context's last two caller messages (:func:`join_last_two_user_turns`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipecat.frames.frames import LLMContextFrame

from processors.barge_in import CONTINUATION_WINDOW_S, INTERRUPTIONS, normalize_words
from processors.turn_words import FILLERS

QUICK_CONTINUATION_S = 1.0
"""A caller speaking again this soon after their turn ended was still saying it.

Not measured: the lead's reading for issue 15 (a joined turn is the safer reading when the
continuation starts within about a second of the turn's end). Counted from the turn's end
to the caller's turn start, which the VAD reports ``vad_start_secs`` after the voice."""
HEARD_FOR_LONG_S = 0.5
"""A caller who started before hearing this much of the answer did not answer it.

Not measured: about two words of the line, shorter than a listener needs to take in a
line and start answering it."""
CORRECTIONS = INTERRUPTIONS | frozenset({"no", "nope", "actually", "never mind", "cancel"})
"""Words that open a new request rather than go on with the last one ("no wait, actually")."""
LEAD_INS = FILLERS | frozenset({"so", "well"})
"""Said before a correction without changing it ("Oh, wait.", "So, actually ...")."""


@dataclass(frozen=True)
class Continuation:
    """When the caller spoke again after a turn (an action, or an answer, was decided on it).

    Parameters:
        after_s: From that turn's end to the caller's new turn starting.
        heard_s: How long the bot's answer had been playing by then (0: not started).
    """

    after_s: float
    heard_s: float


class JoinRule:
    """Whether a caller's new turn goes on with the turn before (one request in two turns)."""

    def joins(self, text: str, went_on: Continuation) -> bool:
        """Whether ``text`` (the new turn) and the turn before are one request."""
        raise NotImplementedError


class JoinWhenGoingOnAtOnce(JoinRule):
    """Joined when the caller went on at once, unless the new words open a new request.

    At once: within ``quick_s`` of the turn's end, or before ``heard_s`` of the answer had
    played (the answer was slow to come), and within ``window_s`` anyway. Words opening
    with a correction ("no", "wait", "actually", "sorry") are a new request, decided on
    their own as any barge-in.
    """

    def __init__(
        self,
        *,
        quick_s: float = QUICK_CONTINUATION_S,
        heard_s: float = HEARD_FOR_LONG_S,
        window_s: float = CONTINUATION_WINDOW_S,
    ):
        """Set how soon "at once" is (seconds)."""
        self._quick_s = quick_s
        self._heard_s = heard_s
        self._window_s = window_s

    def joins(self, text: str, went_on: Continuation) -> bool:
        """Went on at once, with no correction first."""
        if opens_with_correction(text) or went_on.after_s > self._window_s:
            return False
        return went_on.after_s <= self._quick_s or went_on.heard_s < self._heard_s


class NeverJoin(JoinRule):
    """The action is withdrawn, and each turn is decided on its own."""

    def joins(self, text: str, went_on: Continuation) -> bool:
        """Never."""
        return False


def opens_with_correction(text: str) -> bool:
    """Whether a turn opens with words that take back or set aside what came before."""
    words = normalize_words(text).split()
    while words and words[0] in LEAD_INS:
        words = words[1:]
    return bool(words) and (words[0] in CORRECTIONS or " ".join(words[:2]) in CORRECTIONS)


def join_last_two_user_turns(frame: LLMContextFrame) -> bool:
    """Merge the context's last user message into the one before it, dropping what is between.

    Returns False (and changes nothing) unless the context ends with a user message and
    holds an earlier one.
    """
    messages = list(frame.context.get_messages())
    users = [i for i, m in enumerate(messages) if _is_user(m)]
    if len(users) < 2 or users[-1] != len(messages) - 1:
        return False
    first, last = users[-2], users[-1]
    before, after = _message_text(messages[first]), _message_text(messages[last])
    if before is None or after is None:
        return False
    joined: Any = {"role": "user", "content": f"{before} {after}".strip()}
    frame.context.set_messages([*messages[:first], joined])
    return True


def last_two_user_texts(frame: LLMContextFrame) -> tuple[str, str] | None:
    """The context's last two messages' words, when both are the caller's (nothing between).

    None when the context does not end with two plain-text user messages.
    """
    messages = list(frame.context.get_messages())
    if len(messages) < 2 or not all(_is_user(m) for m in messages[-2:]):
        return None
    before, last = _message_text(messages[-2]), _message_text(messages[-1])
    if before is None or last is None:
        return None
    return before, last


def _is_user(message: Any) -> bool:
    return isinstance(message, dict) and message.get("role") == "user"


def _message_text(message: Any) -> str | None:
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, str) else None
