"""End the caller's turn when what they said is already a complete, recognised request.

Smart Turn judges completeness from the audio alone; on flat or hesitant
speech it may call a finished question incomplete and wait for its silence
fallback. This stop strategy sits beside it in the user aggregator: once the
VAD has seen the pause and the transcript so far is something the agent
confidently understands, the turn ends once the pause has lasted a short grace
period (counted from the start of the pause, so a transcript that arrives late does
not add its own wait on top). Whichever strategy decides first ends the turn; speech
in the grace period cancels it. The check runs in a task of its own, so the user
aggregator goes on taking the caller's audio meanwhile.

It never fires on words that are not yet a request by their form (openers only, such as
"Um, yeah." or "Hi, um.", or a preamble such as "I booked a checkup for next week."; see
:class:`~processors.turn_hold.TurnHoldPolicy`), even when the classifier would act on them:
those turns are left to the Smart Turn strategy, which waits for a longer pause.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_stop.base_user_turn_stop_strategy import BaseUserTurnStopStrategy

from processors.turn_hold import TurnHoldPolicy

DEFAULT_GRACE_SECS = 0.2
"""On top of the VAD's own stop time (about 0.2 s): 0.4 s of quiet in all."""

CompletenessCheck = Callable[[str], bool]
"""Says whether a transcript is a complete request on its own (must be fast and thread-safe)."""


class SemanticCompletionStopStrategy(BaseUserTurnStopStrategy):
    """Stops the turn after a pause once the transcript is a complete request."""

    def __init__(
        self,
        is_complete: CompletenessCheck,
        *,
        grace_secs: float = DEFAULT_GRACE_SECS,
        hold: TurnHoldPolicy | None = None,
        **kwargs,
    ):
        """Create the strategy.

        Args:
            is_complete: Decides whether the turn's text is a complete request.
            grace_secs: How long after the VAD reports the pause the turn may end.
            hold: Words it must not end a turn on (those whose form asks for a longer
                pause); None: it ends on any complete text.
            **kwargs: Passed to ``BaseUserTurnStopStrategy``.
        """
        super().__init__(**kwargs)
        self._hold = hold
        self._bot_speaking = False
        self._over_bot = False
        self._is_complete = is_complete
        self._grace_secs = grace_secs
        self._text: list[str] = []
        self._paused = False
        self._paused_at = 0.0
        self._segment_transcribed = False
        """The latest speech segment's transcript has arrived (older text may be stale)."""
        self._timer: asyncio.Task[None] | None = None

    async def process_frame(self, frame: Frame) -> ProcessFrameResult | None:
        """Follow the pause and the transcript; arm the timer when both say done."""
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._paused = False
            self._segment_transcribed = False
            await self._disarm()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._paused = True
            self._paused_at = time.monotonic()
            await self._maybe_arm()
        elif isinstance(frame, TranscriptionFrame) and frame.text.strip():
            self._text.append(frame.text.strip())
            self._segment_transcribed = True
            await self._disarm()  # the text grew: decide on all of it
            await self._maybe_arm()
        return ProcessFrameResult.CONTINUE

    async def handle_user_turn_started(self) -> None:
        """A new turn: forget the previous one's text."""
        await self._clear()
        self._over_bot = self._bot_speaking

    async def handle_user_turn_stopped(self) -> None:
        """The turn ended (by any strategy): stop waiting."""
        await self._clear()

    async def cleanup(self) -> None:
        """Stop any pending timer."""
        await self._disarm()
        await super().cleanup()

    async def _maybe_arm(self) -> None:
        if not self._paused or not self._segment_transcribed or self._timer is not None:
            return
        text = " ".join(self._text)
        self._timer = self.task_manager.create_task(
            self._end_if_complete(text), "semantic_turn_end"
        )

    async def _end_if_complete(self, text: str) -> None:
        hold = self._hold
        if hold is not None and await asyncio.to_thread(
            hold.text_pause, text, over_bot=self._over_bot
        ):
            self._timer = None
            return  # not a request yet by its form: the longer pause decides
        if not await asyncio.to_thread(self._is_complete, text):
            self._timer = None
            return
        await asyncio.sleep(max(0.0, self._paused_at + self._grace_secs - time.monotonic()))
        self._timer = None
        if self._paused:  # not once the caller talks again (see SegmentTranscriptTurnStopStrategy)
            await self.trigger_user_turn_stopped()

    async def _disarm(self) -> None:
        if self._timer is not None:
            timer, self._timer = self._timer, None
            await self.task_manager.cancel_task(timer)

    async def _clear(self) -> None:
        await self._disarm()
        self._text.clear()
        self._paused = False
        self._segment_transcribed = False
