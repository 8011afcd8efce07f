"""Simulated callees: who picks up a number the fake Twilio REST API dials, and what they do.

Each kind is a strategy class: :class:`Person` ("hello?", then its lines, each after the
bot has finished speaking), :class:`Voicemail` (a greeting, an optional beep, then silence
while it records), :class:`Ivr` (a menu prompt, then silence), :class:`NoAnswer`,
:class:`Busy` and :class:`Failed` (a REST error at create, or status ``failed``). What a
callee said and heard goes into a :class:`CalleeLog`. Voices are the simulator's caller
voices (:mod:`simulator.voices.caller_voice`); clips are 16-bit 8 kHz PCM.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from integrations.speech.audio import PHONE_SAMPLE_RATE
from simulator.phone import CallEndedError, TwilioCallEmulator, voiced_span
from simulator.voices import caller_voice
from simulator.voices.caller_voice import DEFAULT_VOICE
from simulator.voices.noise import normalize_active

REPLY_SILENCE_S = 1.2
"""Bot silence that ends its turn (the callee speaks next)."""
REPLY_TIMEOUT_S = 20.0
SPEECH_END_S = 1.2
"""Twilio AMD's speech-end threshold: silence after a short hello that means a person."""
MACHINE_SPEECH_S = 2.4
"""Twilio AMD's speech threshold: unbroken speech this long means a machine."""
SILENCE_AFTER_GREETING_S = 1.5
"""Silence after a beepless greeting before AMD says ``machine_end_silence``."""


@dataclass(frozen=True)
class Say:
    """The callee says ``text``."""

    text: str


@dataclass(frozen=True)
class Press:
    """The callee keys ``digits`` (DTMF)."""

    digits: str


@dataclass(frozen=True)
class Pause:
    """The callee stays silent for ``seconds``."""

    seconds: float


CalleeLine = Say | Press | Pause


@dataclass(frozen=True)
class Beep:
    """A voicemail beep: a pure tone."""

    frequency_hz: float = 1000.0
    seconds: float = 0.5

    def pcm(self) -> bytes:
        """The tone as 16-bit 8 kHz PCM (about -9 dBFS)."""
        t = np.arange(int(self.seconds * PHONE_SAMPLE_RATE)) / PHONE_SAMPLE_RATE
        return (np.sin(2 * np.pi * self.frequency_hz * t) * 12000).astype("<i2").tobytes()


@dataclass(frozen=True)
class AmdDecision:
    """What Twilio's answering-machine detection says, and when (seconds after answer)."""

    answered_by: str
    after_s: float


@dataclass
class CalleeLog:
    """What happened at the callee's end (times on the stream's clock, ``call.now()``).

    Parameters:
        said: What the callee said or keyed, in order (``say:...``, ``press:...``).
        beep_end_s: When the beep ended (voicemail); negative when it ended before the
            stream opened (synchronous AMD).
        message_start_s: When the bot's first audio after the beep started.
        bot_before_beep_s: Seconds of bot audio heard before the beep ended (talked over).
        hung_up_by: ``callee``, ``agent`` (stream closed or REST hang-up) or ``timeout``.
    """

    said: list[str] = field(default_factory=list)
    beep_end_s: float | None = None
    message_start_s: float | None = None
    bot_before_beep_s: float = 0.0
    hung_up_by: str | None = None

    @property
    def message_after_beep_s(self) -> float | None:
        """Beep end to the start of the bot's message (negative: it spoke over the beep)."""
        if self.beep_end_s is None or self.message_start_s is None:
            return None
        return round(self.message_start_s - self.beep_end_s, 3)


def speech(text: str, voice: str, rate: float) -> bytes:
    """A callee line, synthesised and levelled (blocking: call it off the event loop)."""
    return normalize_active(caller_voice.synthesize(text, voice=voice, rate=rate))


@dataclass(frozen=True, kw_only=True)
class Callee(ABC):
    """Who answers a number.

    Parameters:
        ring_s: How long it rings before it is picked up (or the line gives up).
        answered_by: Force Twilio's AMD verdict (simulating its mistakes), else the truth.
        amd_after_s: Force when AMD decides (seconds after answer).
    """

    ring_s: float = 1.0
    answered_by: str | None = None
    amd_after_s: float | None = None

    @property
    def answers(self) -> bool:
        """Whether the call is picked up at all."""
        return True

    @property
    def final_status(self) -> str:
        """The call's final status when it is never answered."""
        return "completed"

    @property
    def create_error(self) -> int | None:
        """A Twilio error code the REST create answers with (the call is never placed)."""
        return None

    async def prepare(self) -> None:  # noqa: B027 - most callees have audio, some none
        """Synthesise the callee's audio (during ringing)."""

    def amd(self, detect_message_end: bool) -> AmdDecision:
        """Twilio's AMD verdict for this callee (call :meth:`prepare` first)."""
        truth = self._amd(detect_message_end)
        return AmdDecision(
            self.answered_by or truth.answered_by,
            truth.after_s if self.amd_after_s is None else self.amd_after_s,
        )

    def _amd(self, detect_message_end: bool) -> AmdDecision:
        return AmdDecision("unknown", 5.0)

    def greeting_s(self) -> float:
        """Audio a machine plays before recording (skipped on the stream under sync AMD)."""
        return 0.0

    @abstractmethod
    async def play(
        self, call: TwilioCallEmulator, log: CalleeLog, *, greeting_ended_s: float | None
    ) -> None:
        """Act out the answered call on the connected stream; return when the callee is done.

        Args:
            call: The stream, connected.
            log: Where to write what happened.
            greeting_ended_s: When a machine's greeting ended on the stream's clock (negative)
                if it played before the stream opened (synchronous AMD), else None.
        """


@dataclass(frozen=True, kw_only=True)
class Person(Callee):
    """A person: says "hello?", then each line once the bot has finished its turn."""

    lines: tuple[CalleeLine, ...] = ()
    hello: str = "Hello?"
    voice: str = DEFAULT_VOICE
    rate: float = 1.0
    hang_up_at_end: bool = True
    reply_timeout_s: float = REPLY_TIMEOUT_S
    _clips: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    async def prepare(self) -> None:
        """Synthesise the hello and the lines."""
        texts = [self.hello] + [line.text for line in self.lines if isinstance(line, Say)]
        for text in texts:
            if text and text not in self._clips:
                self._clips[text] = await asyncio.to_thread(speech, text, self.voice, self.rate)

    def _amd(self, detect_message_end: bool) -> AmdDecision:
        span = voiced_span(self._clips.get(self.hello, b"")) or (0.0, 0.6)
        return AmdDecision("human", round(span[1] + SPEECH_END_S, 2))

    async def play(
        self, call: TwilioCallEmulator, log: CalleeLog, *, greeting_ended_s: float | None
    ) -> None:
        """Hello, then each line once the bot's turn is over; hang up after the last reply."""
        try:
            after = 0.0
            if self.hello:
                after = (await call.say(self._clips[self.hello])).caller_end_s
                log.said.append(f"say:{self.hello}")
            for line in self.lines:
                if isinstance(line, Pause):
                    await asyncio.sleep(line.seconds)
                    continue
                await self._await_turn(call, after)
                if isinstance(line, Say):
                    after = (await call.say(self._clips[line.text])).caller_end_s
                    log.said.append(f"say:{line.text}")
                else:
                    await call.press(line.digits)
                    after = call.now()
                    log.said.append(f"press:{line.digits}")
            await self._await_turn(call, after)
        except CallEndedError:
            return
        if self.hang_up_at_end and not call.closed:
            log.hung_up_by = "callee"
            await call.hang_up()

    async def _await_turn(self, call: TwilioCallEmulator, after: float) -> None:
        """Wait for the bot's turn after ``after`` to be over.

        A bot still talking at ``after`` (an opening that began while the callee said
        "hello?") is that turn: the callee lets it finish, then replies.
        """
        try:
            spoken = call.bot_utterances()
            if not (spoken and spoken[-1][1] >= after):
                await call.wait_for_bot_speech_start(timeout=self.reply_timeout_s, after=after)
            await call.wait_for_bot_silence(REPLY_SILENCE_S, timeout=self.reply_timeout_s * 3)
        except TimeoutError:
            pass


@dataclass(frozen=True, kw_only=True)
class _Machine(Callee):
    """Plays a recording, then listens in silence for up to ``record_s``."""

    prompt: str = ""
    voice: str = DEFAULT_VOICE
    rate: float = 1.0
    record_s: float = 30.0
    _clips: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def _tail(self) -> bytes:
        return b""

    async def prepare(self) -> None:
        """Synthesise the greeting (with its tail: the beep)."""
        if "greeting" not in self._clips:
            voice = await asyncio.to_thread(speech, self.prompt, self.voice, self.rate)
            self._clips["greeting"] = voice + self._tail()

    def greeting_s(self) -> float:
        return len(self._clips.get("greeting", b"")) / 2 / PHONE_SAMPLE_RATE

    def _voiced_end(self) -> float:
        span = voiced_span(self._clips.get("greeting", b"")) or (0.0, self.greeting_s())
        return span[1]

    async def play(
        self, call: TwilioCallEmulator, log: CalleeLog, *, greeting_ended_s: float | None
    ) -> None:
        """Play the greeting, then listen in silence until hung up or ``record_s``."""
        try:
            if greeting_ended_s is not None:
                end = greeting_ended_s
            else:
                end = (await call.say(self._clips["greeting"])).caller_end_s
                log.said.append(f"say:{self.prompt}")
            self._mark_end(log, end)
            await call.wait_closed(self.record_s)
            log.hung_up_by = "agent"
        except CallEndedError:
            log.hung_up_by = "agent"
        except TimeoutError:
            log.hung_up_by = "timeout"
            await call.hang_up()
        self._measure(call, log)

    def _mark_end(self, log: CalleeLog, end_s: float) -> None:
        """Where the part the bot should wait for ends."""

    def _measure(self, call: TwilioCallEmulator, log: CalleeLog) -> None:
        if log.beep_end_s is None:
            return
        beep_end = log.beep_end_s
        segments = call.bot_utterances()
        log.bot_before_beep_s = round(
            sum(max(0.0, min(e, beep_end) - s) for s, e in segments if s < beep_end), 3
        )
        after = [s for s, e in segments if e > beep_end]
        log.message_start_s = after[0] if after else None


@dataclass(frozen=True, kw_only=True)
class Voicemail(_Machine):
    """A voicemail: greeting, then a beep (or none), then silence while it records."""

    prompt: str = "Hi, you've reached my voicemail. Please leave a message after the tone."
    beep: Beep | None = Beep()
    beep_gap_s: float = 0.3

    def _tail(self) -> bytes:
        if self.beep is None:
            return b""
        return caller_voice.silence(self.beep_gap_s) + self.beep.pcm()

    def _mark_end(self, log: CalleeLog, end_s: float) -> None:
        log.beep_end_s = end_s if self.beep is not None else end_s + SILENCE_AFTER_GREETING_S

    def _amd(self, detect_message_end: bool) -> AmdDecision:
        span = voiced_span(self._clips.get("greeting", b"")) or (0.0, 0.0)
        if not detect_message_end:
            return AmdDecision("machine_start", round(span[0] + MACHINE_SPEECH_S, 2))
        if self.beep is not None:
            return AmdDecision("machine_end_beep", round(self._voiced_end() + 0.1, 2))
        return AmdDecision("machine_end_silence", round(span[1] + SILENCE_AFTER_GREETING_S, 2))


@dataclass(frozen=True, kw_only=True)
class Ivr(_Machine):
    """An IVR: a menu prompt, then silence (nobody keys anything)."""

    prompt: str = (
        "Thank you for calling. For sales, press one. For support, press two. "
        "To repeat this menu, press nine."
    )

    def _amd(self, detect_message_end: bool) -> AmdDecision:
        span = voiced_span(self._clips.get("greeting", b"")) or (0.0, 0.0)
        if not detect_message_end:
            return AmdDecision("machine_start", round(span[0] + MACHINE_SPEECH_S, 2))
        return AmdDecision("machine_end_silence", round(span[1] + SILENCE_AFTER_GREETING_S, 2))


@dataclass(frozen=True, kw_only=True)
class _Unanswered(Callee):
    @property
    def answers(self) -> bool:
        return False

    async def play(
        self, call: TwilioCallEmulator, log: CalleeLog, *, greeting_ended_s: float | None
    ) -> None:
        """Never called: nobody answers."""
        raise RuntimeError("an unanswered callee has no call to play")


@dataclass(frozen=True, kw_only=True)
class NoAnswer(_Unanswered):
    """Rings until the dial's ``Timeout``: status ``no-answer``."""

    ring_s: float = float("inf")

    @property
    def final_status(self) -> str:
        """``no-answer``."""
        return "no-answer"


@dataclass(frozen=True, kw_only=True)
class Busy(_Unanswered):
    """The line is busy: status ``busy`` after a short while."""

    ring_s: float = 0.3

    @property
    def final_status(self) -> str:
        """``busy``."""
        return "busy"


@dataclass(frozen=True, kw_only=True)
class Failed(_Unanswered):
    """The number cannot be called.

    Parameters:
        code: Refuse at create with this Twilio error (21211 invalid 'To', 21215 geo
            permission, 21216 blocked); None: the call is placed and ends ``failed``.
    """

    ring_s: float = 0.2
    code: int | None = 21211

    @property
    def final_status(self) -> str:
        """``failed``."""
        return "failed"

    @property
    def create_error(self) -> int | None:
        """The error code given, if any."""
        return self.code
