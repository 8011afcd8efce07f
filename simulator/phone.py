"""A Twilio-side phone emulator: places a call on a Media Streams endpoint in real time.

It speaks Twilio's side of the protocol exactly (``connected``, ``start``, one 20 ms
``media`` frame every 20 ms, ``dtmf``, ``mark`` echoes, ``stop``) and plays the bot's
audio out at real time through a playout buffer, like the phone would. What the caller
hears, and when, is therefore measured where the caller is: ``clear`` drops buffered
audio, ``mark`` is echoed once the audio queued before it has played (or at once on
``clear``), and turn and barge-in latencies are taken on the phone's own timeline.

Used by the tests, the latency bench and ``callagent simulate``. Times are seconds since
the stream started (``call.now()``). Nothing is logged but ids.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import secrets
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from loguru import logger
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from integrations.speech.audio import PHONE_SAMPLE_RATE, mulaw_decode, mulaw_encode
from simulator.audio_codec import rms

FRAME_S = 0.02
FRAME_SAMPLES = round(PHONE_SAMPLE_RATE * FRAME_S)  # 160
FRAME_BYTES = FRAME_SAMPLES * 2
DEFAULT_FROM = "+15555550123"
DEFAULT_TO = "+15555550100"
DTMF_DIGITS = frozenset("0123456789*#ABCD")
SPEECH_RMS = 300.0
"""20 ms frames above this RMS level (16-bit) count as speech (about -40 dBFS)."""


def new_sid(prefix: str) -> str:
    """A random Twilio-shaped SID (``CA``, ``MZ``, ``AC`` + 32 hex digits)."""
    return prefix + secrets.token_hex(16)


class CallEndedError(RuntimeError):
    """The call ended (either side hung up) before the operation finished."""


@dataclass
class TurnMeasurement:
    """One caller turn, on the phone's timeline.

    Parameters:
        caller_onset_s: When the caller's voice started.
        caller_end_s: When the caller's voice ended (trailing silence excluded).
        bot_audio_s: When the bot's reply was first heard (an onset of bot audio after
            ``caller_end_s``); None until then.
    """

    caller_onset_s: float
    caller_end_s: float
    bot_audio_s: float | None = None

    @property
    def latency_s(self) -> float | None:
        """Caller end of speech to the first bot audio at the phone."""
        return None if self.bot_audio_s is None else self.bot_audio_s - self.caller_end_s


@dataclass
class BargeInMeasurement:
    """The caller started talking while the bot's audio was playing.

    Parameters:
        caller_onset_s: When the caller's voice started.
        bot_stopped_s: When the bot's audio stopped at the phone (start of the silence that
            followed); None while it keeps playing.
        clear_s: When the first Twilio ``clear`` arrived after the onset; None if none did.
    """

    caller_onset_s: float
    bot_stopped_s: float | None = None
    clear_s: float | None = None

    @property
    def latency_s(self) -> float | None:
        """Caller onset to the bot's audio stopping at the phone."""
        return None if self.bot_stopped_s is None else self.bot_stopped_s - self.caller_onset_s


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


@dataclass
class _Mark:
    position: int
    name: str


def voiced_span(pcm16: bytes, threshold: float = SPEECH_RMS) -> tuple[float, float] | None:
    """Offsets (s) of the first and past-the-last voiced 20 ms frame of a clip, or None."""
    voiced = [
        i
        for i in range(0, len(pcm16) // FRAME_BYTES)
        if rms(pcm16[i * FRAME_BYTES : (i + 1) * FRAME_BYTES]) > threshold
    ]
    if not voiced:
        return None
    return voiced[0] * FRAME_S, (voiced[-1] + 1) * FRAME_S


@dataclass(frozen=True)
class LineConditions:
    """Impairments of the caller's line, applied to the media the phone sends.

    Parameters:
        packet_loss: Fraction of 20 ms frames lost (0-1). A lost frame's audio is
            replaced by silence (the stream keeps its timing, as behind a jitter buffer).
        loss_burst: Mean length of a loss burst in frames (1 = independent losses).
        jitter_ms: Each media message leaves up to this much later than its 20 ms slot
            (uniform); order is kept, as over TCP, so late messages arrive in bursts.
        seed: Random seed (the same seed gives the same losses and delays).
    """

    packet_loss: float = 0.0
    loss_burst: float = 1.0
    jitter_ms: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.packet_loss < 1.0:
            raise ValueError("packet_loss must be at least 0 and below 1")
        if self.loss_burst < 1.0:
            raise ValueError("loss_burst must be at least 1 frame")
        if self.jitter_ms < 0:
            raise ValueError("jitter_ms must not be negative")

    @property
    def impaired(self) -> bool:
        """Whether anything is impaired at all."""
        return self.packet_loss > 0 or self.jitter_ms > 0


class _Line:
    """Draws losses (a two-state Gilbert model) and delays for each frame."""

    def __init__(self, conditions: LineConditions):
        self.conditions = conditions
        self._rng = random.Random(conditions.seed)
        self._losing = False
        p = conditions.packet_loss
        # Stationary loss rate p with mean burst length b: leave a burst with 1/b,
        # enter one with p / (b (1 - p)).
        self._leave = 1.0 / conditions.loss_burst
        self._enter = p / (conditions.loss_burst * (1.0 - p)) if p > 0 else 0.0
        self._last_due = 0.0
        self.lost = 0

    @property
    def packet_loss_enabled(self) -> bool:
        return self.conditions.packet_loss > 0

    def frame_lost(self) -> bool:
        if self._losing:
            self._losing = self._rng.random() >= self._leave
        else:
            self._losing = self._rng.random() < self._enter
        self.lost += self._losing
        return self._losing

    def send_time(self, slot_s: float) -> float:
        delay = self._rng.uniform(0.0, self.conditions.jitter_ms / 1000.0)
        self._last_due = max(self._last_due, slot_s + delay)
        return self._last_due


def mix_pcm16(a: bytes, b: bytes) -> bytes:
    """Sum two equally long 16-bit PCM chunks, clipping at full scale."""
    x = np.frombuffer(a, dtype="<i2").astype(np.int32) + np.frombuffer(b, dtype="<i2")
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


@dataclass
class EmulatorStats:
    """Counters of what went over the wire."""

    media_sent: int = 0
    media_received: int = 0
    bytes_received: int = 0
    marks_received: int = 0
    marks_echoed: int = 0
    clears_received: int = 0
    dtmf_sent: int = 0
    frames_lost: int = 0
    other_events: list[str] = field(default_factory=list)


class TwilioCallEmulator:
    """One phone call, emulated from Twilio's side of a bidirectional Media Stream.

    Example::

        async with TwilioCallEmulator("ws://127.0.0.1:7860/twilio/stream") as call:
            await call.wait_for_bot_speech_start(timeout=10)
            await call.wait_for_bot_silence(1.0, timeout=20)
            turn = await call.say(pcm16_8k)
            await call.wait_for_bot_speech_start(timeout=10, after=turn.caller_end_s)
            await call.hang_up()
    """

    def __init__(
        self,
        ws_url: str,
        *,
        call_sid: str | None = None,
        account_sid: str | None = None,
        stream_sid: str | None = None,
        from_number: str = DEFAULT_FROM,
        to_number: str = DEFAULT_TO,
        custom_parameters: Mapping[str, str] | None = None,
        auth_token: str | None = None,
        signature_url: str | None = None,
        speech_rms: float = SPEECH_RMS,
        segment_gap_s: float = 0.3,
        barge_in_silence_s: float = 0.3,
        jitter_buffer_ms: int = 0,
        background: Callable[[int], bytes] | None = None,
        line: LineConditions | None = None,
    ):
        """Prepare a call (nothing connects until :meth:`connect`).

        Args:
            ws_url: The stream WebSocket URL (``ws://host/twilio/stream``).
            call_sid: The call id (random ``CA...`` by default).
            account_sid: The account id (random ``AC...`` by default).
            stream_sid: The stream id (random ``MZ...`` by default).
            from_number: Caller number, sent as the ``From`` custom parameter by default.
            to_number: Called number, sent as the ``To`` custom parameter by default.
            custom_parameters: The ``<Parameter>`` values from the TwiML (default: From,
                To and CallSid, as callagent's TwiML has them).
            auth_token: Sign the upgrade request (``X-Twilio-Signature``) with this token.
            signature_url: The URL to sign (default ``ws_url``; the public one behind a proxy).
            speech_rms: RMS level above which a 20 ms frame counts as speech.
            segment_gap_s: Bot audio pauses shorter than this do not end a bot utterance.
            barge_in_silence_s: Silence after a barge-in that counts as the bot stopping.
            jitter_buffer_ms: Bot audio buffered before playout starts (after an underrun).
            background: Background sound at the caller's end: ``background(tick)`` gives the
                20 ms (320-byte PCM) chunk mixed under the caller's voice at that tick.
            line: Impairments (packet loss, jitter) of the media the phone sends.
        """
        self.ws_url = ws_url
        self.call_sid = call_sid or new_sid("CA")
        self.account_sid = account_sid or new_sid("AC")
        self.stream_sid = stream_sid or new_sid("MZ")
        self.custom_parameters = dict(
            custom_parameters
            if custom_parameters is not None
            else {"From": from_number, "To": to_number, "CallSid": self.call_sid}
        )
        self._auth_token = auth_token
        self._signature_url = signature_url or ws_url
        self._speech_rms = speech_rms
        self._segment_gap_s = segment_gap_s
        self._barge_in_silence_s = barge_in_silence_s
        self._jitter_bytes = int(jitter_buffer_ms / 1000 * PHONE_SAMPLE_RATE) * 2
        self._background = background
        self._line = _Line(line) if line is not None and line.impaired else None
        self._outbox: asyncio.Queue[tuple[float, dict[str, object]]] | None = None

        self.stats = EmulatorStats()
        self.turns: list[TurnMeasurement] = []
        self.barge_ins: list[BargeInMeasurement] = []
        self.clear_times: list[float] = []
        self.ended_by: str | None = None
        """``caller`` (hang_up), ``server`` (socket closed by the bot) or ``network``."""
        self.close_code: int | None = None

        self._ws: ClientConnection | None = None
        self._t0 = 0.0
        self._seq = 0
        self._chunk = 0
        self._tick = 0
        self._utterances: deque[_Utterance] = deque()
        self._buffer = bytearray()
        self._buffer_start = 0
        self._underrun = True
        self._marks: deque[_Mark] = deque()
        self._heard = bytearray(b"\x00" * FRAME_BYTES)
        self._sent = bytearray()
        self._segments: list[_Segment] = []
        self._last_frame_audible = False
        self._pending_turns: list[TurnMeasurement] = []
        self._open_barge_ins: list[BargeInMeasurement] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = asyncio.Event()
        self._ticked = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._closing = False

    # Lifecycle

    async def __aenter__(self) -> TwilioCallEmulator:
        await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.hang_up()

    async def connect(self, timeout_s: float = 10.0) -> None:
        """Open the WebSocket, send ``connected`` and ``start``, and start the 20 ms clock."""
        headers = {}
        if self._auth_token:
            validator = RequestValidator(self._auth_token)
            headers["X-Twilio-Signature"] = validator.compute_signature(self._signature_url, {})
        self._ws = await asyncio.wait_for(
            connect(
                self.ws_url,
                additional_headers=headers,
                max_size=2**20,
                open_timeout=None,
                compression=None,  # Twilio's side does not offer permessage-deflate
            ),
            timeout_s,
        )
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self._send(
            {
                "event": "start",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": self.custom_parameters,
                    "mediaFormat": {
                        "encoding": "audio/x-mulaw",
                        "sampleRate": PHONE_SAMPLE_RATE,
                        "channels": 1,
                    },
                },
            }
        )
        self._t0 = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._clock(), name=f"twilio-emulator-clock-{self.call_sid}"),
            asyncio.create_task(self._receive(), name=f"twilio-emulator-rx-{self.call_sid}"),
        ]
        if self._line is not None and self._line.conditions.jitter_ms > 0:
            self._outbox = asyncio.Queue()
            self._tasks.append(
                asyncio.create_task(self._late_sender(), name=f"twilio-emulator-tx-{self.call_sid}")
            )
        logger.debug(f"emulated Twilio call {self.call_sid}: stream {self.stream_sid} started")

    async def hang_up(self) -> None:
        """The caller hangs up: send ``stop`` and close the stream (no-op once ended)."""
        await self._end("caller")

    async def remote_hang_up(self) -> None:
        """Twilio ends the call (e.g. after a REST hang-up): send ``stop`` and close."""
        await self._end("network")

    async def _end(self, by: str) -> None:
        if self._ws is None or self._closed.is_set():
            await self._stop_tasks()
            return
        self.ended_by = by
        self._closing = True
        try:
            await self._send(
                {
                    "event": "stop",
                    "sequenceNumber": self._next_seq(),
                    "streamSid": self.stream_sid,
                    "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
                }
            )
            await self._ws.close()
        except ConnectionClosed:
            pass
        self._mark_closed()
        await self._stop_tasks()

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
        """Whether the bot's side closed the stream."""
        return self.ended_by == "server"

    async def wait_closed(self, timeout: float) -> str:
        """Wait for the call to end; returns who ended it (see ``ended_by``)."""
        await asyncio.wait_for(self._closed.wait(), timeout)
        return self.ended_by or "server"

    def now(self) -> float:
        """Seconds since the stream started."""
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
        """Press keys: one Twilio ``dtmf`` event per digit, ``gap_s`` apart."""
        if any(d not in DTMF_DIGITS for d in digits):
            raise ValueError("DTMF digits are 0-9, *, # and A-D")
        for i, digit in enumerate(digits):
            self._require_open()
            await self._send(
                {
                    "event": "dtmf",
                    "streamSid": self.stream_sid,
                    "sequenceNumber": self._next_seq(),
                    "dtmf": {"track": "inbound_track", "digit": digit},
                }
            )
            self.stats.dtmf_sent += 1
            if i < len(digits) - 1:
                await asyncio.sleep(gap_s)

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
        """What the caller's phone sent (16-bit 8 kHz mono PCM, after μ-law)."""
        return bytes(self._sent)

    def bot_utterances(self) -> list[tuple[float, float]]:
        """(start, end) call times of each stretch of bot audio heard so far."""
        return [(s.start_s, s.end_s) for s in self._segments]

    @property
    def clears_received(self) -> int:
        """How many Twilio ``clear`` messages the bot sent."""
        return self.stats.clears_received

    @property
    def marks_echoed(self) -> int:
        """How many ``mark`` messages were echoed back."""
        return self.stats.marks_echoed

    # Internals: wire

    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    async def _send(self, message: dict[str, object], *, stream_data: bool = False) -> None:
        if self._ws is None:
            raise CallEndedError("not connected")
        async with self._send_lock:
            if stream_data and self._closing:
                return  # like Twilio: nothing follows 'stop'
            await self._ws.send(json.dumps(message, separators=(",", ":")))

    def _require_open(self) -> None:
        if self._ws is None or self.closed:
            raise CallEndedError("the call is not connected")

    def _mark_closed(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._ticked.set()

    async def _receive(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                self._handle_server_message(raw)
        except ConnectionClosed:
            pass
        finally:
            if not self._closed.is_set() and not self._closing:
                self.ended_by = "server"
                self.close_code = self._ws.close_code
                logger.debug(f"emulated Twilio call {self.call_sid}: stream closed by the server")
                self._mark_closed()

    def _handle_server_message(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            self.stats.other_events.append("<malformed>")
            return
        event = message.get("event") if isinstance(message, dict) else None
        if event == "media":
            payload = base64.b64decode(message.get("media", {}).get("payload", ""))
            self.stats.media_received += 1
            self.stats.bytes_received += len(payload)
            self._buffer += mulaw_decode(payload)
        elif event == "mark":
            self.stats.marks_received += 1
            name = str(message.get("mark", {}).get("name", ""))
            self._marks.append(_Mark(self._buffer_start + len(self._buffer), name))
            self._echo_played_marks()
        elif event == "clear":
            self.stats.clears_received += 1
            now = self._tick_time()
            self.clear_times.append(now)
            for b in self._open_barge_ins:
                if b.clear_s is None:
                    b.clear_s = now
            self._buffer_start += len(self._buffer)
            self._buffer.clear()
            self._underrun = True
            self._echo_played_marks()
        else:
            self.stats.other_events.append(str(event)[:32])

    def _echo_played_marks(self) -> None:
        while self._marks and self._marks[0].position <= self._buffer_start:
            mark = self._marks.popleft()
            self.stats.marks_echoed += 1
            message: dict[str, object] = {
                "event": "mark",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "mark": {"name": mark.name},
            }
            asyncio.ensure_future(self._send_quietly(message))

    async def _send_quietly(self, message: dict[str, object]) -> None:
        try:
            await self._send(message, stream_data=True)
        except (ConnectionClosed, CallEndedError):
            pass

    # Internals: the 20 ms clock

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
        except ConnectionClosed:
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
        payload = base64.b64encode(mulaw_encode(frame)).decode("ascii")
        self._chunk += 1
        message: dict[str, object] = {
            "event": "media",
            "sequenceNumber": self._next_seq(),
            "streamSid": self.stream_sid,
            "media": {
                "track": "inbound",
                "chunk": str(self._chunk),
                "timestamp": str(int(frame_start * 1000)),
                "payload": payload,
            },
        }
        if self._outbox is not None and self._line is not None:
            self._outbox.put_nowait((self._line.send_time(self._t0 + frame_start), message))
        else:
            await self._send(message, stream_data=True)
        self.stats.media_sent += 1
        self._tick += 1
        self._play_frame()

    async def _late_sender(self) -> None:
        """Send media messages at their jittered times (in order)."""
        assert self._outbox is not None
        try:
            while True:
                due, message = await self._outbox.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                await self._send(message, stream_data=True)
        except ConnectionClosed:
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
        self._echo_played_marks()
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


@dataclass(frozen=True)
class StreamInstructions:
    """What the TwiML from a voice webhook tells Twilio to do."""

    stream_url: str
    parameters: dict[str, str]


def parse_stream_twiml(xml: str) -> StreamInstructions:
    """Read ``<Connect><Stream url=...><Parameter .../>`` out of TwiML.

    Raises:
        ValueError: the TwiML has no ``<Connect><Stream>``.
    """
    root = ET.fromstring(xml)
    stream = root.find("./Connect/Stream")
    if stream is None or not stream.get("url"):
        raise ValueError("the TwiML has no <Connect><Stream url=...>")
    params = {
        p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter") if p.get("name")
    }
    return StreamInstructions(str(stream.get("url")), params)


async def place_call(
    base_url: str,
    *,
    auth_token: str | None = None,
    account_sid: str | None = None,
    from_number: str = DEFAULT_FROM,
    to_number: str = DEFAULT_TO,
    voice_path: str = "/twilio/voice",
    call_sid: str | None = None,
    timeout_s: float = 10.0,
    **emulator_kwargs: object,
) -> TwilioCallEmulator:
    """Place a call like Twilio does: POST the voice webhook, follow its TwiML, open the stream.

    Args:
        base_url: The server's base URL (``http://127.0.0.1:7860``).
        auth_token: Sign the webhook and the stream upgrade with this token.
        account_sid: The account id (random by default).
        from_number: The caller's number.
        to_number: The number called.
        voice_path: The voice webhook path.
        call_sid: The call id (random by default).
        timeout_s: Time allowed for the webhook and the WebSocket to open.
        **emulator_kwargs: Passed to :class:`TwilioCallEmulator`.

    Returns:
        The connected call.
    """
    call_sid = call_sid or new_sid("CA")
    account_sid = account_sid or new_sid("AC")
    form = {
        "CallSid": call_sid,
        "AccountSid": account_sid,
        "From": from_number,
        "To": to_number,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    url = base_url.rstrip("/") + voice_path
    headers = {}
    if auth_token:
        headers["X-Twilio-Signature"] = RequestValidator(auth_token).compute_signature(url, form)
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        response = await client.post(url, data=form, headers=headers)
    response.raise_for_status()
    instructions = parse_stream_twiml(response.text)
    call = TwilioCallEmulator(
        instructions.stream_url,
        call_sid=call_sid,
        account_sid=account_sid,
        custom_parameters=instructions.parameters,
        auth_token=auth_token,
        **emulator_kwargs,  # type: ignore[arg-type]
    )
    await call.connect(timeout_s)
    return call
