"""Barge-in that tells a real interruption from a mere "mhm": the bot resumes after a backchannel.

A caller's voice stops the bot at once (that is what makes barge-in feel responsive,
and at that moment nobody can tell "okay" from "okay, but where are you?"). What the
caller said is known only when their turn ends. Two processors then decide:

- :class:`ReplyProgressTracker` (after the output transport) follows which clause of the
  bot's reply is playing (from the TTS's :class:`SpokenClauseFrame` markers, passed on
  by the transport as their audio starts) and, when an interruption cuts the reply,
  sends the rest of it upstream in a :class:`ReplyInterruptedFrame`;
- :class:`BackchannelFilter` (before the NLU router) holds that remainder; if the
  caller's turn turns out to be a backchannel ("mhm", "okay", "uh huh", "right"...) or
  empty (a cough, a noise), the turn is dropped and the bot picks up again from the
  start of the clause it was cut in. Anything else is a real turn and goes on as usual.

A yes/no word ("yes", "no", "sure") counts as a backchannel only while the part of the
reply already heard asked no question. A short turn (up to three words) that the agent
does not understand counts too (an "mhm" the speech recogniser spells "M. H. M."),
except words that do ask for the floor ("stop", "wait", "sorry"...). Log lines carry
the call id only.

:class:`~processors.fragment_join.FragmentJoiner` (after the filter) handles the other
way a caller talks over the bot: they paused inside a request and went on.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    DataFrame,
    Frame,
    InterruptionFrame,
    LLMContextFrame,
    SystemFrame,
    TTSSpeakFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from integrations.speech.tts import SpokenClauseFrame
from processors.user_turn import user_text

BACKCHANNELS = frozenset(
    {
        "mhm",
        "mm",
        "mmm",
        "hm",
        "hmm",
        "mm hmm",
        "mm hm",
        "mhmm",
        "uh huh",
        "uh hu",
        "uhhuh",
        "okay",
        "ok",
        "oh okay",
        "ah okay",
        "all right",
        "alright",
        "right",
        "i see",
        "oh",
        "ah",
        "uh",
        "um",
        "got it",
        "gotcha",
        "cool",
        "great",
        "nice",
        "perfect",
        "fine",
        "good",
        "oh i see",
        "okay okay",
        "right right",
        "huh",
        "mhm mhm",
        "of course",
        "sure thing",
        "thanks",
        "thank you",
        "i heard",
        "uh okay",
        "ok ok",
    }
)
"""Acknowledgements that do not ask for the floor."""
AFFIRMATIONS = frozenset({"yes", "yeah", "yep", "yup", "sure", "no", "nope", "yes yes"})
"""Backchannels too, unless the bot has just asked a question."""
INTERRUPTIONS = frozenset(
    {"stop", "wait", "hold on", "hang on", "sorry", "excuse me", "hello", "one moment", "pardon"}
)
"""Short turns that do ask for the floor."""
MAX_ASIDE_WORDS = 3
RESUME_WINDOW_S = 15.0
"""A remainder older than this is not resumed."""
EMPTY_TURN_WAIT_S = 1.5
"""After the caller's turn ends with no turn frame this long, it was empty: resume."""
CONTINUATION_WINDOW_S = 4.0
"""A caller who speaks again this soon after a fragment, before its answer is over, goes on."""


@dataclass
class ReplyResumedFrame(DataFrame):
    """The bot picks its interrupted reply up again after a backchannel (for records/events)."""


@dataclass
class ReplyInterruptedFrame(SystemFrame):
    """The caller cut the bot's reply (pushed upstream by the progress tracker).

    Parameters:
        remaining: The reply from the start of the clause that was playing.
        heard: The clauses of that reply the caller heard in full.
    """

    remaining: str = ""
    heard: str = ""


def normalize_words(text: str) -> str:
    """Lower-case words without punctuation ("Mm-hmm." -> "mm hmm")."""
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).replace("'", "").split())


def is_backchannel(text: str, *, question_pending: bool = False) -> bool:
    """Whether a caller's turn is only an acknowledgement (or nothing at all).

    Args:
        text: The turn's transcript.
        question_pending: The bot had asked a question: a yes/no is then an answer.
    """
    words = normalize_words(text)
    if not words:
        return True
    if words in BACKCHANNELS:
        return True
    if words in AFFIRMATIONS:
        return not question_pending
    # "okay yeah", "mhm right": short runs of acknowledgement words
    tokens = words.split()
    vocabulary = {t for phrase in BACKCHANNELS for t in phrase.split()}
    if not question_pending:
        vocabulary |= AFFIRMATIONS
    return len(tokens) <= 3 and all(t in vocabulary for t in tokens)


class ReplyProgressTracker(FrameProcessor):
    """After the output transport: reports which part of a reply an interruption cut."""

    def __init__(self, *, call_id: str = "", **kwargs: Any):
        """Track one call's replies (``call_id`` labels log lines)."""
        super().__init__(**kwargs)
        self._call_id = call_id
        self._speaking = False
        self._clause: SpokenClauseFrame | None = None
        self._heard: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Follow clauses and speaking state; report an interruption mid-reply."""
        await super().process_frame(frame, direction)
        if isinstance(frame, SpokenClauseFrame):
            if frame.index == 0:
                self._heard = []
            elif self._clause is not None:
                self._heard.append(self._clause.text)
            self._clause = frame
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._speaking = False
            self._clause = None
            self._heard = []
        elif isinstance(frame, InterruptionFrame) and self._speaking and self._clause:
            clause, self._clause = self._clause, None
            await self.push_frame(
                ReplyInterruptedFrame(remaining=clause.remaining, heard=" ".join(self._heard)),
                FrameDirection.UPSTREAM,
            )
            logger.debug(f"reply interrupted at clause {clause.index}")
        await self.push_frame(frame, direction)


class BackchannelFilter(FrameProcessor):
    """Before the NLU router: drops a backchannel turn that cut a reply, and resumes the reply."""

    def __init__(
        self,
        *,
        call_id: str = "",
        understood: Callable[[str], bool] | None = None,
        resume_window_s: float = RESUME_WINDOW_S,
        **kwargs: Any,
    ):
        """Filter one call's turns.

        Args:
            call_id: Labels log lines.
            understood: Whether the agent understands a text as a request (fast,
                thread-safe); short turns it does not understand are asides. None: only
                the backchannel words count.
            resume_window_s: A cut reply older than this is not resumed.
            **kwargs: Passed to ``FrameProcessor``.
        """
        super().__init__(**kwargs)
        self._call_id = call_id
        self._understood = understood
        self._window_s = resume_window_s
        self._pending: ReplyInterruptedFrame | None = None
        self._pending_at = 0.0
        self._empty_timer: asyncio.Task[None] | None = None
        self.resumed = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Hold interrupted replies; resume them after a backchannel turn."""
        await super().process_frame(frame, direction)
        if isinstance(frame, ReplyInterruptedFrame):
            self._pending, self._pending_at = frame, time.monotonic()
            return  # consumed: nothing upstream needs it
        if isinstance(frame, UserStartedSpeakingFrame):
            await self._stop_timer()
        elif isinstance(frame, UserStoppedSpeakingFrame) and self._pending is not None:
            await self._stop_timer()
            self._empty_timer = self.create_task(self._resume_if_empty(), "backchannel_empty_turn")
        elif (
            direction is FrameDirection.DOWNSTREAM
            and isinstance(frame, LLMContextFrame)
            and not getattr(frame, "speculation", False)
            and self._pending is not None
        ):
            await self._stop_timer()
            pending, self._pending = self._pending, None
            fresh = time.monotonic() - self._pending_at <= self._window_s
            text = user_text(frame)
            if fresh and await self._is_aside(text, question_pending="?" in pending.heard):
                await self._resume(pending)
                return
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        """Stop the empty-turn timer."""
        await super().cleanup()
        await self._stop_timer()

    async def _is_aside(self, text: str, *, question_pending: bool) -> bool:
        """Whether a turn that cut the bot leaves it the floor (backchannel, noise)."""
        if is_backchannel(text, question_pending=question_pending):
            return True
        words = normalize_words(text)
        if self._understood is None or words in INTERRUPTIONS:
            return False
        if len(words.split()) > MAX_ASIDE_WORDS or (question_pending and words in AFFIRMATIONS):
            return False
        return not await asyncio.to_thread(self._understood, text)

    async def _resume(self, pending: ReplyInterruptedFrame) -> None:
        self.resumed += 1
        logger.info("backchannel while speaking, reply resumed")
        await self.push_frame(ReplyResumedFrame())
        await self.push_frame(TTSSpeakFrame(pending.remaining, append_to_context=True))

    async def _resume_if_empty(self) -> None:
        """No turn frame followed the caller's turn: it was empty (noise), resume."""
        await asyncio.sleep(EMPTY_TURN_WAIT_S)
        self._empty_timer = None
        pending, self._pending = self._pending, None
        if pending is not None and time.monotonic() - self._pending_at <= self._window_s:
            await self._resume(pending)

    async def _stop_timer(self) -> None:
        timer, self._empty_timer = self._empty_timer, None
        if timer is not None and timer is not asyncio.current_task():
            await self.cancel_task(timer)
