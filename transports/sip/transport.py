"""The Pipecat transport over one established SIP call (:class:`SipCall`).

Input: the caller's 8 kHz PCM16 (``media.on_audio``) becomes ``InputAudioRawFrame``, RFC
4733 keys (``media.on_dtmf``) ``InputDTMFFrame``. Output: the bot's audio goes to
``media.send_pcm``, which sends a 20 ms packet per 20 ms; the output waits while more than
a short lead is queued there, so ``BotStarted/StoppedSpeaking`` follow what the caller
hears, and barge-in (``InterruptionFrame``) calls ``media.flush()`` at once. ``EndFrame``
hangs up once the audio is out, ``CancelFrame`` at once; the peer ending the call fires
``on_client_disconnected`` and cancels the pipeline. On hold nothing is written.

The caller's side is checked and queued by :mod:`transports.sip.caller_input`. Logs carry
the SIP Call-ID, kinds and sizes, never audio, digits or URIs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from loguru import logger
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    CancelFrame,
    CancelWorkerFrame,
    ClientConnectedFrame,
    EndFrame,
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    StartFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams

from transports.input_batching import AudioChunkJoiner, BatchingPolicy, NoBatching
from transports.sip.caller_input import CallerInput
from transports.sip.contracts import SipCall

SIP_SAMPLE_RATE = 8000
"""G.711 audio, decoded: 8 kHz 16-bit mono both ways."""


class SipTransportParams(TransportParams):
    """How the SIP transport plays and hears audio (8 kHz both ways, fixed by G.711).

    Parameters:
        playback_lead_s: Seconds of bot audio let ahead into the media's send queue. Small
            keeps the speaking events true (barge-in flushes it whatever its size); too
            small risks gaps in the bot's audio when the event loop is busy.
        end_pause_s: After an ``EndFrame``'s last audio is sent, wait this long before BYE
            (the far end's jitter buffer still plays it).
        hang_up_timeout_s: Give up waiting for the BYE transaction after this long.
        input_queue_chunks: Caller chunks (20 ms) held while the pipeline is busy; more are
            dropped (and logged).
        session_timeout_s: The call is ended politely (``EndWorkerFrame``, then BYE) after
            this long, as on Twilio, so no call (say, one left on hold) runs for ever; None
            for no limit. ``on_session_timeout`` fires first.
    """

    audio_in_enabled: bool = True
    audio_out_enabled: bool = True
    audio_in_sample_rate: int | None = SIP_SAMPLE_RATE
    audio_out_sample_rate: int | None = SIP_SAMPLE_RATE
    audio_out_end_silence_secs: int = 0
    playback_lead_s: float = 0.08
    end_pause_s: float = 0.2
    hang_up_timeout_s: float = 5.0
    input_queue_chunks: int = 100
    session_timeout_s: float | None = 60 * 60


class SipInputTransport(BaseInputTransport):
    """The caller's side: audio and key presses from the call's media into the pipeline."""

    def __init__(
        self,
        transport: SipTransport,
        call: SipCall,
        params: SipTransportParams,
        batching: BatchingPolicy,
        **kwargs: Any,
    ):
        """Listen to ``call``'s media at once (a key pressed while the pipeline starts is kept)."""
        super().__init__(params, **kwargs)
        self._transport = transport
        self._call = call
        self._caller = CallerInput(call, params.input_queue_chunks)
        self._joiner = AudioChunkJoiner(batching)
        self._log = logger.bind(provider_call_id=call.call_id)
        self._receive_task: asyncio.Task[None] | None = None
        self._timeout_task: asyncio.Task[None] | None = None
        self._session_timeout_s = params.session_timeout_s

    async def start(self, frame: StartFrame) -> None:
        """Announce the caller and start reading."""
        await super().start(frame)
        if self._receive_task:
            return
        self._caller.bind_loop()
        await self._transport.fire("on_client_connected", self._call)
        await self.push_frame(ClientConnectedFrame())
        self._caller.reading = True
        self._receive_task = self.create_task(self._receive())
        if self._session_timeout_s:
            self._timeout_task = self.create_task(self._time_out(self._session_timeout_s))
        await self.set_transport_ready(frame)

    async def stop(self, frame: EndFrame) -> None:
        """Stop reading (the output hangs up once its audio is out)."""
        await super().stop(frame)
        await self._detach()

    async def cancel(self, frame: CancelFrame) -> None:
        """Stop reading at once."""
        await super().cancel(frame)
        await self._detach()

    async def cleanup(self) -> None:
        """Stop reading (a teardown without End or Cancel)."""
        await super().cleanup()
        await self._detach()

    async def _detach(self) -> None:
        self._caller.detach()
        for task in (self._receive_task, self._timeout_task):
            if task:
                await self.cancel_task(task)
        self._receive_task = self._timeout_task = None

    async def _time_out(self, after_s: float) -> None:
        await asyncio.sleep(after_s)
        self._log.info(f"SIP call: session time limit ({after_s:g}s) reached, ending the call")
        await self._transport.fire("on_session_timeout", self._call)
        await self.push_frame(EndWorkerFrame(reason="session timeout"), FrameDirection.UPSTREAM)

    async def _receive(self) -> None:
        while (item := await self._caller.next()) is not None:
            if isinstance(item, KeypadEntry):
                await self.push_frame(InputDTMFFrame(button=item))
            elif (audio := self._joiner.add(item)) is not None:
                frame = InputAudioRawFrame(audio=audio, sample_rate=SIP_SAMPLE_RATE, num_channels=1)
                await self.push_audio_frame(frame)
        reason = self._call.end_reason
        self._log.info(f"SIP call ended by the peer ({reason}); ending the pipeline")
        await self._transport.fire("on_client_disconnected", self._call)
        await self.push_frame(
            CancelWorkerFrame(reason=f"sip call ended: {reason}"), FrameDirection.UPSTREAM
        )


class SipOutputTransport(BaseOutputTransport):
    """The bot's side: audio into the call's media, paced as the caller hears it."""

    def __init__(self, call: SipCall, params: SipTransportParams, **kwargs: Any):
        """Write to ``call``'s media; hang ``call`` up when the pipeline ends."""
        super().__init__(params, **kwargs)
        self._call = call
        self._params_sip = params
        self._log = logger.bind(provider_call_id=call.call_id)
        self._next_clock = 0.0  # the emulated playback clock while on hold
        self._held_s = 0.0
        self._hung_up = False

    async def start(self, frame: StartFrame) -> None:
        """Start the media senders."""
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Barge-in: drop the media's queued audio at once, then Pipecat's own queues."""
        if isinstance(frame, InterruptionFrame):
            dropped = self._flush()
            await super().process_frame(frame, direction)
            # A chunk the sender had already taken may have slipped in meanwhile.
            dropped += self._flush()
            self._log.debug(f"SIP call: barge-in dropped {dropped:.2f}s of queued bot audio")
            return
        await super().process_frame(frame, direction)

    async def stop(self, frame: EndFrame) -> None:
        """Let the queued audio play out, then hang up."""
        await super().stop(frame)
        await self._drain()
        await self._hang_up()

    async def cancel(self, frame: CancelFrame) -> None:
        """Drop the queued audio and hang up at once."""
        await super().cancel(frame)
        self._flush()
        await self._hang_up()

    async def cleanup(self) -> None:
        """A torn-down pipeline leaves no call behind."""
        await super().cleanup()
        await self._hang_up()

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        """Queue one chunk on the media and wait while more than the lead is queued.

        Returns:
            Whether the chunk was taken (False once the call is over).
        """
        if self._call.ended:
            return False
        audio = frame.audio  # 8 kHz mono: the base class resamples to our rate
        duration = len(audio) / (2 * SIP_SAMPLE_RATE)
        media = self._call.media
        if media.held:
            # Nothing goes out on hold and nothing piles up: the audio is paced and dropped.
            self._held_s += duration
            await self._clock_sleep(duration)
            return True
        if self._held_s:
            self._log.info(f"SIP call: off hold; {self._held_s:.1f}s of bot audio not sent")
            self._held_s = 0.0
        self._next_clock = 0.0
        media.send_pcm(audio)
        await self._wait_for_playback(duration)
        return True

    async def _wait_for_playback(self, duration: float) -> None:
        media = self._call.media
        lead = self._params_sip.playback_lead_s
        # A media that stops draining (a bug) must not stall the pipeline for long.
        deadline = time.monotonic() + duration + lead + 1.0
        while not self._call.ended and not media.held:
            excess = media.queued_s - lead
            if excess <= 0:
                return
            if time.monotonic() > deadline:
                self._log.warning(f"SIP call: media not draining ({media.queued_s:.2f}s queued)")
                return
            await asyncio.sleep(excess)

    async def _clock_sleep(self, duration: float) -> None:
        now = time.monotonic()
        if self._next_clock < now:
            self._next_clock = now
        self._next_clock += duration
        await asyncio.sleep(self._next_clock - now)

    async def _drain(self) -> None:
        """Wait until the media has sent its queue (bounded by its length), plus a pause."""
        media = self._call.media
        deadline = time.monotonic() + media.queued_s + 1.0
        while not self._call.ended and not media.held and media.queued_s > 0:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(min(media.queued_s, 0.1))
        if not self._call.ended:
            await asyncio.sleep(self._params_sip.end_pause_s)

    def _flush(self) -> float:
        if self._call.ended:
            return 0.0
        return self._call.media.flush()

    async def _hang_up(self) -> None:
        if self._hung_up:
            return
        self._hung_up = True
        if self._call.ended:
            return
        try:
            await asyncio.wait_for(self._call.hang_up(), self._params_sip.hang_up_timeout_s)
            self._log.info("SIP call: hung up (the pipeline ended)")
        except TimeoutError:
            self._log.warning(
                f"SIP call: BYE not answered within {self._params_sip.hang_up_timeout_s:g}s"
            )
        except Exception as e:  # the pipeline's teardown must go on whatever the BYE did
            self._log.warning(f"SIP call: hang-up failed ({type(e).__name__})")


class SipTransport(BaseTransport):
    """Pipecat transport over one established SIP call.

    Events (as on the other transports, with the :class:`SipCall` as the client):

    - ``on_client_connected(transport, call)``: the pipeline started on the call.
    - ``on_client_disconnected(transport, call)``: the peer ended the call (BYE, expiry,
      transfer, ...); the pipeline is then cancelled.
    - ``on_session_timeout(transport, call)``: ``session_timeout_s`` passed; the pipeline
      then ends (and hangs up).
    """

    def __init__(
        self,
        call: SipCall,
        params: SipTransportParams | None = None,
        *,
        batching: BatchingPolicy | None = None,
        input_name: str | None = None,
        output_name: str | None = None,
    ):
        """The transport for ``call``.

        Args:
            call: The established call (answered inbound or outbound).
            params: Playback and queue settings (defaults: 8 kHz both ways, 80 ms lead).
            batching: How many 20 ms caller chunks make one audio frame (default: one).
            input_name: Optional name for the input processor.
            output_name: Optional name for the output processor.
        """
        super().__init__(input_name=input_name, output_name=output_name)
        self._call = call
        self._params = params or SipTransportParams()
        self._input = SipInputTransport(
            self, call, self._params, batching or NoBatching(), name=self._input_name
        )
        self._output = SipOutputTransport(call, self._params, name=self._output_name)
        self._register_event_handler("on_client_connected")
        self._register_event_handler("on_client_disconnected")
        self._register_event_handler("on_session_timeout")

    @property
    def call(self) -> SipCall:
        """The SIP call this transport carries."""
        return self._call

    def input(self) -> SipInputTransport:
        """The caller's audio and key presses."""
        return self._input

    def output(self) -> SipOutputTransport:
        """The bot's audio."""
        return self._output

    def get_client_id(self, client: Any) -> str:
        """The SIP Call-ID (the only client a SIP transport has)."""
        return self._call.call_id

    async def fire(self, event: str, client: SipCall) -> None:
        """Run the handlers of one of this transport's events (used by its input)."""
        await self._call_event_handler(event, client)
