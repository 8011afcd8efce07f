"""Answering-machine detection, the opening's timing and the voicemail drop (outbound calls).

Goes right after the STT, before the user aggregator. Until the call goes through it keeps
the callee's audio and transcripts to itself (no machine greeting, no "hello?" becomes a
request to the NLU), hears the callee through its own VAD, sound levels and beep detector
(:mod:`processors.callee_audio`), and marks the callee's words for the STT (VAD frames
pushed upstream; long speech in 1 s pieces) so they are still transcribed.

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
from integrations.speech.stt import SegmentTranscribedFrame
from processors.callee_audio import CalleeAudio
from processors.frames import GreetingFrame, MachineVerdictFrame, OutcomeFrame
from processors.machine_verdict import (
    GREETING_ENDED,
    NO_MESSAGE,
    AnsweringMachineReport,
    Evidence,
    Stage,
    Verdict,
    VerdictStrategy,
    default_strategies,
)


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
        self._message_silence_secs = message_silence_secs
        self._max_wait_secs = max_machine_wait_secs
        self._evidence = Evidence(provider=answered_by)
        self._callee = CalleeAudio(
            vad_analyzer, self._evidence, transcribe_every_secs=transcribe_every_secs
        )
        self.report = AnsweringMachineReport()
        self._stage = Stage.LISTENING
        self._sample_rate = 0
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
        self._callee.start(self._sample_rate)
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
        if self._stage is Stage.DONE or not self._callee.started:
            return
        evidence = self._evidence
        evidence.now_s += len(frame.audio) / 2 / (frame.sample_rate or self._sample_rate)
        self._last_audio_wall = time.monotonic()
        heard = await self._callee.hear(frame.audio)
        if self.report.beep_at_s is None and evidence.beeps:
            self.report.beep_at_s = evidence.beeps[0].end_s
        if heard is VADState.SPEAKING:
            if self._stage is Stage.OPENED and self.report.verdict is None:
                await self._hold_opening()
            if self._collecting():
                await self._open_segment()
        elif heard is VADState.QUIET:
            await self._close_segment()
        if self._collecting() and self._callee.segment_due(frame.audio):
            # long unbroken speech: transcribe what was said so far, and go on collecting
            await self._close_segment()
            await self._open_segment()
        await self._judge()

    def _collecting(self) -> bool:
        """Whether the callee's words are still for the detector (the call is not through)."""
        return self._stage in (Stage.LISTENING, Stage.OPENED)

    async def _open_segment(self) -> None:
        """The STT collects the callee's words from here."""
        self._callee.segment_opened()
        await self.push_frame(
            VADUserStartedSpeakingFrame(start_secs=self._vad.params.start_secs),
            FrameDirection.UPSTREAM,
        )

    async def _close_segment(self) -> None:
        """The STT transcribes the callee's words so far (the transcript stays here)."""
        if self._collecting() or self._callee.speaking:
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
        if self._callee.speaking:
            await self._close_segment()  # the aggregator's VAD takes the words from here
        self._stage = Stage.THROUGH

    async def _withdraw(self) -> None:
        """A machine: take back the opening if it went out, and wait for the beep."""
        if self._callee.speaking:
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
        tone_s = self._callee.last_tonal_s
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
                self._callee.end_sound()  # no audio is quiet
                if not self._evidence.speaking:
                    self._evidence.now_s = max(self._evidence.now_s, self._no_speech_secs)
                    await self._judge()
