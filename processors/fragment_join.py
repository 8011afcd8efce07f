"""A caller going on after the agent began to answer part of a request: both parts are one turn.

The other way a caller talks over the bot (besides a backchannel, which
:class:`~processors.barge_in.BackchannelFilter` lets the bot talk through): they paused
inside a request and the agent started to answer what it had heard.

- A fragment ("Um, yeah." ... "I'm calling about my appointment." ...): the caller went on
  within a few seconds, before the answer to it was over.
- A part that reads as a whole request, gone on with at once by words that do not stand
  on their own: "Yes, hi, my family is looking for a new dentist." (answered: we take new
  patients) | "Do you have room for us?" (alone: not understood, so "Sorry, could you say
  that again?" cut the answer the caller was asking for). Seen in `callagent bench
  understanding` on a caller pausing at the full stop of a two-sentence request.
- A turn never decided: the caller's voice interrupts every processor, and a turn still on
  its way here (its whole-turn transcription awaited) is dropped; its words, still in the
  shared context right before the new turn's, are joined to it with nothing to withdraw.

The caller's voice stops the bot as for any barge-in; :class:`FragmentJoiner` then hands the
NLU both parts as one turn ("I'm calling about my appointment. I need to cancel it.") and
drops the half-spoken answer from the context; a :class:`~processors.frames.TurnJoinedFrame`
ahead of the joined turn tells the NLU router and the dialogue to withdraw what they decided
on the first part. A new request that stands on its own ("Where exactly are you located?")
is decided on its own, as any barge-in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    LLMContextFrame,
    UserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from processors.barge_in import CONTINUATION_WINDOW_S, ReplyResumedFrame
from processors.continuation import (
    Continuation,
    JoinRule,
    JoinWhenGoingOnAtOnce,
    join_last_two_user_turns,
    last_two_user_texts,
    opens_with_correction,
)
from processors.frames import TurnJoinedFrame
from processors.user_turn import user_text


class FragmentJoiner(FrameProcessor):
    """After the backchannel filter: a caller going on with their last turn continues it.

    A turn continues the previous one when the agent had not finished answering that one
    (its answer was still to come or was cut) and either the previous one was a fragment
    (``is_fragment`` says so: openers, a preamble, words the agent does not understand) and
    the caller spoke again within ``window_s`` of it, or the caller went on at once
    (``join`` says so) with words that are themselves a fragment. The new turn's context
    frame then carries one user message, the first part's words followed by the new ones,
    and none of the answer the agent had begun.
    """

    def __init__(
        self,
        *,
        is_fragment: Callable[[str], bool],
        window_s: float = CONTINUATION_WINDOW_S,
        join: JoinRule | None = None,
        **kwargs: Any,
    ):
        """Join one call's fragments.

        Args:
            is_fragment: Whether a turn's words were only the start of a request (fast,
                thread-safe).
            window_s: How soon after a fragment the caller must go on.
            join: When a caller going on after a turn that was not a fragment goes on with
                it (default: :class:`~processors.continuation.JoinWhenGoingOnAtOnce`).
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._is_fragment = is_fragment
        self._window_s = window_s
        self._join = join if join is not None else JoinWhenGoingOnAtOnce(window_s=window_s)
        self._fragment_at: float | None = None
        """When the latest turn, a fragment, went to the NLU (None: it was not one)."""
        self._turn_at: float | None = None
        """When the latest turn went to the NLU."""
        self._bot_started_at: float | None = None
        """When the answer to it started playing."""
        self._answered = False
        """The agent finished its answer to that turn."""
        self._bot_speaking = False
        self._continuing = False
        """The caller spoke again after a fragment, in time."""
        self._went_on: Continuation | None = None
        """When the caller last spoke again after the latest turn, before its answer was over."""
        self._passed: str | None = None
        """The caller's words of the latest turn passed on (None: none yet)."""
        self._consumed = False
        """A turn since then was consumed upstream as a backchannel (the bot resumed)."""
        self.joined = 0
        self.undecided = 0
        """Turns never decided (dropped upstream by the caller going on) joined to the next."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Watch turns and the bot's speech; join a continuation to the turn before."""
        await super().process_frame(frame, direction)
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
            if self._bot_started_at is None:
                self._bot_started_at = time.monotonic()
        elif isinstance(frame, BotStoppedSpeakingFrame):
            if self._bot_speaking and not (self._continuing or self._went_on):
                self._answered = True
            self._bot_speaking = False
        elif isinstance(frame, UserStartedSpeakingFrame):
            self._caller_went_on()
        elif isinstance(frame, ReplyResumedFrame):
            self._continuing, self._went_on = False, None  # a backchannel: the answer goes on
            self._consumed = True
        elif (
            direction is FrameDirection.DOWNSTREAM
            and isinstance(frame, LLMContextFrame)
            and not getattr(frame, "speculation", False)
        ):
            await self._on_turn(frame)
        await self.push_frame(frame, direction)

    def _caller_went_on(self) -> None:
        now = time.monotonic()
        self._continuing = (
            self._fragment_at is not None
            and not self._answered
            and now - self._fragment_at <= self._window_s
        )
        self._went_on = None
        if self._turn_at is not None and not self._answered:
            started = self._bot_started_at
            heard = now - started if started is not None else 0.0
            self._went_on = Continuation(after_s=now - self._turn_at, heard_s=heard)

    async def _on_turn(self, frame: LLMContextFrame) -> None:
        continuing, self._continuing = self._continuing, False
        went_on, self._went_on = self._went_on, None
        text = user_text(frame)
        fragment = bool(text) and await asyncio.to_thread(self._is_fragment, text)
        undecided = self._undecided_turn_before(frame) and not opens_with_correction(text)
        if undecided and join_last_two_user_turns(frame):
            # nothing was decided on it, so nothing to withdraw: no TurnJoinedFrame
            self.undecided += 1
            logger.info("caller went on before their turn was decided: both parts are one turn")
            continuing = False
            text = user_text(frame)
            fragment = bool(text) and await asyncio.to_thread(self._is_fragment, text)
        elif not continuing and went_on is not None and fragment:
            continuing = self._join.joins(text, went_on)
        if continuing and join_last_two_user_turns(frame):
            self.joined += 1
            logger.info("caller went on with the turn before: both parts are one turn")
            await self.push_frame(TurnJoinedFrame())  # the first part's decision is withdrawn
            text = user_text(frame)
            fragment = bool(text) and await asyncio.to_thread(self._is_fragment, text)
        now = time.monotonic()
        self._fragment_at = now if fragment else None
        self._turn_at, self._bot_started_at = now, None
        self._answered = False
        self._passed, self._consumed = text, False

    def _undecided_turn_before(self, frame: LLMContextFrame) -> bool:
        """Whether the caller's turn before this one never came here (so was never decided).

        The caller's voice interrupts the processors upstream, and a turn's context still
        on its way (the whole-turn transcription awaited) is dropped with the rest: the
        caller went on before anything was decided on it. Its words are still in the
        context, right before the new turn's, and are not the last turn passed on. A turn
        consumed as a backchannel (the bot resumed) is not one.
        """
        texts = last_two_user_texts(frame)
        if texts is None or self._consumed:
            return False
        # a decided turn's message ends with the words passed here (the action withdrawal
        # after this joiner may have joined them to the turn before it)
        return self._passed is None or not texts[0].endswith(self._passed)
