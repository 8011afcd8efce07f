"""A simulated callee that answers with one generated answer (``callagent bench amd``).

:class:`AnswerCallee` plays exactly the answer's audio (an
:class:`~simulator.bench.amd_answers.Answer`: a person's hello then quiet, or a machine's
greeting, beep and the quiet it records) into
the Media Stream when the fake Twilio connects it. A person then waits for the agent's
opening to finish, optionally replies once, and hangs up; a machine records in silence
until the agent hangs up. :func:`phone_times` reads from what the phone heard when the
agent's audio started, relative to the end of the hello, the beep or the greeting.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from simulator.bench.amd_answers import PERSON, Answer
from simulator.outbound.callee import (
    MACHINE_SPEECH_S,
    REPLY_SILENCE_S,
    SILENCE_AFTER_GREETING_S,
    SPEECH_END_S,
    AmdDecision,
    Callee,
    CalleeLog,
)
from simulator.phone import CallEndedError, TurnMeasurement, TwilioCallEmulator, voiced_span

OPENING_WAIT_S = 15.0
"""Longest a person waits for the agent to say anything after their hello."""
MAX_CALL_S = 45.0
"""Longest call (a machine records this long at most; a person hangs up by then)."""
AFTER_EDGE_S = 0.1
"""Bot audio ending this soon after the hello or the beep is not the opening or message."""


@dataclass
class PlayedAnswer:
    """Where the answer sat on the stream's clock, and the agent's audio the phone heard.

    Parameters:
        start_s: When the answer's first sample went out (None: the call never connected).
        bot_segments: (start, end) of each stretch of the agent's audio heard.
    """

    start_s: float | None = None
    bot_segments: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class PhoneTimes:
    """What the callee heard, relative to its answer.

    Parameters:
        opening_after_hello_s: People: the end of their hello to the start of the agent's
            first audio heard after it (negative: it began over the hello).
        message_after_beep_s: Machines with a beep: the beep's end to the message's start.
        message_after_greeting_s: Machines without a beep: the greeting's end to the message.
        bot_over_callee_s: Seconds of the agent's audio heard before the hello, the beep or
            the greeting had ended (talking over the callee).
    """

    opening_after_hello_s: float | None = None
    message_after_beep_s: float | None = None
    message_after_greeting_s: float | None = None
    bot_over_callee_s: float = 0.0


def phone_times(answer: Answer, played: PlayedAnswer) -> PhoneTimes:
    """When the agent's audio started at the phone, relative to the answer's edges."""
    if played.start_s is None:
        return PhoneTimes()
    start = played.start_s
    edge_at = answer.beep_end_s if answer.beep_end_s is not None else answer.speech_end_s
    edge = start + edge_at
    segments = played.bot_segments
    over = sum(max(0.0, min(e, edge) - max(s, start)) for s, e in segments if s < edge)
    after = [s for s, e in segments if e > edge + AFTER_EDGE_S]
    first = None if not after else round(after[0] - edge, 3)
    if answer.truth == PERSON:
        return PhoneTimes(opening_after_hello_s=first, bot_over_callee_s=round(over, 3))
    if answer.beep_end_s is not None:
        return PhoneTimes(message_after_beep_s=first, bot_over_callee_s=round(over, 3))
    return PhoneTimes(message_after_greeting_s=first, bot_over_callee_s=round(over, 3))


@dataclass(frozen=True, kw_only=True)
class AnswerCallee(Callee):
    """Answers with ``answer``'s audio; see the module's docstring.

    Parameters:
        answer: What is played when the call is answered.
        reply: A person's one reply after the opening (16-bit 8 kHz PCM), if any.
        played: Filled in as the call goes (where the answer sat, what was heard).
    """

    answer: Answer
    reply: bytes | None = None
    max_call_s: float = MAX_CALL_S
    played: PlayedAnswer = field(default_factory=PlayedAnswer, compare=False, repr=False)

    def _amd(self, detect_message_end: bool) -> AmdDecision:
        """Twilio's AMD as the simulator's callees give it, from the answer's true edges."""
        answer = self.answer
        if answer.truth == PERSON:
            return AmdDecision("human", round(answer.speech_end_s + SPEECH_END_S, 2))
        span = voiced_span(answer.pcm) or (0.0, answer.speech_end_s)
        if not detect_message_end:
            return AmdDecision("machine_start", round(span[0] + MACHINE_SPEECH_S, 2))
        if answer.beep_end_s is not None:
            return AmdDecision("machine_end_beep", round(answer.beep_end_s + 0.1, 2))
        end = answer.speech_end_s + SILENCE_AFTER_GREETING_S
        return AmdDecision("machine_end_silence", round(end, 2))

    async def play(
        self, call: TwilioCallEmulator, log: CalleeLog, *, greeting_ended_s: float | None
    ) -> None:
        """Play the answer; a person waits for the opening (and replies), a machine records."""
        before = call.now()
        playing = asyncio.ensure_future(call.say(self.answer.pcm))
        try:
            if self.answer.truth == PERSON:
                await self._person(call, log, playing)
            else:
                await call.wait_closed(max(1.0, self.max_call_s - call.now()))
                log.hung_up_by = "agent"
        except CallEndedError:
            log.hung_up_by = log.hung_up_by or "agent"
        except TimeoutError:
            log.hung_up_by = "timeout"
        finally:
            playing.cancel()
            await asyncio.gather(playing, return_exceptions=True)
        if not call.closed:
            await call.hang_up()
        self.played.start_s = _answer_start(call, self.answer, before)
        self.played.bot_segments = call.bot_utterances()

    async def _person(
        self, call: TwilioCallEmulator, log: CalleeLog, playing: asyncio.Future[TurnMeasurement]
    ) -> None:
        hello_end = call.now() + self.answer.speech_end_s
        while call.now() < hello_end and not call.closed:
            await asyncio.sleep(0.02)
        try:
            await call.wait_for_bot_speech_start(timeout=OPENING_WAIT_S)
            await call.wait_for_bot_silence(REPLY_SILENCE_S, timeout=self.max_call_s)
        except TimeoutError:
            pass
        if self.reply is not None and not call.closed:
            await playing  # the answer's quiet tail first
            turn = await call.say(self.reply)
            log.said.append("say:reply")
            try:
                await call.wait_for_bot_speech_start(
                    timeout=OPENING_WAIT_S, after=turn.caller_end_s
                )
                await call.wait_for_bot_silence(REPLY_SILENCE_S, timeout=self.max_call_s)
            except TimeoutError:
                pass
        log.hung_up_by = log.hung_up_by or "callee"


def _answer_start(call: TwilioCallEmulator, answer: Answer, before: float) -> float:
    """When the answer's first frame went out (from its turn's onset, else about ``before``)."""
    span = voiced_span(answer.pcm)
    if call.turns and span is not None:
        return round(call.turns[0].caller_onset_s - span[0], 3)
    return round(before, 3)
