"""Frames end where the last processor that reads them is.

Pipecat passes every frame on through every processor, each hop a queue, a task switch
and an event for the observers. A few kinds of frame are most of a call's frames, and
each is read by few processors, so a stop after the last reader saves a hop per
processor for each of them:

- the caller's audio (the transport pushes it every 20-60 ms): speech-to-text and the
  user aggregator (VAD, end of turn, barge-in) listen to it; nothing after them does (they
  work on transcripts, turns and the bot's own frames). Without this stop each chunk of
  each call made a dozen hops for nothing: with eight calls most of the event loop's time
  (py-spy), and the reason concurrent calls slowed each other down.
- the bot's audio: the output transport pushes every 40 ms chunk it sent on downstream
  "in case anyone else needs it"; after it come the reply-progress tracker and the
  assistant aggregator, which work on clauses and speaking events, not audio.
- the "still speaking" heartbeats Pipecat broadcasts both ways every 200 ms
  (``UserSpeakingFrame`` from the user aggregator while the caller talks,
  ``BotSpeakingFrame`` from the output transport while the bot does): no processor in a
  call's pipeline reads them, and the worker's idle monitor, the one reader, is an
  observer that sees them when they are first pushed. Upstream from the output transport
  a heartbeat crossed every processor back to the transport input, five times a second.
"""

from __future__ import annotations

from pipecat.frames.frames import (
    BotSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    OutputAudioRawFrame,
    UserSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class _FrameStop(FrameProcessor):
    """Drops frames of some kinds going one way; passes everything else on."""

    dropped: tuple[type[Frame], ...] = ()
    direction: FrameDirection = FrameDirection.DOWNSTREAM

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Pass on any frame but the dropped kinds going this stop's way."""
        await super().process_frame(frame, direction)
        if direction == self.direction and isinstance(frame, self.dropped):
            return
        await self.push_frame(frame, direction)


class CallerAudioStop(_FrameStop):
    """After the user aggregator: the caller's audio and speaking heartbeats go no further."""

    dropped = (InputAudioRawFrame, UserSpeakingFrame)


class BotAudioStop(_FrameStop):
    """After the output transport: the bot's audio and speaking heartbeats go no further."""

    dropped = (OutputAudioRawFrame, BotSpeakingFrame)


class BotSpeakingStop(_FrameStop):
    """Before the output transport: its speaking heartbeats go no further upstream."""

    dropped = (BotSpeakingFrame,)
    direction = FrameDirection.UPSTREAM
