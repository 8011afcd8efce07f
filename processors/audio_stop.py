"""Audio ends where the last processor that listens to it is.

Pipecat passes every frame on through every processor, each hop a queue, a task switch
and an event for the observers. Audio is most of a call's frames, so a stop after its
last listener saves a hop per processor for each of them:

- the caller's audio (the transport pushes it every 20-40 ms): speech-to-text and the
  user aggregator (VAD, end of turn, barge-in) listen to it; nothing after them does (they
  work on transcripts, turns and the bot's own frames). Without this stop each chunk of
  each call made a dozen hops for nothing: with eight calls most of the event loop's time
  (py-spy), and the reason concurrent calls slowed each other down.
- the bot's audio: the output transport pushes every 40 ms chunk it sent on downstream
  "in case anyone else needs it"; after it come the reply-progress tracker and the
  assistant aggregator, which work on clauses and speaking events, not audio.
"""

from __future__ import annotations

from pipecat.frames.frames import Frame, InputAudioRawFrame, OutputAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class _DownstreamStop(FrameProcessor):
    """Drops downstream frames of one kind; passes everything else on."""

    dropped: type[Frame] = Frame

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Pass on any frame but the dropped kind going downstream."""
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM and isinstance(frame, self.dropped):
            return
        await self.push_frame(frame, direction)


class CallerAudioStop(_DownstreamStop):
    """Drops the caller's audio frames going downstream; passes everything else on."""

    dropped = InputAudioRawFrame


class BotAudioStop(_DownstreamStop):
    """Drops the bot's audio frames the output transport passes on; everything else goes on."""

    dropped = OutputAudioRawFrame
