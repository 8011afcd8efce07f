"""The wire-independent simulated phone: a 20 ms clock, the caller's mouth and the caller's ear.

A :class:`PhoneCall` speaks clips into the call in real time (one 20 ms frame per tick,
background noise mixed under them, losses and jitter drawn for the line), plays the
bot's audio out through a playout buffer like a handset would, and measures, on its own
timeline, when the bot's replies are heard (turns) and how soon the bot stops once the
caller talks over it (barge-ins). How frames travel is the wire's business: a subclass
sends each frame, each key press and the hang-up, and feeds the bot's audio it receives
to :meth:`PhoneCall._receive_bot_pcm` (Twilio Media Streams in
:mod:`simulator.phone.twilio`, SIP/RTP in :mod:`simulator.phone.sip`). The mouth and its
measurements are :mod:`simulator.phone.voice`, the ear :mod:`simulator.phone.ear`; this
module is the clock that drives them and the API the scenarios use.

Times are seconds since the media started (``call.now()``). Nothing is logged but ids.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from simulator.phone.ear import BotAudioEar
from simulator.phone.line import LineConditions, _Line, mix_pcm16
from simulator.phone.measure import (
    DTMF_DIGITS,
    FRAME_BYTES,
    FRAME_S,
    SPEECH_RMS,
    BargeInMeasurement,
    CallEndedError,
    EmulatorStats,
    TurnMeasurement,
)
from simulator.phone.voice import CallerVoice


class PhoneCall(ABC):
    """One simulated phone call, whatever carries its media (see the module docstring).

    Subclasses implement :meth:`connect` (open the wire, then :meth:`_start_media`),
    :meth:`_send_frame`, :meth:`_send_digit` and :meth:`_end`.
    """

    call_sid: str
    """The call's id: Twilio's ``CallSid``, or the SIP ``Call-ID``."""

    _wire_closed: tuple[type[BaseException], ...] = ()
    """Exceptions of the wire that mean it has closed (they stop the clock quietly)."""

    def __init__(
        self,
        *,
        speech_rms: float = SPEECH_RMS,
        segment_gap_s: float = 0.3,
        barge_in_silence_s: float = 0.3,
        jitter_buffer_ms: int = 0,
        background: Callable[[int], bytes] | None = None,
        line: LineConditions | None = None,
    ):
        """Prepare the phone (nothing is sent until :meth:`connect`).

        Args:
            speech_rms: RMS level above which a 20 ms frame counts as speech.
            segment_gap_s: Bot audio pauses shorter than this do not end a bot utterance.
            barge_in_silence_s: Silence after a barge-in that counts as the bot stopping.
            jitter_buffer_ms: Bot audio buffered before playout starts (after an underrun).
            background: Background sound at the caller's end: ``background(tick)`` gives the
                20 ms (320-byte PCM) chunk mixed under the caller's voice at that tick.
            line: Impairments (packet loss, jitter) of the media the phone sends.
        """
        self._voice = CallerVoice(speech_rms=speech_rms, barge_in_silence_s=barge_in_silence_s)
        self._ear = BotAudioEar(
            speech_rms=speech_rms, segment_gap_s=segment_gap_s, jitter_buffer_ms=jitter_buffer_ms
        )
        self._background = background
        self._line = _Line(line) if line is not None and line.impaired else None
        self._outbox: asyncio.Queue[tuple[float, bytes, float]] | None = None

        self.stats = EmulatorStats()
        self.turns: list[TurnMeasurement] = self._voice.turns
        self.barge_ins: list[BargeInMeasurement] = self._voice.barge_ins
        self.clear_times: list[float] = []
        self.ended_by: str | None = None
        """``caller`` (hang_up), ``server`` (the bot's side ended it) or ``network``."""
        self.close_code: int | None = None

        self._t0 = 0.0
        self._tick = 0
        self._sent = bytearray()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = asyncio.Event()
        self._ticked = asyncio.Event()
        self._closing = False

    # Lifecycle

    async def __aenter__(self) -> Any:
        await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.hang_up()

    @abstractmethod
    async def connect(self, timeout_s: float = 10.0) -> None:
        """Open the wire, then start the 20 ms clock (:meth:`_start_media`)."""

    async def hang_up(self) -> None:
        """The caller hangs up (no-op once ended)."""
        await self._end("caller")

    @abstractmethod
    async def _end(self, by: str) -> None:
        """End the call from this side (``by`` goes to :attr:`ended_by`)."""

    def _start_media(self, wire_tasks: list[asyncio.Task[None]], name: str) -> None:
        """Start the clock (time 0 is now) beside the wire's own tasks."""
        self._t0 = time.monotonic()
        self._tasks = [asyncio.create_task(self._clock(), name=f"{name}-clock"), *wire_tasks]
        if self._line is not None and self._line.conditions.jitter_ms > 0:
            self._outbox = asyncio.Queue()
            self._tasks.append(asyncio.create_task(self._late_sender(), name=f"{name}-tx"))

    async def _stop_tasks(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def closed(self) -> bool:
        """Whether the call has ended."""
        return self._closed.is_set()

    @property
    def closed_by_server(self) -> bool:
        """Whether the bot's side ended the call."""
        return self.ended_by == "server"

    async def wait_closed(self, timeout: float) -> str:
        """Wait for the call to end; returns who ended it (see ``ended_by``)."""
        await asyncio.wait_for(self._closed.wait(), timeout)
        return self.ended_by or "server"

    def now(self) -> float:
        """Seconds since the media started."""
        return time.monotonic() - self._t0

    # Caller actions

    async def say(self, pcm16_8k: bytes) -> TurnMeasurement:
        """Speak a clip (16-bit 8 kHz mono PCM) into the call; returns once it has been sent.

        The returned measurement's ``bot_audio_s`` fills in when the bot's reply is heard.

        Raises:
            CallEndedError: the call ended before the clip was sent.
        """
        self._require_open()
        done = self._voice.speak(pcm16_8k)
        closed: asyncio.Future[Any] = asyncio.ensure_future(self._closed.wait())
        waiters: set[asyncio.Future[Any]] = {done, closed}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if not done.done():
            raise CallEndedError("the call ended while the caller was speaking")
        return done.result()

    async def press(self, digits: str, gap_s: float = 0.25) -> None:
        """Press keys, one after the other, ``gap_s`` apart (how depends on the wire)."""
        if any(d not in DTMF_DIGITS for d in digits):
            raise ValueError("DTMF digits are 0-9, *, # and A-D")
        for i, digit in enumerate(digits):
            self._require_open()
            await self._send_digit(digit)
            self.stats.dtmf_sent += 1
            if i < len(digits) - 1:
                await asyncio.sleep(gap_s)

    @abstractmethod
    async def _send_digit(self, digit: str) -> None:
        """Send one key press."""

    # Observations

    async def wait_for_bot_speech_start(
        self, timeout: float, *, after: float | None = None
    ) -> float:
        """Wait until bot audio is heard; returns when that utterance started (call time).

        Args:
            timeout: Seconds to wait.
            after: Only an utterance starting at or after this call time counts. By default an
                utterance already playing counts (its start is returned), else the next one.

        Raises:
            TimeoutError: no bot audio in time.
            CallEndedError: the call ended first.
        """
        if after is not None:
            since = after
        elif self._bot_active():
            since = self._ear.segments[-1].start_s
        else:
            since = self._tick_time()

        def found() -> float | None:
            starts = [seg.start_s for seg in self._ear.segments if seg.start_s >= since]
            return min(starts) if starts else None

        return await self._wait_for(found, timeout, "bot speech")

    async def wait_for_bot_silence(self, min_silence_s: float, timeout: float) -> float:
        """Wait until no bot audio has played for ``min_silence_s``; returns when it stopped.

        Returns immediately if the bot is already that quiet (or the call has ended).

        Raises:
            TimeoutError: the bot kept talking.
        """

        def found() -> float | None:
            last = self._ear.last_end_s
            if self.closed or self._tick_time() - last >= min_silence_s:
                return last
            return None

        return await self._wait_for(found, timeout, "bot silence", allow_closed=True)

    def heard_audio(self, start_s: float = 0.0, end_s: float | None = None) -> bytes:
        """What played at the phone (16-bit 8 kHz mono PCM), optionally a time window."""
        return self._ear.heard(start_s, end_s)

    def sent_audio(self) -> bytes:
        """What the caller's phone sent (16-bit 8 kHz mono PCM, after the codec)."""
        return bytes(self._sent)

    def bot_utterances(self) -> list[tuple[float, float]]:
        """(start, end) call times of each stretch of bot audio heard so far."""
        return [(s.start_s, s.end_s) for s in self._ear.segments]

    @property
    def clears_received(self) -> int:
        """How many Twilio ``clear`` messages the bot sent (0 over SIP)."""
        return self.stats.clears_received

    @property
    def marks_echoed(self) -> int:
        """How many Twilio ``mark`` messages were echoed back (0 over SIP)."""
        return self.stats.marks_echoed

    # For the wires

    def _require_open(self) -> None:
        if self.closed or self._t0 == 0.0:
            raise CallEndedError("the call is not connected")

    def _mark_closed(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._ticked.set()

    def _receive_bot_pcm(self, pcm16: bytes) -> None:
        """The bot's audio arrived (decoded 8 kHz PCM): queue it for playout."""
        self.stats.media_received += 1
        self._ear.receive(pcm16)

    def _drop_bot_audio(self) -> None:
        """Drop the bot audio not yet played (Twilio ``clear``)."""
        self._ear.drop()

    def _after_playout(self) -> None:
        """Called after each 20 ms of playout (Twilio echoes its marks here)."""
        return None

    @abstractmethod
    async def _send_frame(self, pcm16: bytes, frame_start_s: float) -> None:
        """Send the caller's 20 ms frame for the slot starting at ``frame_start_s``."""

    # The 20 ms clock

    def _tick_time(self) -> float:
        return self._tick * FRAME_S

    async def _clock(self) -> None:
        try:
            while not self._closed.is_set() and not self._closing:
                due = int((time.monotonic() - self._t0) / FRAME_S)
                while self._tick < due and not self._closed.is_set() and not self._closing:
                    await self._step()
                ticked, self._ticked = self._ticked, asyncio.Event()
                ticked.set()
                next_tick = self._t0 + (self._tick + 1) * FRAME_S
                await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
        except self._wire_closed:
            pass

    async def _step(self) -> None:
        """One 20 ms tick: send the caller's frame for it, play the next bot frame."""
        frame_start = self._tick_time()
        frame = self._voice.next_frame(frame_start, self._bot_active)
        if self._background is not None:
            frame = mix_pcm16(frame, self._background(self._tick))
        if self._line is not None and self._line.packet_loss_enabled and self._line.frame_lost():
            frame = b"\x00" * FRAME_BYTES
            self.stats.frames_lost += 1
        self._sent += frame
        if self._outbox is not None and self._line is not None:
            due = self._line.send_time(self._t0 + frame_start)
            self._outbox.put_nowait((due, frame, frame_start))
        else:
            await self._send_frame(frame, frame_start)
        self.stats.media_sent += 1
        self._tick += 1
        self._play_frame()

    async def _late_sender(self) -> None:
        """Send frames at their jittered times (in order)."""
        assert self._outbox is not None
        try:
            while True:
                due, frame, frame_start = await self._outbox.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                await self._send_frame(frame, frame_start)
        except self._wire_closed:
            pass

    def _play_frame(self) -> None:
        """Play the 20 ms of bot audio for the interval that starts now."""
        start = self._tick_time()
        onset = self._ear.play(start)
        self._after_playout()
        if onset:
            self._voice.bot_speech_heard(start)
        self._voice.bot_quiet_since(start, self._ear.last_end_s)

    def _bot_active(self) -> bool:
        return self._ear.active(self._tick_time())

    async def _wait_for(
        self,
        found: Callable[[], float | None],
        timeout: float,
        what: str,
        *,
        allow_closed: bool = False,
    ) -> float:
        deadline = time.monotonic() + timeout
        while True:
            result = found()
            if result is not None:
                return result
            if self.closed and not allow_closed:
                raise CallEndedError(f"the call ended while waiting for {what}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {what} within {timeout:g}s")
            try:
                await asyncio.wait_for(self._ticked.wait(), min(remaining, 0.1))
            except TimeoutError:
                pass
