"""End of turn from Smart Turn that waits for the transcript of the caller's *last* words.

Pipecat's :class:`TurnAnalyzerUserTurnStopStrategy` ends a turn once the turn model
says it is complete and it holds "a transcript". With a segment-at-a-time STT a turn
can span several VAD segments ("Sorry, | where exactly are you located?"), and the
transcript it holds may be the first segment's: a turn ended on it loses the rest,
which then arrives as a turn of its own. This strategy counts the VAD's segment ends
against the STT's :class:`~integrations.speech.stt.SegmentTranscribedFrame` reports
and lets the turn end only once every segment of it has been transcribed. If a report
never comes (the STT was cut off), the base class's safety-net timer still ends the
turn, after at least ``min_stt_wait_s``.

A turn whose every segment was transcribed without a single word (a cough, a noise,
a "mhm" the model cannot spell) ends as soon as that is known, rather than after the
user aggregator's 5 s stop timeout: the bot then goes on (see ``processors/barge_in.py``).
"""

from __future__ import annotations

from typing import Any

from pipecat.frames.frames import Frame, VADUserStoppedSpeakingFrame
from pipecat.turns.types import ProcessFrameResult
from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy

from integrations.speech.stt import SegmentTranscribedFrame

MIN_STT_WAIT_S = 1.0


class SegmentTranscriptTurnStopStrategy(TurnAnalyzerUserTurnStopStrategy):
    """Smart Turn end of turn that waits until every speech segment is transcribed."""

    def __init__(self, *, min_stt_wait_s: float = MIN_STT_WAIT_S, **kwargs: Any):
        """Create the strategy (``kwargs`` as for ``TurnAnalyzerUserTurnStopStrategy``)."""
        super().__init__(**kwargs)
        self._min_stt_wait_s = min_stt_wait_s
        self._untranscribed = 0
        self._words = False

    @property
    def untranscribed_segments(self) -> int:
        """Speech segments of this turn whose transcript has not arrived yet."""
        return self._untranscribed

    async def process_frame(self, frame: Frame) -> ProcessFrameResult:
        """Count segment ends and transcriptions; the base class does the rest."""
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            self._untranscribed += 1
        elif isinstance(frame, SegmentTranscribedFrame):
            self._untranscribed = max(0, self._untranscribed - 1)
            self._words = self._words or frame.has_text
            result = await super().process_frame(frame)
            if not self._untranscribed and not self._words and not self._vad_user_speaking:
                await self.trigger_user_turn_stopped()  # nothing but noise: an empty turn
            else:
                await self._maybe_trigger_user_turn_stopped()
            return result
        return await super().process_frame(frame)

    async def _reset(self) -> None:
        await super()._reset()
        self._untranscribed = 0
        self._words = False

    async def _timeout_handler(self, timeout: float) -> None:
        """The safety net (for a transcript that never comes): at least ``min_stt_wait_s``."""
        await super()._timeout_handler(max(timeout, self._min_stt_wait_s))

    async def _maybe_trigger_user_turn_stopped(self) -> None:
        if self._untranscribed and not self._timeout_expired:
            return  # the caller's latest words are still being transcribed
        await super()._maybe_trigger_user_turn_stopped()
