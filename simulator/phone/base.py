"""The wire-independent simulated phone: a 20 ms clock, the caller's mouth and the caller's ear.

A :class:`PhoneCall` speaks clips into the call in real time (one 20 ms frame per tick,
background noise mixed under them, losses and jitter drawn for the line), plays the
bot's audio out through a playout buffer like a handset would, and measures, on its own
timeline, when the bot's replies are heard (turns) and how soon the bot stops once the
caller talks over it (barge-ins). How frames travel is the wire's business: a subclass
sends each frame, each key press and the hang-up, and feeds the bot's audio it receives
to :meth:`PhoneCall._receive_bot_pcm` (Twilio Media Streams in
:mod:`simulator.phone.twilio`, SIP/RTP in :mod:`simulator.phone.sip`).

Times are seconds since the media started (``call.now()``). Nothing is logged but ids.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from integrations.speech.audio import PHONE_SAMPLE_RATE
from simulator.audio_codec import rms
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
    voiced_span,
)


@dataclass
class _Utterance:
    pcm: bytes
    onset_offset_s: float
    end_offset_s: float
    done: asyncio.Future[TurnMeasurement]
    pos: int = 0
    start_s: float | None = None
    barge_in_checked: bool = False
    turn: TurnMeasurement | None = None


@dataclass
class _Segment:
    start_s: float
    end_s: float


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
        self._speech_rms = speech_rms
        self._segment_gap_s = segment_gap_s
        self._barge_in_silence_s = barge_in_silence_s
        self._jitter_bytes = int(jitter_buffer_ms / 1000 * PHONE_SAMPLE_RATE) * 2
        self._background = background
        self._line = _Line(line) if line is not None and line.impaired else None
        self._outbox: asyncio.Queue[tuple[float, bytes, float]] | None = None

        self.stats = EmulatorStats()
        self.turns: list[TurnMeasurement] = []
        self.barge_ins: list[BargeInMeasurement] = []
        self.clear_times: list[float] = []
        self.ended_by: str | None = None
        """``caller`` (hang_up), ``server`` (the bot's side ended it) or ``network``."""
        self.close_code: int | None = None

        self._t0 = 0.0
        self._tick = 0
        self._utterances: deque[_Utterance] = deque()
        self._buffer = bytearray()
        self._buffer_start = 0
        self._underrun = True
        self._heard = bytearray(b"\x00" * FRAME_BYTES)
        self._sent = bytearray()
        self._segments: list[_Segment] = []
        self._last_frame_audible = False
        self._pending_turns: list[TurnMeasurement] = []
        self._open_barge_ins: list[BargeInMeasurement] = []
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
        pcm = pcm16_8k[: len(pcm16_8k) - len(pcm16_8k) % 2]
        span = voiced_span(pcm, self._speech_rms) or (0.0, len(pcm) / 2 / PHONE_SAMPLE_RATE)
        done: asyncio.Future[TurnMeasurement] = asyncio.get_running_loop().create_future()
        self._utterances.append(_Utterance(pcm, span[0], span[1], done))
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
            since = self._segments[-1].start_s
        else:
            since = self._tick_time()

        def found() -> float | None:
            starts = [seg.start_s for seg in self._segments if seg.start_s >= since]
            return min(starts) if starts else None

        return await self._wait_for(found, timeout, "bot speech")

    async def wait_for_bot_silence(self, min_silence_s: float, timeout: float) -> float:
        """Wait until no bot audio has played for ``min_silence_s``; returns when it stopped.

        Returns immediately if the bot is already that quiet (or the call has ended).

        Raises:
            TimeoutError: the bot kept talking.
        """

        def found() -> float | None:
            last = self._segments[-1].end_s if self._segments else 0.0
            if self.closed or self._tick_time() - last >= min_silence_s:
                return last
            return None

        return await self._wait_for(found, timeout, "bot silence", allow_closed=True)

    def heard_audio(self, start_s: float = 0.0, end_s: float | None = None) -> bytes:
        """What played at the phone (16-bit 8 kHz mono PCM), optionally a time window."""
        first = max(0, int(round(start_s / FRAME_S))) * FRAME_BYTES
        last = len(self._heard) if end_s is None else int(round(end_s / FRAME_S)) * FRAME_BYTES
        return bytes(self._heard[first:last])

    def sent_audio(self) -> bytes:
        """What the caller's phone sent (16-bit 8 kHz mono PCM, after the codec)."""
        return bytes(self._sent)

    def bot_utterances(self) -> list[tuple[float, float]]:
        """(start, end) call times of each stretch of bot audio heard so far."""
        return [(s.start_s, s.end_s) for s in self._segments]

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
        self._buffer += pcm16

    def _drop_bot_audio(self) -> None:
        """Drop the bot audio not yet played (Twilio ``clear``)."""
        self._buffer_start += len(self._buffer)
        self._buffer.clear()
        self._underrun = True

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
        frame = self._next_caller_frame(frame_start)
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

    def _next_caller_frame(self, frame_start: float) -> bytes:
        if not self._utterances:
            return b"\x00" * FRAME_BYTES
        utt = self._utterances[0]
        if utt.start_s is None:
            utt.start_s = frame_start
        frame = utt.pcm[utt.pos : utt.pos + FRAME_BYTES]
        utt.pos += len(frame)
        onset = utt.start_s + utt.onset_offset_s
        if not utt.barge_in_checked and frame_start + FRAME_S > onset:
            utt.barge_in_checked = True
            if self._bot_active():
                barge = BargeInMeasurement(caller_onset_s=onset)
                self.barge_ins.append(barge)
                self._open_barge_ins.append(barge)
        end = utt.start_s + utt.end_offset_s
        if utt.turn is None and frame_start + FRAME_S >= end - 1e-9:
            # the caller's voice has ended: from here the bot's reply is awaited
            utt.turn = TurnMeasurement(onset, end)
            self.turns.append(utt.turn)
            self._pending_turns.append(utt.turn)
        if utt.pos >= len(utt.pcm):
            self._utterances.popleft()
            if not utt.done.done():
                utt.done.set_result(utt.turn or TurnMeasurement(onset, end))
        if len(frame) < FRAME_BYTES:
            frame += b"\x00" * (FRAME_BYTES - len(frame))
        return frame

    def _play_frame(self) -> None:
        """Play the 20 ms of bot audio for the interval that starts now."""
        start = self._tick_time()
        if self._underrun and len(self._buffer) < max(self._jitter_bytes, 1):
            chunk = b""
        else:
            self._underrun = False
            chunk = bytes(self._buffer[:FRAME_BYTES])
            del self._buffer[:FRAME_BYTES]
            self._buffer_start += len(chunk)
            if not self._buffer:
                self._underrun = True
        if len(chunk) < FRAME_BYTES:
            chunk += b"\x00" * (FRAME_BYTES - len(chunk))
        self._heard += chunk
        self._after_playout()
        audible = rms(chunk) > self._speech_rms
        if audible:
            self._on_bot_audio(start)
        self._last_frame_audible = audible
        self._update_barge_ins(start)

    def _on_bot_audio(self, start: float) -> None:
        end = start + FRAME_S
        if self._segments and start - self._segments[-1].end_s < self._segment_gap_s:
            self._segments[-1].end_s = end
        else:
            self._segments.append(_Segment(start, end))
        if not self._last_frame_audible:
            for turn in list(self._pending_turns):
                if start >= turn.caller_end_s:
                    turn.bot_audio_s = start
                    self._pending_turns.remove(turn)

    def _bot_active(self) -> bool:
        if not self._segments:
            return False
        return self._tick_time() - self._segments[-1].end_s < self._segment_gap_s

    def _update_barge_ins(self, now: float) -> None:
        for barge in list(self._open_barge_ins):
            last = self._segments[-1].end_s if self._segments else 0.0
            if now + FRAME_S - last >= self._barge_in_silence_s:
                barge.bot_stopped_s = max(last, barge.caller_onset_s)
                self._open_barge_ins.remove(barge)

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
