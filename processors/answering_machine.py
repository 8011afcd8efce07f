"""Answering-machine detection, the opening's timing and the voicemail drop (outbound calls).

Goes right after the STT, before the user aggregator. Until the call goes through it keeps
the callee's audio and transcripts to itself (no machine greeting, no "hello?" becomes a
request to the NLU), runs its own VAD, and marks the callee's words for the STT (VAD
frames pushed upstream; long speech in 1 s pieces) so they are still transcribed.

- The opening (a :class:`~processors.frames.GreetingFrame`) goes out once the callee's
  first words are followed by ``opening_pause_secs`` of quiet, or after ``no_speech_secs``
  of nobody speaking; if the callee goes on talking, it is stopped and goes out again at
  their next pause.
- The strategies decide (one :class:`~processors.frames.MachineVerdictFrame`). A person
  (or nobody: ``unknown``): the call goes through, from the opening on.
- A machine: an opening already out is withdrawn (an interruption); at the beep (or
  ``message_silence_secs`` after the greeting; at once on Twilio's ``machine_end_*``) the
  voicemail line is spoken (not interruptible), ``OutcomeFrame("voicemail-left")`` follows
  and the call ends once it is spoken. No chance within ``max_machine_wait_secs`` (or a
  fax): ``OutcomeFrame("machine-no-message")`` and the call ends.

Times are seconds of the callee's audio since the answer (the first audio frame).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from loguru import logger
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADState
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    StartFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import (
    FrameDirection,
    FrameProcessor,
    FrameProcessorSetup,
)

from integrations.outbound.dispositions import Disposition, MachineVerdict
from integrations.speech.beep import BeepDetector
from integrations.speech.stt import SegmentTranscribedFrame
from integrations.speech.vad import NoiseFloor, level_db
from processors.frames import GreetingFrame, MachineVerdictFrame, OutcomeFrame
from processors.machine_verdict import (
    GREETING_ENDED,
    NO_MESSAGE,
    AnsweringMachineReport,
    Evidence,
    SpeechSpan,
    Stage,
    Verdict,
    VerdictStrategy,
    default_strategies,
)

CUT_DIP_DB = 14.0
"""A 20 ms frame this far below the piece's loudest is a dip between words."""
SOUND_ABOVE_QUIET_DB = 15.0
"""A 20 ms frame this far above the line's quiet (and above :data:`SOUND_MIN_DB`) is sound."""
SOUND_MIN_DB = -55.0
SOUND_GAP_SECS = 0.3
"""Sound resumed within this long is the same stretch (the gaps between words)."""


class AnsweringMachineDetector(FrameProcessor):
    """Decides person or machine on an outbound call; times the opening; leaves voicemail.

    Args:
        vad_analyzer: The detector's own VAD (not shared with the user aggregator).
        voicemail_line: The rendered voicemail message.
        strategies: Verdict strategies, asked in order (default: provider, beep, words,
            speech timing).
        answered_by: The provider's verdict at answer (Twilio ``AnsweredBy``), if any.
        no_speech_secs: Nobody spoke this long: the opening goes out (verdict unknown).
        opening_pause_secs: Quiet after the callee's words before the opening goes out
            (the VAD's own stop included): a comma's pause inside a "hello, this is
            Maria" is shorter.
        long_words_secs: First words this long (or longer) may be a machine's greeting
            pausing between sentences...
        long_words_pause_secs: ...so the opening waits this long after them instead.
        transcribe_every_secs: Long speech is sent to the STT in pieces this long, so a
            greeting's words are read while it goes on.
        message_silence_secs: Quiet after a machine's greeting before the message.
        max_machine_wait_secs: Longest wait for a chance to leave the message.
    """

    def __init__(
        self,
        *,
        vad_analyzer: VADAnalyzer,
        voicemail_line: str,
        strategies: Sequence[VerdictStrategy] | None = None,
        answered_by: str | None = None,
        no_speech_secs: float = 2.0,
        opening_pause_secs: float = 0.35,
        long_words_secs: float = 2.0,
        long_words_pause_secs: float = 0.5,
        transcribe_every_secs: float = 1.0,
        message_silence_secs: float = 1.5,
        max_machine_wait_secs: float = 30.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._vad = vad_analyzer
        self._voicemail_line = voicemail_line
        self._strategies = list(strategies) if strategies is not None else default_strategies()
        self._no_speech_secs = no_speech_secs
        self._opening_pause_secs = opening_pause_secs
        self._long_words_secs = long_words_secs
        self._long_words_pause_secs = long_words_pause_secs
        self._quiet = NoiseFloor(window_s=6.0, percentile=10.0)
        self._sound_until_s = 0.0
        self._transcribe_every_secs = transcribe_every_secs
        self._segment_start_s = 0.0
        self._segment_peak = -120.0
        self._message_silence_secs = message_silence_secs
        self._max_wait_secs = max_machine_wait_secs
        self._evidence = Evidence(provider=answered_by)
        self.report = AnsweringMachineReport()
        self._stage = Stage.LISTENING
        self._beeps: BeepDetector | None = None
        self._sample_rate = 0
        self._vad_state = VADState.QUIET
        self._own_segments = 0  # segments we asked the STT for, transcripts not yet in
        self._stt_counts_segments = False
        self._machine_at_s = 0.0
        self._last_audio_wall = 0.0
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def stage(self) -> Stage:
        """Where the detector is in the call."""
        return self._stage

    @property
    def heard_s(self) -> float:
        """Seconds of the callee's audio analysed so far."""
        return self._evidence.now_s

    @property
    def pending_transcripts(self) -> int:
        """Segments sent to the STT on the detector's behalf, not yet transcribed."""
        return self._own_segments

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Listen to the callee's audio and transcripts; pass on what the call may see."""
        await super().process_frame(frame, direction)
        if direction is FrameDirection.UPSTREAM:
            if isinstance(frame, BotStartedSpeakingFrame):
                self._bot_started()
            await self.push_frame(frame, direction)
        elif isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._start()
        elif isinstance(frame, InputAudioRawFrame):
            await self._audio(frame)
        elif isinstance(frame, (TranscriptionFrame, InterimTranscriptionFrame)):
            if self._keeps_transcripts():
                if isinstance(frame, TranscriptionFrame) and frame.text.strip():
                    self._evidence.transcripts.append(frame.text)
                    await self._judge()
            else:
                await self.push_frame(frame, direction)
        elif isinstance(frame, SegmentTranscribedFrame):
            self._stt_counts_segments = True
            if self._keeps_transcripts():
                self._own_segments = max(0, self._own_segments - 1)
            else:
                await self.push_frame(frame, direction)
        elif isinstance(frame, MachineVerdictFrame) and frame.source == "provider":
            self._evidence.provider = frame.verdict  # Twilio's async AnsweredBy
            await self._judge()
        elif isinstance(frame, (GreetingFrame, TTSSpeakFrame)) and self._machine():
            pass  # nothing else is said to a machine (an idle prompt, a second greeting)
        else:
            await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        """Stop the no-audio watchdog."""
        await super().cleanup()
        if self._watchdog is not None:
            await self.cancel_task(self._watchdog)
            self._watchdog = None

    async def setup(self, setup: FrameProcessorSetup) -> None:
        """Learn the callee's audio rate (the VAD and beep detector run at it)."""
        await super().setup(setup)
        self._sample_rate = setup.audio_in_sample_rate or 16000

    def _start(self) -> None:
        self._vad.set_sample_rate(self._sample_rate)
        self._beeps = BeepDetector(self._sample_rate)
        self._last_audio_wall = time.monotonic()
        self._watchdog = self.create_task(self._no_audio_watchdog())

    def _keeps_transcripts(self) -> bool:
        # then: its own segments' transcripts, if the STT says when one is done (not a cloud one)
        owed = self._own_segments > 0 and self._stt_counts_segments
        return self._stage is not Stage.THROUGH or owed

    def _machine(self) -> bool:
        return self._stage in (Stage.WAITING_FOR_BEEP, Stage.DONE)

    async def _audio(self, frame: InputAudioRawFrame) -> None:
        if self._stage is Stage.THROUGH:
            await self.push_frame(frame)
            return
        if self._stage is Stage.DONE or self._beeps is None:
            return
        evidence = self._evidence
        evidence.now_s += len(frame.audio) / 2 / (frame.sample_rate or self._sample_rate)
        self._last_audio_wall = time.monotonic()
        for beep in self._beeps.feed(frame.audio):
            evidence.beeps.append(beep)
            if self.report.beep_at_s is None:
                self.report.beep_at_s = beep.end_s
        self._sound_step(frame.audio)
        await self._vad_step(await self._vad.analyze_audio(frame.audio))
        await self._maybe_cut_segment(frame.audio)
        await self._judge()

    async def _vad_step(self, state: VADState) -> None:
        """Speech spans from the VAD's confirmed starts and stops."""
        if state in (VADState.STARTING, VADState.STOPPING) or state == self._vad_state:
            return
        self._vad_state = state
        params = self._vad.params
        evidence = self._evidence
        if state is VADState.SPEAKING:
            evidence.speech.append(SpeechSpan(max(0.0, evidence.now_s - params.start_secs)))
            if self._stage is Stage.OPENED and self.report.verdict is None:
                await self._hold_opening()
            if self._stage in (Stage.LISTENING, Stage.OPENED):
                await self._open_segment()
        elif evidence.speech and evidence.speech[-1].end_s is None:
            evidence.speech[-1].end_s = max(
                evidence.speech[-1].start_s, evidence.now_s - params.stop_secs
            )
            await self._close_segment()

    def _sound_step(self, pcm: bytes) -> None:
        """Stretches of sound by level alone: what the VAD may not hear as speech."""
        evidence = self._evidence
        frame_s = len(pcm) / 2 / self._sample_rate
        level = level_db(pcm)
        quiet = self._quiet.update(level, frame_s)
        sounding = level >= max(quiet + SOUND_ABOVE_QUIET_DB, SOUND_MIN_DB)
        last = evidence.sound[-1] if evidence.sound else None
        if sounding:
            if last is None or last.end_s is not None:
                evidence.sound.append(SpeechSpan(evidence.now_s - frame_s))
            self._sound_until_s = evidence.now_s
        elif last is not None and last.end_s is None:
            if evidence.now_s - self._sound_until_s >= SOUND_GAP_SECS:
                last.end_s = self._sound_until_s

    async def _open_segment(self) -> None:
        """The STT collects the callee's words from here."""
        self._segment_start_s = self._evidence.now_s
        self._segment_peak = -120.0
        await self.push_frame(
            VADUserStartedSpeakingFrame(start_secs=self._vad.params.start_secs),
            FrameDirection.UPSTREAM,
        )

    async def _maybe_cut_segment(self, pcm: bytes) -> None:
        """Long unbroken speech: transcribe what was said so far, and go on collecting.

        The cut waits (up to half a second) for a dip between words, so no word is split.
        """
        if (
            self._stage not in (Stage.LISTENING, Stage.OPENED)
            or self._vad_state is not VADState.SPEAKING
            or self._transcribe_every_secs <= 0
        ):
            return
        level = level_db(pcm)
        self._segment_peak = max(self._segment_peak, level)
        elapsed = self._evidence.now_s - self._segment_start_s
        if elapsed < self._transcribe_every_secs:
            return
        if level < self._segment_peak - CUT_DIP_DB or elapsed >= self._transcribe_every_secs + 0.5:
            await self._close_segment()
            await self._open_segment()

    async def _close_segment(self) -> None:
        """The STT transcribes the callee's words so far (the transcript stays here)."""
        if self._stage in (Stage.LISTENING, Stage.OPENED) or self._vad_state is VADState.SPEAKING:
            self._own_segments += 1
            await self.push_frame(
                VADUserStoppedSpeakingFrame(stop_secs=self._vad.params.stop_secs),
                FrameDirection.UPSTREAM,
            )

    async def _judge(self) -> None:
        """Ask the strategies, then do what the stage and verdict call for."""
        evidence = self._evidence
        report = self.report
        if report.verdict is None and self._stage is not Stage.DONE:
            evidence.words_pending = self._own_segments > 0 and self._stt_counts_segments
            for strategy in self._strategies:
                verdict = strategy.decide(evidence)
                if verdict is not None:
                    await self._decide(verdict)
                    break
        if self._stage is Stage.LISTENING:
            await self._maybe_open()
        if self._stage is Stage.OPENED and report.verdict is not None:
            await self._go_through()
        if self._stage is Stage.WAITING_FOR_BEEP:
            await self._maybe_leave_message()

    async def _decide(self, verdict: Verdict) -> None:
        report = self.report
        report.verdict, report.source = verdict.verdict, verdict.source
        report.decided_after_s = round(self._evidence.now_s, 3)
        logger.info(f"{self}: answered by {verdict.verdict} ({verdict.source})")
        await self.push_frame(
            MachineVerdictFrame(
                verdict=str(verdict.verdict),
                source=verdict.source,
                decided_after_s=report.decided_after_s,
                beep_at_s=report.beep_at_s,
            )
        )
        if verdict.verdict is MachineVerdict.MACHINE:
            await self._withdraw()

    async def _maybe_open(self) -> None:
        evidence = self._evidence
        last_end = evidence.last_speech_end_s
        first_words_ended = (
            last_end is not None and evidence.now_s - last_end >= self._opening_pause(last_end)
        )
        nobody_spoke = (
            not evidence.speech
            and evidence.now_s >= self._no_speech_secs
            and not (evidence.sound and evidence.sound[-1].end_s is None)  # unheard words?
        )
        if not (first_words_ended or nobody_spoke):
            return
        if nobody_spoke and self.report.verdict is None:
            await self._decide(Verdict(MachineVerdict.UNKNOWN, "silence"))
            if self._machine():
                return
        self.report.opening_at_s = round(evidence.now_s, 3)
        if evidence.speech:
            self.report.first_words_end_s = evidence.speech[-1].end_s
        self._stage = Stage.OPENED
        await self.push_frame(GreetingFrame())

    def _opening_pause(self, last_end: float) -> float:
        """The quiet the opening waits for: longer after long first words."""
        spans = self._evidence.speech
        start = spans[-1].start_s if spans else last_end
        for before in reversed(spans[:-1]):  # the words just ended, short pauses included
            if before.end_s is None or start - before.end_s >= 1.0:
                break
            start = before.start_s
        if last_end - start >= self._long_words_secs:
            return self._long_words_pause_secs
        return self._opening_pause_secs

    async def _hold_opening(self) -> None:
        """The callee went on talking after a pause: stop the opening, say it when they stop."""
        self.report.openings_held += 1
        self._stage = Stage.LISTENING
        await self.broadcast_interruption()

    async def _go_through(self) -> None:
        """A person (or nobody): from now on the callee's audio and words reach the call."""
        if self._vad_state is VADState.SPEAKING:
            await self._close_segment()  # the aggregator's VAD takes the words from here
        self._stage = Stage.THROUGH

    async def _withdraw(self) -> None:
        """A machine: take back the opening if it went out, and wait for the beep."""
        if self._vad_state is VADState.SPEAKING:
            await self._close_segment()
        self.report.withdrawn = self.report.opening_at_s is not None
        if self._stage is Stage.OPENED:
            logger.info(f"{self}: opening withdrawn (a machine answered)")
            await self.broadcast_interruption()
        self._stage = Stage.WAITING_FOR_BEEP
        self._machine_at_s = self._evidence.now_s

    async def _maybe_leave_message(self) -> None:
        evidence = self._evidence
        if evidence.provider in NO_MESSAGE:
            await self._finish(Disposition.MACHINE_NO_MESSAGE)
            return
        last_end = evidence.last_speech_end_s
        tone_s = self._beeps.last_tonal_s if self._beeps is not None else None
        if last_end is not None and tone_s is not None:
            last_end = max(last_end, tone_s)  # a tone sounding (a beep?) is not quiet
        greeting_over = last_end is not None and (
            evidence.now_s - last_end >= self._message_silence_secs
        )
        if evidence.beeps or evidence.provider in GREETING_ENDED or greeting_over:
            await self._leave_message()
        elif evidence.now_s - self._machine_at_s >= self._max_wait_secs:
            await self._finish(Disposition.MACHINE_NO_MESSAGE)

    async def _leave_message(self) -> None:
        if not self._voicemail_line.strip():  # nothing to say: hang up
            await self._finish(Disposition.MACHINE_NO_MESSAGE)
            return
        self.report.voicemail_at_s = round(self._evidence.now_s, 3)
        logger.info(f"{self}: leaving the voicemail message")
        speak = TTSSpeakFrame(self._voicemail_line, append_to_context=False)
        speak.interruptible = False
        await self.push_frame(speak)
        await self._finish(Disposition.VOICEMAIL_LEFT)

    async def _finish(self, disposition: Disposition) -> None:
        """Push the outcome and end the call once everything before it was spoken."""
        self._stage = Stage.DONE
        self.report.disposition = str(disposition)
        logger.info(f"{self}: outbound outcome {disposition}")
        await self.push_frame(OutcomeFrame(disposition=str(disposition)))
        await self.push_frame(EndWorkerFrame(reason=f"answering machine: {disposition}"))

    def _bot_started(self) -> None:
        report = self.report
        if report.voicemail_at_s is not None and report.voicemail_heard_at_s is None:
            since_audio = time.monotonic() - self._last_audio_wall
            report.voicemail_heard_at_s = round(self._evidence.now_s + since_audio, 3)

    async def _no_audio_watchdog(self) -> None:
        """A transport that sends nothing while nobody speaks: open after ``no_speech_secs``."""
        while self._stage is Stage.LISTENING:
            await asyncio.sleep(0.25)
            quiet = time.monotonic() - self._last_audio_wall
            if self._stage is Stage.LISTENING and quiet >= self._no_speech_secs:
                sound = self._evidence.sound
                if sound and sound[-1].end_s is None:
                    sound[-1].end_s = self._sound_until_s  # no audio is quiet
                if not self._evidence.speaking:
                    self._evidence.now_s = max(self._evidence.now_s, self._no_speech_secs)
                    await self._judge()
