"""Caller audio ends where the last processor that listens to it is.

The transport pushes the caller's audio every 20 ms. Speech-to-text and the user
aggregator (VAD, end of turn, barge-in) listen to it; nothing after them does (they work
on transcripts, turns and the bot's own frames). Pipecat passes every frame on through
every processor, each hop a queue, a task switch and an event for every observer, so
without this stop each 20 ms of each call made a dozen hops for nothing: with eight calls
most of the event loop's time (py-spy), and the reason concurrent calls slowed each other
down.
"""

from __future__ import annotations

from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class CallerAudioStop(FrameProcessor):
    """Drops the caller's audio frames going downstream; passes everything else on."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Pass on any frame but the caller's audio."""
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM and isinstance(frame, InputAudioRawFrame):
            return
        await self.push_frame(frame, direction)
