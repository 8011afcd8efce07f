"""Runs scenarios: each one a real-time phone call on the agent's Twilio Media Stream or SIP.

A call is placed with the Twilio-side phone emulator
(:class:`~simulator.phone.TwilioCallEmulator`: 20 ms μ-law frames in real time,
marks echoed once played, ``clear`` honoured, what the caller hears recorded), or, when
the target has a SIP URI, with the SIP phone (:class:`~simulator.phone.SipCallEmulator`:
an INVITE, G.711 RTP both ways, RFC 4733 keys, BYE), with the
caller's lines synthesised locally (:mod:`simulator.voices.caller_voice`), background
noise mixed at the scenario's SNR and the line impaired as asked. Step by step the
runner speaks, presses keys, stays silent, barges in or hangs up, and records when the
bot's replies are heard; the server's per-call events are read after every step.
Once the call is over, the replies are transcribed and the expectations checked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from loguru import logger

from integrations.speech.audio import PHONE_SAMPLE_RATE
from simulator.events_client import EventsClient
from simulator.fake_twilio import CallUpdate
from simulator.phone import (
    CallEndedError,
    PhoneCall,
    SipCallEmulator,
    TwilioCallEmulator,
    voiced_span,
)
from simulator.scenarios.checks import CallFacts, check_step
from simulator.scenarios.results import BargeIn, CallResult, StepResult
from simulator.scenarios.scenario import Scenario, Step
from simulator.target import Target
from simulator.voices import caller_voice
from simulator.voices.noise import BackgroundNoise, active_rms, normalize_active

REPLY_SILENCE_S = 1.2
"""Bot silence that ends a reply."""
NO_REPLY_WINDOW_S = 4.0
"""How long a step expecting no reply listens for one."""
GREETING_TIMEOUT_S = 30.0
CALL_END_TIMEOUT_S = 30.0
TO_NUMBER = "+15555550100"


@dataclass
class CallerAudio:
    """A scenario's caller audio, prepared before dialling.

    Parameters:
        clips: Each spoken step's clip (16-bit 8 kHz PCM), by step number.
        background: The background noise, if any.
    """

    clips: dict[int, bytes]
    background: BackgroundNoise | None = None

    def snr_db(self, index: int) -> float | None:
        """The clip's active speech level over the noise level, in dB (None: no noise)."""
        if self.background is None or index not in self.clips:
            return None
        level = active_rms(self.clips[index])
        if level <= 0 or self.background.rms_level <= 0:
            return None
        return round(20 * math.log10(level / self.background.rms_level), 2)


def prepare_audio(scenario: Scenario) -> CallerAudio:
    """Synthesise the caller's lines (normalised to one speech level) and the noise.

    Raises:
        caller_voice.CallerVoiceUnavailable: no caller voice synthesiser is installed.
        simulator.voices.noise.NoiseUnavailable: babble without espeak-ng.
    """
    clips = {
        step.index: normalize_active(
            caller_voice.synthesize(
                step.text, voice=scenario.caller.voice, rate=scenario.caller.rate
            )
        )
        for step in scenario.steps
        if step.action in ("say", "barge_in")
    }
    background = BackgroundNoise.for_speech(scenario.noise) if scenario.noise else None
    return CallerAudio(clips, background)


@dataclass
class _State:
    facts: CallFacts = field(default_factory=CallFacts)
    open_reply: StepResult | None = None
    """A step whose reply is still playing (a barge-in follows it)."""


class ScenarioCall:
    """One scenario, one call."""

    def __init__(
        self,
        scenario: Scenario,
        target: Target,
        audio: CallerAudio,
        *,
        http: httpx.AsyncClient,
        run: int = 1,
        on_step: Callable[[StepResult], None] | None = None,
    ):
        """Prepare the call (nothing is dialled until :meth:`run`)."""
        self.scenario = scenario
        self.target = target
        self.audio = audio
        self.http = http
        self.on_step = on_step or (lambda _s: None)
        self.result = CallResult(scenario.id, scenario.name, scenario.path, run=run)
        self.call: PhoneCall | None = None
        self._state = _State()

    async def run(self) -> CallResult:
        """Place the call, run every step, then transcribe and check; never raises."""
        result = self.result
        started = time.monotonic()
        result.started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        events: EventsClient | None = None
        try:
            call = await self._dial()
            self.call = call
            result.call_sid = call.call_sid
            events = EventsClient(self.target, call.call_sid, self.http)
            await self._converse(call, events)
        except Exception as e:  # noqa: BLE001 - one broken call must not stop the run
            result.error = f"{type(e).__name__}: {e}"
            logger.debug(f"simulated call {result.call_sid or '-'} failed: {type(e).__name__}")
        finally:
            if self.call is not None:
                await self.call.hang_up()
                if self.target.rest is not None:
                    self.target.rest.unregister(self.call.call_sid)
        result.duration_s = round(time.monotonic() - started, 2)
        if self.call is not None:
            call = self.call
            if isinstance(call, SipCallEmulator):
                # REFERs the phone received (the agent's transfers over SIP)
                self._state.facts.transfers.extend(call.transfers)
                result.transfers.extend(target for _at, target in call.transfers)
            result.ended_by = call.ended_by
            result.frames_lost = call.stats.frames_lost
            result.clears = call.stats.clears_received
            result.marks_echoed = call.stats.marks_echoed
            if events is not None:
                result.events_available = events.available and events.answered
            await self._transcribe(call)
        self._check()
        return result

    # Dialling

    async def _dial(self) -> PhoneCall:
        target = self.target
        call = await target.dial(
            from_number=self.scenario.caller.number,
            to_number=TO_NUMBER,
            background=self.audio.background,
            line=self.scenario.line,
        )
        if isinstance(call, SipCallEmulator):
            self._state.facts.rest_visible = True  # transfers arrive as REFERs at the phone
        elif target.rest is not None:
            target.rest.register(call.call_sid, lambda u: self._on_rest(call, u))
            self._state.facts.rest_visible = True
        return call

    def _on_rest(self, call: PhoneCall, update: CallUpdate) -> None:
        facts = self._state.facts
        if update.status:
            self.result.hang_ups += 1
        target = update.dial_target()
        if target:
            facts.transfers.append((call.now(), target))
            self.result.transfers.append(target)
        if update.ends_stream and not call.closed and isinstance(call, TwilioCallEmulator):
            # Like Twilio: a hang-up or a redirect ends the media stream.
            asyncio.ensure_future(call.remote_hang_up())

    # The conversation

    async def _converse(self, call: PhoneCall, events: EventsClient) -> None:
        steps = self.scenario.steps
        greeting = StepResult(0, "greeting", "greeting", started_s=call.now())
        self.result.greeting = greeting
        first_is_barge = steps[0].action == "barge_in"
        try:
            start = await call.wait_for_bot_speech_start(timeout=GREETING_TIMEOUT_S)
            greeting.reply_start_s = start
            greeting.latency_ms = round(start * 1000, 1)
            if first_is_barge:
                self._state.open_reply = greeting
            else:
                greeting.reply_end_s = await self._reply_end(call, GREETING_TIMEOUT_S)
        except TimeoutError:
            pass
        greeting.events = await events.fetch()
        self.on_step(greeting)
        for i, step in enumerate(steps):
            follows = steps[i + 1] if i + 1 < len(steps) else None
            if call.closed and step.action != "hang_up":
                result = StepResult(step.index, step.action, step.describe())
                result.skipped = f"the call had ended ({call.ended_by})"
            elif step.action == "hang_up":
                result = StepResult(step.index, step.action, step.describe(), call.now())
                await call.hang_up()
            else:
                result = await self._run_step(call, step, follows)
                result.events = await events.fetch()
            self.result.steps.append(result)
            self.on_step(result)
        if self._state.open_reply is not None and call.closed is False:
            self._state.open_reply.reply_end_s = await self._reply_end(call, REPLY_SILENCE_S * 4)

    async def _run_step(self, call: PhoneCall, step: Step, follows: Step | None) -> StepResult:
        result = StepResult(step.index, step.action, step.describe(), started_s=call.now())
        keep_open = follows is not None and follows.action == "barge_in"
        try:
            if step.action == "say":
                await self._say(call, step, result, keep_open)
            elif step.action == "barge_in":
                await self._barge_in(call, step, result, keep_open)
            elif step.action == "press":
                await self._press(call, step, result, keep_open)
            elif step.action == "silence":
                await self._silence(call, step, result)
            if step.expect.call_ends:
                try:
                    await call.wait_closed(step.timeout_s + CALL_END_TIMEOUT_S)
                except TimeoutError:
                    pass
        except CallEndedError:
            pass
        if call.closed:
            result.call_ended_by = call.ended_by
        return result

    async def _say(self, call: PhoneCall, step: Step, result: StepResult, keep_open: bool) -> None:
        turn = await call.say(self.audio.clips[step.index])
        result.caller_onset_s, result.caller_end_s = turn.caller_onset_s, turn.caller_end_s
        result.snr_db = self.audio.snr_db(step.index)
        await self._await_reply(call, step, result, turn.caller_end_s, keep_open)
        if result.reply_start_s is not None and turn.latency_s is not None:
            result.latency_ms = round(turn.latency_s * 1000, 1)

    async def _press(
        self, call: PhoneCall, step: Step, result: StepResult, keep_open: bool
    ) -> None:
        await call.press(step.digits)
        pressed = call.now()
        result.caller_end_s = pressed
        await self._await_reply(call, step, result, pressed, keep_open)
        if result.reply_start_s is not None:
            result.latency_ms = round((result.reply_start_s - pressed) * 1000, 1)
            result.latency_kind = "dtmf"

    async def _silence(self, call: PhoneCall, step: Step, result: StepResult) -> None:
        start = call.now()
        await asyncio.sleep(step.seconds)
        heard = [(s, e) for s, e in call.bot_utterances() if e > start]
        if heard:
            result.reply_start_s = max(heard[0][0], start)
            result.reply_end_s = heard[-1][1]

    async def _barge_in(
        self, call: PhoneCall, step: Step, result: StepResult, keep_open: bool
    ) -> None:
        clip = self.audio.clips[step.index]
        span = voiced_span(clip)
        onset_offset = span[0] if span else 0.0
        interrupted = self._state.open_reply
        self._state.open_reply = None
        if interrupted is not None and interrupted.reply_start_s is not None:
            reference = interrupted.reply_start_s
        else:
            reference = await call.wait_for_bot_speech_start(timeout=step.timeout_s)
        delay = reference + step.after_ms / 1000 - onset_offset - call.now()
        if delay > 0:
            await asyncio.sleep(delay)
        before = len(call.barge_ins)
        turn = await call.say(clip)
        result.caller_onset_s, result.caller_end_s = turn.caller_onset_s, turn.caller_end_s
        result.snr_db = self.audio.snr_db(step.index)
        measured = call.barge_ins[before] if len(call.barge_ins) > before else None
        if interrupted is not None:
            interrupted.reply_end_s = turn.caller_onset_s
        await self._await_reply(call, step, result, turn.caller_end_s, keep_open)
        if result.reply_start_s is not None and turn.latency_s is not None:
            result.latency_ms = round(turn.latency_s * 1000, 1)
        result.barge_in = BargeIn(
            turn.caller_onset_s,
            measured is not None,
            wire="sip" if isinstance(call, SipCallEmulator) else "twilio",
        )
        if measured is not None:
            result.barge_in.bot_stopped_s = measured.bot_stopped_s
            result.barge_in.clear_s = measured.clear_s

    async def _await_reply(
        self,
        call: PhoneCall,
        step: Step,
        result: StepResult,
        after: float,
        keep_open: bool,
    ) -> None:
        window = NO_REPLY_WINDOW_S if step.expect.no_reply else step.timeout_s
        try:
            start = await call.wait_for_bot_speech_start(timeout=window, after=after)
        except (TimeoutError, CallEndedError):
            return
        result.reply_start_s = start
        if keep_open:
            self._state.open_reply = result
            return
        result.reply_end_s = await self._reply_end(call, step.timeout_s)

    async def _reply_end(self, call: PhoneCall, timeout_s: float) -> float:
        try:
            return await call.wait_for_bot_silence(REPLY_SILENCE_S, timeout=timeout_s)
        except TimeoutError:
            return call.now()  # e.g. hold music: the reply window ends here

    # After the call

    async def _transcribe(self, call: PhoneCall) -> None:
        transcriber = self.target.transcriber
        for step in self.result.all_steps():
            if step.reply_start_s is None or transcriber is None:
                continue
            end = step.reply_end_s if step.reply_end_s is not None else call.now()
            pcm = call.heard_audio(max(0.0, step.reply_start_s - 0.1), end + 0.1)
            try:
                step.heard = await asyncio.to_thread(transcriber.transcribe, pcm, PHONE_SAMPLE_RATE)
            except Exception as e:  # noqa: BLE001
                logger.warning(
                    f"scenario {self.scenario.id} step {step.index}: transcription of the "
                    f"reply failed ({type(e).__name__})"
                )

    def _check(self) -> None:
        facts = self._state.facts
        facts.events_available = self.result.events_available
        transcribed = self.target.transcriber is not None
        steps = {s.index: s for s in self.scenario.steps}
        results = self.result.all_steps()
        for n, step_result in enumerate(results):
            if step_result.index == 0:
                expect = self.scenario.greeting
            else:
                expect = steps[step_result.index].expect
            if expect is None or expect.empty:
                continue
            following = results[n + 1].started_s if n + 1 < len(results) else None
            step_result.checks = check_step(
                step_result, expect, facts, window_end_s=following, transcribed=transcribed
            )


def write_recording(call: PhoneCall, path: Path) -> None:
    """A stereo WAV of the call: left what the caller's phone sent, right what it heard."""
    sent = np.frombuffer(call.sent_audio(), dtype="<i2")
    heard = np.frombuffer(call.heard_audio(), dtype="<i2")
    n = max(len(sent), len(heard))
    stereo = np.zeros((n, 2), dtype="<i2")
    stereo[: len(sent), 0] = sent
    stereo[: len(heard), 1] = heard
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(PHONE_SAMPLE_RATE)
        f.writeframes(stereo.tobytes())
