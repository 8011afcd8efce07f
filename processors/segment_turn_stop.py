"""End of turn from Smart Turn that waits for the transcript of the caller's *last* words.

Pipecat's :class:`TurnAnalyzerUserTurnStopStrategy` ends a turn once the turn model
says it is complete and it holds "a transcript". With a segment-at-a-time STT a turn
can span several VAD segments ("Sorry, | where exactly are you located?"), and the
transcript it holds may be the first segment's: when its safety-net timer runs out
(the timer counts from the end of speech, so a slow end-of-turn inference on a busy
machine can use it up), the turn ends with only "Sorry" and the rest arrives as a new
turn. This strategy forgets the transcript when the caller speaks again, so the turn
waits for the newest segment's (final) transcript; only if that never comes (a
segment of noise) does the earlier text end the turn, after at least
``min_stt_wait_s``.
"""

from __future__ import annotations

from typing import Any

from pipecat.frames.frames import Frame, VADUserStartedSpeakingFrame
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy

MIN_STT_WAIT_S = 0.5


class SegmentTranscriptTurnStopStrategy(TurnAnalyzerUserTurnStopStrategy):
    """Smart Turn end of turn that needs the last segment's transcript."""

    def __init__(self, *, min_stt_wait_s: float = MIN_STT_WAIT_S, **kwargs: Any):
        """Create the strategy (``kwargs`` as for ``TurnAnalyzerUserTurnStopStrategy``)."""
        super().__init__(**kwargs)
        self._min_stt_wait_s = min_stt_wait_s
        self._earlier_text = ""

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        """Forget the transcript so far when the caller speaks again."""
        if isinstance(frame, VADUserStartedSpeakingFrame) and self._text:
            self._earlier_text, self._text = self._text, ""
        return await super().process_frame(frame)

    async def _reset(self) -> None:
        await super()._reset()
        self._earlier_text = ""

    async def _timeout_handler(self, timeout: float) -> None:
        """The safety net: wait at least ``min_stt_wait_s``, then fall back to earlier text."""
        await super()._timeout_handler(max(timeout, self._min_stt_wait_s))

    async def _maybe_trigger_user_turn_stopped(self) -> None:
        if not self._text and self._earlier_text and self._timeout_expired:
            self._text = self._earlier_text  # this segment had no words: end on the earlier
        await super()._maybe_trigger_user_turn_stopped()
